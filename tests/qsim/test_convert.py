"""Converters: random circuits round-trip through Qiskit and PennyLane with the same state vector;
Pauli sums convert to SparsePauliOp / PennyLane / OpenFermion / NetKet with the same matrix."""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsim
from qsim.interop import (from_openfermion, from_pennylane, from_pennylane_hamiltonian, from_qiskit,
                          from_qiskit_statevector, from_sparse_pauli_op, to_netket, to_openfermion,
                          to_pennylane_hamiltonian, to_pennylane_ops, to_qiskit, to_qnode, to_sparse_pauli_op)

qiskit = pytest.importorskip("qiskit")
qml = pytest.importorskip("pennylane")
from qiskit.quantum_info import Statevector  # noqa: E402

ONE_Q = ["x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "i"]
ONE_Q_P = ["rx", "ry", "rz", "phaseshift", "u3"]
TWO_Q = ["cnot", "cz", "cy", "swap", "iswap"]
TWO_Q_P = ["crx", "cry", "crz", "cphase", "rxx", "ryy", "rzz"]


def random_circuit(n: int, n_ops: int, seed: int) -> qsim.Circuit:
    """Every kind of op: table gates (fixed, trainable, shared slots), ctrl, unitary, mcx, inverses."""
    rng = np.random.default_rng(seed)
    c = qsim.Circuit(n)
    for _ in range(n_ops):
        kind = rng.integers(8)
        w = [int(x) for x in rng.permutation(n)]
        if kind == 0:
            getattr(c, ONE_Q[rng.integers(len(ONE_Q))])(w[0])
        elif kind == 1:
            g = ONE_Q_P[rng.integers(len(ONE_Q_P))]
            if rng.random() < 0.3:
                getattr(c, g)(w[0], value=rng.uniform(-3, 3, 3 if g == "u3" else 1))
            elif rng.random() < 0.3 and c.num_params >= 3 and g != "u3":
                getattr(c, g)(w[0], param=int(rng.integers(c.num_params)))   # shared slot
            else:
                getattr(c, g)(w[0])
        elif kind == 2:
            getattr(c, TWO_Q[rng.integers(len(TWO_Q))])(w[0], w[1])
        elif kind == 3:
            getattr(c, TWO_Q_P[rng.integers(len(TWO_Q_P))])(w[0], w[1])
        elif kind == 4 and n >= 3:
            [c.toffoli, c.cswap][rng.integers(2)](w[0], w[1], w[2])
        elif kind == 5 and n >= 3:
            c.ctrl(["ry", "rz", "h", "phaseshift", "x"][rng.integers(5)], [w[0]], w[2])
        elif kind == 6:
            q, _ = np.linalg.qr(rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4)))
            c.unitary(q, [w[0], w[1]], controls=[w[2]] if n >= 3 and rng.random() < 0.5 else ())
        elif kind == 7 and n >= 3:
            c.mcx([w[0], w[1]], w[2])
    if seed % 2:
        c = c + c.inverse()
    return c


CASES = [(3, 14, 0), (3, 12, 1), (3, 16, 2), (4, 14, 3)]


def test_reference_matches_qsim(numpy_state):
    c = random_circuit(3, 16, 5)
    p = np.random.default_rng(3).uniform(-3, 3, c.num_params)
    np.testing.assert_allclose(numpy_state(c, p), np.asarray(qsim.simulate(c, jnp.asarray(p))), atol=1e-12)


@pytest.mark.parametrize("n,n_ops,seed", CASES)
def test_qiskit_round_trip_random_circuits(n, n_ops, seed, numpy_state):
    c = random_circuit(n, n_ops, seed)
    p = np.random.default_rng(seed + 100).uniform(-np.pi, np.pi, c.num_params)
    ref = numpy_state(c, p)
    qc = to_qiskit(c)
    assert qc.num_qubits == n and qc.num_parameters <= c.num_params
    # qiskit's own simulation, bit order converted
    got = from_qiskit_statevector(Statevector(qc.assign_parameters(
        {prm: p[prm.index] for prm in qc.parameters})))
    np.testing.assert_allclose(got, ref, atol=1e-10)
    # back to qsim: same slots, same state
    c2 = from_qiskit(qc)
    assert c2.num_params == c.num_params
    np.testing.assert_allclose(numpy_state(c2, p), ref, atol=1e-10)
    if seed == 1:  # once through the JAX simulator itself
        np.testing.assert_allclose(np.asarray(qsim.simulate(c2, jnp.asarray(p))), ref, atol=1e-10)
    # bound parameters
    c3 = from_qiskit(to_qiskit(c, p))
    assert c3.num_params == 0
    np.testing.assert_allclose(numpy_state(c3), ref, atol=1e-10)


