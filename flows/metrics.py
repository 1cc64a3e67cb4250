"""Distances between a qsample and a density on the grid.

All functions take arrays of any (matching) shape and work in float64/complex128 numpy.

- :func:`bhattacharyya`: ``sum_j sqrt(p_j q_j)`` of two probability vectors (1 when equal).
- :func:`overlap`: ``|<sqrt q | psi>|^2`` (phases count: product formulas add phases).
- :func:`total_variation`: ``sum_j |p_j - q_j| / 2``.
- :func:`infidelity`: ``1 - |<a|b>|^2 / (<a|a><b|b>)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["probabilities", "bhattacharyya", "overlap", "total_variation", "infidelity",
           "check_probabilities"]


def check_probabilities(p, name: str = "density") -> np.ndarray:
    """``p`` as float64 normalised to sum 1; ``ValueError`` for NaN/inf, negative or all-zero."""
    p = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} has {int(np.sum(~np.isfinite(p)))} non-finite (NaN/inf) values")
    if np.any(p < -1e-12 * max(float(np.max(np.abs(p))), 1e-300)):
        raise ValueError(f"{name} has negative values (min {float(np.min(p)):.3g})")
    p = np.clip(p, 0.0, None)
    s = p.sum()
    if s <= 0:
        raise ValueError(f"{name} is zero everywhere")
    return p / s


def probabilities(psi) -> np.ndarray:
    """``|psi|^2`` normalised (float64)."""
    psi = np.asarray(psi)
    if not np.all(np.isfinite(psi)):
        raise ValueError("state has non-finite amplitudes")
    return check_probabilities(np.abs(psi) ** 2, "|psi|^2")


def _same_shape(a, b):
    if np.shape(a) != np.shape(b):
        raise ValueError(f"shapes {np.shape(a)} and {np.shape(b)} do not match")


def bhattacharyya(p, q) -> float:
    """Bhattacharyya coefficient of two (unnormalised, non-negative) densities on the same grid."""
    _same_shape(p, q)
    p, q = check_probabilities(p, "p"), check_probabilities(q, "q")
    return float(np.sum(np.sqrt(p * q)))


def overlap(psi, q) -> float:
    """``|<sqrt q|psi>|^2`` with ``psi`` normalised and ``q`` a density (normalised here)."""
    _same_shape(psi, q)
    psi = np.asarray(psi, dtype=np.complex128)
    psi = psi / np.linalg.norm(psi)
    q = check_probabilities(q, "q")
    return float(abs(np.vdot(np.sqrt(q), psi)) ** 2)


def total_variation(p, q) -> float:
    """Total variation distance ``sum |p - q| / 2`` of two densities (normalised here)."""
    _same_shape(p, q)
    p, q = check_probabilities(p, "p"), check_probabilities(q, "q")
    return float(0.5 * np.sum(np.abs(p - q)))


def infidelity(a, b) -> float:
    """``1 - |<a|b>|^2 / (|a|^2 |b|^2)`` of two states of the same shape."""
    _same_shape(a, b)
    a = np.asarray(a, dtype=np.complex128).ravel()
    b = np.asarray(b, dtype=np.complex128).ravel()
    return float(1.0 - abs(np.vdot(a, b)) ** 2 / (np.vdot(a, a).real * np.vdot(b, b).real))
