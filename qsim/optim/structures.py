"""Structured square matrices for SINGD's Kronecker factors, stored compactly.

Each structure is a linear space of d x d matrices closed under multiplication, with

* ``identity()`` / ``zeros()`` -- compact forms;
* ``to_dense(c) -> (d, d)``;
* ``project(m) -> c`` -- the orthogonal projection Pi of a dense matrix onto the space (an entry mask,
  or the mean of each tied diagonal for Toeplitz);
* ``gram(x, scale) -> c`` -- ``Pi(scale * x^T x)`` for rows ``x (n, d)``, computed without forming the
  dense d x d product where the structure allows;
* ``mul(a, b) -> c`` -- the product ``a @ b`` (stays in the space);
* ``left(c, x, transpose) -> (d, m)`` -- ``c @ x`` or ``c^T @ x`` for ``x (d, m)``;
* ``precondition(c, x, axis)`` -- ``c c^T`` applied along ``axis`` (0 or 1) of a 2-D ``x``: ``c c^T @ x``
  or ``x @ c c^T`` (SINGD's per-step product), in one pass where the structure allows (the small
  ``c c^T`` blocks are formed, never a dense d x d matrix except for the dense and Toeplitz factors);
* ``trace(c) -> ()``;

and :func:`gram_left` ``(s, c, x, scale) -> Pi(scale (x c)^T (x c))`` (SINGD's ``H_K``), the cheaper of two
orders for the structures whose products are dense-cost, and :func:`gram_self` ``(s, c) -> Pi(c^T c)``.

Compact forms (memory per factor): dense ``(d, d)``; diagonal ``(d,)``; block ``(nb, k, k)`` full blocks
plus a ``(r, r)`` remainder block (d = nb k + r); hierarchical ``A (h, h)``, ``B (h, d - h)``, ``D (d - h,)``
for ``[[A, B], [0, diag(D)]]``; lower/upper-triangular Toeplitz the first column/row ``(d,)``.
Linear operations (sums, scalar multiples) act leaf-wise on the compact form.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["STRUCTURES", "make_structure", "gram_left", "gram_self", "Dense", "Diagonal", "Block", "Hierarchical", "TrilToeplitz",
           "TriuToeplitz"]

STRUCTURES = ("dense", "diagonal", "block", "hierarchical", "tril_toeplitz", "triu_toeplitz")


class Dense(NamedTuple):
    d: int
    dtype: object

    def identity(self):
        return jnp.eye(self.d, dtype=self.dtype)

    def zeros(self):
        return jnp.zeros((self.d, self.d), self.dtype)

    def to_dense(self, c):
        return c

    def project(self, m):
        return m

    def gram(self, x, scale):
        return scale * (x.T @ x)

    def mul(self, a, b):
        return a @ b

    def left(self, c, x, transpose=False):
        return (c.T if transpose else c) @ x

    def precondition(self, c, x, axis=0):
        return c @ (c.T @ x) if axis == 0 else (x @ c) @ c.T

    def trace(self, c):
        return jnp.trace(c)


class Diagonal(NamedTuple):
    d: int
    dtype: object

    def identity(self):
        return jnp.ones((self.d,), self.dtype)

    def zeros(self):
        return jnp.zeros((self.d,), self.dtype)

    def to_dense(self, c):
        return jnp.diag(c)

    def project(self, m):
        return jnp.diag(m)

    def gram(self, x, scale):
        return scale * jnp.sum(x * x, axis=0)

    def mul(self, a, b):
        return a * b

    def left(self, c, x, transpose=False):
        return c[:, None] * x

    def precondition(self, c, x, axis=0):
        sq = c * c
        return sq[:, None] * x if axis == 0 else x * sq[None, :]

    def trace(self, c):
        return jnp.sum(c)


class Block(NamedTuple):
    """Block-diagonal: ``nb = d // k`` blocks of size ``k`` and one remainder block of size ``d % k``."""

    d: int
    dtype: object
    k: int

    @property
    def nb(self):
        return self.d // self.k

    @property
    def r(self):
        return self.d - self.nb * self.k

    def identity(self):
        return (jnp.broadcast_to(jnp.eye(self.k, dtype=self.dtype), (self.nb, self.k, self.k)),
                jnp.eye(self.r, dtype=self.dtype))

    def zeros(self):
        return (jnp.zeros((self.nb, self.k, self.k), self.dtype), jnp.zeros((self.r, self.r), self.dtype))

    def _split(self, x):  # x (d, ...) -> (nb, k, ...), (r, ...)
        n = self.nb * self.k
        return x[:n].reshape((self.nb, self.k) + x.shape[1:]), x[n:]

    def to_dense(self, c):
        blocks, rem = c
        out = jax.scipy.linalg.block_diag(*[blocks[i] for i in range(self.nb)], rem) if self.nb else rem
        return out.reshape(self.d, self.d)

    def project(self, m):
        n = self.nb * self.k
        idx = np.arange(self.nb)
        blocks = m[:n, :n].reshape(self.nb, self.k, self.nb, self.k)[idx, :, idx, :]
        return blocks, m[n:, n:]

    def gram(self, x, scale):
        xb, xr = self._split(x.T)                     # (nb, k, n), (r, n)
        return scale * jnp.einsum("bin,bjn->bij", xb, xb), scale * (xr @ xr.T)

    def mul(self, a, b):
        return jnp.einsum("bij,bjk->bik", a[0], b[0]), a[1] @ b[1]

    def left(self, c, x, transpose=False):
        xb, xr = self._split(x)
        blocks, rem = c
        if transpose:
            yb, yr = jnp.einsum("bji,bjm->bim", blocks, xb), rem.T @ xr
        else:
            yb, yr = jnp.einsum("bij,bjm->bim", blocks, xb), rem @ xr
        return jnp.concatenate([yb.reshape((-1,) + x.shape[1:]), yr], axis=0)

    def precondition(self, c, x, axis=0):
        """Per block ``B B^T`` (nb k^3 flops), then one batched product with x."""
        blocks, rem = c
        pb = jnp.einsum("bij,bkj->bik", blocks, blocks)
        pr = rem @ rem.T
        n = self.nb * self.k
        if axis == 0:
            yb = jnp.einsum("bij,bjm->bim", pb, x[:n].reshape((self.nb, self.k, -1)))
            return jnp.concatenate([yb.reshape(n, -1), pr @ x[n:]], axis=0)
        yb = jnp.einsum("mbj,bij->mbi", x[:, :n].reshape((-1, self.nb, self.k)), pb)
        return jnp.concatenate([yb.reshape(-1, n), x[:, n:] @ pr], axis=1)

    def trace(self, c):
        return jnp.trace(c[0], axis1=1, axis2=2).sum() + jnp.trace(c[1])


