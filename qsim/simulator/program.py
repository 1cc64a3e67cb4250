"""Stage 3 of the simulator: fused blocks as a static program for one engine.

A program is data only (NumPy arrays, tuples, the gate records' matrix functions): the engines
(:mod:`qsim.simulator.scan`, :mod:`qsim.simulator.gemm`) turn it into one jitted function.

- :class:`ScanProgram` (the scan engine): every block's matrix is a product of rows of one gate
  table ``[identity, fixed gates..., trainable gates by kind...]`` embedded in ``D = 2**kmax``
  dimensions, so all block matrices come from a few batched products per call; the state passes are
  one ``lax.scan`` over the blocks, switching between a few kernels (:class:`KernelSpec`).
- :class:`GemmProgram` (the GEMM and native engines): the :func:`qsim.simulator.fusion.plan` steps.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from qsim.simulator.fusion import plan
from qsim.simulator.records import Gate, embed_np, is_diag, is_monomial, local_perm, wires_of

__all__ = ["ADJOINT_BYTES", "KernelSpec", "ScanProgram", "GemmProgram", "build_scan", "build_gemm"]

# reverse mode keeps one state per block; above this many bytes the scan engine switches to the adjoint
# method (O(1) states, uncomputes the forward pass); ``QSIM_SV_ADJOINT=1/0`` forces it on/off.
ADJOINT_BYTES = 16 * 2**20


class KernelSpec(NamedTuple):
    """One kernel of the scan engine's switch."""

    kind: str                          # "dense", "diag" (block matrix from the table), "static" (fixed
                                       # matrix), "wide" (a trainable gate wider than the blocks, alone)
    wires: tuple                       # sorted wires
    stride: int = 1                    # "dense"/"diag": the block's matrix is the table's [::stride, ::stride]
    mat: np.ndarray | None = None      # "static": the complex matrix on ``wires``
    gate: Gate | None = None           # "wide": the gate


class ScanProgram(NamedTuple):
    """A circuit compiled for the scan engine: block matrices from params, then kernels in block order."""

    n: int
    kernels: tuple                    # KernelSpec, one per distinct kernel
    kidx: np.ndarray                  # (B,) int32 kernel of each block
    dim: int                          # D: block matrices are (D, D)
    table_const: np.ndarray           # (1 + Nc, D, D) identity then embedded fixed gates
    groups: tuple                     # trainable-gate builders: (fn, slots, is_slot, fixed, sigma, d)
    gidx: np.ndarray                  # (B, K) rows of the gate table multiplied into each block
    adjoint: bool                     # gradient by the adjoint method (custom VJP) instead of autodiff
    real: bool                        # every matrix is real: a real initial state stays one plane
    widths: tuple                     # wires of each block


class GemmProgram(NamedTuple):
    """A circuit compiled for the GEMM engine (``native``: every block one native-kernel pass)."""

    n: int
    steps: tuple                      # fusion.Step passes, transposes included
    mats: tuple                       # (gates, wire order) of each traced block matrix
    real: bool
    native: bool
    widths: tuple                     # wires of each block pass (transposes not counted)


