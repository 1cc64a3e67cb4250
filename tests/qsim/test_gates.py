"""Every gate of the table against PennyLane default.qubit and Aer's statevector, wire order included."""

import jax.numpy as jnp
import numpy as np
import pytest

import qsim
from qsim.circuits.gates import GATES, GateDef, op_shift_rule

FIXED_WIDTH = [g for g in GATES.values() if g.num_wires is not None]


def _prep(n, rng):
    """A generic (entangled, complex) input state so that no gate acts on a trivial state."""
    c = qsim.Circuit(n)
    for w in range(n):
        c.ry(w, value=rng.uniform(0, np.pi))
        c.rz(w, value=rng.uniform(0, 2 * np.pi))
    for w in range(n - 1):
        c.cnot(w, w + 1)
    for w in range(n):
        c.rx(w, value=rng.uniform(0, np.pi))
    return c


@pytest.mark.parametrize("gate", FIXED_WIDTH, ids=lambda g: g.name)
@pytest.mark.parametrize("modifier", ["plain", "adjoint", "controlled"])
def test_gate_matches_pennylane_and_aer(gate, modifier, ref):
    rng = np.random.default_rng(abs(hash((gate.name, modifier))) % 2**32)
    n = gate.num_wires + 2
    c = _prep(n, rng)
    # targets in a scrambled, non-adjacent order; the control (if any) on the remaining wire
    wires = list(rng.permutation(n))
    targets, control = [int(w) for w in wires[: gate.num_wires]], int(wires[gate.num_wires])
    if modifier == "controlled":
        c.ctrl(gate.name, [control], targets)
    else:
        c.add(gate.name, targets)
        if modifier == "adjoint":
            c = c.inverse().inverse()  # a sanity round trip first
            c2 = qsim.Circuit(n)
            c2.add(gate.name, targets, param=None)
            c.append(c2.inverse())
    params = rng.uniform(-np.pi, np.pi, c.num_params)
    got = np.asarray(qsim.simulate(c, jnp.asarray(params, jnp.float64)))
    np.testing.assert_allclose(got, ref.pennylane(c, params), atol=1e-10)
    np.testing.assert_allclose(got, ref.aer(c, params), atol=1e-10)
    got32 = np.asarray(qsim.simulate(c, jnp.asarray(params, jnp.float32)))
    assert got32.dtype == np.complex64
    np.testing.assert_allclose(got32, got, atol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_unitary_and_mcx(k, ref, haar):
    rng = np.random.default_rng(k)
    n = k + 2
    c = _prep(n, rng)
    targets = [int(w) for w in rng.permutation(n)[:k]]
    c.unitary(haar(k, rng), targets)
    c.mcx([w for w in range(n) if w != targets[0]][: max(1, n - 2)], targets[0])
    rest = [w for w in range(n) if w not in targets]
    c.unitary(haar(1, rng), [targets[-1]], controls=rest[:1])
    got = np.asarray(qsim.simulate(c, jnp.zeros(0)))
    np.testing.assert_allclose(got, ref.pennylane(c, []), atol=1e-10)
    np.testing.assert_allclose(got, ref.aer(c, []), atol=1e-10)


def test_gate_table_is_consistent():
    for g in GATES.values():
        if g.num_wires is None:
            continue
        vals = np.linspace(0.3, 1.1, g.num_params)
        m = np.asarray(g.matrix(*vals))
        assert m.shape == (2 ** g.num_wires,) * 2
        np.testing.assert_allclose(m.conj().T @ m, np.eye(len(m)), atol=1e-12)
        assert len(g.shift_rules) == g.num_params
        if g.kind == "diagonal":
            assert np.allclose(m, np.diag(np.diag(m)))
        if g.kind == "permutation":
            assert np.all((np.abs(m) > 1e-12).sum(axis=1) == 1)
        if g.self_inverse:
            np.testing.assert_allclose(m @ m, np.eye(len(m)), atol=1e-12)
        if g.hermitian_generator is not None:  # U(t) = exp(-i t G)
            from scipy.linalg import expm

            np.testing.assert_allclose(m, expm(-1j * vals[0] * g.hermitian_generator), atol=1e-12)


def _frequencies(gate, j: int, n_controls: int) -> set:
    """Distinct positive differences of the generator eigenvalues of parameter ``j`` (numerically,
    from the matrix: G = i U^dag dU/dt), with ``n_controls`` controls (each adds eigenvalue 0)."""
    vals = list(np.linspace(0.4, 1.2, gate.num_params))
    h = 1e-6

    def m(t):
        v = list(vals)
        v[j] = t
        return np.asarray(gate.matrix(*v), dtype=np.complex128)

    u = m(vals[j])
    gen = 1j * u.conj().T @ (m(vals[j] + h) - m(vals[j] - h)) / (2 * h)
    ev = list(np.linalg.eigvals(gen).real) + ([0.0] if n_controls else [])
    return {round(abs(a - b), 4) for a in ev for b in ev if abs(a - b) > 1e-4}


@pytest.mark.parametrize("gate", [g for g in FIXED_WIDTH if g.num_params], ids=lambda g: g.name)
def test_op_shift_rule_is_exact_for_the_generator_spectrum(gate):
    """For every parameter, with 0, 1 and 2 controls, the table's rule differentiates every frequency
    w of the generator exactly: sum_k c_k exp(i w s_k) = i w (so d/dt exp(i w t) = sum_k c_k exp(i w (t + s_k)))."""
    for j in range(gate.num_params):
        for n_controls in (0, 1, 2):
            rule = op_shift_rule(gate, j, n_controls)
            for w in _frequencies(gate, j, n_controls):
                got = sum(c * np.exp(1j * w * s) for c, s in rule)
                assert abs(got - 1j * w) < 1e-9, (gate.name, j, n_controls, w, got)
    with pytest.raises(ValueError, match="no parameter"):
        op_shift_rule(gate, gate.num_params)
    with pytest.raises(NotImplementedError, match="no parameter-shift rule"):
        op_shift_rule(GateDef("NoRule", 1, 1, lambda t: np.eye(2)), 0)


def test_aliases_and_unknown_gate():
    assert qsim.get_gate("cx").name == "CNOT"
    assert qsim.get_gate("IsingZZ").name == "RZZ"
    with pytest.raises(ValueError, match="unknown gate 'foo'"):
        qsim.get_gate("foo")
    with pytest.raises(ValueError, match="unknown gate"):
        qsim.Circuit(2).add("foo", [0])
