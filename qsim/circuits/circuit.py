"""Circuit: static structure (gates, wires, parameter slots); parameters live in one flat array.

    c = Circuit(3)              # wires 0..2; wire 0 is the most significant bit
    c.h(0); c.cnot(0, 1)
    c.ry(2)                     # a trainable slot: takes the next entry of params
    c.rz(1, value=0.25)         # a fixed angle
    c.rx(0, param=2)            # reuse slot 2 (shared parameter)
    c.ctrl("ry", [0], 1)        # a controlled version of any gate (new slot)

A :class:`Circuit` is a builder: methods append :class:`Op` records and return the circuit, so they
chain. The gate table (:mod:`qsim.circuits.gates`) is the single source of matrices and rules; the circuit only
records names, wires and where each parameter comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from qsim.circuits.gates import GATES, GateDef, get_gate
from qsim.infra import validation

__all__ = ["Circuit", "Op", "ParamRef"]


@dataclass(frozen=True)
class ParamRef:
    """Where one gate parameter comes from: a trainable ``slot`` or a fixed ``value``."""

    slot: int | None = None
    value: float | None = None

    def key(self) -> tuple:
        return (self.slot, self.value)


@dataclass(frozen=True, eq=False)
class Op:
    """One operation: a table gate on ``wires`` (controls first), with parameters and modifiers.

    ``n_controls`` extra control wires lead ``wires`` for controlled versions of table gates;
    ``adjoint`` marks the inverse; ``matrix`` holds the target matrix of a ``Unitary`` op.
    """

    name: str
    wires: tuple[int, ...]
    params: tuple[ParamRef, ...] = ()
    n_controls: int = 0
    adjoint: bool = False
    matrix: np.ndarray | None = field(default=None, repr=False)

    @property
    def gate(self) -> GateDef:
        return GATES[self.name]

    @property
    def controls(self) -> tuple[int, ...]:
        return self.wires[: self.n_controls]

    @property
    def targets(self) -> tuple[int, ...]:
        return self.wires[self.n_controls:]

    def key(self) -> tuple:
        m = None if self.matrix is None else (self.matrix.shape, self.matrix.tobytes())
        return (self.name, self.wires, tuple(p.key() for p in self.params), self.n_controls,
                self.adjoint, m)


class Circuit:
    """A quantum circuit on ``n_wires`` qubits with a flat trainable-parameter vector.

    Args:
        n_wires: number of qubits (wires ``0 .. n_wires - 1``; wire 0 is the most significant bit of
            ``probs``/``sample`` indices).
    """

    def __init__(self, n_wires: int):
        self.n_wires = validation.positive_int(n_wires, "n_wires (a circuit needs at least one wire)")
        self.ops: list[Op] = []
        self.num_params = 0

    # ------------------------------------------------------------------ bookkeeping
    def __repr__(self) -> str:
        return f"Circuit(n_wires={self.n_wires}, ops={len(self.ops)}, num_params={self.num_params})"

    def __len__(self) -> int:
        return len(self.ops)

    def key(self) -> tuple:
        """A hashable fingerprint of the structure (used to cache compiled simulators)."""
        return (self.n_wires, self.num_params, tuple(op.key() for op in self.ops))

    def copy(self) -> "Circuit":
        c = Circuit(self.n_wires)
        c.ops = list(self.ops)
        c.num_params = self.num_params
        return c

    def new_param(self) -> int:
        """Reserve a new trainable slot and return its index (to share it with ``param=``)."""
        self.num_params += 1
        return self.num_params - 1

    def _check_wires(self, wires: Sequence[int], what: str) -> tuple[int, ...]:
        return validation.wires(wires, self.n_wires, what)

    def _param_refs(self, gate: str, n: int, value, param) -> tuple[ParamRef, ...]:
        if n == 0:
            if value is not None or param is not None:
                raise ValueError(f"gate {gate} takes no parameters")
            return ()
        if value is not None and param is not None:
            raise ValueError(f"{gate}: give either value= (fixed) or param= (slot), not both")
        if value is not None:
            vals = validation.finite_array(np.atleast_1d(np.asarray(value, dtype=float)).ravel(), f"{gate}: value")
            if vals.size != n:
                raise ValueError(f"{gate} takes {n} parameter(s), got value={value!r}")
            return tuple(ParamRef(value=float(v)) for v in vals)
        if param is None:
            return tuple(ParamRef(slot=self.new_param()) for _ in range(n))
        slots = [param] if n == 1 and np.ndim(param) == 0 else list(param)
        if len(slots) != n:
            raise ValueError(f"{gate} takes {n} parameter(s), got param={param!r}")
        refs = []
        for s in slots:
            s = validation.nonnegative_int(s, f"{gate}: param= (a slot index)")
            if s >= self.num_params:
                raise ValueError(f"{gate}: param={int(s)} is not an existing slot (circuit has "
                                 f"{self.num_params}); use new_param() or omit param= for a new one")
            refs.append(ParamRef(slot=int(s)))
        return tuple(refs)

    # ------------------------------------------------------------------ generic adders
    def add(self, name: str, wires: int | Sequence[int], value=None, param=None) -> "Circuit":
        """Append table gate ``name`` (any alias) on ``wires``."""
        g = get_gate(name)
        if g.num_wires is None:
            raise ValueError(f"gate {g.name} has a variable width: use Circuit.{g.name.lower()}()")
        wires = (wires,) if isinstance(wires, (int, np.integer)) else tuple(wires)
        if len(wires) != g.num_wires:
            raise ValueError(f"gate {g.name} acts on {g.num_wires} wire(s), got wires={wires}")
        ws = self._check_wires(wires, g.name)
        self.ops.append(Op(g.name, ws, self._param_refs(g.name, g.num_params, value, param)))
        return self

    def ctrl(self, name: str, controls: int | Sequence[int], wires: int | Sequence[int], value=None,
             param=None) -> "Circuit":
        """A controlled version of table gate ``name``: applied on ``wires`` when all ``controls`` are 1."""
        g = get_gate(name)
        controls = (controls,) if isinstance(controls, (int, np.integer)) else tuple(controls)
        wires = (wires,) if isinstance(wires, (int, np.integer)) else tuple(wires)
        if g.num_wires is None:
            raise ValueError(f"ctrl: gate {g.name} has a variable width; use mcx() or a controlled unitary")
        if len(wires) != g.num_wires:
            raise ValueError(f"gate {g.name} acts on {g.num_wires} wire(s), got wires={wires}")
        if not controls:
            return self.add(name, wires, value=value, param=param)
        ws = self._check_wires(controls + wires, f"controlled {g.name}")
        self.ops.append(Op(g.name, ws, self._param_refs(g.name, g.num_params, value, param),
                           n_controls=len(controls)))
        return self

    def unitary(self, matrix, wires: int | Sequence[int], controls: Sequence[int] = (),
                atol: float = 1e-8) -> "Circuit":
        """An arbitrary k-qubit unitary (basis ``|q_w0 ... q_wk>``, first wire most significant)."""
        wires = (wires,) if isinstance(wires, (int, np.integer)) else tuple(wires)
        m = np.array(matrix, dtype=np.complex128)
        d = 2 ** len(wires)
        if m.shape != (d, d):
            raise ValueError(f"unitary on {len(wires)} wire(s) needs a ({d}, {d}) matrix, got shape {m.shape}")
        validation.finite_array(m, "unitary: matrix")
        err = np.abs(m.conj().T @ m - np.eye(d)).max()
        if err > atol:
            raise ValueError(f"unitary: matrix is not unitary (max |U^dag U - I| = {err:.3g} > {atol})")
        controls = tuple(controls)
        ws = self._check_wires(controls + wires, "unitary")
        m.setflags(write=False)
        self.ops.append(Op("Unitary", ws, (), n_controls=len(controls), matrix=m))
        return self

    def mcx(self, controls: Sequence[int], target: int) -> "Circuit":
        """Multi-controlled X on ``target`` (flips it when every control is 1)."""
        controls = tuple(controls)
        if not controls:
            raise ValueError("mcx needs at least one control wire")
        ws = self._check_wires(controls + (target,), "MCX")
        self.ops.append(Op("MCX", ws, (), n_controls=len(controls)))
        return self

    # ------------------------------------------------------------------ composition
    def append(self, other: "Circuit", wires: Sequence[int] | None = None,
               share_params: bool = False) -> "Circuit":
        """Append ``other`` (mapped onto ``wires``, default identity).

        Its slots become new slots of this circuit (shifted by ``num_params``), or, with
        ``share_params=True``, keep their indices (slot k of ``other`` is slot k here).
        """
        if not isinstance(other, Circuit):
            raise TypeError(f"append takes a Circuit, got {type(other).__name__}")
        wires = tuple(range(other.n_wires)) if wires is None else tuple(wires)
        if len(wires) != other.n_wires:
            raise ValueError(f"append: {other.n_wires}-wire circuit mapped onto {len(wires)} wires")
        wires = self._check_wires(wires, "append")
        offset = 0 if share_params else self.num_params
        for op in other.ops:
            refs = tuple(p if p.slot is None else ParamRef(slot=p.slot + offset)
                         for p in op.params)
            self.ops.append(Op(op.name, tuple(wires[w] for w in op.wires), refs, op.n_controls,
                               op.adjoint, op.matrix))
        self.num_params = max(self.num_params, offset + other.num_params)
        return self

    def __add__(self, other: "Circuit") -> "Circuit":
        return self.copy().append(other)

    def inverse(self) -> "Circuit":
        """The adjoint circuit (same slots: ``simulate(c.inverse(), p)`` undoes ``simulate(c, p)``)."""
        c = Circuit(self.n_wires)
        c.num_params = self.num_params
        for op in reversed(self.ops):
            adj = not op.adjoint
            if op.gate.self_inverse and not op.params:
                adj = False
            c.ops.append(Op(op.name, op.wires, op.params, op.n_controls, adj, op.matrix))
        return c

    # ------------------------------------------------------------------ inspection
    @property
    def depth(self) -> int:
        """Circuit depth: the longest chain of ops that share wires."""
        level = [0] * self.n_wires
        for op in self.ops:
            d = 1 + max(level[w] for w in op.wires)
            for w in op.wires:
                level[w] = d
        return max(level) if self.ops else 0

    def count_ops(self) -> dict[str, int]:
        """Number of ops per gate name (controlled versions as ``C<k>-NAME``, inverses with ``†``)."""
        out: dict[str, int] = {}
        for op in self.ops:
            name = (f"C{op.n_controls}-" if op.n_controls and op.name not in ("MCX",) else "") + op.name
            name += "†" if op.adjoint else ""
            out[name] = out.get(name, 0) + 1
        return out

    def slot_usage(self) -> dict[int, list[tuple[int, int]]]:
        """slot -> list of (op index, parameter index) that read it."""
        use: dict[int, list[tuple[int, int]]] = {}
        for i, op in enumerate(self.ops):
            for j, p in enumerate(op.params):
                if p.slot is not None:
                    use.setdefault(p.slot, []).append((i, j))
        return use

    def draw(self) -> str:
        """A plain-text listing, one op a line."""
        lines = [repr(self)]
        for op in self.ops:
            ps = ", ".join(f"p[{p.slot}]" if p.slot is not None else f"{p.value:.4g}" for p in op.params)
            lines.append(f"  {op.name}{'†' if op.adjoint else ''}{op.wires}" + (f"({ps})" if ps else ""))
        return "\n".join(lines)


def _make_method(gdef: GateDef):
    n = gdef.num_wires

    def method(self: Circuit, *wires: int, value=None, param=None) -> Circuit:
        if len(wires) == 1 and isinstance(wires[0], (tuple, list)):
            wires = tuple(wires[0])
        return self.add(gdef.name, wires, value=value, param=param)

    pdoc = (" Without ``value=`` it takes the next trainable slot; ``param=k`` reuses slot k."
            if gdef.num_params else "")
    method.__name__ = gdef.name.lower()
    method.__doc__ = f"Append {gdef.name} on {n} wire(s).{pdoc}"
    return method


for _g in GATES.values():
    if _g.num_wires is not None:
        setattr(Circuit, _g.name.lower(), _make_method(_g))
Circuit.cx = Circuit.cnot
Circuit.ccx = Circuit.toffoli
Circuit.p = Circuit.phaseshift

