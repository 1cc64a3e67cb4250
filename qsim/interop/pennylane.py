"""PennyLane: operations, QNodes, tapes and Hamiltonians.

    ops = to_pennylane_ops(circuit, params) # a list of PennyLane operations
    qnode = to_qnode(circuit, "default.qubit", measure=H)   # qnode(params) -> <H>
    circuit, params = from_pennylane(tape)  # from a tape / QuantumScript / list of ops
    to_pennylane_hamiltonian(H) / from_pennylane_hamiltonian(op)  # qml.Hamiltonian (LinearCombination)

qsim wire ``w`` is PennyLane wire ``w``; both make wire 0 the most significant bit of a basis index.
A PennyLane ``GlobalPhase`` becomes a one-wire ``unitary`` (phase times identity) so round trips keep
the exact state vector. PennyLane is imported inside the functions (it is slow to import).
"""

from __future__ import annotations

import numpy as np

from qsim.circuits.circuit import Circuit, Op, ParamRef
from qsim.circuits.gates import get_gate
from qsim.circuits.operators import PauliSum
from qsim.infra import validation
from qsim.interop.common import append_op, check_sum, op_values, phase_unitary

__all__ = ["to_pennylane_ops", "to_qnode", "from_pennylane", "to_pennylane_hamiltonian",
           "from_pennylane_hamiltonian"]


def _pl_op(op: Op, vals):
    import pennylane as qml

    g = op.gate
    tw = list(op.targets)
    if op.name == "MCX":
        return qml.MultiControlledX(wires=list(op.wires))
    if op.name == "Unitary":
        base = qml.QubitUnitary(np.array(op.matrix), wires=tw)
    elif op.name == "Sdg":
        base = qml.adjoint(qml.S(wires=tw))
    elif op.name == "Tdg":
        base = qml.adjoint(qml.T(wires=tw))
    else:
        base = getattr(qml, g.pennylane)(*vals, wires=tw)
    if op.adjoint:
        base = qml.adjoint(base)
    if op.n_controls:
        base = qml.ctrl(base, control=list(op.controls))
    return base


def to_pennylane_ops(circuit: Circuit, params=None) -> list:
    """The circuit as a list of PennyLane operations (wire ``w`` -> PennyLane wire ``w``).

    ``params`` ``(num_params,)`` may be a JAX array (or tracer): PennyLane's JAX interface then
    differentiates through the ops.
    """
    params = validation.circuit_params(circuit, params)
    return [_pl_op(op, op_values(op, params)) for op in circuit.ops]


def to_qnode(circuit: Circuit, device="default.qubit", measure="state", wires=None, shots=None,
             interface="auto", **device_options):
    """A PennyLane ``QNode`` ``qnode(params)`` running ``circuit`` on ``device``.

    Args:
        device: a device name (created with ``wires=n_wires`` and ``device_options``) or a device.
        measure: ``"state"``, ``"probs"`` (on ``wires``), ``"sample"`` (on ``wires``) or a
            :class:`~qsim.circuits.operators.PauliSum` (expectation value).
        shots: ``None`` (analytic) or an int.
    """
    import pennylane as qml

    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qsim.Circuit, got {type(circuit).__name__}")
    dev = qml.device(device, wires=circuit.n_wires, **device_options) if isinstance(device, str) else device
    mw = list(range(circuit.n_wires)) if wires is None else list(wires)
    if isinstance(measure, PauliSum):
        obs = to_pennylane_hamiltonian(measure)
        meas = lambda: qml.expval(obs)  # noqa: E731
    elif measure == "state":
        meas = qml.state
    elif measure == "probs":
        meas = lambda: qml.probs(wires=mw)  # noqa: E731
    elif measure == "sample":
        meas = lambda: qml.sample(wires=mw)  # noqa: E731
    else:
        raise ValueError(f"measure must be 'state', 'probs', 'sample' or a PauliSum, got {measure!r}")

    def body(params=None):
        to_pennylane_ops(circuit, params)  # ops created inside the QNode are queued on its tape
        return meas()

    qnode = qml.QNode(body, dev, interface=interface)
    if shots is not None:
        qnode = qml.set_shots(qnode, shots=shots)
    return qnode


