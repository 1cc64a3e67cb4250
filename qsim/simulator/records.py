"""Stage 1 of the simulator: a circuit's ops as gate records.

A :class:`Gate` holds what the later stages need of one op: its wires, its full matrix when it has
no trainable parameter, else a function of the parameter values; whether its matrix is diagonal, and
whether it is real for every parameter value. The matrix predicates and the embedding of a gate's
matrix into a block's wire order (NumPy, on fixed matrices) live here too, so that fusion and the
programs use one definition.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

from qsim.circuits.circuit import Circuit, Op
from qsim.circuits.gates import controlled_matrix

__all__ = ["Gate", "gates_of", "is_diag", "is_real", "is_monomial", "embed_np", "local_perm", "wires_of"]

EPS = 1e-14


class Gate(NamedTuple):
    """One op of the circuit, ready for fusion."""

    wires: tuple[int, ...]            # the op's wires (controls first)
    const: np.ndarray | None          # full complex128 matrix when the op has no trainable slot
    group: tuple | None               # key of the vectorised matrix builder (ops of one kind share it)
    fn: Callable | None               # list of parameter values -> matrix on ``wires``
    refs: tuple                       # the op's ParamRefs
    diagonal: bool
    real: bool                        # the matrix is real for every parameter value


def is_diag(m: np.ndarray) -> bool:
    return bool(np.all(np.abs(m - np.diag(np.diag(m))) < EPS))


def is_real(m) -> bool:
    return bool(np.all(np.abs(np.imag(m)) < EPS))


def is_monomial(m: np.ndarray) -> bool:
    """One non-zero per row and column: a permutation with phases (X, CNOT, SWAP, CZ, Toffoli, ...)."""
    nz = np.abs(m) > EPS
    return bool(np.all(nz.sum(0) == 1) and np.all(nz.sum(1) == 1))


def _op_matrix_fn(op: Op) -> tuple[Callable, bool]:
    """(vals -> full matrix on op.wires, is_constant)."""
    g = op.gate
    if op.name == "Unitary":
        base = lambda vals: op.matrix  # noqa: E731
    elif op.name == "MCX":
        base = lambda vals: np.array([[0, 1], [1, 0]], dtype=complex)  # noqa: E731
    else:
        base = lambda vals: g.matrix(*vals)  # noqa: E731

    n_ctrl = op.n_controls

    def full(vals):
        m = base(vals)
        if op.adjoint:
            m = jnp.conj(jnp.asarray(m)).T
        if n_ctrl:
            m = controlled_matrix(m, n_ctrl)
        return m

    return full, all(p.slot is None for p in op.params)


def gates_of(circuit: Circuit) -> list[Gate]:
    """The circuit's ops as gate records (identities without controls dropped)."""
    gates = []
    for op in circuit.ops:
        if op.name == "I" and not op.n_controls:
            continue
        full, is_const = _op_matrix_fn(op)
        if is_const:
            mat = np.asarray(full([p.value for p in op.params]), dtype=np.complex128)
            gates.append(Gate(op.wires, mat, None, None, (), is_diag(mat), is_real(mat)))
        else:
            key = (op.name, op.n_controls, op.adjoint, len(op.wires))
            # real for all angles iff real at generic angles (the table's matrices are analytic)
            probe = np.random.default_rng(len(op.wires)).uniform(-3, 3, (2, len(op.params)))
            real = all(is_real(np.asarray(full([float(v) for v in row]))) for row in probe)
            gates.append(Gate(op.wires, None, key, full, op.params, op.gate.kind == "diagonal", real))
    return gates


def wires_of(block: Sequence[Gate]) -> tuple[int, ...]:
    """The sorted wires a block of gates acts on."""
    return tuple(sorted({w for g in block for w in g.wires}))


def embed_np(m: np.ndarray, gwires: Sequence[int], bwires: Sequence[int]) -> np.ndarray:
    """Fixed matrix ``m`` on ``gwires`` as a matrix on ``bwires`` (a superset, any order)."""
    kb = len(bwires)
    if tuple(gwires) == tuple(bwires):
        return np.asarray(m)
    rest = [w for w in bwires if w not in gwires]
    full = np.kron(m, np.eye(2 ** len(rest)))
    order = list(gwires) + rest
    perm = [order.index(w) for w in bwires]
    t = full.reshape((2,) * (2 * kb)).transpose(perm + [kb + p for p in perm])
    return t.reshape(2 ** kb, 2 ** kb)


def local_perm(gwires: Sequence[int], lwires: Sequence[int]) -> np.ndarray:
    """sigma: index over ``lwires`` -> index over (gwires, rest of lwires) (kron(g, I) ordering)."""
    k = len(lwires)
    order = list(gwires) + [w for w in lwires if w not in gwires]
    pos = [lwires.index(w) for w in order]
    i = np.arange(2 ** k)
    bits = [(i >> (k - 1 - p)) & 1 for p in pos]
    out = np.zeros_like(i)
    for b in bits:
        out = 2 * out + b
    return out