class Hierarchical(NamedTuple):
    """``[[A, B], [0, diag(D)]]`` with a dense ``h x h`` block ``A``, a dense ``h x (d - h)`` block ``B``
    and a diagonal lower-right block ``D`` (h = min(size, d))."""

    d: int
    dtype: object
    h: int

    def identity(self):
        h, d = self.h, self.d
        return (jnp.eye(h, dtype=self.dtype), jnp.zeros((h, d - h), self.dtype), jnp.ones((d - h,), self.dtype))

    def zeros(self):
        h, d = self.h, self.d
        return (jnp.zeros((h, h), self.dtype), jnp.zeros((h, d - h), self.dtype), jnp.zeros((d - h,), self.dtype))

    def to_dense(self, c):
        a, b, dd = c
        top = jnp.concatenate([a, b], axis=1)
        bottom = jnp.concatenate([jnp.zeros((self.d - self.h, self.h), a.dtype), jnp.diag(dd)], axis=1)
        return jnp.concatenate([top, bottom], axis=0)

    def project(self, m):
        h = self.h
        return m[:h, :h], m[:h, h:], jnp.diag(m[h:, h:])

    def gram(self, x, scale):
        h = self.h
        x1, x2 = x[:, :h], x[:, h:]
        return scale * (x1.T @ x1), scale * (x1.T @ x2), scale * jnp.sum(x2 * x2, axis=0)

    def mul(self, p, q):
        a1, b1, d1 = p
        a2, b2, d2 = q
        return a1 @ a2, a1 @ b2 + b1 * d2[None, :], d1 * d2

    def left(self, c, x, transpose=False):
        a, b, dd = c
        x1, x2 = x[: self.h], x[self.h:]
        if transpose:
            return jnp.concatenate([a.T @ x1, b.T @ x1 + dd[:, None] * x2], axis=0)
        return jnp.concatenate([a @ x1 + b @ x2, dd[:, None] * x2], axis=0)

    def precondition(self, c, x, axis=0):
        """``K K^T = [[A A^T + B B^T, B D], [D B^T, D^2]]`` (an arrow matrix: h x h corner, two h x (d - h)
        strips, a diagonal), applied in one pass."""
        a, b, dd = c
        h = self.h
        p11 = a @ a.T + b @ b.T
        bd = b * dd[None, :]
        sq = dd * dd
        top = jnp.concatenate([p11, bd], axis=1)               # the first h rows (h, d)
        if axis == 0:
            return jnp.concatenate([top @ x, bd.T @ x[:h] + sq[:, None] * x[h:]], axis=0)
        return jnp.concatenate([x @ top.T, x[:, :h] @ bd + x[:, h:] * sq[None, :]], axis=1)

    def trace(self, c):
        return jnp.trace(c[0]) + jnp.sum(c[2])


