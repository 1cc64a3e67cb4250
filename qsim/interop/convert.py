"""Converters between qsim and Qiskit, PennyLane, OpenFermion and NetKet.

Circuits::

    qc = to_qiskit(circuit)                 # parameters as a ParameterVector "p" (slot k -> p[k])
    qc = to_qiskit(circuit, params)         # bound numbers
    circuit = from_qiskit(qc)               # Parameters -> trainable slots, numbers -> fixed angles
    ops = to_pennylane_ops(circuit, params) # a list of PennyLane operations
    qnode = to_qnode(circuit, "default.qubit", measure=H)   # qnode(params) -> <H>
    circuit, params = from_pennylane(tape)  # from a tape / QuantumScript / list of ops

Operators::

    to_sparse_pauli_op(H, n_wires) / from_sparse_pauli_op(op)    # qiskit.quantum_info.SparsePauliOp
    to_pennylane_hamiltonian(H) / from_pennylane_hamiltonian(op)  # qml.Hamiltonian (LinearCombination)
    to_openfermion(H) / from_openfermion(qubit_operator)          # openfermion.QubitOperator
    to_netket(H, hilbert=None)                                    # netket.operator.PauliStrings

**Bit order.** qsim wire ``w`` maps to Qiskit qubit ``w`` and PennyLane wire ``w``. qsim (like
PennyLane) makes wire 0 the *most* significant bit of a basis index; Qiskit makes qubit 0 the *least*
significant one. Gate semantics are unaffected (``cnot(0, 1)`` is ``cx(0, 1)``), but matrices of
multi-qubit unitaries and state vectors are bit-reversed: :func:`from_qiskit_statevector` and
:func:`to_qiskit_statevector` convert vectors; arbitrary unitaries are exported with their qubit
list reversed. A Qiskit ``global_phase`` (or a PennyLane ``GlobalPhase``) becomes a one-wire
``unitary`` (phase times identity) so round trips keep the exact state vector.

Qiskit, PennyLane, OpenFermion and NetKet are imported inside the functions (``import netket``
switches on float64 for the whole process, so it is never imported at module level).
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from qsim.circuits.circuit import Circuit, Op, ParamRef
from qsim.circuits.gates import GATES, get_gate
from qsim.circuits.operators import PauliSum

__all__ = ["to_qiskit", "from_qiskit", "to_qiskit_statevector", "from_qiskit_statevector",
           "to_pennylane_ops", "to_qnode", "from_pennylane", "to_sparse_pauli_op", "from_sparse_pauli_op",
           "to_pennylane_hamiltonian", "from_pennylane_hamiltonian", "to_openfermion", "from_openfermion",
           "to_netket", "op_values"]

_SKIP_QISKIT = {"barrier", "measure", "delay"}


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def op_values(op: Op, params) -> list:
    """The parameter values of ``op``: ``params[slot]`` for slots (kept as given, e.g. JAX), else floats."""
    out = []
    for r in op.params:
        if r.slot is not None:
            if params is None:
                raise ValueError(f"gate {op.name} reads slot {r.slot} but params=None")
            out.append(params[r.slot])
        else:
            out.append(r.value)
    return out


def _check_params(circuit: Circuit, params):
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qsim.Circuit, got {type(circuit).__name__}")
    if params is None:
        return None
    if np.ndim(params) != 1 or np.shape(params)[0] != circuit.num_params:
        raise ValueError(f"params has shape {tuple(np.shape(params))}; the circuit expects "
                         f"({circuit.num_params},)")
    return params


def _reverse_bits(vec: np.ndarray, n: int) -> np.ndarray:
    t = np.asarray(vec).reshape((2,) * n)
    return t.transpose(tuple(range(n - 1, -1, -1))).reshape(-1)


def from_qiskit_statevector(vec, n_wires: int | None = None) -> np.ndarray:
    """A Qiskit (little-endian) state vector ``(2**n,)`` in qsim order (wire 0 most significant)."""
    data = np.asarray(getattr(vec, "data", vec))
    n = int(round(np.log2(data.shape[0]))) if n_wires is None else n_wires
    return _reverse_bits(data, n)


to_qiskit_statevector = from_qiskit_statevector  # bit reversal is its own inverse


def _append_op(c: Circuit, name: str, wires: Sequence[int], refs: Sequence[ParamRef] = (), n_controls: int = 0,
               adjoint: bool = False, matrix=None) -> None:
    ws = tuple(int(w) for w in wires)
    for w in ws:
        if not 0 <= w < c.n_wires:
            raise ValueError(f"{name}: wire {w} out of range for a {c.n_wires}-wire circuit")
    if len(set(ws)) != len(ws):
        raise ValueError(f"{name}: wire repeated in {ws}")
    if matrix is not None:
        matrix = np.array(matrix, dtype=np.complex128)
        matrix.setflags(write=False)
    c.ops.append(Op(name, ws, tuple(refs), n_controls, adjoint, matrix))


def _phase_unitary(c: Circuit, phase: float) -> None:
    """Multiply the state by ``exp(i phase)`` (a 1-wire unitary on wire 0)."""
    if abs(phase) > 1e-15:
        _append_op(c, "Unitary", (0,), matrix=np.exp(1j * phase) * np.eye(2))


# ---------------------------------------------------------------------------------------------------
# Qiskit circuits
# ---------------------------------------------------------------------------------------------------
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

    params = _check_params(circuit, params)
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
            _phase_unitary(c, float(op.params[0]))
            continue
        if name in _QISKIT_TO_QSIM and name not in ("unitary", "mcx"):
            g = GATES[_QISKIT_TO_QSIM[name]]
            refs, adj = _qiskit_refs(name, op.params, slots)
            _append_op(c, g.name, qubits, refs, adjoint=adj)
            continue
        if name.startswith("mcx"):
            _append_op(c, "MCX", qubits, (), n_controls=len(qubits) - 1)
            continue
        if isinstance(op, ControlledGate) and op.ctrl_state == 2 ** op.num_ctrl_qubits - 1:
            base = op.base_gate
            bname = _QISKIT_TO_QSIM.get(base.name)
            if bname is not None and bname not in ("Unitary", "MCX"):
                refs, adj = _qiskit_refs(base.name, base.params, slots)
                _append_op(c, bname, qubits, refs, n_controls=op.num_ctrl_qubits, adjoint=adj)
                continue
        free = [p for p in op.params if hasattr(p, "parameters") and p.parameters]
        if free:
            raise ValueError(f"from_qiskit: gate {name!r} has free parameters and is not in qsim's gate table")
        try:
            m = Operator(op).data
        except Exception as exc:  # noqa: BLE001 - qiskit raises several types here
            raise ValueError(f"from_qiskit: cannot convert instruction {name!r}: {exc}") from None
        # qiskit operator basis: qubits[0] least significant -> reverse to make it most significant
        _append_op(c, "Unitary", list(reversed(qubits)), matrix=m)
    _phase_unitary(c, float(qc.global_phase) if not getattr(qc.global_phase, "parameters", None) else 0.0)
    return c


# ---------------------------------------------------------------------------------------------------
# PennyLane circuits
# ---------------------------------------------------------------------------------------------------
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
    params = _check_params(circuit, params)
    if circuit.num_params and params is None:
        raise ValueError(f"circuit has {circuit.num_params} trainable parameter(s) but params=None")
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
            _phase_unitary(c, -phase if adjoint else phase)
            return
        if name == "MultiControlledX" and all(o.control_values):
            _append_op(c, "MCX", list(controls) + ws, (), n_controls=len(controls) + len(ws) - 1)
            return
        try:
            g = get_gate(name)
        except ValueError:
            g = None
        if g is not None and g.num_wires is not None and g.num_wires == len(ws):
            _append_op(c, g.name, list(controls) + ws, refs_for(o.data), n_controls=len(controls),
                       adjoint=adjoint and not (g.self_inverse and not g.num_params))
            return
        if isinstance(o, qml.ops.Controlled) and all(o.control_values):
            cw = [wmap[w] for w in o.control_wires]
            return add(o.base, adjoint, tuple(controls) + tuple(cw))
        m = np.asarray(qml.matrix(o, wire_order=o.wires))
        if adjoint:
            m = m.conj().T
        _append_op(c, "Unitary", list(controls) + ws, (), n_controls=len(controls), matrix=m)

    for o in ops:
        add(o)
    return c, np.asarray(values, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------
# operators
# ---------------------------------------------------------------------------------------------------
def _check_sum(h) -> PauliSum:
    if not isinstance(h, PauliSum):
        raise TypeError(f"expected a qsim PauliSum, got {type(h).__name__}")
    return h


def to_sparse_pauli_op(h: PauliSum, n_wires: int | None = None):
    """``qiskit.quantum_info.SparsePauliOp`` on ``n_wires`` qubits (default ``h.n_wires``); qubit w = wire w."""
    from qiskit.quantum_info import SparsePauliOp

    h = _check_sum(h)
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

    h = _check_sum(h)
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


def to_openfermion(h: PauliSum):
    """An ``openfermion.QubitOperator`` (needs openfermion installed)."""
    try:
        from openfermion import QubitOperator
    except ImportError:
        raise ImportError("to_openfermion needs openfermion (pip install openfermion)") from None
    h = _check_sum(h)
    out = QubitOperator()
    for c, s in h:
        out += QubitOperator(tuple(s), c)
    return out


def from_openfermion(qubit_operator) -> PauliSum:
    """A PauliSum from an ``openfermion.QubitOperator`` (anything with a ``terms`` dict of
    ``((wire, "X"|"Y"|"Z"), ...) -> coefficient``)."""
    terms = getattr(qubit_operator, "terms", None)
    if not isinstance(terms, dict):
        raise TypeError(f"expected an openfermion QubitOperator, got {type(qubit_operator).__name__}")
    out: dict = {}
    for s, c in terms.items():
        key = tuple(sorted((int(w), str(p).upper()) for w, p in s))
        out[key] = out.get(key, 0) + complex(c)
    return PauliSum(out).simplify(0.0)


def to_netket(h: PauliSum, hilbert=None, n_wires: int | None = None):
    """A ``netket.operator.PauliStrings`` on ``hilbert`` (default ``netket.hilbert.Qubit(n_wires)``).

    Site ``i`` of the NetKet Hilbert space is qsim wire ``i``. Imports NetKet lazily (which turns on
    ``jax_enable_x64`` for the process).
    """
    h = _check_sum(h)
    import netket as nk  # noqa: PLC0415 - lazy on purpose

    n = (h.n_wires if n_wires is None else int(n_wires)) if hilbert is None else hilbert.size
    if h.wires and max(h.wires) >= n:
        raise ValueError(f"operator acts on wire {max(h.wires)}, outside {n} sites")
    if hilbert is None:
        hilbert = nk.hilbert.Qubit(N=n)
    strings, weights = [], []
    for c, s in h:
        chars = ["I"] * n
        for w, p in s:
            chars[w] = p
        strings.append("".join(chars))
        weights.append(c)
    if not strings:
        strings, weights = ["I" * n], [0.0]
    w = np.asarray(weights)
    if np.all(w.imag == 0):
        w = w.real
    return nk.operator.PauliStrings(hilbert, strings, w)