def test_qiskit_transpiled_circuit_keeps_state_including_global_phase(numpy_state):
    from qiskit import transpile

    c = random_circuit(3, 20, 7)
    p = np.random.default_rng(1).uniform(-3, 3, c.num_params)
    tq = transpile(to_qiskit(c, p), basis_gates=["rz", "sx", "x", "cx"], optimization_level=1, seed_transpiler=1)
    assert set(tq.count_ops()) <= {"rz", "sx", "x", "cx"}
    c2 = from_qiskit(tq)
    np.testing.assert_allclose(numpy_state(c2), numpy_state(c, p), atol=1e-9)


def test_qiskit_bit_order_convention():
    c = qsim.Circuit(3)
    c.x(0)                                  # qsim: |100> = index 4; qiskit: qubit 0 set = index 1
    qc = to_qiskit(c)
    assert np.argmax(np.abs(Statevector(qc).data)) == 1
    assert np.argmax(np.abs(from_qiskit_statevector(Statevector(qc)))) == 4
    assert np.argmax(np.abs(np.asarray(qsim.simulate(c)))) == 4


def test_from_qiskit_other_gates_and_errors(numpy_state):
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    qc = QuantumCircuit(2)
    qc.ecr(0, 1)                      # not in the table: imported as a unitary
    qc.rzx(0.4, 1, 0)
    qc.ch(0, 1)                       # controlled table gate
    qc.barrier()
    qc.measure_all()                  # measurements are skipped
    c = from_qiskit(qc)
    ref = from_qiskit_statevector(Statevector(qc.remove_final_measurements(inplace=False)))
    np.testing.assert_allclose(numpy_state(c), ref, atol=1e-12)
    bad = QuantumCircuit(1)
    bad.reset(0)
    with pytest.raises(ValueError, match="reset"):
        from_qiskit(bad)
    t = Parameter("t")
    bad2 = QuantumCircuit(1)
    bad2.rx(2 * t + 1, 0)
    with pytest.raises(ValueError, match="not a plain Parameter"):
        from_qiskit(bad2)
    one = qsim.Circuit(1)
    one.rx(0)
    with pytest.raises(ValueError, match="params has shape"):
        to_qiskit(one, np.zeros(99))


@pytest.mark.parametrize("n,n_ops,seed", CASES)
def test_pennylane_round_trip_random_circuits(n, n_ops, seed, numpy_state):
    c = random_circuit(n, n_ops, seed)
    p = np.random.default_rng(seed + 200).uniform(-np.pi, np.pi, c.num_params)
    ref = numpy_state(c, p)
    got = np.asarray(to_qnode(c, "default.qubit", measure="state")(p))
    np.testing.assert_allclose(got, ref, atol=1e-10)
    tape = qml.tape.QuantumScript(to_pennylane_ops(c, p))
    for trainable in (False, True):
        c2, p2 = from_pennylane(tape, trainable=trainable)
        assert c2.n_wires == n and c2.num_params == len(p2) and (trainable or c2.num_params == 0)
        np.testing.assert_allclose(numpy_state(c2, p2), ref, atol=1e-10)
    if seed == 2:  # once through the JAX simulator itself
        np.testing.assert_allclose(np.asarray(qsim.simulate(c2, jnp.asarray(p2))), ref, atol=1e-10)


def test_pennylane_decomposed_tape_and_labels(numpy_state):
    c = random_circuit(3, 15, 3)
    p = np.random.default_rng(0).uniform(-3, 3, c.num_params)
    tape = qml.tape.QuantumScript(to_pennylane_ops(c, p))
    (dec,), _ = qml.transforms.decompose(tape, gate_set={"RX", "RY", "RZ", "CNOT", "GlobalPhase"})
    c2, _ = from_pennylane(dec)
    np.testing.assert_allclose(numpy_state(c2), numpy_state(c, p), atol=1e-9)
    # non-integer wire labels follow wire_order
    ops = [qml.Hadamard("a"), qml.CNOT(["a", "b"]), qml.RY(0.3, "b")]
    c3, _ = from_pennylane(ops, wire_order=["b", "a"])
    ref = qsim.Circuit(2)
    ref.h(1)
    ref.cnot(1, 0)
    ref.ry(0, value=0.3)
    np.testing.assert_allclose(numpy_state(c3), numpy_state(ref), atol=1e-12)