def _hankel(u, d):
    """``H[s, o] = u[s + o]`` for ``s, o < d`` (``len(u) >= 2d - 1``) without a gather: the tiled ``u`` read
    with row stride ``len(u) + 1`` (entry (s, o) of the reshape is ``u[(s + o) mod len(u)] = u[s + o]``).
    XLA's CPU gathers with d x d index constants measured 2-4x slower than this copy."""
    p = u.shape[0]
    return jnp.tile(u, d + 1)[: d * (p + 1)].reshape(d, p + 1)[:, :d]


class TrilToeplitz(NamedTuple):
    """Lower-triangular Toeplitz: ``K[i, j] = t[i - j]`` for ``i >= j``, stored as ``t (d,)``."""

    d: int
    dtype: object

    def identity(self):
        return jnp.zeros((self.d,), self.dtype).at[0].set(1)

    def zeros(self):
        return jnp.zeros((self.d,), self.dtype)

    def to_dense(self, c):
        """``K[i, j] = t[i - j]`` (0 above the diagonal): rows of the Hankel matrix of ``[t reversed, 0...]``,
        in reverse order."""
        d = self.d
        return _hankel(jnp.concatenate([c[::-1], jnp.zeros((d - 1,), c.dtype)]), d)[::-1]

    def project(self, m):
        """Mean of each lower diagonal, via a skewed reshape (no scatter): entry (i, j) of m[:, ::-1]
        padded to (d, 2d) lands in column d - 1 + (i - j) of the (d, 2d - 1) reshape."""
        d = self.d
        skew = jnp.pad(m[:, ::-1], ((0, 0), (0, d))).reshape(-1)[: d * (2 * d - 1)].reshape(d, 2 * d - 1)
        sums = jnp.sum(skew, axis=0)[d - 1:]
        return sums / jnp.arange(d, 0, -1).astype(m.dtype)

    def gram(self, x, scale):
        """``Pi(scale x^T x)``: the lag-o autocorrelations of the rows, summed over rows, through the FFT
        (O(n d log d); float32 inside for bfloat16 input), divided by the diagonal lengths d - o."""
        d = self.d
        if d < FFT_MIN_DIM:
            return self.project(scale * (x.T @ x))
        xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        n = 1 << (2 * d - 1).bit_length()
        f = jnp.fft.rfft(xf, n, axis=1)
        ac = jnp.fft.irfft(jnp.sum(f.real ** 2 + f.imag ** 2, axis=0), n)[:d]
        return (scale.astype(xf.dtype) * ac / jnp.arange(d, 0, -1).astype(xf.dtype)).astype(x.dtype)

    def mul(self, a, b):
        return jnp.convolve(a, b)[: self.d]

    def left(self, c, x, transpose=False):
        """``K x`` (a causal convolution of ``t`` with each column of x) as a dense matmul: on this CPU a
        257 x 257 matmul (0.6 ms) beats the FFT convolution (1.5 ms) for 256 columns. ``left_fft`` is
        the O(d log d)-per-column alternative."""
        k = self.to_dense(c)
        return (k.T if transpose else k) @ x

    def left_fft(self, c, x, transpose=False):
        """``K x`` / ``K^T x`` through the FFT (float32 inside for bfloat16)."""
        d = self.d
        dt = jnp.promote_types(x.dtype, jnp.float32)
        xx = x[::-1] if transpose else x
        n = 1 << (2 * d - 1).bit_length()
        y = jnp.fft.irfft(jnp.fft.rfft(c.astype(dt), n)[:, None] * jnp.fft.rfft(xx.astype(dt), n, axis=0),
                          n, axis=0)[:d].astype(jnp.result_type(c.dtype, x.dtype))
        return y[::-1] if transpose else y

    def precondition(self, c, x, axis=0):
        """``K K^T`` along ``axis``: below ``PRECOND_FFT_MIN_DIM`` one product with the dense ``K K^T`` built
        in O(d^2) from the d numbers (a temporary, not state; at d = 257 the FFT made a SINGD step 1.1-1.4x
        slower on this CPU), from it on through the FFT (:meth:`precondition_fft`; d = 833: 25 vs 40 ms)."""
        return _toeplitz_precondition(self, c, x, axis)

    def precondition_fft(self, c, x, axis=0):
        """``K K^T`` along ``axis`` by zero-padded FFTs: a correlation (``K^T``) then a convolution (``K``)."""
        return _toeplitz_pair_fft(c, x, axis, conv_first=False)

    def trace(self, c):
        return self.d * c[0]


