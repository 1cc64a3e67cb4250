import subprocess
import sys

import flows


def test_public_names_resolve_to_their_modules():
    assert len(set(flows.__all__)) == len(flows.__all__)
    for name in flows.__all__:
        value = getattr(flows, name)
        assert value is not None
    from flows import cli, learn
    assert flows.train is learn.train and flows.run_flow is cli.run_flow
    assert callable(flows.evolve.evolve)


def test_import_flows_is_light():
    """``import flows`` loads none of its own modules (nor Flax, optax) until a name is used."""
    code = ("import sys, flows; print(any(m.startswith('flows.') for m in sys.modules), "
            "'flax' in sys.modules, 'optax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"] * 3
