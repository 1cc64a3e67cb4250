"""Qiskit: circuits (``QuantumCircuit``), state vectors and ``SparsePauliOp`` operators.

    qc = to_qiskit(circuit)                 # parameters as a ParameterVector "p" (slot k -> p[k])
    qc = to_qiskit(circuit, params)         # bound numbers
    circuit = from_qiskit(qc)               # Parameters -> trainable slots, numbers -> fixed angles
    to_sparse_pauli_op(H, n_wires) / from_sparse_pauli_op(op)    # qiskit.quantum_info.SparsePauliOp

**Bit order.** qsim wire ``w`` maps to Qiskit qubit ``w``. qsim makes wire 0 the *most* significant
bit of a basis index; Qiskit makes qubit 0 the *least* significant one. Gate semantics are unaffected
(``cnot(0, 1)`` is ``cx(0, 1)``), but matrices of multi-qubit unitaries and state vectors are
bit-reversed: :func:`from_qiskit_statevector` and :func:`to_qiskit_statevector` convert vectors;
arbitrary unitaries are exported with their qubit list reversed. A Qiskit ``global_phase`` becomes a
one-wire ``unitary`` (phase times identity) so round trips keep the exact state vector.

Qiskit is imported inside the functions (it is slow to import).
"""

from __future__ import annotations

import numbers

import numpy as np

from qsim.circuits.circuit import Circuit, Op, ParamRef
from qsim.circuits.gates import GATES
from qsim.circuits.operators import PauliSum
from qsim.infra import validation
from qsim.interop.common import append_op, check_sum, op_values, phase_unitary, reverse_bits

__all__ = ["to_qiskit", "from_qiskit", "to_qiskit_statevector", "from_qiskit_statevector", "to_sparse_pauli_op",
           "from_sparse_pauli_op"]

_SKIP_QISKIT = {"barrier", "measure", "delay"}


def from_qiskit_statevector(vec, n_wires: int | None = None) -> np.ndarray:
    """A Qiskit (little-endian) state vector ``(2**n,)`` in qsim order (wire 0 most significant)."""
    data = np.asarray(getattr(vec, "data", vec))
    n = int(round(np.log2(data.shape[0]))) if n_wires is None else n_wires
    return reverse_bits(data, n)


to_qiskit_statevector = from_qiskit_statevector  # bit reversal is its own inverse


def _qiskit_gate(op: Op, vals):
    from qiskit.circuit.library import MCXGate, UnitaryGate, get_standard_gate_name_mapping

    g = op.gate
    if op.name == "Unitary":
        # qsim basis: first target most significant; qiskit: first qubit least significant
        gate = UnitaryGate(np.asarray(op.matrix), check_input=False)
        qubits_t = list(reversed(op.targets))
    elif op.name == "MCX":
        return MCXGate(op.n_controls), list(op.wires)
    else:
        cls = type(get_standard_gate_name_mapping()[g.qiskit])
        gate = cls(*vals)
        qubits_t = list(op.targets)
    if op.adjoint:
        gate = gate.inverse()
    if op.n_controls:
        gate = gate.control(op.n_controls)
    return gate, list(op.controls) + qubits_t


def to_qiskit(circuit: Circuit, params=None, *, name: str = "p"):
    """The circuit as a ``qiskit.QuantumCircuit`` on ``n_wires`` qubits (qubit ``w`` = qsim wire ``w``).

    With ``params=None`` trainable slots become the elements of ``ParameterVector(name, num_params)``
    (slot ``k`` -> ``p[k]``; shared slots share the element); with ``params`` ``(num_params,)`` the
    numbers are bound. No measurements are added.
    """
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    params = validation.circuit_params(circuit, params, allow_none=True)
    if params is None:
        vec = ParameterVector(name, circuit.num_params)
        params = list(vec)
    else:
        params = [float(v) for v in np.asarray(params, dtype=np.float64)]
    qc = QuantumCircuit(circuit.n_wires)
    for op in circuit.ops:
        vals = op_values(op, params)
        gate, qubits = _qiskit_gate(op, vals)
        qc.append(gate, qubits)
    return qc


def _qiskit_param(p, slots: dict) -> tuple[ParamRef, int]:
    """(reference, sign): a Parameter (+1), minus a Parameter (-1, as Qiskit writes inverses) or a number."""
    from qiskit.circuit import Parameter, ParameterExpression

    if isinstance(p, Parameter):
        return ParamRef(slot=slots[p]), 1
    if isinstance(p, ParameterExpression):
        if len(p.parameters) == 1:
            (q,) = p.parameters
            try:
                coef = complex(p.gradient(q))
                offset = complex(p.bind({q: 0.0}))
            except (TypeError, ValueError):
                coef, offset = None, None
            if coef is not None and abs(coef + 1) < 1e-12 and abs(offset) < 1e-12:
                return ParamRef(slot=slots[q]), -1
            raise ValueError(f"from_qiskit: parameter expression {p} is not a plain Parameter (or its "
                             "negative); bind it or use one Parameter per gate angle")
        if p.parameters:
            raise ValueError(f"from_qiskit: parameter expression {p} depends on several parameters")
        p = complex(p).real
    if isinstance(p, numbers.Number) or np.isscalar(p):
        return ParamRef(value=float(np.real(p))), 1
    raise TypeError(f"from_qiskit: unsupported gate parameter {p!r}")


