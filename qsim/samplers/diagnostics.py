"""Chain diagnostics: mean acceptance, effective sample size, split R-hat (Stan's definitions).

Samples are laid out as ``(n_steps, n_chains, ...)`` -- the layout of ``run(..., return_chain=True)``
(walkers are chains). Event axes after the first two are kept: the ESS / R-hat of each coordinate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["acceptance_rate", "ess", "split_rhat", "autocorrelation"]


def acceptance_rate(acceptance) -> jax.Array:
    """Mean acceptance probability over all steps and walkers (e.g. of ``RunInfo.acceptance``)."""
    return jnp.mean(jnp.asarray(acceptance))


def _check(samples, min_steps: int):
    x = jnp.asarray(samples)
    if x.ndim < 2:
        raise ValueError(f"samples must have shape (n_steps, n_chains, ...); got {x.shape}")
    if x.shape[0] < min_steps:
        raise ValueError(f"need at least {min_steps} steps; got {x.shape[0]}")
    return x


def autocorrelation(x, axis: int = 0):
    """Autocovariance-normalised autocorrelation along ``axis`` through the FFT (biased estimator)."""
    x = jnp.moveaxis(jnp.asarray(x), axis, 0)
    n = x.shape[0]
    x = x - jnp.mean(x, axis=0)
    m = 1 << (2 * n - 1).bit_length()
    fx = jnp.fft.rfft(x, n=m, axis=0)
    acov = jnp.fft.irfft(fx * jnp.conj(fx), n=m, axis=0)[:n] / n
    return jnp.moveaxis(acov / acov[0], 0, axis)


def ess(samples) -> jax.Array:
    """Effective sample size over all chains (Stan's multi-chain estimator with Geyer's initial monotone
    sequence). ``samples (n_steps, n_chains, ...)`` -> ``(...)``."""
    x = _check(samples, 4)
    n, m = x.shape[0], x.shape[1]
    x = x - jnp.mean(x, axis=0)  # per chain
    mm = 1 << (2 * n - 1).bit_length()
    fx = jnp.fft.rfft(x, n=mm, axis=0)
    acov = jnp.fft.irfft(fx * jnp.conj(fx), n=mm, axis=0)[:n] / n            # (n, m, ...)
    chain_var = acov[0] * n / (n - 1.0)
    w = jnp.mean(chain_var, axis=0)
    chain_mean = jnp.mean(jnp.asarray(samples), axis=0)
    b_over_n = jnp.var(chain_mean, axis=0, ddof=1) if m > 1 else jnp.zeros_like(w)
    var_plus = w * (n - 1.0) / n + b_over_n
    rho = 1.0 - (w - jnp.mean(acov, axis=1)) / var_plus                      # (n, ...)
    rho = rho.at[0].set(1.0)
    k = n // 2
    pairs = rho[: 2 * k : 2] + rho[1 : 2 * k : 2]                             # (k, ...)
    keep = jnp.cumprod(pairs > 0, axis=0).astype(pairs.dtype)
    mono = jax.lax.cummin(jnp.where(keep > 0, pairs, jnp.inf), axis=0)
    tau = -1.0 + 2.0 * jnp.sum(jnp.where(keep > 0, mono, 0.0), axis=0)
    tau = jnp.maximum(tau, 1.0 / jnp.log10(n * m))
    return n * m / tau


def split_rhat(samples) -> jax.Array:
    """Split R-hat (Gelman et al.): each chain cut into halves, ``sqrt(var_plus / W)``. Values near 1
    (< 1.01) mean the chains agree. ``samples (n_steps, n_chains, ...)`` -> ``(...)``."""
    x = _check(samples, 4)
    half = x.shape[0] // 2
    x = jnp.concatenate([x[:half], x[-half:]], axis=1)                        # (half, 2m, ...)
    n = half
    w = jnp.mean(jnp.var(x, axis=0, ddof=1), axis=0)
    b_over_n = jnp.var(jnp.mean(x, axis=0), axis=0, ddof=1)
    var_plus = w * (n - 1.0) / n + b_over_n
    return jnp.sqrt(var_plus / w)
