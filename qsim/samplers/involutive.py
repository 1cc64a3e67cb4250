"""Involutive MCMC: one builder, with random-walk Metropolis, MALA and HMC expressed through it.

Involutive MCMC (Neklyudov et al. 2020): draw an auxiliary ``v ~ p(v | x)``, map
``(x', v') = f(x, v)`` with an involution ``f`` (``f(f(x, v)) = (x, v)``), and accept with probability

    min(1, p(x') p(v' | x') / (p(x) p(v | x)) * |det df/d(x, v)|).

* random walk:  v ~ N(x, s^2 I),  f(x, v) = (v, x)                     (``rwm``)
* MALA:         v ~ N(x + e grad log p(x), 2 e I),  f(x, v) = (v, x)   (``mala``)
* HMC:          v ~ N(0, I),  f = momentum flip o L leapfrog steps      (``hmc``), unit Jacobian

Irreversible variants (``irreversible=True``) keep the auxiliary variable as a persistent momentum in
``State.momentum``: before each step it is partially refreshed, ``v <- a v + sqrt(1 - a^2) xi``
(``a = params["persistence"]``), the involution ends with a momentum flip, and after the accept/reject
step the momentum is flipped again -- so an accepted move keeps its direction and a rejection reverses
it (Horowitz's generalised HMC; a lifted, "guided" random walk for ``rwm``; one leapfrog step of
length ``sqrt(2 e)`` for ``mala``). Each part preserves p(x) N(v; 0, I), so the chain still targets p,
but it no longer satisfies detailed balance (only skew detailed balance). The momentum starts at 0, so
the first few steps are a burn-in of the momentum too.

A proposal whose log density is NaN or -inf, or whose position is not finite, has acceptance 0: the
walker keeps its old position (NaNs never propagate into the state).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from qsim.infra.validation import finite_float, positive_int

from .base import (Info, Kernel, Point, State, check_logdensity_fn, check_positions, check_state, draw,
                   evaluator, merge_params, walker_minor)

__all__ = ["involutive", "rwm", "mala", "hmc"]

Array = jax.Array


def involutive(sample_aux: Callable, involution: Callable, log_aux: Callable, *, needs_grad: bool = False,
               persistent: bool = False, defaults: dict | None = None, name: str = "involutive",
               walkers_last: bool = True) -> Kernel:
    """Build an involutive MCMC kernel from three unbatched functions (one walker each).

    Args:
      sample_aux: ``(xi, point, v_prev, params) -> v``, a draw of the auxiliary variable as a function
        of a standard-normal vector ``xi (dim,)`` (drawn by the builder) and the current :class:`Point` (``point.x (dim,)``, ``point.logdensity ()``, ``point.grad (dim,)`` or
        None); ``v_prev`` is the persistent momentum ``(dim,)`` when ``persistent`` else None.
      involution: ``(point, v, evaluate, params) -> (new_point, v_new, log_abs_det_jacobian)`` where
        ``evaluate(x) -> Point`` computes the log density (and gradient when ``needs_grad``); it must be
        an involution of (x, v) for fixed params.
      log_aux: ``(v, point, params) -> log p(v | x)`` (up to a constant independent of x and v).
      needs_grad: whether the kernel uses the gradient of the log density (cached in ``State.grad``).
      persistent: keep ``v`` between steps in ``State.momentum`` and flip it after each step (the
        irreversible construction; ``p(v | x)`` must not depend on x).
      defaults: default params, e.g. ``{"step_size": 0.1}``.
      name: a label.
      walkers_last: compute with walkers on the last axis (:func:`~qsim.samplers.base.walker_minor`;
        fastest for small, cheap densities); ``False`` keeps them on the first axis, which XLA runs
        2-2.6x faster for a neural-network density such as FermiNet (LiH, 256 walkers, CPU; vmc.train
        uses it). Same random numbers either way, so the chains agree to rounding.

    Returns:
      A :class:`Kernel`; its ``step`` vmaps these functions over walkers.
    """
    defaults = dict(defaults or {"step_size": 0.1})

    def init(positions, logdensity_fn) -> State:
        positions = check_positions(positions)
        check_logdensity_fn(logdensity_fn, positions[0])
        p = jax.vmap(evaluator(logdensity_fn, needs_grad))(positions)
        momentum = jnp.zeros_like(positions) if persistent else None
        return State(positions, p.logdensity, p.grad, momentum)

    def step(key, state: State, logdensity_fn, params=None):
        check_state(state)
        if needs_grad and state.grad is None:
            raise ValueError(f"{name} needs State.grad: build the state with this kernel's init")
        if persistent and state.momentum is None:
            raise ValueError(f"{name} (irreversible) needs State.momentum: build the state with this "
                             "kernel's init")
        prm = merge_params(defaults, params)
        evaluate = evaluator(logdensity_fn, needs_grad)

        def one(xi, log_u, x, lp, g, m):
            point = Point(x, lp, g)
            v = sample_aux(xi, point, m, prm)
            new, v_new, log_jac = involution(point, v, evaluate, prm)
            log_ratio = (new.logdensity + log_aux(v_new, new, prm) - lp - log_aux(v, point, prm) + log_jac)
            valid = (jnp.isfinite(new.logdensity) & jnp.all(jnp.isfinite(new.x))
                     & ~jnp.isnan(log_ratio))
            if needs_grad:
                valid = valid & jnp.all(jnp.isfinite(new.grad))
            log_ratio = jnp.where(valid, log_ratio, -jnp.inf)
            acceptance = jnp.exp(jnp.minimum(log_ratio, 0.0))
            accepted = log_u < log_ratio
            x_out = jnp.where(accepted, new.x, x)
            lp_out = jnp.where(accepted, new.logdensity, lp)
            g_out = jnp.where(accepted, new.grad, g) if needs_grad else None
            m_out = -jnp.where(accepted, v_new, v) if persistent else None
            return (x_out, lp_out, g_out, m_out), Info(acceptance, accepted, log_ratio)

        xi, log_u = draw(key, state.position.shape, state.position.dtype)   # one PRNG call per step
        if walkers_last:
            tr, ax = walker_minor, 1       # compute with walkers on the last axis (vectorised loops)
        else:
            tr, ax, xi = (lambda a: a), 0, xi.T
        (x, lp, g, m), info = jax.vmap(one, in_axes=(ax, 0, ax, 0, ax, ax), out_axes=((ax, 0, ax, ax), 0))(
            xi, log_u, tr(state.position), state.logdensity, tr(state.grad), tr(state.momentum))
        return State(tr(x), lp, tr(g), tr(m)), info

    return Kernel(init, step, defaults, name)


# ---------------------------------------------------------------------------------------------------
# concrete kernels

def _refresh(xi, point, v_prev, prm):
    """Partial momentum refresh ``a v + sqrt(1 - a^2) xi`` (full refresh when v_prev is None)."""
    if v_prev is None:
        return xi
    a = jnp.asarray(prm["persistence"], point.x.dtype)
    return a * v_prev + jnp.sqrt(1.0 - a * a) * xi


def _log_std_normal(v, point, prm):
    return -0.5 * jnp.sum(v * v)


def _leapfrog_involution(n_leapfrog: int, step_of: Callable):
    """``flip o leapfrog^L`` with step ``step_of(prm)``; unit Jacobian."""

    def involution(point, v, evaluate, prm):
        h = jnp.asarray(step_of(prm), point.x.dtype)

        def body(carry, _):
            p, v = carry
            v = v + 0.5 * h * p.grad
            p = evaluate(p.x + h * v)
            v = v + 0.5 * h * p.grad
            return (p, v), None

        (p, v), _ = jax.lax.scan(body, (point, v), None, length=n_leapfrog)
        return p, -v, jnp.zeros((), point.x.dtype)

    return involution


def rwm(step_size: float = 0.1, *, irreversible: bool = False, persistence: float = 0.9,
        walkers_last: bool = True) -> Kernel:
    """Random-walk Metropolis with an isotropic Gaussian proposal of width ``params["step_size"]``
    (same length units as the positions).

    Reversible: ``v ~ N(x, s^2 I)``, ``f(x, v) = (v, x)``. Irreversible: persistent unit-normal momentum,
    ``f(x, v) = (x + s v, -v)``, direction kept on acceptance and reversed on rejection; its
    ``params["persistence"]`` in [0, 1) sets how much of the momentum survives each refresh.
    Needs no gradient (``State.grad`` is None). ``walkers_last``: see :func:`involutive`.
    """
    _check_persistence(persistence)
    if irreversible:
        def involution(point, v, evaluate, prm):
            s = jnp.asarray(prm["step_size"], point.x.dtype)
            return evaluate(point.x + s * v), -v, jnp.zeros((), point.x.dtype)

        return involutive(_refresh, involution, _log_std_normal, needs_grad=False, persistent=True,
                          defaults={"step_size": step_size, "persistence": persistence}, name="irreversible_rwm",
                          walkers_last=walkers_last)

    def sample_aux(xi, point, _, prm):
        return point.x + jnp.asarray(prm["step_size"], point.x.dtype) * xi

    def swap(point, v, evaluate, prm):
        return evaluate(v), point.x, jnp.zeros((), point.x.dtype)

    def log_aux(v, point, prm):
        s = jnp.asarray(prm["step_size"], point.x.dtype)
        return -0.5 * jnp.sum((v - point.x) ** 2) / (s * s)

    return involutive(sample_aux, swap, log_aux, needs_grad=False, defaults={"step_size": step_size}, name="rwm",
                      walkers_last=walkers_last)


def mala(step_size: float = 0.1, *, irreversible: bool = False, persistence: float = 0.9) -> Kernel:
    """Metropolis-adjusted Langevin: proposal ``N(x + e grad log p(x), 2 e I)`` with ``e =
    params["step_size"]`` (units: length^2; BlackJAX's convention). Caches the gradient.

    Irreversible: one leapfrog step of length ``sqrt(2 e)`` (which is the same proposal) with a persistent,
    partially refreshed momentum that is flipped on rejection.
    """
    _check_persistence(persistence)
    if irreversible:
        inv = _leapfrog_involution(1, lambda prm: jnp.sqrt(2.0 * prm["step_size"]))
        return involutive(_refresh, inv, _log_std_normal, needs_grad=True, persistent=True,
                          defaults={"step_size": step_size, "persistence": persistence}, name="irreversible_mala")

    def sample_aux(xi, point, _, prm):
        e = jnp.asarray(prm["step_size"], point.x.dtype)
        return point.x + e * point.grad + jnp.sqrt(2.0 * e) * xi

    def swap(point, v, evaluate, prm):
        return evaluate(v), point.x, jnp.zeros((), point.x.dtype)

    def log_aux(v, point, prm):
        e = jnp.asarray(prm["step_size"], point.x.dtype)
        return -jnp.sum((v - point.x - e * point.grad) ** 2) / (4.0 * e)

    return involutive(sample_aux, swap, log_aux, needs_grad=True, defaults={"step_size": step_size}, name="mala")


def hmc(n_leapfrog: int = 10, step_size: float = 0.1, *, irreversible: bool = False,
        persistence: float = 0.9) -> Kernel:
    """Hamiltonian Monte Carlo with unit mass: momentum ``v ~ N(0, I)``, ``n_leapfrog`` (static) leapfrog
    steps of length ``params["step_size"]`` then a momentum flip. Caches the gradient.

    Irreversible: generalised HMC (Horowitz) -- partial momentum refresh with ``params["persistence"]``,
    momentum flipped on rejection.
    """
    positive_int(n_leapfrog, "n_leapfrog")
    _check_persistence(persistence)
    inv = _leapfrog_involution(n_leapfrog, lambda prm: prm["step_size"])
    if irreversible:
        return involutive(_refresh, inv, _log_std_normal, needs_grad=True, persistent=True,
                          defaults={"step_size": step_size, "persistence": persistence}, name="irreversible_hmc")
    return involutive(_refresh, inv, _log_std_normal, needs_grad=True, defaults={"step_size": step_size}, name="hmc")


def _check_persistence(a) -> None:
    if not 0.0 <= finite_float(a, "persistence") < 1.0:
        raise ValueError(f"persistence must be a number in [0, 1); got {a!r}")
