"""The GEMM engine of the statevector simulator: wide fused blocks as matrix products on a tracked
wire order.

Used by :mod:`qsim.simulator.statevector` for large registers (``statevector.GEMM_MIN_QUBITS`` and up, or
``max_fuse > 4``). The state is held as real planes ``(P, 2**n)`` whose ``n`` bit axes follow a
tracked *layout* (a permutation of the wires) instead of the natural order. A dense block on ``k``
wires that lead the layout is one real matrix product ``(2D, 2D) @ (2D, 2**n / D)``, ``D = 2**k``,
with the real form ``[[Ur, -Ui], [Ui, Ur]]`` of the block's unitary (a real state: ``(D, D)`` on one
plane), and leaves the layout as it is. A block whose wires do not lead gets one transpose first,
of merged axes (wires that stay adjacent move together, so it costs about a copy), that moves its
wires to the front; the layout goes back to the wire order once at the end. (Contracting blocks in
the middle of the layout instead measured slower: XLA then transposes inside the product.)

With the native kernels (:mod:`qsim.simulator.native`, the default on CPU when they build) there is no
layout: every block, whatever its wires, is one ``"N"`` step, a single pass of a C++ kernel
applying its dense matrix in place (:func:`plan` with ``native=True``); the backward pass is one
kernel pass per block too (uncompute, pull back, matrix cotangent).

Diagonal blocks and constant permutation blocks (X, CNOT, SWAP, CZ, Toffoli, phases) run as the
one-pass slice kernels of :mod:`qsim.simulator.kernels` on whatever axes their wires occupy. Each block's
unitary is built once per call from the parameters (plain JAX, so JAX differentiates it); the state
passes are one ``jax.custom_vjp`` whose backward pass is the adjoint method (uncompute the state
block by block, pull the cotangent back, and contract the two for each block's matrix cotangent), so
a gradient holds O(1) states.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from qsim.simulator import kernels as _k
from qsim.simulator import native as _native

__all__ = ["Step", "plan", "make_runner", "transpose_layout"]


class Step(NamedTuple):
    """One pass over the state (all fields static)."""

    kind: str                  # "T" transpose, "G" matrix product, "M" slice kernel, "S" static slices,
                               # "N" native kernel (any wires)
    old: tuple = ()            # "T": layout before
    new: tuple = ()            # "T": layout after
    order: tuple = ()          # "G"/"M"/"S"/"N": the block's wires in the matrix's bit order
    axes: tuple = ()           # "M"/"S": layout axes of ``order`` (sorted)
    block: int = -1            # "G"/"M": index into the block-matrix list
    diagonal: bool = False     # "M"/"S": the matrix is diagonal
    mat: np.ndarray | None = None   # "S": fixed complex matrix on ``order``


def _embed_np(m: np.ndarray, gwires: Sequence[int], bwires: Sequence[int]) -> np.ndarray:
    kb = len(bwires)
    rest = [w for w in bwires if w not in gwires]
    full = np.kron(m, np.eye(2 ** len(rest)))
    order = list(gwires) + rest
    perm = [order.index(w) for w in bwires]
    t = full.reshape((2,) * (2 * kb)).transpose(perm + [kb + p for p in perm])
    return t.reshape(2 ** kb, 2 ** kb)


def _embed(m, gwires: Sequence[int], bwires: Sequence[int]):
    """Matrix ``m`` on ``gwires`` as a matrix on ``bwires`` (a superset, any order), traced."""
    kb = len(bwires)
    if tuple(gwires) == tuple(bwires):
        return m
    rest = [w for w in bwires if w not in gwires]
    full = jnp.kron(m, jnp.eye(2 ** len(rest), dtype=m.dtype))
    order = list(gwires) + rest
    perm = [order.index(w) for w in bwires]
    t = full.reshape((2,) * (2 * kb)).transpose(perm + [kb + p for p in perm])
    return t.reshape(2 ** kb, 2 ** kb)


def plan(blocks: Sequence[Sequence], n: int, is_diag: Callable,
         is_monomial: Callable, native: bool = False) -> tuple[list[Step], list[tuple]]:
    """Steps for fused ``blocks`` (lists of ``statevector._Gate``) and, per traced block matrix,
    ``(gates, order)`` for :func:`block_matrices`. ``native``: one ``"N"`` step per block (blocks of
    at most ``native.MAX_WIRES`` wires), no layout."""
    if native:
        steps, mats = [], []
        for bg in blocks:
            ws = tuple(sorted({w for g in bg for w in g.wires}))
            if len(ws) > _native.MAX_WIRES:
                raise ValueError(f"a native block acts on at most {_native.MAX_WIRES} wires, got {ws}")
            steps.append(Step("N", order=ws, block=len(mats)))
            mats.append((tuple(bg), ws))
        return steps, mats
    lay = list(range(n))
    steps: list[Step] = []
    mats: list[tuple] = []
    wsets = [sorted({w for g in bg for w in g.wires}) for bg in blocks]

    def kind_of(bg, ws):
        if all(g.const is not None for g in bg):
            m = np.eye(2 ** len(ws), dtype=np.complex128)
            for g in bg:
                m = _embed_np(g.const, g.wires, ws) @ m
            if is_monomial(m):
                return "S", m
        if all(g.diagonal for g in bg):
            return "M", None
        return "G", None

    kinds = [kind_of(bg, ws) for bg, ws in zip(blocks, wsets)]
    for i, (bg, ws) in enumerate(zip(blocks, wsets)):
        kind, m = kinds[i]
        if kind in ("S", "M"):
            order = tuple(sorted(ws, key=lay.index))
            axes = tuple(lay.index(w) for w in order)
            if kind == "S":
                steps.append(Step("S", order=order, axes=axes, diagonal=is_diag(m),
                                  mat=_embed_np(m, ws, order)))
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


def block_matrices(mats: Sequence[tuple], p, cdtype, real: bool) -> tuple:
    """Each traced block's matrix on its ``order``: real ``(D, D)`` or planar ``(2, D, D)``."""
    rdtype = jnp.float64 if jnp.dtype(cdtype) == jnp.complex128 else jnp.float32
    out = []
    for gates, order in mats:
        m = None
        for g in gates:
            if g.const is not None:
                gm = jnp.asarray(g.const, cdtype)
            else:
                vals = [p[r.slot] if r.slot is not None else jnp.asarray(r.value, rdtype) for r in g.refs]
                gm = jnp.asarray(g.fn(vals)).astype(cdtype)
            e = _embed(gm, g.wires, order)
            m = e if m is None else jnp.matmul(e, m, precision=lax.Precision.HIGHEST)
        if real:
            out.append(jnp.real(m).astype(rdtype))
        else:
            out.append(jnp.stack([jnp.real(m), jnp.imag(m)]).astype(rdtype))
    return tuple(out)


