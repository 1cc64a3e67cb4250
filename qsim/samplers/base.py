"""Shared types and input checks of the MCMC kernels.

A kernel is a pair of pure functions (``Kernel.init``, ``Kernel.step``) acting on a batch of walkers:

* ``init(positions, logdensity_fn) -> State`` with ``positions`` of shape ``(walkers, dim)``;
* ``step(key, state, logdensity_fn, params) -> (State, Info)``.

``logdensity_fn`` is the *unbatched* log density ``x: (dim,) -> scalar`` (up to a constant); the kernels
``vmap`` it over walkers. ``params`` is a dict of tunable numbers (``{"step_size": 0.1}``); its values are
pytree leaves, so changing them (step-size adaptation) never recompiles a jitted caller.

The state caches the log density (and its gradient for gradient-based kernels) at the current positions.
A caller whose log density changes between steps -- VMC after a parameter update -- must call ``init``
again (or :func:`refresh`) so the cache matches the new density; a stale cache gives a wrong chain.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["State", "Info", "Kernel", "Point", "refresh"]

Array = jax.Array
LogDensityFn = Callable[[Array], Array]


class State(NamedTuple):
    """Walker state. Shapes: ``position (walkers, dim)``, ``logdensity (walkers,)``,
    ``grad (walkers, dim)`` or ``None`` (kernels that need no gradient), ``momentum (walkers, dim)`` or
    ``None`` (the persistent auxiliary variable of the irreversible kernels)."""

    position: Array
    logdensity: Array
    grad: Array | None = None
    momentum: Array | None = None


class Info(NamedTuple):
    """What one step did, per walker: ``acceptance (walkers,)`` is the Metropolis-Hastings acceptance
    probability min(1, ratio) (0 for an invalid proposal: NaN or -inf log density, non-finite position);
    ``accepted (walkers,)`` is the boolean outcome; ``log_ratio (walkers,)`` the log acceptance ratio
    (-inf for invalid proposals)."""

    acceptance: Array
    accepted: Array
    log_ratio: Array


class Kernel(NamedTuple):
    """An MCMC kernel: ``init(positions, logdensity_fn) -> State``,
    ``step(key, state, logdensity_fn, params) -> (State, Info)``; ``defaults`` holds the default params
    (a missing key in ``params`` takes its default); ``name`` is for printing."""

    init: Callable[..., State]
    step: Callable[..., tuple[State, Any]]
    defaults: dict
    name: str


class Point(NamedTuple):
    """One walker's position with its log density and (optional) gradient. Unbatched:
    ``x (dim,)``, ``logdensity ()``, ``grad (dim,)`` or ``None``."""

    x: Array
    logdensity: Array
    grad: Array | None


def _is_concrete(value) -> bool:
    try:
        return not isinstance(value, jax.core.Tracer)
    except AttributeError:  # pragma: no cover
        return True


def check_positions(positions) -> Array:
    """Return ``positions`` as a floating array of shape (walkers, dim) or raise ValueError/TypeError."""
    if not hasattr(positions, "shape"):
        positions = jnp.asarray(positions)
    if positions.ndim != 2:
        raise ValueError(f"positions must have shape (walkers, dim); got shape {tuple(positions.shape)}")
    if positions.shape[0] < 1 or positions.shape[1] < 1:
        raise ValueError(f"positions must have at least one walker and one dimension; got shape "
                         f"{tuple(positions.shape)}")
    if not jnp.issubdtype(positions.dtype, jnp.floating):
        raise TypeError(f"positions must be a floating array (float32/float64); got dtype {positions.dtype}")
    return jnp.asarray(positions)


def check_logdensity_fn(logdensity_fn, x0) -> None:
    """Check that ``logdensity_fn`` maps one walker ``(dim,)`` to a real scalar (abstractly, no FLOPs)."""
    if not callable(logdensity_fn):
        raise TypeError(f"logdensity_fn must be callable; got {type(logdensity_fn).__name__}")
    out = jax.eval_shape(logdensity_fn, jax.ShapeDtypeStruct(x0.shape, x0.dtype))
    if not hasattr(out, "shape") or out.shape != ():
        raise ValueError(
            "logdensity_fn must be the UNBATCHED log density x:(dim,) -> scalar (the kernels vmap it); "
            f"for x of shape {tuple(x0.shape)} it returned {getattr(out, 'shape', type(out).__name__)}")
    if jnp.issubdtype(out.dtype, jnp.complexfloating):
        raise TypeError(f"logdensity_fn must return a real scalar; got dtype {out.dtype}")


def check_state(state: State) -> None:
    """Consistency of a state's shapes (raises ValueError naming the mismatch)."""
    if not isinstance(state, State):
        raise TypeError(f"state must be a samplers.State (from kernel.init); got {type(state).__name__}")
    pos = state.position
    if pos.ndim != 2:
        raise ValueError(f"state.position must have shape (walkers, dim); got {tuple(pos.shape)}")
    w = pos.shape[0]
    if state.logdensity.shape != (w,):
        raise ValueError(f"state.logdensity must have shape ({w},) to match {w} walkers; got "
                         f"{tuple(state.logdensity.shape)}")
    for name in ("grad", "momentum"):
        arr = getattr(state, name)
        if arr is not None and arr.shape != pos.shape:
            raise ValueError(f"state.{name} must have the shape of state.position {tuple(pos.shape)}; got "
                             f"{tuple(arr.shape)}")


