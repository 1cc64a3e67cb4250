"""Stage 4a of the simulator: the scan engine runs a :class:`~qsim.simulator.program.ScanProgram`.

Block matrices are built once per call from the gate table (tiny batched products); the state passes
are one ``lax.scan`` over the blocks, each a ``lax.switch`` between the program's few kernels
(:mod:`qsim.simulator.kernels`). Reverse mode either keeps one state per block (``jax.checkpoint``
per kernel) or, for an ``adjoint`` program, is the adjoint method: one ``custom_vjp`` whose backward
pass uncomputes the state block by block while pulling the cotangent back (O(1) states).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from qsim.simulator import kernels as _k
from qsim.simulator.inputs import real_dtype
from qsim.simulator.program import KernelSpec, ScanProgram
from qsim.simulator.records import Gate, is_diag, is_monomial

__all__ = ["make_runner"]


class _Kernel(NamedTuple):
    fwd: Callable      # (planes, m, params) -> planes
    bwd: Callable      # (planes_out, cotangent_out, m, params) -> (planes_in, cotangent_in, dm, dparams)


def _generic_bwd(fwd, inv):
    def bwd(psi, lam, m, p):
        psi_in = inv(psi, m, p)
        _, vjp = jax.vjp(fwd, psi_in, m, p)
        lam_in, gm, gp = vjp(lam)
        return psi_in, lam_in, gm, gp
    return bwd


def _dense_kernel(n, ws, stride, diagonal):
    def sub(m):
        return m[..., ::stride, ::stride]

    def fwd(x, m, p):
        return _k.apply_matrix(x, n, ws, sub(m), diagonal=diagonal)

    def bwd(psi, lam, m, p):
        # the map on real planes is orthogonal: its transpose (for the cotangent) is its inverse
        adj = _k.dagger(sub(m))
        psi_in = _k.apply_matrix(psi, n, ws, adj, diagonal=diagonal)
        lam_in = _k.apply_matrix(lam, n, ws, adj, diagonal=diagonal)
        gsub = _k.matrix_cotangent(lam, psi_in, n, ws, m.ndim == 3, diagonal)
        gm = jnp.zeros_like(m).at[..., ::stride, ::stride].set(gsub.astype(m.dtype))
        return psi_in, lam_in, gm, jnp.zeros_like(p)
    return _Kernel(fwd, bwd)


def _static_kernel(n, ws, mat):
    """A fixed matrix on sorted wires ``ws``: sliced (diagonal, monomial or k <= 3) or a dot."""
    diag = is_diag(mat)
    adj = np.conj(mat).T
    if diag or is_monomial(mat) or len(ws) <= 3:
        def fwd(x, m, p):
            return _k.apply_matrix(x, n, ws, mat, static=True, diagonal=diag)

        def inv(x):
            return _k.apply_matrix(x, n, ws, adj, static=True, diagonal=diag)
    else:
        def fwd(x, m, p):
            return _k.apply_dot(x, n, ws, mat)

        def inv(x):
            return _k.apply_dot(x, n, ws, adj)

    def bwd(psi, lam, m, p):
        return inv(psi), inv(lam), jnp.zeros_like(m), jnp.zeros_like(p)
    return _Kernel(fwd, bwd)


def _wide_kernel(n, gate: Gate, rdtype, real: bool):
    """A trainable gate wider than the fused blocks, alone: its matrix is built inside the kernel."""
    ws = tuple(gate.wires)

    def matrix(p, dagger=False):
        vals = [p[r.slot] if r.slot is not None else jnp.asarray(r.value, rdtype) for r in gate.refs]
        m = jnp.asarray(gate.fn(vals))
        if dagger:
            m = jnp.conj(m).T
        return jnp.real(m).astype(rdtype) if real else jnp.stack([jnp.real(m), jnp.imag(m)]).astype(rdtype)

    def fwd(x, m, p):
        return _k.apply_dot(x, n, ws, matrix(p))

    def inv(x, m, p):
        return _k.apply_dot(x, n, ws, matrix(p, dagger=True))
    return _Kernel(fwd, _generic_bwd(fwd, inv))


def _kernel(spec: KernelSpec, n: int, rdtype, real: bool) -> _Kernel:
    if spec.kind == "static":
        return _static_kernel(n, spec.wires, spec.mat)
    if spec.kind == "wide":
        return _wide_kernel(n, spec.gate, rdtype, real)
    return _dense_kernel(n, spec.wires, spec.stride, spec.kind == "diag")


def _block_matrices(prog: ScanProgram, p, cdtype):
    """Block matrices from the gate table: real ``(B, D, D)`` for a real program, else planar
    ``(B, 2, D, D)`` (tiny batched matmuls, once per call)."""
    parts = [jnp.asarray(prog.table_const, cdtype)]
    dim = prog.dim
    for fn, slots, is_slot, fixed, sig, d in prog.groups:
        vals = jnp.where(is_slot, p[slots], jnp.asarray(fixed, p.dtype))
        g = jax.vmap(lambda v, fn=fn: jnp.asarray(fn([v[i] for i in range(v.shape[0])])))(vals)
        g = g.astype(cdtype)
        full = jnp.einsum("gab,cd->gacbd", g, jnp.eye(dim // d, dtype=cdtype),
                          precision=lax.Precision.HIGHEST).reshape(-1, dim, dim)
        rows = np.arange(len(sig))[:, None, None]
        parts.append(full[rows, sig[:, :, None], sig[:, None, :]])
    table = jnp.concatenate(parts) if len(parts) > 1 else parts[0]
    m = table[prog.gidx[:, 0]]
    for j in range(1, prog.gidx.shape[1]):
        m = jnp.matmul(table[prog.gidx[:, j]], m, precision=lax.Precision.HIGHEST)   # not TF32 on GPUs
    if prog.real:
        return jnp.real(m)
    return jnp.stack([jnp.real(m), jnp.imag(m)], axis=1)


def _forward(kernels, kidx, mats, p, x, checkpoint: bool):
    fwds = [k.fwd for k in kernels]
    if checkpoint:
        fwds = [jax.checkpoint(f) for f in fwds]

    def body(s, xs):
        k, m = xs
        if len(fwds) == 1:
            return fwds[0](s, m, p), None
        return lax.switch(k, fwds, s, m, p), None
    return lax.scan(body, x, (jnp.asarray(kidx), mats))[0]


def _backward(kernels, kidx, mats, p, out, lam):
    """Adjoint sweep: uncompute the state block by block while pulling the cotangent back."""
    bwds = [functools.partial(k.bwd, p=p) for k in kernels]

    def body(c, xs):
        psi, lam, gp = c
        k, m = xs
        if len(bwds) == 1:
            psi, lam, gm, dp = bwds[0](psi, lam, m)
        else:
            psi, lam, gm, dp = lax.switch(k, bwds, psi, lam, m)
        return (psi, lam, gp + dp), gm
    (_, lam0, gp), gms = lax.scan(body, (out, lam, jnp.zeros_like(p)), (jnp.asarray(kidx), mats), reverse=True)
    return gms, gp, lam0


def _apply_fn(kernels, kidx, adjoint: bool):
    """(mats, p, planes) -> planes: the scan, with the adjoint method as its VJP when ``adjoint``."""
    if not adjoint:
        return lambda mats, p, x: _forward(kernels, kidx, mats, p, x, True)

    @jax.custom_vjp
    def apply(mats, p, x):
        return _forward(kernels, kidx, mats, p, x, False)

    def apply_fwd(mats, p, x):
        out = _forward(kernels, kidx, mats, p, x, False)
        return out, (mats, p, out)

    def apply_bwd(res, lam):
        mats, p, out = res
        return _backward(kernels, kidx, mats, p, out, lam)

    apply.defvjp(apply_fwd, apply_bwd)
    return apply


def make_runner(prog: ScanProgram, cdtype):
    """(params, initial state or None) -> final complex state, one jitted function."""
    rdtype = real_dtype(cdtype)
    kernels = tuple(_kernel(s, prog.n, rdtype, prog.real) for s in prog.kernels)
    apply = _apply_fn(kernels, prog.kidx, prog.adjoint)

    def run(params, state):
        p, x = _k.run_inputs(prog.n, prog.real, params, state, rdtype)
        if len(prog.kidx):
            x = apply(_block_matrices(prog, p, cdtype), p, x)
        return _k.from_planes(x, cdtype)

    return jax.jit(run)
