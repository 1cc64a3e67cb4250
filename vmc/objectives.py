"""Training objectives: functions (params, walkers) -> (loss, aux) whose θ-gradient is the update
direction of the method (Hartree, bohr; walkers x of shape (B, 3N)).

- :func:`fisher_rao` (standard QVMC): loss = 2 mean[stop_grad(Ẽ - mean Ẽ) log|psi|] with Ẽ the
  local energy clipped to centre ± width · mean|E_loc - centre| (centre "mean" or "median"); its
  gradient is g = 2 E[(Ẽ - mean Ẽ) ∇θ log|psi|].
- :func:`wasserstein` (WQMC): loss = mean over kept walkers of <stop_grad(tanh(∇x E_loc)), ∇x log q>
  with q = |psi|²; its gradient is E[<tanh ∇x E_loc, ∇x ∇θ log q>]. Walkers with |∇x log q| >
  median + 5·mean|·-median| (the authors' mask, necludov/wqmc) are masked out and the loss is
  rescaled by N / N_kept.
- :func:`joint`: wasserstein + fr_weight · fisher_rao.

The Fisher-Rao gradient is mean_i c_i ∇θ log|psi(x_i)| with the coefficients c = 2 (Ẽ - mean Ẽ) of
:func:`fisher_rao_coefficients`; :func:`fisher_rao_terms` returns them (and ``aux``) without the loss,
so that a natural-gradient optimiser can form g from the per-walker Jacobian it builds anyway
(``VMCOptimizer.update_fr``, used by vmc.train) instead of a separate backward pass.

All three return ``aux`` (:class:`Aux`) with the local energies, their mean and variance, the mean
norm of ∇x E_loc (NaN where not computed) and the number of walkers kept.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from qsim.infra.validation import one_of
from vmc.hamiltonian import make_local_energy

__all__ = ["Aux", "fisher_rao", "fisher_rao_terms", "fisher_rao_coefficients", "wasserstein", "joint",
           "make_objective", "OBJECTIVES", "CENTERS", "clip_local_energy", "outlier_mask", "MIN_WALKERS"]

OBJECTIVES = ("fisher_rao", "wasserstein", "joint")
CENTERS = ("mean", "median")  # the clipping centre of the local energies
MIN_WALKERS = 4  # the clipping width, the median/MAD mask and the variance need a few walkers


class Aux(NamedTuple):
    """Per-step statistics: ``e_loc (B,)``, ``energy ()``, ``variance ()``, ``grad_eloc_norm ()``
    (mean over walkers of |∇x E_loc|; NaN for fisher_rao), ``n_kept ()`` (walkers used)."""

    e_loc: jax.Array
    energy: jax.Array
    variance: jax.Array
    grad_eloc_norm: jax.Array
    n_kept: jax.Array


def _check_walkers(x):
    if x.ndim != 2:
        raise ValueError(f"walkers must have shape (B, 3N), got {x.shape}")
    if x.shape[0] < MIN_WALKERS:
        raise ValueError(f"{x.shape[0]} walkers are too few for the estimators; use at least {MIN_WALKERS}")


def clip_local_energy(e, width: float = 5.0, center: str = "mean"):
    """Clip local energies e (B,) to centre ± width · mean|e - centre|."""
    one_of(center, "clip center", CENTERS)
    c = jnp.mean(e) if center == "mean" else jnp.median(e)
    if width is None or width <= 0:
        return e
    tv = jnp.mean(jnp.abs(e - c))
    return jnp.clip(e, c - width * tv, c + width * tv)


def outlier_mask(v, n_mad: float = 5.0):
    """Boolean (B,): True where the norm v (B,) is <= median + n_mad · mean|v - median| (the mean
    absolute deviation around the median, as the authors' code; the median absolute deviation
    masked several walkers per step even without outliers)."""
    med = jnp.median(v)
    return v <= med + n_mad * jnp.mean(jnp.abs(v - med))


def fisher_rao_coefficients(e, clip_width: float = 5.0, center: str = "mean"):
    """c (B,) = 2 (Ẽ - mean Ẽ), Ẽ the clipped local energies e (B,): the Fisher-Rao gradient is
    mean_i c_i ∇θ log|psi(x_i)| (and the loss mean(c · log|psi|)); c sums to zero."""
    ec = clip_local_energy(e, clip_width, center)
    return 2.0 * (ec - jnp.mean(ec))


def fisher_rao_terms(log_psi: Callable, mol, *, clip_width: float = 5.0, center: str = "mean",
                     laplacian: str = "folx", local_energy: Callable | None = None):
    """(params, x) -> (c (B,), aux): the coefficients of :func:`fisher_rao_coefficients` (no gradient
    flows through them) and the step's statistics; :func:`fisher_rao`'s loss is mean(c · log|psi|)."""
    one_of(center, "clip center", CENTERS)
    e_loc_fn = local_energy or make_local_energy(log_psi, mol, laplacian)
    batch_e = jax.vmap(e_loc_fn, (None, 0))

    def terms(params, x):
        _check_walkers(x)
        e = jax.lax.stop_gradient(batch_e(params, x))
        c = jax.lax.stop_gradient(fisher_rao_coefficients(e, clip_width, center))
        aux = Aux(e, jnp.mean(e), jnp.var(e), jnp.asarray(jnp.nan, e.dtype),
                  jnp.asarray(x.shape[0], jnp.int32))
        return c, aux

    return terms


def fisher_rao(log_psi: Callable, mol, *, clip_width: float = 5.0, center: str = "mean",
               laplacian: str = "folx", local_energy: Callable | None = None):
    """The clipped Fisher-Rao (standard VMC) objective; see module docstring."""
    terms = fisher_rao_terms(log_psi, mol, clip_width=clip_width, center=center, laplacian=laplacian,
                             local_energy=local_energy)
    batch_lp = jax.vmap(log_psi, (None, 0))

    def objective(params, x):
        c, aux = terms(params, x)
        return jnp.mean(c * batch_lp(params, x)), aux

    return objective


def _wasserstein_terms(log_psi, e_loc_fn, n_mad):
    e_and_grad = jax.vmap(jax.value_and_grad(e_loc_fn, argnums=1), (None, 0))
    grad_logq = jax.vmap(jax.grad(lambda p, y: 2.0 * log_psi(p, y), argnums=1), (None, 0))

    def terms(params, x):
        e, ge = e_and_grad(jax.lax.stop_gradient(params), x)
        e, ge = jax.lax.stop_gradient(e), jax.lax.stop_gradient(ge)
        gq = grad_logq(params, x)                                   # (B, 3N), depends on params
        norm_q = jnp.linalg.norm(jax.lax.stop_gradient(gq), axis=-1)
        mask = outlier_mask(norm_q, n_mad) & jnp.all(jnp.isfinite(ge), axis=-1)
        n_kept = jnp.sum(mask)
        t = jnp.where(mask[:, None], jnp.tanh(jnp.where(mask[:, None], ge, 0.0)), 0.0)
        loss = jnp.sum(jnp.sum(t * gq, axis=-1)) / jnp.maximum(n_kept, 1)
        gnorm = jnp.mean(jnp.linalg.norm(jnp.where(mask[:, None], ge, 0.0), axis=-1))
        return loss, e, gnorm, n_kept

    return terms


def wasserstein(log_psi: Callable, mol, *, n_mad: float = 5.0, laplacian: str = "folx",
                local_energy: Callable | None = None):
    """The WQMC surrogate objective; see module docstring."""
    e_loc_fn = local_energy or make_local_energy(log_psi, mol, laplacian)
    terms = _wasserstein_terms(log_psi, e_loc_fn, n_mad)

    def objective(params, x):
        _check_walkers(x)
        loss, e, gnorm, n_kept = terms(params, x)
        return loss, Aux(e, jnp.mean(e), jnp.var(e), gnorm, n_kept.astype(jnp.int32))

    return objective


def joint(log_psi: Callable, mol, *, fr_weight: float = 1.0, clip_width: float = 5.0,
          center: str = "mean", n_mad: float = 5.0, laplacian: str = "folx",
          local_energy: Callable | None = None):
    """W(FR)QMC: the Wasserstein surrogate plus ``fr_weight`` times the clipped Fisher-Rao loss."""
    e_loc_fn = local_energy or make_local_energy(log_psi, mol, laplacian)
    terms = _wasserstein_terms(log_psi, e_loc_fn, n_mad)
    batch_lp = jax.vmap(log_psi, (None, 0))

    def objective(params, x):
        _check_walkers(x)
        loss_w, e, gnorm, n_kept = terms(params, x)
        c = jax.lax.stop_gradient(fisher_rao_coefficients(e, clip_width, center))
        loss_fr = jnp.mean(c * batch_lp(params, x))
        return loss_w + fr_weight * loss_fr, Aux(e, jnp.mean(e), jnp.var(e), gnorm,
                                                 n_kept.astype(jnp.int32))

    return objective


def make_objective(name: str, log_psi: Callable, mol, **options):
    """``name`` in OBJECTIVES; options are passed to the objective (unknown ones raise TypeError)."""
    table = {"fisher_rao": fisher_rao, "fr": fisher_rao, "wasserstein": wasserstein, "wqmc": wasserstein,
             "joint": joint}
    if name not in table:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return table[name](log_psi, mol, **options)
