"""The sharded statevector (qsim.simulator.sharded) against the single-device simulator on the 4 CPU devices of
the test session (tests/conftest.py): states to 1e-6 (complex128 reaches ~1e-15), expectations and
their gradients, with gates on the sharded (leading) qubits that force all-to-all qubit swaps."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import unitary_group

import qsim
from qsim.simulator import sharded

pytestmark = pytest.mark.multidevice  # 4 CPU devices: run by tests/test_multidevice.py

@pytest.fixture(autouse=True)
def _fast_compile():
    """Compile time dominates these small states: most XLA optimisations off (restored after)."""
    old = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)


ONE = ["H", "X", "Y", "S", "T", "SX", "RX", "RY", "RZ", "PhaseShift", "U3"]
TWO = ["CNOT", "CZ", "CY", "SWAP", "ISWAP", "CRX", "CRY", "CRZ", "RXX", "RYY", "RZZ"]


def random_circuit(n, n_ops, seed):
    """Random gates on random wires (leading wires included), a controlled gate, a 2-qubit unitary and
    a Toffoli; parameters are trainable slots."""
    rng = np.random.default_rng(seed)
    c = qsim.Circuit(n)
    for w in range(n):
        c.h(w)
    for i in range(n_ops):
        if rng.random() < 0.5:
            c.add(str(rng.choice(ONE)), int(rng.integers(n)))
        else:
            c.add(str(rng.choice(TWO)), [int(w) for w in rng.choice(n, 2, replace=False)])
    c.unitary(unitary_group.rvs(4, random_state=seed), [0, n - 1])
    c.add("Toffoli", [n - 1, 0, 1])
    c.ctrl("RY", [1], 0)
    c.mcx([0, 2], 1)
    return c


@pytest.mark.parametrize("n_devices, seed", [(2, 0), (4, 1), (4, 2)])
def test_random_circuits_match_one_device(n_devices, seed):
    n = 6
    c = random_circuit(n, 16, seed)
    p = jnp.asarray(np.random.default_rng(seed).normal(size=c.num_params))
    ref = np.asarray(qsim.simulate(c, p))
    psi = sharded.simulate(c, p, n_devices=n_devices)
    k = int(np.log2(n_devices))
    assert sharded.plan(c, k).n_swaps > 0           # gates on the sharded qubits did go through swaps
    # each device holds 2^(n-k) amplitudes: the block whose leading k bits are its index
    shards = sorted(psi.addressable_shards, key=lambda s: s.index[0].start)
    assert len(shards) == n_devices
    for d, s in enumerate(shards):
        assert s.data.shape == (2 ** (n - k),)
        np.testing.assert_allclose(np.asarray(s.data), ref[d * 2 ** (n - k):(d + 1) * 2 ** (n - k)], atol=1e-6)
    np.testing.assert_allclose(np.asarray(psi), ref, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(psi)), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(sharded.probs(c, p, n_devices=n_devices)), np.abs(ref) ** 2, atol=1e-6)


def test_float32_gives_complex64_within_1e_6():
    c = random_circuit(5, 10, 5)
    p = np.random.default_rng(5).normal(size=c.num_params).astype(np.float32)
    psi = sharded.simulate(c, jnp.asarray(p), n_devices=4)
    assert psi.dtype == jnp.complex64
    np.testing.assert_allclose(np.asarray(psi), np.asarray(qsim.simulate(c, jnp.asarray(p, jnp.float64))),
                               atol=1e-6)


def test_expval_and_gradient_match_one_device():
    c = random_circuit(5, 8, 3)
    p = jnp.asarray(np.random.default_rng(3).normal(size=c.num_params))
    H = (qsim.Z(0) @ qsim.Z(1) + 0.5 * qsim.X(0) + 0.3 * qsim.Y(1) @ qsim.X(4) + 0.2 * qsim.Y(4)
         - 0.7 * qsim.X(0) @ qsim.Y(1) @ qsim.Z(3) + 0.1 * qsim.Z(2) + 0.4)
    mesh = jax.make_mesh((4,), ("d",))
    e1 = float(qsim.expval(c, p, H))
    e4 = float(sharded.expval(c, p, H, mesh=mesh))
    assert abs(e4 - e1) < 1e-12
    g1 = jax.grad(lambda q: qsim.expval(c, q, H))(p)
    g4 = jax.jit(jax.grad(lambda q: sharded.expval(c, q, H, mesh=mesh)))(p)
    np.testing.assert_allclose(np.asarray(g4), np.asarray(g1), atol=1e-10)
    # and the gradient is not trivially zero
    assert float(jnp.abs(g1).max()) > 1e-2


def test_plan_tracks_the_permutation():
    c = qsim.Circuit(4)
    c.ry(2); c.cnot(2, 3)                            # local only: no swap
    assert sharded.plan(c, 2).n_swaps == 0
    c.h(0)                                           # a sharded qubit: swap in, and back at the end
    pl = sharded.plan(c, 2)
    assert pl.n_swaps == 2 and [s[0] for s in pl.steps] == ["local", "swap", "local", "swap"]
    p = jnp.asarray([0.3])
    np.testing.assert_allclose(np.asarray(sharded.simulate(c, p, n_devices=4)), np.asarray(qsim.simulate(c, p)),
                               atol=1e-12)


def test_controls_on_sharded_qubits_need_no_swap():
    def gates(c):
        for w in (2, 3, 4):
            c.h(w)
        c.cnot(0, 2); c.cz(3, 1); c.ctrl("RY", [0, 1], 3); c.add("Toffoli", [1, 0, 2]); c.add("CPhase", [2, 0])
        return c

    pl = sharded.plan(gates(qsim.Circuit(5)), 2)
    assert pl.n_swaps == 0 and sum(s[0] == "controlled" for s in pl.steps) == 5
    c = qsim.Circuit(5)
    c.ry(0); c.ry(1)              # superpositions on the sharded qubits (these two go through swaps)
    gates(c)
    assert sum(s[0] == "controlled" for s in sharded.plan(c, 2).steps) >= 1
    p = jnp.asarray([0.7, -0.4, 1.1, 0.3])
    np.testing.assert_allclose(np.asarray(sharded.simulate(c, p, n_devices=4)), np.asarray(qsim.simulate(c, p)),
                               atol=1e-12)


def test_bad_inputs_are_refused_before_work():
    c = qsim.Circuit(3)
    c.add("Toffoli", [0, 1, 2])
    with pytest.raises(ValueError, match="power-of-two"):
        sharded.simulate(c, None, n_devices=3)
    with pytest.raises(ValueError, match="1 local qubit"):
        sharded.simulate(c, None, n_devices=4)
    with pytest.raises(ValueError, match="expects"):
        sharded.simulate(qsim.Circuit(3).ry(0), jnp.zeros(2), n_devices=2)


def test_one_device_is_the_plain_simulator():
    c = random_circuit(4, 10, 9)
    p = jnp.asarray(np.random.default_rng(9).normal(size=c.num_params))
    np.testing.assert_array_equal(np.asarray(sharded.simulate(c, p, n_devices=1)), np.asarray(qsim.simulate(c, p)))


@pytest.mark.slow  # a fresh process with 8 forced devices (the session has 4): ~30 s on this machine
def test_three_sharded_qubits_on_eight_devices(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = f"""
import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
assert jax.device_count() == 8
import qsim
from qsim.simulator import sharded
from test_sharded import random_circuit
c = random_circuit(7, 20, 11)
p = jnp.asarray(np.random.default_rng(11).normal(size=c.num_params))
psi = sharded.simulate(c, p, n_devices=8)
assert len(psi.sharding.device_set) == 8 and sharded.plan(c, 3).n_swaps > 0
err = float(np.abs(np.asarray(psi) - np.asarray(qsim.simulate(c, p))).max())
H = qsim.X(0) @ qsim.Y(2) + qsim.Z(1) @ qsim.Z(6) + 0.5 * qsim.X(5)
eerr = abs(float(sharded.expval(c, p, H, n_devices=8)) - float(qsim.expval(c, p, H)))
print(err, eerr)
assert err < 1e-6 and eerr < 1e-10
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
