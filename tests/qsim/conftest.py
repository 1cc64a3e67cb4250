"""Independent reference simulators for the foundation tests: the same gate list built directly in
PennyLane (default.qubit) and in Qiskit (Aer statevector), from the gate table's names."""

from __future__ import annotations

import numpy as np
import pytest

from qsim.circuits.gates import GATES


def op_values(op, params):
    return [float(params[p.slot]) if p.slot is not None else p.value for p in op.params]


def pennylane_state(circuit, params):
    import pennylane as qml

    dev = qml.device("default.qubit", wires=circuit.n_wires)

    def build(op):
        vals = op_values(op, params)
        tw = list(op.targets)
        if op.name == "Unitary":
            g = qml.QubitUnitary(np.asarray(op.matrix), wires=tw)
        elif op.name == "MCX":
            return qml.MultiControlledX(wires=list(op.wires))
        elif op.name in ("Sdg", "Tdg"):
            g = qml.adjoint(getattr(qml, op.name[0])(wires=tw))
        else:
            g = getattr(qml, GATES[op.name].pennylane)(*vals, wires=tw)
        if op.adjoint:
            g = qml.adjoint(g)
        if op.n_controls:
            g = qml.ctrl(g, control=list(op.controls))
        return g

    def body():
        for op in circuit.ops:
            with qml.QueuingManager.stop_recording():
                g = build(op)
            qml.apply(g)
        return qml.state()

    return np.asarray(qml.QNode(body, dev)())


def qiskit_circuit(circuit, params):
    """The circuit in Qiskit: qsim wire w is Qiskit qubit n-1-w, so basis indices coincide."""
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import UnitaryGate, get_standard_gate_name_mapping

    n = circuit.n_wires
    q = lambda w: n - 1 - w  # noqa: E731
    mapping = get_standard_gate_name_mapping()
    qc = QuantumCircuit(n)
    for op in circuit.ops:
        vals = op_values(op, params)
        if op.name == "Unitary":  # Qiskit matrices take their first qubit as the least significant
            g, qargs = UnitaryGate(np.asarray(op.matrix)), [q(w) for w in reversed(op.targets)]
        elif op.name == "MCX":
            qc.append(mapping["x"].base_class().control(op.n_controls), [q(w) for w in op.wires])
            continue
        else:
            g, qargs = mapping[GATES[op.name].qiskit].base_class(*vals), [q(w) for w in op.targets]
        if op.adjoint:
            g = g.inverse()
        if op.n_controls:
            g = g.control(op.n_controls)
            qargs = [q(w) for w in op.controls] + qargs
        qc.append(g, qargs)
    return qc


def aer_state(circuit, params):
    """Aer's statevector method on the same circuit."""
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    qc = qiskit_circuit(circuit, params)
    qc.save_statevector()
    sim = AerSimulator(method="statevector", precision="double")
    res = sim.run(transpile(qc, sim, optimization_level=0)).result()
    return np.asarray(res.get_statevector().data)


def _real_circuit(n: int, seed: int):
    """Only real gates (RY, CNOT, H, X, Z, SWAP, CZ, CRY, Toffoli) on n >= 4 wires: 3 layers of RY and
    a CNOT chain (a typical VQE/hypernet ansatz), then fixed real gates and one fixed RY."""
    import qsim

    rng = np.random.default_rng(seed)
    c = qsim.Circuit(n)
    for _ in range(3):
        for w in range(n):
            c.ry(w)
        for w in range(n - 1):
            c.cnot(w, w + 1)
    c.h(0).x(1).z(2).swap(0, n - 1).cz(1, 3).cry(2, 0).toffoli(0, 1, 2)
    c.ry(int(rng.integers(n)), value=0.3)
    return c


@pytest.fixture(scope="session")
def real_circuit():
    """``real_circuit(n, seed)``: a circuit of real gates only (it runs on one real plane)."""
    return _real_circuit


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def ref():
    """Reference simulators: ``ref.pennylane(c, p)``, ``ref.aer(c, p)``, ``ref.qiskit_circuit(c, p)``."""
    from types import SimpleNamespace

    return SimpleNamespace(pennylane=pennylane_state, aer=aer_state, qiskit_circuit=qiskit_circuit)


def random_unitary(k: int, rng) -> np.ndarray:
    from scipy.stats import unitary_group

    return unitary_group.rvs(2 ** k, random_state=rng)


@pytest.fixture
def haar():
    return random_unitary


def numpy_reference_state(c, p=None) -> np.ndarray:
    """A plain NumPy evaluator of qsim circuits (gate-table matrices, wire 0 most significant): cheap
    to run on many circuits, checked against ``qsim.simulate`` in test_convert.py::test_reference_matches_qsim."""
    n = c.n_wires
    psi = np.zeros((2,) * n, dtype=np.complex128)
    psi[(0,) * n] = 1.0
    for op in c.ops:
        vals = [p[r.slot] if r.slot is not None else r.value for r in op.params]
        if op.name == "Unitary":
            m = np.asarray(op.matrix)
        elif op.name == "MCX":
            m = np.array([[0, 1], [1, 0]], dtype=complex)
        else:
            m = np.asarray(op.gate.matrix(*[float(v) for v in vals]), dtype=np.complex128)
        if op.adjoint:
            m = m.conj().T
        if op.n_controls:
            d = m.shape[0]
            full = np.eye(2 ** op.n_controls * d, dtype=complex)
            full[-d:, -d:] = m
            m = full
        k = len(op.wires)
        t = m.reshape((2,) * (2 * k))
        psi = np.moveaxis(np.tensordot(t, psi, axes=(list(range(k, 2 * k)), list(op.wires))),
                          list(range(k)), list(op.wires))
    return psi.reshape(-1)


@pytest.fixture(scope="session")
def numpy_state():
    """A plain NumPy evaluator of qsim circuits: ``numpy_state(circuit, params) -> (2**n,) state``."""
    return numpy_reference_state
