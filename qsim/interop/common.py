"""Helpers shared by the converters: parameter values of an op, appending
checked ops to a circuit, global phases, bit reversal and the operator type check."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qsim.circuits.circuit import Circuit, Op, ParamRef
from qsim.circuits.operators import PauliSum
from qsim.infra import validation

__all__ = ["op_values", "check_sum", "append_op", "phase_unitary", "reverse_bits"]


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


def check_sum(h) -> PauliSum:
    if not isinstance(h, PauliSum):
        raise TypeError(f"expected a qsim PauliSum, got {type(h).__name__}")
    return h


def append_op(c: Circuit, name: str, wires: Sequence[int], refs: Sequence[ParamRef] = (), n_controls: int = 0,
              adjoint: bool = False, matrix=None) -> None:
    """Append an :class:`Op` with checked wires (and a read-only copy of ``matrix``) to ``c``."""
    ws = validation.wires(tuple(int(w) for w in wires), c.n_wires, name)
    if matrix is not None:
        matrix = np.array(matrix, dtype=np.complex128)
        matrix.setflags(write=False)
    c.ops.append(Op(name, ws, tuple(refs), n_controls, adjoint, matrix))


def phase_unitary(c: Circuit, phase: float) -> None:
    """Multiply the state by ``exp(i phase)`` (a 1-wire unitary on wire 0)."""
    if abs(phase) > 1e-15:
        append_op(c, "Unitary", (0,), matrix=np.exp(1j * phase) * np.eye(2))


def reverse_bits(vec, n: int) -> np.ndarray:
    """A state vector ``(2**n,)`` with its qubit order reversed (big-endian <-> little-endian)."""
    t = np.asarray(vec).reshape((2,) * n)
    return t.transpose(tuple(range(n - 1, -1, -1))).reshape(-1)