def toeplitz_gram_dense(t, upper: bool):
    """The dense symmetric ``K K^T`` of the triangular Toeplitz ``K`` with first column (``upper=False``)
    or first row (``upper=True``) ``t``, in O(d^2) from the d numbers (no matrix product).

    Lower: ``R = K K^T`` has ``R[i, j] = sum_{m <= min(i, j)} t[i-m] t[j-m]``, so ``R[i, j] = R[i-1, j-1] +
    t[i] t[j]``: row i is row i - 1 shifted right by one plus ``t[i] t`` -- one ``lax.scan`` over the rows
    (XLA's CPU ``cumsum`` of running sums and the gathers of an index formula measured 3-6x slower inside
    SINGD's step, most of all under ``lax.cond``). Upper: ``K = L^T`` for the lower ``L`` with the same
    numbers, and ``L^T L = J (L L^T) J`` (J the reversal). Computed in float32 at least (bfloat16 factors),
    returned in ``t``'s dtype."""
    d = t.shape[0]
    dt = jnp.promote_types(t.dtype, jnp.float32)
    tf = t.astype(dt)

    def row(prev, ti):
        new = jnp.concatenate([jnp.zeros((1,), dt), prev[:-1]]) + ti * tf
        return new, new

    r = jax.lax.scan(row, jnp.zeros((d,), dt), tf, unroll=8)[1]
    return (r[::-1, ::-1] if upper else r).astype(t.dtype)


def _toeplitz_precondition(structure, c, x, axis):
    """``K K^T`` along ``axis`` for either triangular Toeplitz structure: below ``PRECOND_FFT_MIN_DIM``
    one product with the dense ``K K^T`` built in O(d^2) from the d numbers (:func:`toeplitz_gram_dense`:
    a temporary, not state; half the work of two products with ``K``), from it on through the
    structure's FFT pair."""
    if structure.d >= PRECOND_FFT_MIN_DIM:
        return structure.precondition_fft(c, x, axis)
    kk = toeplitz_gram_dense(c, upper=isinstance(structure, TriuToeplitz)).astype(x.dtype)
    return kk @ x if axis == 0 else x @ kk


FFT_MIN_DIM = 64


class TriuToeplitz(NamedTuple):
    """Upper-triangular Toeplitz: ``K[i, j] = t[j - i]`` for ``j >= i`` (the transpose of TrilToeplitz)."""

    d: int
    dtype: object

    def _low(self):
        return TrilToeplitz(self.d, self.dtype)

    def identity(self):
        return self._low().identity()

    def zeros(self):
        return self._low().zeros()

    def to_dense(self, c):
        return self._low().to_dense(c).T

    def project(self, m):
        return self._low().project(m.T)

    def gram(self, x, scale):
        return self._low().gram(x, scale)          # x^T x is symmetric: same diagonal means

    def mul(self, a, b):
        return jnp.convolve(a, b)[: self.d]

    def left(self, c, x, transpose=False):
        return self._low().left(c, x, transpose=not transpose)

    def precondition(self, c, x, axis=0):
        return _toeplitz_precondition(self, c, x, axis)

    def precondition_fft(self, c, x, axis=0):
        """``K K^T = L^T L`` (L the lower-triangular transpose): a convolution, then a correlation."""
        return _toeplitz_pair_fft(c, x, axis, conv_first=True)

    def trace(self, c):
        return self.d * c[0]


PRECOND_FFT_MIN_DIM = 512


def _fft_size(m: int) -> int:
    """The smallest 2^a 3^b 5^c >= m (a fast FFT length; a power of two can be almost 2x longer)."""
    n = m
    while True:
        r = n
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return n
        n += 1


def _toeplitz_pair_fft(t, x, axis, conv_first):
    """``L L^T`` (``conv_first=False``) or ``L^T L`` applied along ``axis`` of a 2-D ``x``, for the
    lower-triangular Toeplitz ``L`` with first column ``t``. Linear (not circular) products: zero padding to
    n >= 2d - 1, and the intermediate result cut back to d entries. The FFT runs along the contiguous axis,
    in float32 at least."""
    d = t.shape[0]
    dt = jnp.promote_types(x.dtype, jnp.float32)
    rows = (x.T if axis == 0 else x).astype(dt)                 # (m, d)
    n = _fft_size(2 * d - 1)
    f = jnp.fft.rfft(t.astype(dt), n)
    first, second = (f, jnp.conj(f)) if conv_first else (jnp.conj(f), f)
    y = jnp.fft.irfft(jnp.fft.rfft(rows, n, axis=1) * first, n, axis=1)[:, :d]
    y = jnp.fft.irfft(jnp.fft.rfft(y, n, axis=1) * second, n, axis=1)[:, :d]
    y = y.astype(jnp.result_type(t.dtype, x.dtype))
    return y.T if axis == 0 else y