def transpose_layout(x, old: Sequence[int], new: Sequence[int]):
    """Planes ``x`` ``(P, 2**n)`` with bit axes in wire order ``old`` -> wire order ``new``; runs of
    wires that stay adjacent move as one axis (so the transpose has few, large axes)."""
    pos_new = {w: i for i, w in enumerate(new)}
    segs = [[old[0]]]
    for w in old[1:]:
        if pos_new[w] == pos_new[segs[-1][-1]] + 1:
            segs[-1].append(w)
        else:
            segs.append([w])
    order = sorted(range(len(segs)), key=lambda i: pos_new[segs[i][0]])
    P = x.shape[0]
    t = x.reshape((P,) + tuple(2 ** len(s) for s in segs))
    return jnp.transpose(t, (0,) + tuple(1 + i for i in order)).reshape(P, -1)


def _gemm(x, k: int, m):
    """The block matrix ``m`` on the first ``k`` axes of the layout: one matrix product, the
    complex case as the real ``(2 * 2**k)``-square ``[[Ur, -Ui], [Ui, Ur]]`` on (plane, block bits)."""
    P = x.shape[0]
    D = 2 ** k
    hi = lax.Precision.HIGHEST
    if m.ndim == 2:
        if P == 1:
            return jnp.matmul(m.astype(x.dtype), x.reshape(D, -1), precision=hi).reshape(P, -1)
        return jnp.einsum("ij,pjb->pib", m.astype(x.dtype), x.reshape(P, D, -1), precision=hi).reshape(P, -1)
    mr, mi = m[0].astype(x.dtype), m[1].astype(x.dtype)
    mb = jnp.block([[mr, -mi], [mi, mr]])
    return jnp.matmul(mb, x.reshape(2 * D, -1), precision=hi).reshape(P, -1)


def _step_fwd(s: Step, n: int, x, m, inverse: bool = False):
    if s.kind == "T":
        return transpose_layout(x, s.new, s.old) if inverse else transpose_layout(x, s.old, s.new)
    if s.kind == "S":
        mat = np.conj(s.mat).T if inverse else s.mat
        return _k.apply_matrix(x, n, s.axes, mat, static=True, diagonal=s.diagonal)
    if inverse:
        m = _k.dagger(m)
    if s.kind == "N":
        return _native.apply(x, m, s.order, n)
    if s.kind == "G":
        return _gemm(x, len(s.order), m)
    return _k.apply_matrix(x, n, s.axes, m, diagonal=s.diagonal)


def make_runner(steps: Sequence[Step], n: int):
    """``apply(mats, x) -> x``: the steps as one ``custom_vjp`` (adjoint backward pass)."""
    steps = tuple(steps)

    def forward(mats, x):
        for s in steps:
            x = _step_fwd(s, n, x, mats[s.block] if s.block >= 0 else None)
        return x

    @jax.custom_vjp
    def apply(mats, x):
        return forward(mats, x)

    def apply_fwd(mats, x):
        out = forward(mats, x)
        return out, (mats, out)

    def apply_bwd(res, lam):
        mats, psi = res
        gms = [jnp.zeros_like(m) for m in mats]
        for s in reversed(steps):
            m = mats[s.block] if s.block >= 0 else None
            if s.kind == "N":     # one native pass: uncompute, pull back, matrix cotangent
                psi, lam, gm = _native.adjoint(psi, lam, m, s.order, n)
                gms[s.block] = gms[s.block] + gm
                continue
            psi = _step_fwd(s, n, psi, m, inverse=True)
            if s.kind in ("T", "S"):
                lam = _step_fwd(s, n, lam, m, inverse=True)
                continue
            _, vjp = jax.vjp(lambda xx, mm, s=s: _step_fwd(s, n, xx, mm), psi, m)
            lam, gm = vjp(lam)
            gms[s.block] = gms[s.block] + gm
        return tuple(gms), lam

    apply.defvjp(apply_fwd, apply_bwd)
    return apply
