import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsim
from hypernets.ansatz import brickwork, hardware_efficient, init_params, make_ansatz, make_probs_fn
from hypernets.layout import Layout, Weights


def test_brickwork_structure_and_parameter_count():
    c = brickwork(5, 2)
    assert c.num_params == 2 * 5 * 2
    cnots = [op.wires for op in c.ops if op.name.lower() in ("cnot", "cx")]
    assert [tuple(w) for w in cnots] == [(0, 1), (2, 3), (1, 2), (3, 4)]
    assert brickwork(17, 4).num_params == 136
    assert hardware_efficient(4, 3).num_params == 24


def test_init_params_uniform_in_0_2pi():
    c = brickwork(6, 3)
    p = np.asarray(init_params(jax.random.key(0), c, jnp.float64))
    assert p.shape == (36,) and p.min() >= 0 and p.max() < 2 * np.pi


@pytest.mark.parametrize("name", ["brickwork", "hardware_efficient"])
@pytest.mark.parametrize("n, depth, checkpoint", [(6, 3, False), (5, 2, True)])
def test_fast_simulator_equals_qsim_probs_and_gradient(name, n, depth, checkpoint, monkeypatch):
    """Several groups with CNOTs folded in (6 wires: groups of 4 + 2 and 3 + 3), and the checkpointed
    path. The reference gradient is a central difference of the core's qsim.probs in every coordinate
    (jax.grad through the core compiles for ~20 s here; its own tests cover that)."""
    import hypernets.ansatz as ansatz

    if checkpoint:
        monkeypatch.setattr(ansatz, "CHECKPOINT_WIRES", 0)
    c = make_ansatz(name, n, depth)
    p = init_params(jax.random.key(1), c, jnp.float64)
    costs = jnp.asarray(np.random.default_rng(0).random(2 ** n))
    fast = jax.jit(make_probs_fn(name, n, depth))          # one compile instead of op-by-op dispatch
    np.testing.assert_allclose(fast(p), qsim.probs(c, p), atol=1e-13)
    g_fast = np.asarray(jax.jit(jax.grad(lambda q: fast(q) @ costs))(p))
    h = 1e-5
    eye = np.eye(p.size)
    fd = np.array([float(qsim.probs(c, p + h * e) @ costs - qsim.probs(c, p - h * e) @ costs) / (2 * h)
                   for e in eye])
    np.testing.assert_allclose(g_fast, fd, atol=1e-9)       # O(h^2) truncation ~1e-10
    assert np.abs(g_fast).max() > 1e-3                       # a gradient that is not trivially zero


def test_float32_params_give_float32_probs():
    f = jax.jit(make_probs_fn("brickwork", 3, 1))
    out = f(jnp.ones(6, jnp.float32))
    assert out.dtype == jnp.float32
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-5)


def test_layout_qubit_mismatch_raises():
    lay = Layout([Weights("w", (6,))])
    with pytest.raises(ValueError, match="6 bits but the circuit has 5 qubits"):
        make_ansatz("brickwork", 5, 1, layout=lay)
    with pytest.raises(ValueError, match="unknown ansatz"):
        make_ansatz("ladder", 6, 1)
    with pytest.raises(ValueError, match="depth"):
        brickwork(4, 0)
    with pytest.raises(ValueError, match="takes 16 params"):
        make_probs_fn("brickwork", 4, 2)(jnp.ones(15))


def test_float32_circuit_and_task_ask_for_full_float32_products(float32_dot_precisions, assert_all_highest):
    """float32 distributions and landscapes on a GPU would run their matrix products in TF32 unless
    they ask for HIGHEST (checked in the traced programs)."""
    import jax.numpy as jnp

    from hypernets.ansatz import make_probs_fn
    from hypernets.tasks import gaussian_forward

    probs_fn = make_probs_fn("brickwork", 6, 2)
    pr = float32_dot_precisions(probs_fn, jnp.ones(24, jnp.float32))
    p = {"W1": jnp.ones((2, 4), jnp.float32), "b1": jnp.ones(4, jnp.float32), "W2": jnp.ones(4, jnp.float32),
         "b2": jnp.float32(1), "activation": jnp.int32(0)}
    pr += float32_dot_precisions(gaussian_forward, p, jnp.ones((5, 2), jnp.float32))
    assert_all_highest(pr, at_least=3)


def _old_brickwork(n, depth):
    c = qsim.Circuit(n)
    for d in range(depth):
        for j in range(d % 2, n - 1, 2):
            c.cnot(j, j + 1)
        for j in range(n):
            c.ry(j)
        for j in range(n):
            c.phaseshift(j)
    return c


def _old_hardware_efficient(n, depth):
    """hypernets' own builder before the shared qsim.circuits.templates one (the reference)."""
    c = qsim.Circuit(n)
    for _ in range(depth):
        for j in range(n):
            c.ry(j)
        for j in range(n):
            c.rz(j)
        for j in range(n - 1):
            c.cnot(j, j + 1)
    return c


@pytest.mark.parametrize("n, depth", [(1, 1), (2, 2), (5, 3), (8, 1), (17, 4)])
def test_circuits_are_the_old_gate_sequences(n, depth):
    """hardware_efficient now comes from qsim.circuits.templates (shared with the chemistry VQE):
    op for op, slot for slot the circuit it was; brickwork unchanged."""
    from qsim.chem import vqe

    assert hardware_efficient(n, depth).key() == _old_hardware_efficient(n, depth).key()
    assert make_ansatz("hardware_efficient", n, depth).key() == _old_hardware_efficient(n, depth).key()
    assert vqe.hardware_efficient(n, depth).circuit.key() == hardware_efficient(n, depth).key()
    assert brickwork(n, depth).key() == _old_brickwork(n, depth).key()


def test_bad_sizes_name_the_value():
    with pytest.raises(TypeError, match="n_qubits must be a positive int"):
        hardware_efficient(2.5, 1)
    with pytest.raises(ValueError, match=r"depth \(layer steps\) must be a positive int, got 0"):
        hardware_efficient(3, 0)
    with pytest.raises(ValueError, match="n_qubits"):
        make_probs_fn("brickwork", 0, 1)