def gram_left(s, c, x, scale):
    """``Pi(scale (x c)^T (x c))`` for rows ``x (n, d)`` (SINGD's ``Pi(K^T U K)`` with ``U = scale x^T x``).

    In general the rows ``x c`` are formed (``left``) and their ``gram`` taken. Dense: with more than 2 d
    rows it is cheaper to form ``U`` first and take ``c^T U c``: n d^2 + 2 d^3 instead of 2 n d^2
    multiply-adds (e.g. 4096 electron rows of width 833: 135 -> 85 ms measured). Triangular Toeplitz:
    ``Pi(c^T U c) = Pi(U P)`` with ``P = c c^T`` (see :func:`_toeplitz_gram_left`). Computed in float32 at
    least, returned in x's dtype."""
    if isinstance(s, (TrilToeplitz, TriuToeplitz)):
        return _toeplitz_gram_left(s, c, x, scale)
    if isinstance(s, Dense) and x.shape[0] > 2 * s.d:
        dt = jnp.promote_types(x.dtype, jnp.float32)
        k = c.astype(dt)
        xf = x.astype(dt)
        u = scale.astype(dt) * (xf.T @ xf)
        return (k.T @ (u @ k)).astype(x.dtype)
    return s.gram(s.left(c, x.T, transpose=True).T, scale)


def _toeplitz_gram_left(s, c, x, scale):
    """``Pi(c^T U c)`` for a triangular Toeplitz ``c`` and ``U = scale x^T x``, as ``Pi(U P)`` with the
    dense ``P = c c^T`` built in O(d^2) (:func:`toeplitz_gram_dense`): one d x d product instead of two.

    Why: Pi takes the mean of each diagonal, ``Pi(M)_o ~ tr(E_o^T M)`` with ``E_o`` the o-th shift, and
    ``E_o^T`` commutes with ``c^T`` (both are polynomials in the same shift), so ``tr(E_o^T c^T U c) =
    tr(c E_o^T c^T U) = tr(E_o^T U c c^T)``. The product ``U P = x^T (x P)`` is taken in the cheaper order:
    n d^2 + d^3 (``U`` first, n > d) or 2 n d^2."""
    dt = jnp.promote_types(x.dtype, jnp.float32)
    p = toeplitz_gram_dense(c.astype(dt), upper=isinstance(s, TriuToeplitz))
    xf = x.astype(dt)
    sc = scale.astype(dt)
    up = (sc * (xf.T @ xf)) @ p if x.shape[0] > s.d else sc * (xf.T @ (xf @ p))
    return s.project(up).astype(x.dtype)


def gram_self(s, c):
    """``Pi(c^T c)`` (SINGD's damping term ``Pi(K^T K)``); for triangular Toeplitz ``Pi(c c^T)`` from the
    O(d^2) dense product (the same commutation as in :func:`_toeplitz_gram_left`)."""
    if isinstance(s, (TrilToeplitz, TriuToeplitz)):
        dt = jnp.promote_types(c.dtype, jnp.float32)
        return s.project(toeplitz_gram_dense(c.astype(dt), upper=isinstance(s, TriuToeplitz))).astype(c.dtype)
    return s.gram(s.to_dense(c), jnp.asarray(1.0, s.dtype))


def make_structure(name: str, d: int, dtype, block_size: int = 16, hierarchical_size: int = 16):
    """The structure ``name`` (one of :data:`STRUCTURES`) for ``d x d`` factors stored in ``dtype``."""
    if name == "dense":
        return Dense(d, dtype)
    if name == "diagonal":
        return Diagonal(d, dtype)
    if name == "block":
        return Block(d, dtype, min(block_size, d))
    if name == "hierarchical":
        return Hierarchical(d, dtype, min(hierarchical_size, d))
    if name == "tril_toeplitz":
        return TrilToeplitz(d, dtype)
    if name == "triu_toeplitz":
        return TriuToeplitz(d, dtype)
    raise ValueError(f"unknown structure {name!r}; known: {', '.join(STRUCTURES)}")