def merge_params(defaults: dict, params, positive: tuple[str, ...] = ("step_size",)) -> dict:
    """``{**defaults, **params}`` with checks: unknown keys and non-positive step sizes raise ValueError
    (the value check runs only on concrete values; under ``jit`` the caller is responsible)."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict like {{'step_size': 0.1}}; got {type(params).__name__}")
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(f"unknown sampler parameter(s) {sorted(unknown)}; known: {sorted(defaults)}")
    merged = {**defaults, **params}
    for name in positive:
        if name in merged:
            value = merged[name]
            if _is_concrete(value):
                arr = np.asarray(value)
                if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                    raise ValueError(f"{name} must be positive and finite; got {value!r}")
    return merged


def evaluator(logdensity_fn: LogDensityFn, needs_grad: bool) -> Callable[[Array], Point]:
    """``x -> Point(x, logdensity, grad)``; NaN log densities become -inf, so they are always rejected."""

    def evaluate(x):
        if needs_grad:
            lp, g = jax.value_and_grad(logdensity_fn)(x)
        else:
            lp, g = logdensity_fn(x), None
        lp = jnp.where(jnp.isnan(lp), -jnp.inf, lp)
        return Point(x, lp, g)

    return evaluate


def draw(key, shape, dtype):
    """One PRNG call per step: ``(xi, log_u)`` for ``shape = (walkers, k)``, with ``xi (k, walkers)``
    standard normals in the walker-minor layout the kernels compute in (see :func:`walker_minor`) and
    ``log_u (walkers,)`` the log of a uniform in (0, 1) per walker. A single uniform draw of
    ``(k + 1, walkers)`` feeds both (normals through erfinv, as ``jax.random.normal`` does)."""
    w, k = shape
    lo = float(np.nextafter(np.asarray(-1.0, dtype), np.asarray(0.0, dtype)))
    u = jax.random.uniform(key, (k + 1, w), dtype=dtype, minval=lo, maxval=1.0)
    xi = jnp.sqrt(jnp.asarray(2.0, dtype)) * jax.lax.erf_inv(u[:k])
    log_u = jnp.log(0.5 * (u[k] + 1.0))               # in (lo/2 + 1/2, 1): uniform on (0, 1)
    return xi, log_u


def walker_minor(a):
    """``(walkers, k) -> (k, walkers)`` (None stays None). Inside a step the kernels vmap over the LAST
    axis of such arrays: XLA's CPU loops then vectorise over walkers instead of over the few coordinates
    of one walker. Measured here (CPU time, 1024 walkers): 2-2.5x faster RWM/MALA steps on a 10-D
    Gaussian, 1.2-1.4x on a 2-D banana, 1.45x for RWM on a small 12-D network log density. One
    exception seen: 128-300 walkers x 10 coordinates, where XLA picked a slow reduction (1.3-1.5x slower)."""
    return None if a is None else a.T


def refresh(state: State, logdensity_fn: LogDensityFn) -> State:
    """Recompute the cached log density (and gradient, when the state carries one) at the current
    positions for a new ``logdensity_fn`` -- call it after the density changed (e.g. a VMC parameter
    update). Keeps the persistent momentum of irreversible kernels."""
    check_state(state)
    evaluate = jax.vmap(evaluator(logdensity_fn, state.grad is not None))
    p = evaluate(state.position)
    return state._replace(logdensity=p.logdensity, grad=p.grad)
