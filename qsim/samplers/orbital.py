"""Orbital MCMC (Neklyudov & Welling 2022) with weighted (Rao-Blackwellised) estimators.

Draw ``v ~ N(0, I)``; follow the orbit ``z_k = f^k(x, v)``, k = 0..n-1, of a bijection ``f`` with period
``n`` (``f^n = id``); weight each orbit point by ``w_k ∝ p(x_k) N(v_k; 0, I) |det d f^k/d(x, v)|``
(normalised in log space with log-sum-exp); move to an orbit point drawn by weight. The weighted orbit is
returned in the info, so ``weighted_mean(h(orbit), weights)`` estimates ``E_p[h]`` from every point the
step evaluated, not just the one it kept.

The default bijection is a phase-space rotation by ``2 pi / n`` about ``params["center"]``,

    x_k = c + (x - c) cos(k t) + s v sin(k t),   v_k = -(x - c) sin(k t) / s + v cos(k t),

volume preserving (unit Jacobian) with ``s = params["step_size"]``. Its orbit passes through the point
reflected about ``c`` (at k = n/2 for even n), so it jumps between modes that are symmetric about ``c``.
Any other periodic bijection can be passed as ``bijection(x, v, params) -> (x', v', log_abs_det_jac)``.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsim.infra.validation import positive_int

from .base import Kernel, State, check_logdensity_fn, check_positions, check_state, evaluator, merge_params

__all__ = ["orbital", "OrbitalInfo", "weighted_mean", "rotation"]


class OrbitalInfo(NamedTuple):
    """Per walker: ``acceptance (walkers,)`` = 1 - weight of the starting point (probability of moving);
    ``accepted (walkers,)`` whether it moved; ``log_ratio (walkers,)`` log of the total orbit weight
    relative to the start; ``orbit (walkers, n, dim)`` the orbit positions; ``weights (walkers, n)`` their
    normalised weights (0 where the log density is NaN/-inf)."""

    acceptance: jax.Array
    accepted: jax.Array
    log_ratio: jax.Array
    orbit: jax.Array
    weights: jax.Array


def rotation(period: int) -> Callable:
    """The default period-``period`` bijection: a symplectic rotation by 2 pi / period in each (x_i, v_i)
    plane about ``params["center"]`` with length scale ``params["step_size"]``."""
    theta = 2.0 * math.pi / period
    c_, s_ = math.cos(theta), math.sin(theta)

    def f(x, v, prm):
        s = jnp.asarray(prm["step_size"], x.dtype)
        c = jnp.asarray(prm["center"], x.dtype)
        d = x - c
        return c + d * c_ + s * v * s_, -d * s_ / s + v * c_, jnp.zeros((), x.dtype)

    return f


def orbital(period: int = 8, step_size: float = 1.0, center=0.0, *, bijection: Callable | None = None) -> Kernel:
    """Orbital MCMC kernel with a bijection of period ``period`` (static int >= 2); default bijection
    :func:`rotation`. Params: ``step_size`` (length scale of the rotation), ``center`` (scalar or (dim,)).
    ``step`` returns :class:`OrbitalInfo`."""
    if positive_int(period, "period") < 2:
        raise ValueError(f"period must be an int >= 2; got {period!r}")
    f = bijection if bijection is not None else rotation(period)
    if not callable(f):
        raise TypeError(f"bijection must be callable; got {type(f).__name__}")
    defaults = {"step_size": step_size, "center": center}

    def init(positions, logdensity_fn) -> State:
        positions = check_positions(positions)
        check_logdensity_fn(logdensity_fn, positions[0])
        p = jax.vmap(evaluator(logdensity_fn, False))(positions)
        return State(positions, p.logdensity, None, None)

    def step(key, state: State, logdensity_fn, params=None):
        check_state(state)
        prm = merge_params(defaults, params)
        evaluate = evaluator(logdensity_fn, False)

        def one(v, u_pick, x, lp):

            def body(carry, _):
                x, v, lj = carry
                x2, v2, dlj = f(x, v, prm)
                return (x2, v2, lj + dlj), (x2, v2, lj + dlj)

            _, (xs, vs, ljs) = jax.lax.scan(body, (x, v, jnp.zeros((), x.dtype)), None, length=period - 1)
            xs = jnp.concatenate([x[None], xs])
            vs = jnp.concatenate([v[None], vs])
            ljs = jnp.concatenate([jnp.zeros((1,), x.dtype), ljs])
            lps = jax.vmap(evaluate)(xs[1:]).logdensity
            lps = jnp.concatenate([lp[None], lps])
            logw = lps - 0.5 * jnp.sum(vs * vs, axis=-1) + ljs
            finite = jnp.isfinite(logw) & jnp.all(jnp.isfinite(xs), axis=-1)
            logw = jnp.where(finite, logw, -jnp.inf)
            lse = jax.nn.logsumexp(logw)
            weights = jnp.where(finite, jnp.exp(logw - lse), 0.0)
            weights = jnp.where(jnp.isfinite(lse), weights, jnp.zeros_like(weights).at[0].set(1.0))
            gumbel = -jnp.log(-jnp.log(u_pick))               # Gumbel noise from uniforms
            k = jnp.argmax(jnp.log(weights) + gumbel)
            acceptance = 1.0 - weights[0]
            log_ratio = jnp.where(jnp.isfinite(lse), lse - logw[0], -jnp.inf)
            return xs[k], lps[k], acceptance, k != 0, log_ratio, xs, weights

        w_, d_ = state.position.shape
        dt = state.position.dtype
        lo = float(np.nextafter(np.asarray(-1.0, dt), np.asarray(0.0, dt)))
        u = jax.random.uniform(key, (w_, d_ + period), dtype=dt, minval=lo)
        v = jnp.sqrt(jnp.asarray(2.0, dt)) * jax.lax.erf_inv(u[:, :d_])    # one PRNG call per step
        u_pick = 0.5 * (u[:, d_:] + 1.0)
        x, lp, acc, moved, lr, xs, w = jax.vmap(one)(v, u_pick, state.position, state.logdensity)
        return State(x, lp, None, None), OrbitalInfo(acc, moved, lr, xs, w)

    return Kernel(init, step, defaults, f"orbital{period}")


def weighted_mean(values, weights):
    """Weighted orbit estimator ``sum_k w_k h(x_k)`` averaged over all leading axes.

    ``values``: ``(..., n)`` or ``(..., n, d)`` -- ``h`` evaluated on the orbit points (e.g.
    ``info.orbit`` itself, or ``info.orbit ** 2``); ``weights``: ``(..., n)`` (``info.weights``).
    Returns ``()`` or ``(d,)``.
    """
    values = jnp.asarray(values)
    weights = jnp.asarray(weights)
    if values.shape[: weights.ndim] != weights.shape:
        raise ValueError(f"values of shape {values.shape} do not match weights of shape {weights.shape}")
    extra = values.ndim - weights.ndim
    w = weights.reshape(weights.shape + (1,) * extra)
    per = jnp.sum(w * values, axis=weights.ndim - 1)
    return jnp.mean(per.reshape((-1,) + per.shape[weights.ndim - 1:]), axis=0)