@pytest.mark.slow
def test_pennylane_qnode_is_differentiable_with_jax():
    c = qsim.Circuit(2)
    c.ry(0)
    c.cnot(0, 1)
    c.crx(0, 1)
    h = qsim.Z(0) @ qsim.Z(1) + 0.4 * qsim.X(1)
    qnode = to_qnode(c, "default.qubit", measure=h, interface="jax")
    p = jnp.array([0.3, 1.1])
    np.testing.assert_allclose(float(qnode(p)), float(qsim.expval(c, p, h)), atol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.grad(qnode)(p)),
                               np.asarray(jax.grad(lambda q: qsim.expval(c, q, h))(p)), atol=1e-10)


# ---------------------------------------------------------------------------------------------------
# operators
# ---------------------------------------------------------------------------------------------------
H = 0.5 * qsim.Z(0) @ qsim.X(2) - 1.2 * qsim.Y(1) + 0.7 * qsim.X(0) @ qsim.Y(1) @ qsim.Z(2) + 0.3


def _rev(m, n):
    """Reorder a 2^n x 2^n matrix from little-endian (Qiskit) to qsim's big-endian basis."""
    perm = [int(format(i, f"0{n}b")[::-1], 2) for i in range(2 ** n)]
    return m[np.ix_(perm, perm)]


def test_sparse_pauli_op_round_trip_and_matrix(numpy_state):
    op = to_sparse_pauli_op(H, 3)
    assert from_sparse_pauli_op(op) == H
    np.testing.assert_allclose(_rev(op.to_matrix(), 3), H.to_matrix(3).toarray(), atol=1e-14)
    c = random_circuit(3, 12, 4)
    p = np.random.default_rng(5).uniform(-3, 3, c.num_params)
    sv = Statevector(to_qiskit(c, p))
    psi = numpy_state(c, p)
    exact = float(np.real(psi.conj() @ (H.to_matrix(3) @ psi)))
    assert float(np.real(sv.expectation_value(op))) == pytest.approx(exact, abs=1e-10)
    with pytest.raises(ValueError, match="outside"):
        to_sparse_pauli_op(H, 2)
    with pytest.raises(TypeError, match="PauliSum"):
        to_sparse_pauli_op("Z0")


def test_pennylane_hamiltonian_round_trip_and_matrix():
    op = to_pennylane_hamiltonian(H)
    assert from_pennylane_hamiltonian(op) == H
    np.testing.assert_allclose(qml.matrix(op, wire_order=[0, 1, 2]), H.to_matrix(3).toarray(), atol=1e-14)
    # any Pauli-expressible PennyLane operator converts
    assert from_pennylane_hamiltonian(qml.X(0) @ qml.X(0) + 2 * qml.Z(1)) == 1.0 + 2 * qsim.Z(1)


def test_openfermion_conversion():
    class QubitOperatorDouble:   # duck-typed stand-in: openfermion's QubitOperator has the same .terms
        terms = {((0, "X"), (2, "Z")): 0.5, ((1, "Y"),): -1.2, (): 0.3}

    assert from_openfermion(QubitOperatorDouble()) == 0.5 * qsim.X(0) @ qsim.Z(2) - 1.2 * qsim.Y(1) + 0.3
    with pytest.raises(TypeError, match="QubitOperator"):
        from_openfermion(object())
    if importlib.util.find_spec("openfermion") is None:
        with pytest.raises(ImportError, match="openfermion"):
            to_openfermion(H)
    else:  # pragma: no cover - openfermion is optional
        assert from_openfermion(to_openfermion(H)) == H


@pytest.mark.skipif(importlib.util.find_spec("netket") is None, reason="netket not installed")
def test_netket_operator_matrix():
    op = to_netket(H)
    assert op.hilbert.size == 3
    np.testing.assert_allclose(np.asarray(op.to_dense()), H.to_matrix(3).toarray(), atol=1e-14)
    op4 = to_netket(qsim.Z(0), n_wires=4)
    assert op4.hilbert.size == 4


def test_one_module_per_framework_and_the_deprecated_alias():
    """qsim.interop re-exports each framework module's converters; the old qsim.convert path resolves to
    qsim.interop with a DeprecationWarning (through qsim's alias table)."""
    import qsim.interop as interop
    from qsim.interop import netket, openfermion, pennylane, qiskit as qk

    owners = {name: mod for mod in (qk, pennylane, openfermion, netket) for name in mod.__all__}
    assert set(owners) | {"op_values"} == set(interop.__all__)
    for name, mod in owners.items():
        assert getattr(interop, name) is getattr(mod, name), name
    with pytest.warns(DeprecationWarning, match="qsim.convert is deprecated; use qsim.interop"):
        old = qsim.__getattr__("convert")
    assert old is interop and old.to_qiskit is qk.to_qiskit
