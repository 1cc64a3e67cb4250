"""Downstream use of a qsample: amplitude estimation of a tail probability against Monte Carlo.

With ``A|0> = sum_x sqrt(p_x)|x>`` (the flow's qsample) and a good set ``G`` (a tail event),
``a = sum_{x in G} p_x = sin^2(theta)``. The Grover iterate ``Q = -A S_0 A^dag S_G`` rotates by
``2 theta``: after ``m`` iterations a measurement finds ``G`` with probability
``sin^2((2m + 1) theta)``, at the cost of ``2m + 1`` uses of ``A`` or ``A^dag``.

Maximum-likelihood amplitude estimation (Suzuki et al. 2020) measures ``shots`` times at each power
of an exponential schedule ``m = 0, 1, 2, 4, ..., 2^{K-1}`` and maximises the likelihood over
``theta``: error ~ 1/M in M uses, against ~1/sqrt(M) for Monte Carlo with M samples of the flow.
The measurement statistics are sampled exactly from the binomial law above; :func:`grover_circuit`
builds the circuit on a small grid so tests can check that law against :func:`qsim.simulate`.
"""

from __future__ import annotations

import math

import numpy as np

import qsim
from flows.grid import coordinates
from qsim.infra.validation import positive_int, probability

__all__ = ["tail_mask", "tail_probability", "mlae", "mlae_uses", "monte_carlo", "compare_errors",
           "grover_circuit", "state_preparation_unitary"]


def tail_mask(grid, threshold: float, axis: int = 0) -> np.ndarray:
    """Boolean mask (grid.shape) of the tail event ``x_axis > threshold``."""

    if not 0 <= axis < grid.d:
        raise ValueError(f"axis {axis} out of range for a {grid.d}-dimensional grid")
    return coordinates(grid)[..., axis] > threshold


def tail_probability(prob, mask) -> float:
    """``sum_{mask} prob`` for probabilities ``prob`` (normalised here)."""
    prob = np.asarray(prob, dtype=np.float64)
    if prob.shape != np.shape(mask):
        raise ValueError(f"probabilities shape {prob.shape} does not match the mask {np.shape(mask)}")
    return float(prob[np.asarray(mask)].sum() / prob.sum())


def mlae_uses(powers, shots: int) -> int:
    """Uses of ``A``/``A^dag`` of one MLAE run: ``shots * sum(2 m + 1)``."""
    return int(shots * sum(2 * int(m) + 1 for m in powers))


def _mle_theta(powers, hits, shots) -> float:
    powers = np.asarray(powers, dtype=np.float64)
    hits = np.asarray(hits, dtype=np.float64)
    mmax = float(powers.max())
    ngrid = int(200 * (2 * mmax + 1)) + 1000
    th = np.linspace(0, np.pi / 2, ngrid)

    def loglik(theta):
        s = np.sin((2 * powers[None, :] + 1) * theta[:, None]) ** 2
        s = np.clip(s, 1e-15, 1 - 1e-15)
        return np.sum(hits * np.log(s) + (shots - hits) * np.log(1 - s), axis=1)

    ll = loglik(th)
    best = th[np.argmax(ll)]
    h = (np.pi / 2) / (ngrid - 1)
    fine = np.linspace(max(0.0, best - 2 * h), min(np.pi / 2, best + 2 * h), 401)
    return float(fine[np.argmax(loglik(fine))])


def mlae(a: float, n_powers: int, shots: int, rng) -> tuple[float, int]:
    """One MLAE estimate of ``a`` with powers ``0, 1, 2, ..., 2^{n_powers-2}`` and ``shots`` per
    power; returns ``(estimate, uses)``. ``rng``: a numpy Generator."""
    a = probability(a, "probability a")
    n_powers, shots = positive_int(n_powers, "n_powers"), positive_int(shots, "shots")
    powers = [0] + [2 ** k for k in range(n_powers - 1)]
    theta = math.asin(math.sqrt(a))
    p = np.sin((2 * np.asarray(powers) + 1) * theta) ** 2
    hits = rng.binomial(shots, p)
    est = math.sin(_mle_theta(powers, hits, shots)) ** 2
    return est, mlae_uses(powers, shots)


def monte_carlo(a: float, uses: int, rng) -> float:
    """A Monte Carlo estimate of ``a`` from ``uses`` independent samples of the flow."""
    return float(rng.binomial(int(uses), a) / int(uses))


def compare_errors(a: float, n_powers_list=(2, 3, 4, 5, 6, 7, 8, 9), shots: int = 100,
                   reps: int = 200, seed: int = 0) -> list[dict]:
    """RMSE of MLAE and of Monte Carlo at equal uses, for each schedule length.

    Returns rows ``{"uses", "rmse_ae", "rmse_mc", "mc_theory"}`` with ``mc_theory =
    sqrt(a(1-a)/uses)``."""
    rng = np.random.default_rng(seed)
    rows = []
    for K in n_powers_list:
        ests, uses = [], 0
        for _ in range(reps):
            e, uses = mlae(a, K, shots, rng)
            ests.append(e)
        mc = [monte_carlo(a, uses, rng) for _ in range(reps)]
        rows.append({"n_powers": int(K), "uses": int(uses),
                     "rmse_ae": float(np.sqrt(np.mean((np.asarray(ests) - a) ** 2))),
                     "rmse_mc": float(np.sqrt(np.mean((np.asarray(mc) - a) ** 2))),
                     "mc_theory": float(math.sqrt(a * (1 - a) / uses))})
    return rows


def state_preparation_unitary(psi) -> np.ndarray:
    """A unitary ``A`` (dense, small registers) with ``A|0> = psi`` (``psi`` normalised, flat)."""
    psi = np.asarray(psi, dtype=np.complex128).ravel()
    psi = psi / np.linalg.norm(psi)
    M = psi.size
    rng = np.random.default_rng(0)
    B = np.concatenate([psi[:, None], rng.normal(size=(M, M - 1)) + 0j], axis=1)
    Q, R = np.linalg.qr(B)
    Q[:, 0] *= R[0, 0] / abs(R[0, 0])      # undo QR's phase so that Q[:, 0] = psi
    return Q


def grover_circuit(psi, mask, m: int):
    """``Q^m A`` as a :class:`qsim.Circuit` on ``log2(len(psi))`` wires (dense unitaries, small
    registers): measuring the good set ``mask`` (flat bool) has probability ``sin^2((2m+1) theta)``."""

    psi = np.asarray(psi).ravel()
    M = psi.size
    n = int(round(math.log2(M)))
    if 2 ** n != M or n > 10:
        raise ValueError(f"state of length {M} is not a power of two up to 2^10")
    mask = np.asarray(mask).ravel()
    A = state_preparation_unitary(psi)
    S_G = np.diag(np.where(mask, -1.0, 1.0)).astype(complex)
    S_0 = np.eye(M, dtype=complex)
    S_0[0, 0] = -1.0
    Qm = -A @ S_0 @ A.conj().T @ S_G
    c = qsim.Circuit(n)
    wires = list(range(n))
    c.unitary(A, wires)
    for _ in range(int(m)):
        c.unitary(Qm, wires)
    return c
