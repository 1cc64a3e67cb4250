"""Step-size adaptation usable inside ``jit`` (pure functions of arrays; no Python branching on values).

An :class:`Adapter` is ``(init(params) -> astate, update(astate, params, info) -> (astate, params),
final(astate, params) -> params)``; :func:`qsim.samplers.run` threads it through its ``lax.scan``.

* :func:`acceptance_targeting` -- FermiNet's rule: multiply the width by ``factor`` (1.1) when the mean
  acceptance is above the band, divide when below, keep it inside.
* :func:`dual_averaging` -- Nesterov dual averaging as in Stan/NUTS (Hoffman & Gelman 2014), targeting
  a mean acceptance; ``final`` returns the averaged step size.

Adapting the step size during sampling breaks the Markov property of the chain: use it during burn-in
(or, as VMC does, between parameter updates) and keep it fixed where exact sampling matters.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Adapter", "acceptance_targeting", "dual_averaging", "scale_step_size", "DualAveragingState"]


class Adapter(NamedTuple):
    init: Callable
    update: Callable
    final: Callable


def scale_step_size(step_size, acceptance, low: float = 0.5, high: float = 0.55, factor: float = 1.1):
    """Return ``step_size * factor`` if ``mean(acceptance) > high``, ``/ factor`` if ``< low``, else
    unchanged. Pure and jit-safe; ``acceptance`` may be per walker ``(walkers,)`` or a scalar."""
    a = jnp.mean(jnp.asarray(acceptance))
    s = jnp.asarray(step_size)
    return jnp.where(a > high, s * factor, jnp.where(a < low, s / factor, s))


def _check_band(target, factor):
    try:
        low, high = (float(t) for t in target)
    except (TypeError, ValueError):
        raise ValueError(f"target must be a pair (low, high); got {target!r}") from None
    if not 0.0 < low <= high < 1.0:
        raise ValueError(f"target band must satisfy 0 < low <= high < 1; got {target!r}")
    if not factor > 1.0:
        raise ValueError(f"factor must be > 1; got {factor!r}")
    return low, high


def acceptance_targeting(target=(0.5, 0.55), factor: float = 1.1, key: str = "step_size",
                         min_step: float = 1e-6, max_step: float = 1e6) -> Adapter:
    """FermiNet-style adaptation: after each step the width ``params[key]`` is multiplied or divided by
    ``factor`` to keep the walker-mean acceptance in ``target = (low, high)``; clipped to
    ``[min_step, max_step]``. Stateless (``astate`` is an empty tuple)."""
    low, high = _check_band(target, factor)

    def init(params):
        return ()

    def update(astate, params, info):
        s = scale_step_size(params[key], info.acceptance, low, high, factor)
        s = jnp.clip(s, min_step, max_step).astype(jnp.result_type(params[key]))
        return astate, {**params, key: s}

    def final(astate, params):
        return params

    return Adapter(init, update, final)


class DualAveragingState(NamedTuple):
    log_step: jax.Array
    log_step_avg: jax.Array
    h_bar: jax.Array
    t: jax.Array
    mu: jax.Array


def dual_averaging(target: float = 0.65, gamma: float = 0.05, t0: float = 10.0, kappa: float = 0.75,
                   key: str = "step_size") -> Adapter:
    """Nesterov dual averaging of ``log params[key]`` towards a walker-mean acceptance ``target``.
    ``mu = log(10 * initial step size)``; during adaptation the current iterate is used, ``final`` gives
    the weighted average ``exp(log_step_avg)``."""
    if not 0.0 < float(target) < 1.0:
        raise ValueError(f"target acceptance must lie in (0, 1); got {target!r}")

    def init(params):
        s0 = jnp.asarray(params[key], jnp.float32 if not jax.config.jax_enable_x64 else jnp.float64)
        ls = jnp.log(s0)
        z = jnp.zeros_like(ls)
        return DualAveragingState(ls, ls, z, z, jnp.log(10.0) + ls)

    def update(astate, params, info):
        a = jnp.mean(info.acceptance).astype(astate.h_bar.dtype)
        t = astate.t + 1.0
        w = 1.0 / (t + t0)
        h_bar = (1.0 - w) * astate.h_bar + w * (target - a)
        log_step = astate.mu - jnp.sqrt(t) / gamma * h_bar
        eta = t ** (-kappa)
        log_avg = eta * log_step + (1.0 - eta) * astate.log_step_avg
        new = DualAveragingState(log_step, log_avg, h_bar, t, astate.mu)
        return new, {**params, key: jnp.exp(log_step).astype(jnp.result_type(params[key]))}

    def final(astate, params):
        return {**params, key: jnp.exp(astate.log_step_avg).astype(jnp.result_type(params[key]))}

    return Adapter(init, update, final)
