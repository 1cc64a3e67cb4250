"""Error bars for correlated Monte Carlo series: blocking analysis (Flyvbjerg & Petersen 1989)."""

from __future__ import annotations

import numpy as np

__all__ = ["blocking_stderr", "mean_and_stderr"]


def blocking_stderr(series) -> float:
    """Standard error of the mean of a correlated 1-D series by repeated pairwise blocking.

    The estimate at each blocking level is sqrt(var / (n - 1)); the answer is the largest estimate
    among levels that still hold at least 16 blocks (the plateau for a series much longer than its
    correlation time; conservative otherwise)."""
    x = np.asarray(series, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan")
    best = float(np.sqrt(np.var(x) / (x.size - 1)))
    while x.size >= 32:
        n = x.size // 2
        x = 0.5 * (x[0:2 * n:2] + x[1:2 * n:2])
        best = max(best, float(np.sqrt(np.var(x) / (x.size - 1))))
    return best


def mean_and_stderr(energies) -> tuple[float, float]:
    """(mean, stderr) of local energies of shape (steps, walkers): walkers are averaged per step
    (independent chains), then the per-step means are blocked over steps."""
    e = np.asarray(energies, dtype=np.float64)
    if e.ndim == 1:
        e = e[:, None]
    per_step = np.nanmean(e, axis=1)
    return float(np.nanmean(per_step)), blocking_stderr(per_step)
