"""SINGD's per-layer arithmetic: the structured factors of one dense layer, their update from the layer
statistics, and the preconditioning of the layer's gradient (equations in :mod:`qsim.optim.singd`).

Pure functions of a :class:`FactorConfig` (the options that shape the arithmetic) and one layer's
:class:`LayerFactors`; :func:`qsim.optim.singd.scale_by_singd` maps them over the layers of a params tree.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .capture import LayerStats
from .structures import gram_left, gram_self, make_structure

__all__ = ["LayerFactors", "FactorConfig", "layer_structures", "init_factors", "factor_step", "precondition"]


class LayerFactors(NamedTuple):
    """Compact structured factors of one layer (see :mod:`qsim.optim.structures`), and with
    ``cache_products`` the dense symmetric products ``PK = K K^T``, ``PC = C C^T`` (else None)."""

    K: Any
    C: Any
    mK: Any
    mC: Any
    PK: Any = None
    PC: Any = None


class FactorConfig(NamedTuple):
    """The options of :func:`qsim.optim.scale_by_singd` that the per-layer arithmetic reads (validated there)."""

    structure: str
    fdtype: Any                 # factor dtype (a jnp.dtype)
    damping: float
    a1: float                   # cov_momentum, 0 in IKFAC mode
    lr_cov: float
    ikfac: bool
    cache_products: bool
    block_size: int
    hierarchical_size: int


def layer_structures(cfg: FactorConfig, d_in: int, d_out: int, has_bias: bool):
    """The structures of ``K`` ((d_in + bias) x (d_in + bias)) and ``C`` (d_out x d_out)."""
    s_k = make_structure(cfg.structure, d_in + int(has_bias), cfg.fdtype, cfg.block_size, cfg.hierarchical_size)
    s_c = make_structure(cfg.structure, d_out, cfg.fdtype, cfg.block_size, cfg.hierarchical_size)
    return s_k, s_c


def _products(cfg: FactorConfig, s_k, k, s_c, c):
    """``(K K^T, C C^T)`` as dense matrices in ``factor_dtype`` (computed in float32 at least), or
    ``(None, None)`` without ``cache_products``."""
    if not cfg.cache_products:
        return None, None
    cdt = jnp.promote_types(cfg.fdtype, jnp.float32)

    def square(s, x):
        m = s.to_dense(x).astype(cdt)
        return (m @ m.T).astype(cfg.fdtype)

    return square(s_k, k), square(s_c, c)


def init_factors(cfg: FactorConfig, s_k, s_c) -> LayerFactors:
    """K = C = I, zero momenta (and their products when cached)."""
    k0, c0 = s_k.identity(), s_c.identity()
    return LayerFactors(k0, c0, s_k.zeros(), s_c.zeros(), *_products(cfg, s_k, k0, s_c, c0))


def factor_step(cfg: FactorConfig, f: LayerFactors, s_k, s_c, stats: LayerStats, has_bias: bool) -> LayerFactors:
    """One factor update from the layer statistics (inputs ``a``, output gradients ``g``)."""
    fdtype = cfg.fdtype
    a = jnp.asarray(stats.inputs)
    g = jnp.asarray(stats.out_grads)
    n = a.shape[0]
    a = a.reshape(-1, a.shape[-1]).astype(fdtype)
    g = g.reshape(-1, g.shape[-1]).astype(fdtype)
    rows = a.shape[0]
    if has_bias:
        a = jnp.concatenate([a, jnp.ones((rows, 1), fdtype)], axis=1)
    d_in, d_out = s_k.d, s_c.d
    h_k = gram_left(s_k, f.K, a, jnp.asarray(1.0 / rows, fdtype))   # Pi(K^T U K)
    h_c = gram_left(s_c, f.C, g, jnp.asarray(1.0 / n, fdtype))      # Pi(C^T G C)
    ktk = gram_self(s_k, f.K)                                         # Pi(K^T K)
    ctc = gram_self(s_c, f.C)                                         # Pi(C^T C)
    lam = jnp.asarray(cfg.damping, fdtype)
    if cfg.ikfac:
        ck = cc = lk = lc = jnp.asarray(1.0, fdtype)
    else:
        ck, lk = s_c.trace(h_c) / d_out, s_c.trace(ctc) / d_out
        cc, lc = s_k.trace(h_k) / d_in, s_k.trace(ktk) / d_in
    tm = jax.tree.map
    half, a1 = jnp.asarray(0.5, fdtype), cfg.a1
    mk = tm(lambda m, h, q, i: a1 * m + half * (ck * h + lam * lk * q - i), f.mK, h_k, ktk, s_k.identity())
    mc = tm(lambda m, h, q, i: a1 * m + half * (cc * h + lam * lc * q - i), f.mC, h_c, ctc, s_c.identity())
    b1 = jnp.asarray(cfg.lr_cov, fdtype)
    k_new = s_k.mul(f.K, tm(lambda i, m: i - b1 * m, s_k.identity(), mk))
    c_new = s_c.mul(f.C, tm(lambda i, m: i - b1 * m, s_c.identity(), mc))
    return LayerFactors(k_new, c_new, mk, mc, *_products(cfg, s_k, k_new, s_c, c_new))


def precondition(cfg: FactorConfig, f: LayerFactors, s_k, s_c, kernel_grad, bias_grad=None) -> dict:
    """``Delta = C C^T grad_W K K^T`` of one layer as ``{"kernel": (d_in, d_out), "bias": (d_out,)?}`` in the
    gradient's dtype (the bias is the last input column of ``[W | b]``)."""
    gdt = kernel_grad.dtype
    x = kernel_grad
    if bias_grad is not None:
        x = jnp.concatenate([x, bias_grad[None, :]], axis=0)             # (d_in + 1, d_out)
    if cfg.cache_products:                      # P_K grad P_C: one product per side
        z = f.PK.astype(gdt) @ (x @ f.PC.astype(gdt))
    else:
        kf = jax.tree.map(lambda v: v.astype(gdt), f.K)
        cf = jax.tree.map(lambda v: v.astype(gdt), f.C)
        z = s_k.precondition(kf, s_c.precondition(cf, x, axis=1), axis=0)    # K K^T grad C C^T
    d_in = kernel_grad.shape[0]
    delta = {"kernel": z[:d_in]}
    if bias_grad is not None:
        delta["bias"] = z[d_in]
    return delta