def _wire_map(wires, wire_order):
    if wire_order is not None:
        wo = list(wire_order)
        missing = [w for w in wires if w not in wo]
        if missing:
            raise ValueError(f"from_pennylane: wires {missing} are not in wire_order={wo}")
        return {w: i for i, w in enumerate(wo)}, len(wo)
    ws = list(wires)
    if all(isinstance(w, (int, np.integer)) and w >= 0 for w in ws):
        return {w: int(w) for w in ws}, (max(ws) + 1 if ws else 1)
    return {w: i for i, w in enumerate(ws)}, max(len(ws), 1)


def from_pennylane(tape, wire_order=None, trainable: bool = False):
    """A qsim ``(Circuit, params)`` from a PennyLane tape / ``QuantumScript`` / list of operations.

    Integer wires map to the same qsim wires; other labels follow ``wire_order`` (default: order of
    appearance). With ``trainable=True`` every gate angle becomes its own slot and ``params`` holds
    the values; otherwise angles are fixed and ``params`` is empty. Ops outside the gate table become
    ``unitary`` ops (via ``qml.matrix``); ``GlobalPhase`` becomes a phase on wire 0.
    """
    import pennylane as qml

    ops = list(getattr(tape, "operations", tape))
    wires = []
    for o in ops:
        for w in o.wires:
            if w not in wires:
                wires.append(w)
    wmap, n = _wire_map(wires, wire_order)
    c = Circuit(n)
    values: list[float] = []

    def refs_for(vals):
        out = []
        for v in vals:
            v = float(np.real(np.asarray(v)))
            if trainable:
                out.append(ParamRef(slot=c.new_param()))
                values.append(v)
            else:
                out.append(ParamRef(value=v))
        return out

    def add(o, adjoint=False, controls=()):
        ws = [wmap[w] for w in o.wires]
        name = o.name
        if isinstance(o, qml.ops.Adjoint):
            return add(o.base, not adjoint, controls)
        if name == "GlobalPhase" and not controls:
            phase = -float(np.real(np.asarray(o.data[0])))
            phase_unitary(c, -phase if adjoint else phase)
            return
        if name == "MultiControlledX" and all(o.control_values):
            append_op(c, "MCX", list(controls) + ws, (), n_controls=len(controls) + len(ws) - 1)
            return
        try:
            g = get_gate(name)
        except ValueError:
            g = None
        if g is not None and g.num_wires is not None and g.num_wires == len(ws):
            append_op(c, g.name, list(controls) + ws, refs_for(o.data), n_controls=len(controls),
                       adjoint=adjoint and not (g.self_inverse and not g.num_params))
            return
        if isinstance(o, qml.ops.Controlled) and all(o.control_values):
            cw = [wmap[w] for w in o.control_wires]
            return add(o.base, adjoint, tuple(controls) + tuple(cw))
        m = np.asarray(qml.matrix(o, wire_order=o.wires))
        if adjoint:
            m = m.conj().T
        append_op(c, "Unitary", list(controls) + ws, (), n_controls=len(controls), matrix=m)

    for o in ops:
        add(o)
    return c, np.asarray(values, dtype=np.float64)

def _pl_word(s):
    import pennylane as qml

    cls = {"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}
    if not s:
        return qml.Identity(0)
    ops = [cls[p](w) for w, p in s]
    return ops[0] if len(ops) == 1 else qml.prod(*ops)


def to_pennylane_hamiltonian(h: PauliSum):
    """A PennyLane ``qml.Hamiltonian`` (a ``LinearCombination``) of Pauli words; wire w -> wire w.

    Complex coefficients are kept; use Hermitian sums for expectation values.
    """
    import pennylane as qml

    h = check_sum(h)
    coeffs, ops = [], []
    for c, s in h:
        coeffs.append(c.real if c.imag == 0 else c)
        ops.append(_pl_word(s))
    if not ops:
        coeffs, ops = [0.0], [qml.Identity(0)]
    return qml.Hamiltonian(coeffs, ops)


def from_pennylane_hamiltonian(op, wire_order=None) -> PauliSum:
    """A PauliSum from any PennyLane operator expressible as a Pauli sentence."""
    import pennylane as qml

    ps = qml.pauli.pauli_sentence(op)
    all_wires = [w for word in ps for w in word]
    wmap, _ = _wire_map(list(dict.fromkeys(all_wires)), wire_order)
    terms: dict = {}
    for word, coeff in ps.items():
        s = tuple(sorted((wmap[w], p) for w, p in word.items() if p != "I"))
        terms[s] = terms.get(s, 0) + complex(np.asarray(coeff))
    return PauliSum(terms).simplify(0.0)
