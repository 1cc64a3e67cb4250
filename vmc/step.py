"""One VMC step: MCMC moves of the walkers, the objective and its gradient, the optimiser update, and
the rollback of a step that produced non-finite values. Pure jitted functions of a :class:`TrainState`;
the loop around them (pretraining, burn-in, checkpoints, evaluation) is :mod:`vmc.train`'s.

NaN guard (per step): a step whose loss, energy or new parameters/optimiser state are not finite is
skipped (parameters and optimiser state roll back to the previous step; the walkers keep their valid
positions); ``nan_total`` counts skips, ``nan_streak`` consecutive ones. Atomic units (Hartree, bohr).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from qsim import samplers
from qsim.infra import meshes as distributed
from vmc import systems
from vmc.config import PRECISIONS, Precision

__all__ = ["Built", "TrainState", "make_train_step", "make_mcmc", "evaluate", "cast_floats", "evaluated_in"]


class Built(NamedTuple):
    """What :func:`vmc.train.build` makes of a configuration."""

    mol: systems.Molecule
    wf: Any
    objective: Any
    optimizer: Any
    local_energy: Any
    fr_terms: Any = None  # (params, x) -> (c, aux) when the objective is fisher_rao (objectives.fisher_rao_terms)
    precision: Precision = PRECISIONS["float64"]


class TrainState(NamedTuple):
    """Everything a step needs (and a checkpoint holds): ``params``, ``opt_state``, ``walkers
    (B, 3N)``, MCMC ``step_size ()``, ``nan_total ()`` and ``nan_streak ()`` counters."""

    params: Any
    opt_state: Any
    walkers: jax.Array
    step_size: jax.Array
    nan_total: jax.Array
    nan_streak: jax.Array


def cast_floats(tree, dtype):
    """``tree`` with its floating leaves cast to ``dtype`` (other leaves unchanged)."""
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, tree)


def evaluated_in(fn, dtype):
    """``fn(params, x)`` evaluated with params and x cast to ``dtype`` and its result cast back to
    float64 (gradients with respect to the float64 inputs flow through the casts); ``fn`` itself
    for float64."""
    if jnp.dtype(dtype) == jnp.float64:
        return fn

    def wrapped(params, x):
        out = fn(cast_floats(params, dtype), x.astype(dtype))
        return jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), out)

    return wrapped


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_train_step(b: Built, mcmc_steps: int, fused: bool | None = None):
    """jit-compiled (state, key) -> (state, metrics); metrics are scalars (energy, variance,
    grad_eloc_norm, acceptance, step_size, n_kept, nan_skips) plus the walkers' local energies
    ``e_loc (B,)``.

    ``fused`` (default: whenever possible, i.e. a Fisher-Rao objective and an optimiser with
    ``update_fr`` such as SR): the optimiser forms the gradient from its per-walker Jacobian
    (``update_fr``) instead of differentiating the objective, which saves a forward and a backward
    pass of the network per step and gives the same update (tests/vmc/test_train.py)."""
    can_fuse = b.fr_terms is not None and b.optimizer.update_fr is not None
    if fused and not can_fuse:
        raise ValueError("fused=True needs the fisher_rao objective and an optimizer with update_fr (sr)")
    fused = can_fuse if fused is None else bool(fused)
    sample = _sampler(b, mcmc_steps)

    def step(state: TrainState, key):
        x, width, acceptance = sample(state.params, state.walkers, state.step_size, key)
        if fused:
            c, aux = b.fr_terms(state.params, x)
            updates, new_opt, lp = b.optimizer.update_fr(c, state.opt_state, state.params, x)
            loss = jnp.mean(c * lp)  # the objective's value, for the NaN guard
        else:
            (loss, aux), grads = jax.value_and_grad(b.objective, has_aux=True)(state.params, x)
            updates, new_opt = b.optimizer.update(grads, state.opt_state, state.params, x)
        new_params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & jnp.isfinite(aux.energy) & _all_finite(new_params) & _all_finite(new_opt)
        pick = lambda new, old: jax.tree_util.tree_map(lambda a, c: jnp.where(ok, a, c), new, old)
        new_state = TrainState(pick(new_params, state.params), pick(new_opt, state.opt_state), x,
                               width, state.nan_total + (~ok).astype(jnp.int32),
                               jnp.where(ok, 0, state.nan_streak + 1).astype(jnp.int32))
        metrics = {"energy": aux.energy, "variance": aux.variance, "grad_eloc_norm": aux.grad_eloc_norm,
                   "acceptance": acceptance, "step_size": width,
                   "n_kept": aux.n_kept, "nan_skips": new_state.nan_total, "e_loc": aux.e_loc}
        return new_state, metrics

    return jax.jit(step)


def _sampler(b: Built, n_steps: int):
    """(params, walkers (B, 3N), width, key) -> (walkers, width, mean acceptance), all float64 out:
    ``n_steps`` random-walk Metropolis moves of |psi|² with the width adapted towards 50-55%
    acceptance, the network evaluated in ``b.precision.sampling`` (MCMC needs only log|psi|
    differences). Walkers stay on the first axis (``walkers_last=False``: 2-2.6x faster for a
    network density than the kernel's default layout; qsim.samplers.involutive)."""
    kernel = samplers.rwm(walkers_last=False)
    adapt = samplers.acceptance_targeting((0.5, 0.55))
    dtype = b.precision.sampling

    def mcmc(params, walkers, width, key):
        p = cast_floats(params, dtype)  # cast once, outside the moves
        logp = lambda y: 2.0 * b.wf.log_psi(p, y)
        ms = kernel.init(walkers.astype(dtype), logp)
        ms, rinfo = samplers.run(kernel, key, ms, logp, {"step_size": jnp.asarray(width, dtype)}, n_steps=n_steps,
                                 adapt=adapt)
        f64 = lambda a: a.astype(jnp.float64)
        return f64(ms.position), f64(rinfo.params["step_size"]), f64(jnp.mean(rinfo.acceptance))

    return mcmc


def make_mcmc(b: Built, n_steps: int):
    """jit (params, walkers, step_size, key) -> (walkers, step_size, mean acceptance)."""
    return jax.jit(_sampler(b, n_steps))


def evaluate(step_fn, state: TrainState, key, n_rounds: int):
    """Local energies (n_rounds, B) at the fixed parameters of ``state``: each round samples with the
    train step's MCMC and evaluates its energies; the parameter update is discarded (so no second
    compilation of the local energy is needed)."""
    out = []
    for r in range(n_rounds):
        new, m = step_fn(state, jax.random.fold_in(key, r))
        state = state._replace(walkers=new.walkers, step_size=new.step_size)
        out.append(distributed.fetch(m["e_loc"]))
    return (np.stack(out) if out else np.zeros((0, state.walkers.shape[0]))), state