def _qiskit_refs(name: str, plist, slots: dict) -> tuple[list[ParamRef], bool]:
    """ParamRefs and the adjoint flag for a table gate's qiskit parameters."""
    pairs = [_qiskit_param(p, slots) for p in plist]
    if all(s == 1 for _, s in pairs):
        return [r for r, _ in pairs], False
    # Qiskit writes inverses by negating angles: RX(-t) = RX(t)^dag; U(-a,-c,-b) = U(a,b,c)^dag
    neg = [r if r.slot is not None else ParamRef(value=-r.value) for r, _ in pairs]
    if not all(s == -1 or r.slot is None for r, s in pairs):
        raise ValueError(f"from_qiskit: {name} mixes parameters and negated parameters; bind them first")
    if len(neg) == 3:  # U3
        return [neg[0], neg[2], neg[1]], True
    if len(neg) == 1:
        return neg, True
    raise ValueError(f"from_qiskit: cannot express negated parameters of {name}")


def _qiskit_slots(qc) -> tuple[dict, int]:
    from qiskit.circuit import ParameterVectorElement

    ps = list(qc.parameters)
    if ps and all(isinstance(p, ParameterVectorElement) for p in ps) and len({p.vector.name for p in ps}) == 1:
        return {p: int(p.index) for p in ps}, len(ps[0].vector)
    return {p: i for i, p in enumerate(ps)}, len(ps)


_QISKIT_TO_QSIM = {g.qiskit: g.name for g in GATES.values() if g.qiskit}


def from_qiskit(qc) -> Circuit:
    """A qsim :class:`Circuit` from a ``qiskit.QuantumCircuit`` (unitary part; measurements, barriers
    and delays are skipped).

    Free ``Parameter`` objects become trainable slots (in ``qc.parameters`` order, or by index when all
    belong to one ``ParameterVector``); numeric angles become fixed values. Gates outside the table
    with no free parameters are imported as ``unitary`` (bit order converted); controlled versions of
    table gates become ``ctrl`` ops.
    """
    from qiskit.circuit import ControlledGate
    from qiskit.quantum_info import Operator

    n = qc.num_qubits
    if n < 1:
        raise ValueError("from_qiskit: the circuit has no qubits")
    c = Circuit(n)
    slots, n_params = _qiskit_slots(qc)
    c.num_params = n_params
    for inst in qc.data:
        op = inst.operation
        qubits = [qc.find_bit(q).index for q in inst.qubits]
        name = op.name
        if name in _SKIP_QISKIT:
            continue
        if name == "reset":
            raise ValueError("from_qiskit: 'reset' is not unitary and has no qsim equivalent")
        if name == "global_phase":
            phase_unitary(c, float(op.params[0]))
            continue
        if name in _QISKIT_TO_QSIM and name not in ("unitary", "mcx"):
            g = GATES[_QISKIT_TO_QSIM[name]]
            refs, adj = _qiskit_refs(name, op.params, slots)
            append_op(c, g.name, qubits, refs, adjoint=adj)
            continue
        if name.startswith("mcx"):
            append_op(c, "MCX", qubits, (), n_controls=len(qubits) - 1)
            continue
        if isinstance(op, ControlledGate) and op.ctrl_state == 2 ** op.num_ctrl_qubits - 1:
            base = op.base_gate
            bname = _QISKIT_TO_QSIM.get(base.name)
            if bname is not None and bname not in ("Unitary", "MCX"):
                refs, adj = _qiskit_refs(base.name, base.params, slots)
                append_op(c, bname, qubits, refs, n_controls=op.num_ctrl_qubits, adjoint=adj)
                continue
        free = [p for p in op.params if hasattr(p, "parameters") and p.parameters]
        if free:
            raise ValueError(f"from_qiskit: gate {name!r} has free parameters and is not in qsim's gate table")
        try:
            m = Operator(op).data
        except Exception as exc:  # noqa: BLE001 - qiskit raises several types here
            raise ValueError(f"from_qiskit: cannot convert instruction {name!r}: {exc}") from None
        # qiskit operator basis: qubits[0] least significant -> reverse to make it most significant
        append_op(c, "Unitary", list(reversed(qubits)), matrix=m)
    phase_unitary(c, float(qc.global_phase) if not getattr(qc.global_phase, "parameters", None) else 0.0)
    return c

def to_sparse_pauli_op(h: PauliSum, n_wires: int | None = None):
    """``qiskit.quantum_info.SparsePauliOp`` on ``n_wires`` qubits (default ``h.n_wires``); qubit w = wire w."""
    from qiskit.quantum_info import SparsePauliOp

    h = check_sum(h)
    n = h.n_wires if n_wires is None else int(n_wires)
    if h.wires and max(h.wires) >= n:
        raise ValueError(f"operator acts on wire {max(h.wires)}, outside a {n}-qubit register")
    items = [("".join(p for _, p in s), [w for w, _ in s], c) for c, s in h]
    if not items:
        items = [("", [], 0.0)]
    return SparsePauliOp.from_sparse_list(items, num_qubits=n)


def from_sparse_pauli_op(op) -> PauliSum:
    """A PauliSum from a ``SparsePauliOp`` (qubit w -> wire w)."""
    terms: dict = {}
    for label, qubits, coeff in op.to_sparse_list():
        s = tuple(sorted((int(q), p) for p, q in zip(label, qubits) if p != "I"))
        terms[s] = terms.get(s, 0) + complex(coeff)
    return PauliSum(terms).simplify(0.0)
