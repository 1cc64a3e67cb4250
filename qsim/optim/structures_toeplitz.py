"""Lower/upper-triangular Toeplitz structures for SINGD's Kronecker factors (first column/row ``(d,)``).

The structure protocol is described in :mod:`qsim.optim.structures`. Besides the two classes: the O(d^2)
dense ``K K^T`` of a triangular Toeplitz factor (:func:`toeplitz_gram_dense`), the FFT pair products, and
the Toeplitz cases of ``gram_left``/``gram_self`` (:func:`toeplitz_gram_left`, :func:`toeplitz_gram_self`).
``FFT_MIN_DIM`` and ``PRECOND_FFT_MIN_DIM`` (module constants, read at call time) choose FFT over dense
products.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["TrilToeplitz", "TriuToeplitz", "toeplitz_gram_dense", "toeplitz_gram_left", "toeplitz_gram_self",
           "FFT_MIN_DIM", "PRECOND_FFT_MIN_DIM"]

FFT_MIN_DIM = 64            # gram by FFT from this d on
PRECOND_FFT_MIN_DIM = 512   # K K^T applied by FFT from this d on (benchmarks/singd.py --toeplitz-fft-min-dim)


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


def toeplitz_gram_left(s, c, x, scale):
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


def toeplitz_gram_self(s, c):
    """``Pi(c^T c)`` for a triangular Toeplitz ``c``: ``Pi(c c^T)`` from the O(d^2) dense product (the same
    commutation as in :func:`toeplitz_gram_left`), in float32 at least, returned in c's dtype."""
    dt = jnp.promote_types(c.dtype, jnp.float32)
    return s.project(toeplitz_gram_dense(c.astype(dt), upper=isinstance(s, TriuToeplitz))).astype(c.dtype)