class _Table:
    """The scan program under construction: kernels, gate-table rows and each block's row list."""

    def __init__(self, dim: int):
        self.dim = dim
        self.const_rows = [np.eye(dim, dtype=np.complex128)]
        self.group_rows: dict[tuple, list] = {}      # key -> list of (gate, sigma)
        self.kernels: dict[tuple, int] = {}
        self.specs: list[KernelSpec] = []
        self.kidx: list[int] = []
        self.gidx: list[list] = []

    def block(self, key: tuple, spec: KernelSpec, row: list) -> None:
        if key not in self.kernels:
            self.kernels[key] = len(self.specs)
            self.specs.append(spec)
        self.kidx.append(self.kernels[key])
        self.gidx.append(row)

    def rows(self, bg: Sequence[Gate], lw: list) -> list:
        """The gate-table rows of a block (its gates embedded on the padded wires ``lw``)."""
        row: list = []
        for g in bg:
            sigma = local_perm(list(g.wires), lw)
            if g.const is not None:
                full = np.kron(g.const, np.eye(self.dim // g.const.shape[0]))
                self.const_rows.append(full[np.ix_(sigma, sigma)])
                row.append(("c", len(self.const_rows) - 1))
            else:
                lst = self.group_rows.setdefault(g.group, [])
                lst.append((g, sigma))
                row.append(("g", g.group, len(lst) - 1))
        return row

    def table(self) -> tuple[tuple, np.ndarray]:
        """The trainable-gate builders and the (B, K) row indices: the gate table is [identity, fixed
        gates..., group 1 gates..., group 2 gates...]."""
        offsets, off = {}, len(self.const_rows)
        groups = []
        for key, lst in self.group_rows.items():
            offsets[key] = off
            off += len(lst)
            g0 = lst[0][0]
            npar = len(g0.refs)
            slots = np.array([[r.slot if r.slot is not None else 0 for r in g.refs] for g, _ in lst], np.int32)
            is_slot = np.array([[r.slot is not None for r in g.refs] for g, _ in lst], bool).reshape(-1, npar)
            fixed = np.array([[r.value if r.value is not None else 0.0 for r in g.refs] for g, _ in lst],
                             np.float64).reshape(-1, npar)
            sig = np.stack([s for _, s in lst]).astype(np.int32)
            groups.append((g0.fn, slots.reshape(-1, npar), is_slot, fixed, sig, 2 ** len(g0.wires)))
        K = max([len(r) for r in self.gidx] + [1])
        gmat = np.zeros((len(self.gidx), K), np.int32)
        for b, row in enumerate(self.gidx):
            for j, e in enumerate(row):
                gmat[b, j] = e[1] if e[0] == "c" else offsets[e[1]] + e[2]
        return tuple(groups), gmat


def _fixed_product(bg: Sequence[Gate], ws: tuple) -> np.ndarray:
    mat = np.eye(2 ** len(ws), dtype=np.complex128)
    for g in bg:
        mat = embed_np(g.const, g.wires, ws) @ mat
    return mat


def build_scan(gates: Sequence[Gate], blocks: Sequence[Sequence[Gate]], n: int, max_fuse: int,
               adjoint_mode: str, itemsize: int) -> ScanProgram:
    """The scan program of fused ``blocks``; ``adjoint_mode`` ``"auto"``/``"1"``/``"0"`` (see
    :data:`ADJOINT_BYTES`), ``itemsize`` the complex dtype's."""
    real = all(g.real for g in gates)
    widths = tuple(len(wires_of(bg)) for bg in blocks)
    kmax = max([k for k in widths if k <= max_fuse] + [1])
    t = _Table(2 ** kmax)
    for bg, kb in zip(blocks, widths):
        ws = wires_of(bg)
        if kb > max_fuse:                                    # a wide gate, alone
            g = bg[0]
            if g.const is not None:
                mat = embed_np(g.const, g.wires, ws)
                t.block(("static", ws, mat.tobytes()), KernelSpec("static", ws, mat=mat), [])
            else:
                t.block(("wide", len(t.kidx)), KernelSpec("wide", ws, gate=g), [])
            continue
        if all(g.const is not None for g in bg):
            mat = _fixed_product(bg, ws)
            if is_monomial(mat) and not is_diag(mat):
                t.block(("static", ws, mat.tobytes()), KernelSpec("static", ws, mat=mat), [])
                continue
        kind = "diag" if all(g.diagonal for g in bg) else "dense"
        lw = list(ws) + [n + j for j in range(kmax - kb)]    # dummy wires pad to kmax
        t.block((kind, ws), KernelSpec(kind, ws, stride=2 ** (kmax - kb)), t.rows(bg, lw))
    groups, gmat = t.table()
    if adjoint_mode == "auto":
        adjoint = len(t.kidx) * (2 ** n) * itemsize > ADJOINT_BYTES
    else:
        adjoint = adjoint_mode == "1"
    return ScanProgram(n, tuple(t.specs), np.asarray(t.kidx, np.int32), t.dim, np.stack(t.const_rows), groups,
                       gmat, adjoint, real, widths)


def build_gemm(gates: Sequence[Gate], blocks: Sequence[Sequence[Gate]], n: int, native: bool) -> GemmProgram:
    """The GEMM (or, ``native``, native-kernel) program of fused ``blocks``."""
    steps, mats = plan(blocks, n, native)
    widths = tuple(len(s.order) for s in steps if s.kind != "T")
    return GemmProgram(n, tuple(steps), tuple(mats), all(g.real for g in gates), native, widths)

