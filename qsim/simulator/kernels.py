"""Kernel API of the statevector simulator: apply a small matrix to a state held as real planes.

A state of ``n`` qubits is held as a real array ``x`` of shape ``(P, 2**n)``: ``P = 2`` planes
``(real part, imaginary part)``, or ``P = 1`` (a real state; only valid while every matrix applied
is real). XLA on CPU vectorises real arithmetic well and complex multiplication poorly (it goes
through a scalar routine per element: a complex128 ``s * 2`` runs ~20x slower than the same bytes
of float64), so every pass over the state is written in real arithmetic here.

A matrix on ``k`` wires is either real ``(2**k, 2**k)`` (applied to every plane) or planar
``(2, 2**k, 2**k)`` = (real part, imaginary part) (needs ``P = 2``). Wire 0 is the most significant
bit of the basis index. These functions are pure and work under ``jit``/``vmap``/``grad``:

* :func:`apply_matrix` -- one pass: the state is viewed as ``(P, d0, 2, d1, 2, ..., dk)`` (a free
  reshape) and each output slice is a sum of input slices times matrix entries; a NumPy (static)
  matrix skips zero and unit coefficients, so permutations (X, CNOT, SWAP, Toffoli) and phases cost
  one copy-like pass.
* :func:`apply_dot` -- wide dense matrices (``k >= 4``): one transpose, one matrix product, one
  transpose back, instead of ``4**k`` slice products.
* :func:`dagger`, :func:`to_planes`, :func:`from_planes`, :func:`run_inputs` (an engine's inputs as planes).
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["split_shape", "apply_matrix", "matrix_cotangent", "apply_dot", "dagger", "to_planes", "from_planes",
           "run_inputs"]

_EPS = 1e-14


def split_shape(n: int, ws: Sequence[int]) -> list[int]:
    """``(d0, 2, d1, 2, ..., dk)``: the free reshape of a ``2**n`` axis exposing sorted wires ``ws``."""
    shape, prev = [], -1
    for w in ws:
        shape += [2 ** (w - prev - 1), 2]
        prev = w
    shape.append(2 ** (n - 1 - prev))
    return shape


def to_planes(state, rdtype=None):
    """Complex ``(2**n,)`` -> real ``(2, 2**n)``."""
    x = jnp.stack([jnp.real(state), jnp.imag(state)])
    return x if rdtype is None else x.astype(rdtype)


def from_planes(x, cdtype=None):
    """Real ``(P, 2**n)`` -> complex ``(2**n,)``."""
    out = lax.complex(x[0], x[1]) if x.shape[0] == 2 else x[0] + 0j
    return out if cdtype is None else out.astype(cdtype)


def dagger(m):
    """Conjugate transpose of a real ``(D, D)`` or planar ``(2, D, D)`` matrix (NumPy: complex)."""
    if isinstance(m, np.ndarray) and np.iscomplexobj(m):
        return np.conj(m).T
    if m.ndim == 2:
        return m.T
    return jnp.stack([m[0].T, -m[1].T])


def _bit_shape(shape: list[int], k: int) -> list[int]:
    b = [1] * (len(shape) + 1)
    for j in range(k):
        b[2 * j + 2] = 2
    return b


def _sl(t, k: int, c: int):
    """The slice of ``t`` (P, d0, 2, ..., dk) where the block's bits equal ``c`` (dims kept)."""
    idx = [slice(None)] * t.ndim
    for j in range(k):
        b = (c >> (k - 1 - j)) & 1
        idx[2 * j + 2] = slice(b, b + 1)
    return t[tuple(idx)]


def _times_i(x):
    """i * (re, im) = (-im, re) on planes."""
    return jnp.concatenate([-x[1:], x[:1]])


def _static_term(coef: complex, x):
    a, b = float(np.real(coef)), float(np.imag(coef))
    if abs(b) < _EPS:
        return x if a == 1 else (-x if a == -1 else a * x)
    ix = _times_i(x)
    if abs(a) < _EPS:
        return ix if b == 1 else (-ix if b == -1 else b * ix)
    return a * x + b * ix


