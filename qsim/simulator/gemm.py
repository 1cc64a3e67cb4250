"""Stage 4b of the simulator: the GEMM and native engines run a :class:`~qsim.simulator.program.GemmProgram`.

The passes (:class:`~qsim.simulator.fusion.Step`) act on real planes ``(P, 2**n)`` whose bit axes follow
the plan's tracked layout. A dense block on the ``k`` leading wires is one real matrix product
``(2D, 2D) @ (2D, 2**n / D)``, ``D = 2**k``, with the real form ``[[Ur, -Ui], [Ui, Ur]]`` of the block's
unitary (a real state: ``(D, D)`` on one plane); a ``"T"`` step transposes merged axes; ``"M"`` and
``"S"`` steps are the slice kernels of :mod:`qsim.simulator.kernels`; an ``"N"`` step is one pass of the
C++ kernel (:mod:`qsim.simulator.native`) applying the block's dense matrix in place, whatever its wires.

Each block's unitary is built once per call from the parameters (plain JAX, so JAX differentiates it);
the state passes are one ``jax.custom_vjp`` whose backward pass is the adjoint method (uncompute the
state block by block, pull the cotangent back, and contract the two for each block's matrix
cotangent; one native pass per block on the native engine), so a gradient holds O(1) states.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from qsim.simulator import kernels as _k
from qsim.simulator import native as _native
from qsim.simulator.fusion import Step
from qsim.simulator.inputs import real_dtype
from qsim.simulator.program import GemmProgram

__all__ = ["embed", "block_matrices", "transpose_layout", "make_apply", "make_runner"]


def embed(m, gwires: Sequence[int], bwires: Sequence[int]):
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


def block_matrices(mats: Sequence[tuple], p, cdtype, real: bool) -> tuple:
    """Each traced block's matrix on its ``order``: real ``(D, D)`` or planar ``(2, D, D)``."""
    rdtype = real_dtype(cdtype)
    out = []
    for gates, order in mats:
        m = None
        for g in gates:
            if g.const is not None:
                gm = jnp.asarray(g.const, cdtype)
            else:
                vals = [p[r.slot] if r.slot is not None else jnp.asarray(r.value, rdtype) for r in g.refs]
                gm = jnp.asarray(g.fn(vals)).astype(cdtype)
            e = embed(gm, g.wires, order)
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


def make_apply(steps: Sequence[Step], n: int):
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


def make_runner(prog: GemmProgram, cdtype):
    """(params, initial state or None) -> final complex state, one jitted function."""
    rdtype = real_dtype(cdtype)
    apply = make_apply(prog.steps, prog.n)

    def run(params, state):
        p, x = _k.run_inputs(prog.n, prog.real, params, state, rdtype)
        x = apply(block_matrices(prog.mats, p, cdtype, prog.real), x)
        return _k.from_planes(x, cdtype)

    return jax.jit(run)
