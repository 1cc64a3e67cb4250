"""Random circuits against PennyLane and Aer; gradients against parameter shift and finite differences;
probs/sample/expval semantics; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qsim
from qsim.circuits.circuit import ParamRef, Op
from qsim.circuits.gates import GATES, op_shift_rule

ONE_TWO = [g for g in GATES.values() if g.num_wires in (1, 2)]


@st.composite
def circuits(draw, max_wires=10, max_gates=14):
    n = draw(st.integers(1, max_wires))
    c = qsim.Circuit(n)
    for _ in range(draw(st.integers(1, max_gates))):
        choices = [g for g in ONE_TWO if g.num_wires <= n]
        g = draw(st.sampled_from(choices))
        wires = draw(st.permutations(range(n)))[: g.num_wires]
        fixed = g.num_params and draw(st.booleans())
        if fixed:
            c.add(g.name, wires, value=[draw(st.floats(-4, 4)) for _ in range(g.num_params)])
        elif g.num_params and c.num_params and draw(st.booleans()):  # a shared slot
            c.add(g.name, wires, param=[draw(st.integers(0, c.num_params - 1)) for _ in range(g.num_params)])
        else:
            c.add(g.name, wires)
    seed = draw(st.integers(0, 2**31))
    return c, np.random.default_rng(seed).uniform(-np.pi, np.pi, c.num_params)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=circuits())
def test_random_circuits_match_pennylane_and_aer(case, ref):
    c, p = case
    got = np.asarray(qsim.simulate(c, jnp.asarray(p, jnp.float64)))
    np.testing.assert_allclose(got, ref.pennylane(c, p), atol=1e-10)
    np.testing.assert_allclose(got, ref.aer(c, p), atol=1e-10)
    got32 = np.asarray(qsim.simulate(c, jnp.asarray(p, jnp.float32)))
    np.testing.assert_allclose(got32, got, atol=1e-5)


def _random_pauli_sum(n, rng, terms=6):
    h = 0.0 * qsim.I()
    for _ in range(terms):
        s = "".join(rng.choice(list("IXYZ"), size=n))
        h = h + float(rng.normal()) * qsim.PauliSum.from_list([(1.0, s)])
    return h


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=circuits(max_wires=6))
def test_expval_of_random_pauli_sums(case):
    c, p = case
    rng = np.random.default_rng(len(c.ops))
    h = _random_pauli_sum(c.n_wires, rng)
    state = np.asarray(qsim.simulate(c, jnp.asarray(p)))
    exact = np.vdot(state, h.to_matrix(c.n_wires) @ state).real
    np.testing.assert_allclose(float(qsim.expval(c, jnp.asarray(p), h)), exact, atol=1e-10)
    # and against PennyLane's own expectation
    import pennylane as qml

    from qsim.circuits.operators import PauliSum  # noqa: F401
    ops = []
    for coeff, s in h:
        word = {w: {"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}[ch](w) for w, ch in s}
        ops.append(coeff.real * (qml.prod(*word.values()) if word else qml.Identity(0)))
    mat = qml.matrix(qml.sum(*ops), wire_order=range(c.n_wires))
    np.testing.assert_allclose(exact, np.vdot(state, mat @ state).real, atol=1e-10)


def _untied(c):
    """The same circuit with every parametrised use reading its own slot (one compile for all shifts)."""
    out = qsim.Circuit(c.n_wires)
    uses = []
    for i, op in enumerate(c.ops):
        refs = []
        for j, r in enumerate(op.params):
            if r.slot is None:
                refs.append(r)
            else:
                refs.append(ParamRef(slot=out.new_param()))
                uses.append((i, j, r.slot))
        out.ops.append(Op(op.name, op.wires, tuple(refs), op.n_controls, op.adjoint, op.matrix))
    return out, uses


def test_grad_matches_parameter_shift_and_finite_differences():
    rng = np.random.default_rng(7)
    c = qsim.Circuit(3)
    for w in range(3):
        c.h(w)
    c.rx(0); c.ry(1); c.rz(2); c.u3(0); c.crx(0, 1); c.cry(1, 2); c.crz(2, 0); c.cphase(0, 2)
    c.rxx(0, 1); c.ryy(1, 2); c.rzz(0, 2); c.phaseshift(1)
    c.ry(2, param=1)             # shared slot
    c.ctrl("RX", [2], 0)         # controlled version
    c.add("RY", 1, param=0); c.ops[-1] = Op("RY", (1,), (ParamRef(slot=0),), 0, True)  # an adjoint use
    h = qsim.Z(0) @ qsim.X(1) + 0.7 * qsim.Y(2) - 0.3 * qsim.Z(1) @ qsim.Z(2)
    p = jnp.asarray(rng.uniform(-np.pi, np.pi, c.num_params))
    f = lambda q: qsim.expval(c, q, h)  # noqa: E731
    g = np.asarray(jax.grad(f)(p))
    # parameter shift from the gate table's rules, summed over every use of each slot
    u, uses = _untied(c)
    base = np.array([p[slot] for _, _, slot in uses])
    shifted, weights = [], []
    for k, (i, j, slot) in enumerate(uses):
        op = c.ops[i]
        for coeff, shift in op_shift_rule(op.gate, j, op.n_controls):
            shifted.append(base + shift * np.eye(len(uses))[k])
            weights.append((slot, coeff))
    vals = np.asarray(jax.jit(jax.vmap(lambda q: qsim.expval(u, q, h)))(jnp.asarray(np.array(shifted))))
    ps = np.zeros(c.num_params)
    for (slot, coeff), v in zip(weights, vals):
        ps[slot] += coeff * v
    np.testing.assert_allclose(g, ps, atol=1e-9)
    eps = 1e-5
    steps = eps * np.eye(c.num_params)
    fvals = np.asarray(jax.vmap(f)(jnp.concatenate([p + steps, p - steps])))
    fd = (fvals[: c.num_params] - fvals[c.num_params:]) / (2 * eps)
    np.testing.assert_allclose(g, fd, atol=1e-7)


def test_vmap_jit_and_batched_params():
    c = qsim.Circuit(2)
    c.ry(0); c.cnot(0, 1); c.rx(1)
    ps = jnp.asarray(np.random.default_rng(0).uniform(-3, 3, (5, 2)))
    batched = qsim.simulate(c, ps)
    assert batched.shape == (5, 4)
    for k in range(5):
        np.testing.assert_allclose(batched[k], qsim.simulate(c, ps[k]), atol=1e-12)
    e = jax.jit(jax.vmap(lambda q: qsim.expval(c, q, qsim.Z(1))))(ps)
    np.testing.assert_allclose(e, qsim.expval(c, ps, qsim.Z(1)), atol=1e-12)


def test_bell_state_probs_marginals_and_wire_order():
    c = qsim.Circuit(3)
    c.x(0)  # |100> -> index 4: wire 0 is the most significant bit
    np.testing.assert_allclose(qsim.probs(c), np.eye(8)[4], atol=1e-12)
    c.h(1); c.cnot(1, 2)
    p = qsim.probs(c)
    np.testing.assert_allclose(p, [0, 0, 0, 0, 0.5, 0, 0, 0.5], atol=1e-12)
    np.testing.assert_allclose(qsim.probs(c, wires=[0]), [0, 1], atol=1e-12)
    c2 = qsim.Circuit(2)
    c2.x(0)
    np.testing.assert_allclose(qsim.probs(c2, wires=[1, 0]), [0, 1, 0, 0], atol=1e-12)  # |wire1 wire0> = |01>
    np.testing.assert_allclose(qsim.probs(c2, wires=[0, 1]), [0, 0, 1, 0], atol=1e-12)


def test_init_state_and_inverse():
    rng = np.random.default_rng(3)
    c = qsim.Circuit(3)
    c.h(0); c.ry(1); c.crz(0, 2); c.u3(2); c.iswap(0, 1); c.t(2)
    p = jnp.asarray(rng.uniform(-3, 3, c.num_params))
    psi = qsim.simulate(c, p)
    back = qsim.simulate(c.inverse(), p, init_state=psi)
    np.testing.assert_allclose(back, np.eye(8)[0], atol=1e-12)
    with pytest.raises(ValueError, match="init_state has shape"):
        qsim.simulate(c, p, init_state=jnp.ones(4))


def test_sample_frequencies_within_standard_error():
    c = qsim.Circuit(2)
    c.ry(0, value=1.1); c.cnot(0, 1); c.ry(1, value=0.4)
    p = np.asarray(qsim.probs(c))
    shots = 20000
    bits = np.asarray(qsim.sample(c, shots=shots, key=jax.random.key(0)))
    assert bits.shape == (shots, 2) and set(np.unique(bits)) <= {0, 1}
    idx = bits[:, 0] * 2 + bits[:, 1]
    freq = np.bincount(idx, minlength=4) / shots
    se = np.sqrt(p * (1 - p) / shots)
    assert np.all(np.abs(freq - p) <= 4 * se + 1e-12), (freq, p)


def test_dtype_rules():
    c = qsim.Circuit(1)
    c.rx(0)
    assert qsim.simulate(c, jnp.zeros(1, jnp.float32)).dtype == jnp.complex64
    assert qsim.simulate(c, jnp.zeros(1, jnp.float64)).dtype == jnp.complex128
    assert qsim.simulate(c, jnp.zeros(1, jnp.float64), dtype=jnp.complex64).dtype == jnp.complex64
    with pytest.raises(TypeError, match="complex64 or complex128"):
        qsim.simulate(c, jnp.zeros(1), dtype=jnp.float32)


def test_bad_input_is_rejected_clearly(monkeypatch):
    c = qsim.Circuit(2)
    with pytest.raises(ValueError, match="wire 2 out of range"):
        c.rx(2)
    with pytest.raises(ValueError, match="wire repeated"):
        c.cnot(1, 1)
    with pytest.raises(ValueError, match="acts on 2 wire"):
        c.add("CNOT", [0])
    with pytest.raises(ValueError, match="not unitary"):
        c.unitary([[1, 1], [0, 1]], 0)
    with pytest.raises(ValueError, match="needs a \\(4, 4\\) matrix"):
        c.unitary(np.eye(2), [0, 1])
    with pytest.raises(TypeError, match="not an int"):
        c.h(0.5)
    with pytest.raises(ValueError, match="at least one wire"):
        qsim.Circuit(0)
    with pytest.raises(ValueError, match="non-finite"):
        c.rx(0, value=float("nan"))
    with pytest.raises(ValueError, match="not an existing slot"):
        c.rx(0, param=3)
    c.ry(0); c.ry(1)
    with pytest.raises(ValueError, match=r"expects \(\.\.\., 2\)"):
        qsim.simulate(c, jnp.zeros(3))
    with pytest.raises(ValueError, match="params=None"):
        qsim.simulate(c)
    with pytest.raises(TypeError, match="real angles"):
        qsim.simulate(c, jnp.zeros(2, jnp.complex64))
    with pytest.raises(ValueError, match="outside the circuit"):
        qsim.expval(c, jnp.zeros(2), qsim.Z(5))
    with pytest.raises(ValueError, match="shots must be a positive int"):
        qsim.sample(c, jnp.zeros(2), shots=0, key=jax.random.key(0))
    # a register that would not fit in memory fails before any allocation
    big = qsim.Circuit(40)
    big.h(0)
    with pytest.raises(ValueError, match="40-qubit complex128 state needs"):
        qsim.simulate(big, dtype=jnp.complex128)


@pytest.mark.parametrize("max_fuse", [None, 3, 5])
def test_complex64_simulation_asks_for_full_float32_products(max_fuse, float32_dot_precisions, assert_all_highest):
    """complex64 on a GPU: JAX multiplies float32 matrices in TF32 by default, which put <H> 1.6e-3 off
    complex128 on an H100 at 16 qubits; every product of the simulator (fusion, blocks, both engines)
    must ask for HIGHEST (checked in the traced program; max_fuse 5 takes the GEMM engine)."""
    c = qsim.Circuit(6)
    for layer in range(3):
        for w in range(6):
            c.ry(w)
            c.rz(w, value=0.3 + w)
        for w in range(layer % 2, 5, 2):
            c.cnot(w, w + 1)
        c.unitary(np.linalg.qr(np.random.default_rng(layer).normal(size=(8, 8)))[0], [0, 2, 4])
    p = jnp.ones(c.num_params, jnp.float32)
    H = qsim.Z(0) @ qsim.Z(3) + 0.5 * qsim.X(2)
    pr = float32_dot_precisions(lambda q: qsim.simulate(c, q, dtype=jnp.complex64, max_fuse=max_fuse), p)
    pr += float32_dot_precisions(jax.grad(lambda q: qsim.expval(c, q, H)), p)
    assert_all_highest(pr)
