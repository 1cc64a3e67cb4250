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

The classes live in :mod:`qsim.optim.structures_basic` (dense, diagonal, block, hierarchical) and
:mod:`qsim.optim.structures_toeplitz` (the triangular Toeplitz pair); this module names them, builds one
by name (:func:`make_structure`) and holds the two products that pick an order per structure.
"""

from __future__ import annotations

import jax.numpy as jnp

from .structures_basic import Block, Dense, Diagonal, Hierarchical
from .structures_toeplitz import (TriuToeplitz, TrilToeplitz, toeplitz_gram_dense, toeplitz_gram_left,
                                  toeplitz_gram_self)

__all__ = ["STRUCTURES", "make_structure", "gram_left", "gram_self", "Dense", "Diagonal", "Block", "Hierarchical",
           "TrilToeplitz", "TriuToeplitz", "toeplitz_gram_dense"]

STRUCTURES = ("dense", "diagonal", "block", "hierarchical", "tril_toeplitz", "triu_toeplitz")
_TOEPLITZ = (TrilToeplitz, TriuToeplitz)


def gram_left(s, c, x, scale):
    """``Pi(scale (x c)^T (x c))`` for rows ``x (n, d)`` (SINGD's ``Pi(K^T U K)`` with ``U = scale x^T x``).

    In general the rows ``x c`` are formed (``left``) and their ``gram`` taken. Dense: with more than 2 d
    rows it is cheaper to form ``U`` first and take ``c^T U c``: n d^2 + 2 d^3 instead of 2 n d^2
    multiply-adds (e.g. 4096 electron rows of width 833: 135 -> 85 ms measured). Triangular Toeplitz:
    ``Pi(c^T U c) = Pi(U P)`` with ``P = c c^T`` (see :func:`~qsim.optim.structures_toeplitz.toeplitz_gram_left`).
    Computed in float32 at least, returned in x's dtype."""
    if isinstance(s, _TOEPLITZ):
        return toeplitz_gram_left(s, c, x, scale)
    if isinstance(s, Dense) and x.shape[0] > 2 * s.d:
        dt = jnp.promote_types(x.dtype, jnp.float32)
        k = c.astype(dt)
        xf = x.astype(dt)
        u = scale.astype(dt) * (xf.T @ xf)
        return (k.T @ (u @ k)).astype(x.dtype)
    return s.gram(s.left(c, x.T, transpose=True).T, scale)


def gram_self(s, c):
    """``Pi(c^T c)`` (SINGD's damping term ``Pi(K^T K)``); for triangular Toeplitz ``Pi(c c^T)`` from the
    O(d^2) dense product (:func:`~qsim.optim.structures_toeplitz.toeplitz_gram_self`)."""
    if isinstance(s, _TOEPLITZ):
        return toeplitz_gram_self(s, c)
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
