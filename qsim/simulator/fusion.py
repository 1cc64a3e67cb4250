"""Stage 2 of the simulator: gate records fused into blocks, and the pass plan of the GEMM and native
engines.

:func:`fuse` groups consecutive gates into blocks of at most ``max_fuse`` wires; every engine runs
one pass over the state per block. :func:`plan` turns the blocks into the passes (:class:`Step`) of
the GEMM engine (:mod:`qsim.simulator.gemm`): the state is held as real planes ``(P, 2**n)`` whose
``n`` bit axes follow a tracked *layout* (a permutation of the wires) instead of the natural order.
A dense block on ``k`` wires that lead the layout is one real matrix product; a block whose wires do
not lead gets one transpose first, of merged axes (wires that stay adjacent move together, so it
costs about a copy), that moves its wires to the front; the layout goes back to the wire order once
at the end. (Contracting blocks in the middle of the layout instead measured slower: XLA then
transposes inside the product.) Diagonal blocks (``"M"``) and constant permutation blocks (``"S"``:
X, CNOT, SWAP, CZ, Toffoli, phases) run as one-pass slice kernels on whatever axes their wires
occupy. With the native kernels (``native=True``) there is no layout: every block, whatever its
wires, is one ``"N"`` step.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from qsim.simulator.native import MAX_WIRES as NATIVE_MAX_WIRES
from qsim.simulator.records import Gate, embed_np, is_diag, is_monomial, wires_of

__all__ = ["MAX_BLOCK_GATES", "fuse", "Step", "plan"]

MAX_BLOCK_GATES = 32


def fuse(gates: Sequence[Gate], n: int, max_fuse: int) -> list[list[Gate]]:
    """Greedy fusion into blocks of at most ``max_fuse`` wires (wider gates stay alone).

    A gate joins the latest block touching its wires when the union stays small (later blocks never
    touch its wires, so it may move back). Earlier blocks on its other wires that nothing later
    touches are pulled forward into the same block (they commute with everything in between):
    ``RY(0) RY(1) CNOT(0,1)`` becomes one 2-wire block.
    """
    blocks: list = []      # [wires(set), gates(list), wide(bool)] or None once merged away
    last = [-1] * n

    def absorb(b: int, ws: set) -> None:
        for w in sorted(ws):
            bp = last[w]
            if bp < 0 or bp == b or blocks[bp][2]:
                continue
            bw = blocks[bp][0]
            if (bw <= blocks[b][0] | ws and all(last[u] == bp for u in bw)
                    and len(blocks[bp][1]) + len(blocks[b][1]) < MAX_BLOCK_GATES):
                blocks[b][1][:0] = blocks[bp][1]
                blocks[b][0] |= bw
                blocks[bp] = None
                for u in bw:
                    last[u] = b

    for g in gates:
        ws = set(g.wires)
        if len(ws) > max_fuse:
            blocks.append([ws, [g], True])
            for w in ws:
                last[w] = len(blocks) - 1
            continue
        b = max(last[w] for w in ws)
        if b >= 0 and not blocks[b][2] and len(blocks[b][1]) < MAX_BLOCK_GATES:
            union = blocks[b][0] | ws
            if len(union) <= max_fuse:
                absorb(b, ws - blocks[b][0])
                blocks[b][0] |= ws
                blocks[b][1].append(g)
                for w in ws:
                    last[w] = b
                continue
        blocks.append([set(ws), [], False])
        b = len(blocks) - 1
        absorb(b, ws)
        blocks[b][1].append(g)
        for w in ws:
            last[w] = b
    return [bl[1] for bl in blocks if bl is not None]


class Step(NamedTuple):
    """One pass over the state (all fields static)."""

    kind: str                  # "T" transpose, "G" matrix product, "M" slice kernel, "S" static slices,
                               # "N" native kernel (any wires)
    old: tuple = ()            # "T": layout before
    new: tuple = ()            # "T": layout after
    order: tuple = ()          # "G"/"M"/"S"/"N": the block's wires in the matrix's bit order
    axes: tuple = ()           # "M"/"S": layout axes of ``order`` (sorted)
    block: int = -1            # "G"/"M"/"N": index into the block-matrix list
    diagonal: bool = False     # "M"/"S": the matrix is diagonal
    mat: np.ndarray | None = None   # "S": fixed complex matrix on ``order``


def _native_plan(blocks: Sequence[Sequence[Gate]]) -> tuple[list[Step], list[tuple]]:
    steps, mats = [], []
    for bg in blocks:
        ws = wires_of(bg)
        if len(ws) > NATIVE_MAX_WIRES:
            raise ValueError(f"a native block acts on at most {NATIVE_MAX_WIRES} wires, got {ws}")
        steps.append(Step("N", order=ws, block=len(mats)))
        mats.append((tuple(bg), ws))
    return steps, mats


def _kind_of(bg: Sequence[Gate], ws: Sequence[int]) -> tuple[str, np.ndarray | None]:
    """"S" (a fixed monomial matrix, returned), "M" (diagonal) or "G" (dense)."""
    if all(g.const is not None for g in bg):
        m = np.eye(2 ** len(ws), dtype=np.complex128)
        for g in bg:
            m = embed_np(g.const, g.wires, ws) @ m
        if is_monomial(m):
            return "S", m
    if all(g.diagonal for g in bg):
        return "M", None
    return "G", None


def plan(blocks: Sequence[Sequence[Gate]], n: int, native: bool = False) -> tuple[list[Step], list[tuple]]:
    """Steps for fused ``blocks`` and, per traced block matrix, ``(gates, order)`` (the matrices are
    built per call by :func:`qsim.simulator.gemm.block_matrices`). ``native``: one ``"N"`` step per
    block (blocks of at most ``native.MAX_WIRES`` wires), no layout."""
    if native:
        return _native_plan(blocks)
    lay = list(range(n))
    steps: list[Step] = []
    mats: list[tuple] = []
    for bg in blocks:
        ws = list(wires_of(bg))
        kind, m = _kind_of(bg, ws)
        if kind in ("S", "M"):
            order = tuple(sorted(ws, key=lay.index))
            axes = tuple(lay.index(w) for w in order)
            if kind == "S":
                steps.append(Step("S", order=order, axes=axes, diagonal=is_diag(m), mat=embed_np(m, ws, order)))
            else:
                steps.append(Step("M", order=order, axes=axes, block=len(mats), diagonal=True))
                mats.append((tuple(bg), order))
            continue
        if sorted(lay.index(w) for w in ws) != list(range(len(ws))):
            # one transpose (of merged axes) brings the block's wires to the front, in their
            # current relative order; the rest keep theirs
            new = sorted(ws, key=lay.index) + [w for w in lay if w not in ws]
            steps.append(Step("T", old=tuple(lay), new=tuple(new)))
            lay = new
        order = tuple(lay[:len(ws)])
        steps.append(Step("G", order=order, block=len(mats)))
        mats.append((tuple(bg), order))
    if lay != list(range(n)):
        steps.append(Step("T", old=tuple(lay), new=tuple(range(n))))
    return steps, mats
