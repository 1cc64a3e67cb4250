"""Densities on R^d with samplers and log densities: sources and targets of flows.

A :class:`Target` has ``sample(rng, m) -> (m, d)`` float64 (``rng`` a ``numpy.random.Generator``)
and ``log_prob(x (d,)) -> ()`` (JAX-traceable, normalised on R^d where a closed form exists), plus a
suggested box half-width ``L`` that holds it with negligible mass at the edge.

Catalogue (:func:`get_target`): ``gmm2d`` (four Gaussians, unequal weights), ``moons`` (two moons),
``ring``, ``gaussian`` (the default source), ``gmm1d``; :func:`from_samples` wraps a user sample set
(Gaussian kernel density, Scott bandwidth).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import jax.numpy as jnp
from jax.scipy.special import logsumexp

__all__ = ["Target", "gaussian", "gaussian_mixture", "two_moons", "ring", "from_samples",
           "get_target", "TARGETS"]


class Target(NamedTuple):
    """A density on R^d.

    Attributes:
      name: catalogue name.
      d: dimension.
      sample: ``(rng: numpy Generator, m: int) -> (m, d)`` samples (float64).
      log_prob: ``(x (d,)) -> ()`` log density (JAX).
      L: suggested box half-width.
    """

    name: str
    d: int
    sample: Callable
    log_prob: Callable
    L: float


def gaussian_mixture(means, stds, weights=None, name: str = "gmm", L: float | None = None) -> Target:
    """Isotropic Gaussian mixture: ``means`` (K, d), ``stds`` (K,) or scalar, ``weights`` (K,)."""

    means = np.atleast_2d(np.asarray(means, dtype=np.float64))
    K, d = means.shape
    stds = np.broadcast_to(np.asarray(stds, dtype=np.float64), (K,)).copy()
    w = np.full(K, 1.0 / K) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (K,):
        raise ValueError(f"weights shape {w.shape} does not match {K} components")
    if np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise ValueError(f"mixture weights {w} must be non-negative and finite")
    if np.any(stds <= 0) or not np.all(np.isfinite(stds)) or not np.all(np.isfinite(means)):
        raise ValueError("mixture means must be finite and standard deviations positive")
    w = w / w.sum()
    if L is None:
        L = float(np.max(np.abs(means)) + 5.0 * np.max(stds))
    logw = np.log(np.maximum(w, 1e-300))

    def log_prob(x):
        x = jnp.asarray(x)
        z = (x[None, :] - means) / stds[:, None]
        lp = -0.5 * jnp.sum(z * z, axis=-1) - d * jnp.log(stds) - 0.5 * d * math.log(2 * math.pi)
        return logsumexp(lp + logw)

    def sample(rng, m):
        k = rng.choice(K, size=int(m), p=w)
        return means[k] + stds[k, None] * rng.standard_normal((int(m), d))

    return Target(name, d, sample, log_prob, float(L))


def gaussian(d: int = 2, std: float = 0.8, mean=None, L: float = 4.0) -> Target:
    """An isotropic Gaussian ``N(mean, std^2 I)`` (the default flow source)."""
    mean = np.zeros(d) if mean is None else np.asarray(mean, dtype=np.float64)
    return gaussian_mixture(mean[None, :], [std], name="gaussian", L=L)


def _gmm2d() -> Target:
    m = np.array([[-1.5, -1.5], [1.5, -1.5], [-1.5, 1.5], [1.5, 1.5]])
    return gaussian_mixture(m, 0.5, [0.4, 0.2, 0.2, 0.2], name="gmm2d", L=4.0)


def _gmm1d() -> Target:
    return gaussian_mixture([[-1.5], [1.2]], [0.5, 0.4], [0.6, 0.4], name="gmm1d", L=4.0)


def two_moons(noise: float = 0.12, scale: float = 1.2, n_quad: int = 256, L: float = 4.0) -> Target:
    """Two interleaved half circles (radius ``scale``) blurred by Gaussian noise ``noise``.

    The log density is that of the arcs convolved with the noise, by an ``n_quad``-point
    quadrature along each arc (a mixture of Gaussians on the arcs)."""
    th = (np.arange(n_quad) + 0.5) / n_quad * np.pi
    upper = np.stack([np.cos(th), np.sin(th)], -1)
    lower = np.stack([1 - np.cos(th), 0.5 - np.sin(th)], -1)
    centre = np.array([0.5, 0.25])
    pts = scale * (np.concatenate([upper, lower]) - centre)
    mix = gaussian_mixture(pts, noise, name="moons", L=L)

    def sample(rng, m):
        m = int(m)
        t = rng.uniform(0, np.pi, m)
        which = rng.integers(0, 2, m)
        arc = np.where(which[:, None] == 0, np.stack([np.cos(t), np.sin(t)], -1),
                       np.stack([1 - np.cos(t), 0.5 - np.sin(t)], -1))
        return scale * (arc - centre) + noise * rng.standard_normal((m, 2))

    return Target("moons", 2, sample, mix.log_prob, L)


def ring(radius: float = 2.0, width: float = 0.3, L: float = 4.0) -> Target:
    """``p(x) ∝ exp(-(|x| - radius)^2 / (2 width^2))`` in 2D (exact normalisation)."""

    R, w = float(radius), float(width)
    Z = 2 * math.pi * (w * w * math.exp(-R * R / (2 * w * w))
                       + R * w * math.sqrt(math.pi / 2) * (1 + math.erf(R / (math.sqrt(2) * w))))
    logZ = math.log(Z)

    def log_prob(x):
        r = jnp.sqrt(jnp.sum(x * x) + 1e-30)
        return -0.5 * ((r - R) / w) ** 2 - logZ

    def sample(rng, m):
        out = []
        need = int(m)
        while need > 0:
            r = R + w * rng.standard_normal(2 * need + 16)
            keep = (r > 0) & (rng.uniform(size=r.size) < r / (R + 6 * w))
            r = r[keep][:need]
            out.append(r)
            need -= r.size
        r = np.concatenate(out)
        phi = rng.uniform(0, 2 * np.pi, r.size)
        return np.stack([r * np.cos(phi), r * np.sin(phi)], -1)

    return Target("ring", 2, sample, log_prob, L)


def from_samples(data, bandwidth: float | None = None, L: float | None = None,
                 max_kernels: int = 4096, seed: int = 0) -> Target:
    """A target from a user sample set ``data`` (M, d): bootstrap sampling, and a Gaussian kernel
    density (Scott's bandwidth, at most ``max_kernels`` kernels) as its log density."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 2:
        raise ValueError(f"sample set must have shape (M >= 2, d), got {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError("sample set has non-finite values")
    M, d = data.shape
    if bandwidth is None:
        bandwidth = float(np.mean(np.std(data, axis=0)) * M ** (-1.0 / (d + 4)))
    kern = data
    if M > max_kernels:
        kern = data[np.random.default_rng(seed).choice(M, max_kernels, replace=False)]
    if L is None:
        L = float(np.max(np.abs(data)) + 4 * bandwidth)
    kde = gaussian_mixture(kern, bandwidth, name="samples", L=L)

    def sample(rng, m):
        return data[rng.integers(0, M, int(m))]

    return Target("samples", d, sample, kde.log_prob, float(L))


TARGETS = {"gmm2d": _gmm2d, "gmm1d": _gmm1d, "moons": two_moons, "ring": ring,
           "gaussian": lambda: gaussian(2)}


def get_target(name: str) -> Target:
    """A catalogue target by name (``ValueError`` naming the choices otherwise)."""
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; choose one of {sorted(TARGETS)}")
    return TARGETS[name]()
