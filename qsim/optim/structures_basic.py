"""Dense, diagonal, block-diagonal and hierarchical structures for SINGD's Kronecker factors.

The structure protocol (``identity``, ``zeros``, ``to_dense``, ``project``, ``gram``, ``mul``, ``left``,
``precondition``, ``trace``) and the compact forms are described in :mod:`qsim.optim.structures`; the
triangular Toeplitz structures live in :mod:`qsim.optim.structures_toeplitz`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Dense", "Diagonal", "Block", "Hierarchical"]


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