def apply_matrix(x, n: int, ws: Sequence[int], m, *, static: bool = False, diagonal: bool = False):
    """Apply matrix ``m`` on sorted wires ``ws`` to planes ``x`` ``(P, 2**n)``: one pass.

    ``m``: real ``(D, D)``, planar ``(2, D, D)``, or (``static=True``) a NumPy complex ``(D, D)``.
    ``diagonal=True`` promises a diagonal matrix (only its diagonal is read).
    """
    k = len(ws)
    P = x.shape[0]
    shape = split_shape(n, ws)
    t = x.reshape([P] + shape)
    bshape = _bit_shape(shape, k)
    if static:
        m = np.asarray(m)
        if diagonal:
            d = np.diagonal(m)
            if np.all(np.abs(np.imag(d)) < _EPS):
                return (t * jnp.asarray(np.real(d), x.dtype).reshape(bshape)).reshape(x.shape)
            dr = jnp.asarray(np.real(d), x.dtype).reshape(bshape)
            di = jnp.asarray(np.imag(d), x.dtype).reshape(bshape)
            return (dr * t + di * _times_i(t)).reshape(x.shape)
        cache: dict[int, object] = {}
        rows = []
        for r in range(2 ** k):
            acc = None
            for c in range(2 ** k):
                if abs(m[r, c]) < _EPS:
                    continue
                if c not in cache:
                    cache[c] = _sl(t, k, c)
                term = _static_term(complex(m[r, c]), cache[c])
                acc = term if acc is None else acc + term
            rows.append(acc if acc is not None else jnp.zeros_like(_sl(t, k, 0)))
        for j in reversed(range(k)):
            rows = [jnp.concatenate([rows[2 * i], rows[2 * i + 1]], axis=2 * j + 2)
                    for i in range(len(rows) // 2)]
        return rows[0].reshape(x.shape)
    planar = m.ndim == 3
    if diagonal:
        if not planar:
            return (t * jnp.diagonal(m).astype(x.dtype).reshape(bshape)).reshape(x.shape)
        dr = jnp.diagonal(m[0]).astype(x.dtype).reshape(bshape)
        di = jnp.diagonal(m[1]).astype(x.dtype).reshape(bshape)
        re, im = t[0:1], t[1:2]
        return jnp.concatenate([dr * re - di * im, dr * im + di * re]).reshape(x.shape)
    # dense: out = sum_c m[:, c] (broadcast over the output bits) * slice_c, no concatenation
    if not planar:
        out = None
        for c in range(2 ** k):
            term = m[:, c].astype(x.dtype).reshape(bshape) * _sl(t, k, c)
            out = term if out is None else out + term
        return out.reshape(x.shape)
    ore = oim = None
    for c in range(2 ** k):
        s = _sl(t, k, c)
        cr = m[0, :, c].astype(x.dtype).reshape(bshape[1:])
        ci = m[1, :, c].astype(x.dtype).reshape(bshape[1:])
        re, im = s[0], s[1]
        tr, ti = cr * re - ci * im, cr * im + ci * re
        ore, oim = (tr, ti) if ore is None else (ore + tr, oim + ti)
    return jnp.stack([ore, oim]).reshape(x.shape)


def matrix_cotangent(lam, psi, n: int, ws: Sequence[int], planar: bool, diagonal: bool = False):
    """Cotangent of the matrix of ``out = apply_matrix(psi, n, ws, m)`` for the output cotangent
    ``lam``: real ``(D, D)`` or planar ``(2, D, D)`` like ``m`` (the diagonal only, if ``diagonal``)."""
    k = len(ws)
    shape = split_shape(n, ws)
    P = psi.shape[0]
    tl, tp = lam.reshape([P] + shape), psi.reshape([P] + shape)
    bits = [2 * j + 2 for j in range(k)]
    rest = [a for a in range(1, tl.ndim) if a not in bits]
    D = 2 ** k
    if diagonal:
        g = jnp.sum(tl[:, None] * tp[None], axis=[a + 1 for a in rest])   # (P, P, 2, ..., 2)
        g = g.reshape(P, P, D)
        if not planar:
            return jnp.diag(sum(g[i, i] for i in range(P)))
        return jnp.stack([jnp.diag(g[0, 0] + g[1, 1]), jnp.diag(g[1, 0] - g[0, 1])])
    # G[p, q, r, c] = sum over the other axes of lam[p, r-bits] psi[q, c-bits]
    g = lax.dot_general(tl, tp, ((rest, rest), ((), ())), precision=lax.Precision.HIGHEST)
    # g: (P, r-bits..., P, c-bits...)
    g = g.reshape(P, D, P, D)
    if not planar:
        return sum(g[i, :, i] for i in range(P))
    return jnp.stack([g[0, :, 0] + g[1, :, 1], g[1, :, 0] - g[0, :, 1]])


def apply_dot(x, n: int, ws: Sequence[int], m):
    """Apply a dense matrix (real ``(D, D)``, planar ``(2, D, D)`` or NumPy complex) on wires ``ws``
    (any order: ``ws[0]`` is the matrix's most significant bit) as transpose + matmul + transpose."""
    k = len(ws)
    P = x.shape[0]
    if isinstance(m, np.ndarray) and np.iscomplexobj(m):
        m = np.real(m) if np.all(np.abs(np.imag(m)) < _EPS) else np.stack([np.real(m), np.imag(m)])
        m = jnp.asarray(m, x.dtype)
    src = [1 + w for w in ws]
    t = jnp.moveaxis(x.reshape((P,) + (2,) * n), src, list(range(1, 1 + k))).reshape(P, 2 ** k, -1)
    hi = lax.Precision.HIGHEST
    if m.ndim == 2:
        o = jnp.einsum("ab,pbr->par", m.astype(x.dtype), t, precision=hi)
    else:
        mr, mi = m[0].astype(x.dtype), m[1].astype(x.dtype)
        mm = lambda a, b: jnp.matmul(a, b, precision=hi)  # noqa: E731
        o = jnp.stack([mm(mr, t[0]) - mm(mi, t[1]), mm(mr, t[1]) + mm(mi, t[0])])
    o = o.reshape((o.shape[0],) + (2,) * n)
    return jnp.moveaxis(o, list(range(1, 1 + k)), src).reshape(o.shape[0], -1)


def run_inputs(n: int, real: bool, params, state, rdtype):
    """A runner's parameters (``(1,)`` zeros for a circuit without any) and initial planes: ``|0...0>``
    is real, so a real program carries one plane."""
    p = jnp.zeros((1,), rdtype) if params is None else params.astype(rdtype)
    if state is None:
        return p, jnp.zeros((1 if real else 2, 2 ** n), rdtype).at[0, 0].set(1)
    return p, to_planes(state, rdtype)
