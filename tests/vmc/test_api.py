"""vmc's public API: every name in ``vmc.__all__`` resolves (lazily: ``import vmc`` loads no JAX), and
the names that tests, benchmarks and docs import from ``vmc.train`` stay there after the split into
vmc.config / vmc.step / vmc.train."""
import subprocess
import sys

import pytest

import vmc


def test_all_names_resolve():
    assert len(set(vmc.__all__)) == len(vmc.__all__)
    for name in vmc.__all__:
        assert getattr(vmc, name) is not None, name
    assert vmc.make_config is vmc.config.make_config and vmc.TrainState is vmc.step.TrainState
    assert callable(vmc.train.train)  # vmc.train is the module, its train() the function
    assert set(vmc.__all__) <= set(dir(vmc))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vmc.nope  # noqa: B018


def test_import_vmc_is_light():
    """``import vmc`` loads none of its own modules (nor Flax, folx, optax) until a name is used."""
    code = ("import sys, vmc; print(any(m.startswith('vmc.') for m in sys.modules), "
            "'flax' in sys.modules, 'folx' in sys.modules, 'optax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"] * 4


def test_vmc_train_keeps_its_names():
    from vmc import train

    for name in ("DEFAULTS", "PRECISIONS", "Precision", "TrainState", "Built", "train", "build", "enable_x64",
                 "molecule_from_config", "validate_config", "NanError", "cast_floats", "single_threaded_blas",
                 "make_train_step", "make_mcmc", "evaluate", "pretrain"):
        assert hasattr(train, name), name
    assert set(train.__all__) <= set(dir(train))
