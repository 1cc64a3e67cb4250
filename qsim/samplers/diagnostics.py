"""Chain diagnostics: mean acceptance, effective sample size, split R-hat (Stan's definitions).

Samples are laid out as ``(n_steps, n_chains, ...)`` -- the layout of ``run(..., return_chain=True)``
(walkers are chains). Event axes after the first two are kept: the ESS / R-hat of each coordinate.
NumPy input is computed with NumPy (no compilation); JAX arrays (also traced, inside ``jit``) with jax.numpy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["acceptance_rate", "ess", "split_rhat", "autocorrelation"]


def acceptance_rate(acceptance):
    """Mean acceptance probability over all steps and walkers (e.g. of ``RunInfo.acceptance``)."""
    xp = _xp(acceptance)
    return xp.mean(xp.asarray(acceptance))


def _xp(x):
    return jnp if isinstance(x, jax.Array) else np


def _cummin(xp, a):
    return jax.lax.cummin(a, axis=0) if xp is jnp else np.minimum.accumulate(a, axis=0)


def _check(samples, min_steps: int):
    xp = _xp(samples)
    x = xp.asarray(samples)
    if xp is np and not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.ndim < 2:
        raise ValueError(f"samples must have shape (n_steps, n_chains, ...); got {x.shape}")
    if x.shape[0] < min_steps:
        raise ValueError(f"need at least {min_steps} steps; got {x.shape[0]}")
    return x


def _acov(xp, x):
    """Biased autocovariance along axis 0 through the FFT (x already centred)."""
    n = x.shape[0]
    m = 1 << (2 * n - 1).bit_length()
    fx = xp.fft.rfft(x, n=m, axis=0)
    return xp.fft.irfft(fx * xp.conj(fx), n=m, axis=0)[:n] / n


def autocorrelation(x, axis: int = 0):
    """Normalised autocorrelation along ``axis`` through the FFT (biased estimator)."""
    xp = _xp(x)
    x = xp.moveaxis(xp.asarray(x), axis, 0)
    acov = _acov(xp, x - xp.mean(x, axis=0))
    return xp.moveaxis(acov / acov[0], 0, axis)


def ess(samples) -> jax.Array:
    """Effective sample size over all chains (Stan's multi-chain estimator with Geyer's initial monotone
    sequence). ``samples (n_steps, n_chains, ...)`` -> ``(...)``."""
    x = _check(samples, 4)
    xp = _xp(x)
    n, m = x.shape[0], x.shape[1]
    chain_mean = xp.mean(x, axis=0)
    acov = _acov(xp, x - chain_mean)                                          # (n, m, ...)
    chain_var = acov[0] * n / (n - 1.0)
    w = xp.mean(chain_var, axis=0)
    b_over_n = xp.var(chain_mean, axis=0, ddof=1) if m > 1 else xp.zeros_like(w)
    var_plus = w * (n - 1.0) / n + b_over_n
    rho = 1.0 - (w - xp.mean(acov, axis=1)) / var_plus                        # (n, ...)
    k = n // 2
    pairs = rho[: 2 * k : 2] + rho[1 : 2 * k : 2]                             # (k, ...)
    pairs = xp.concatenate([(1.0 + rho[1])[None], pairs[1:]], axis=0)         # rho_0 = 1 exactly
    keep = xp.cumprod(pairs > 0, axis=0) > 0
    mono = _cummin(xp, xp.where(keep, pairs, xp.inf))
    tau = -1.0 + 2.0 * xp.sum(xp.where(keep, mono, 0.0), axis=0)
    tau = xp.maximum(tau, 1.0 / np.log10(n * m))
    return n * m / tau


def split_rhat(samples) -> jax.Array:
    """Split R-hat (Gelman et al.): each chain cut into halves, ``sqrt(var_plus / W)``. Values near 1
    (< 1.01) mean the chains agree. ``samples (n_steps, n_chains, ...)`` -> ``(...)``."""
    x = _check(samples, 4)
    xp = _xp(x)
    half = x.shape[0] // 2
    x = xp.concatenate([x[:half], x[-half:]], axis=1)                         # (half, 2m, ...)
    n = half
    w = xp.mean(xp.var(x, axis=0, ddof=1), axis=0)
    b_over_n = xp.var(xp.mean(x, axis=0), axis=0, ddof=1)
    var_plus = w * (n - 1.0) / n + b_over_n
    return xp.sqrt(var_plus / w)
