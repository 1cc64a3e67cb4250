"""``run``: many kernel steps through ``lax.scan`` (optionally adapting the step size on the way)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from qsim.infra.validation import positive_int

from .adapt import Adapter
from .base import Kernel, State, check_state, merge_params

__all__ = ["run", "RunInfo"]


class RunInfo(NamedTuple):
    """``acceptance (n_steps, walkers)``; ``params`` the params after the run (adapted if ``adapt``);
    ``step_size (n_steps,)`` the step size used at each step; ``chain (n_steps, walkers, dim)`` the
    positions after each step (None unless ``return_chain``); ``infos`` the stacked per-step infos (None
    unless ``return_infos``; for ``orbital`` this carries the orbits and weights)."""

    acceptance: jax.Array
    params: dict
    step_size: jax.Array | None
    chain: jax.Array | None
    infos: Any


def run(kernel: Kernel, key, state: State, logdensity_fn, params, n_steps: int, *, adapt: Adapter | None = None,
        return_chain: bool = False, return_infos: bool = False) -> tuple[State, RunInfo]:
    """Run ``n_steps`` (static int) steps of ``kernel`` under ``lax.scan``.

    Pure: wrap it in ``jax.jit`` with the kernel, ``logdensity_fn``, ``n_steps`` and the flags closed over,
    e.g. ``jax.jit(lambda k, s, p: run(kern, k, s, logp, p, 100))``; ``params`` stays a traced argument,
    so new step sizes do not recompile. ``adapt`` (e.g. ``acceptance_targeting()``) updates the params
    after every step from that step's info.
    """
    if not isinstance(kernel, Kernel):
        raise TypeError(f"kernel must be a samplers.Kernel (e.g. samplers.rwm()); got {type(kernel).__name__}")
    positive_int(n_steps, "n_steps")
    check_state(state)
    params = {k: jnp.asarray(v) for k, v in merge_params(kernel.defaults, params).items()}
    astate = adapt.init(params) if adapt is not None else ()

    def body(carry, key):
        state, params, astate = carry
        used = params.get("step_size")
        state, info = kernel.step(key, state, logdensity_fn, params)
        if adapt is not None:
            astate, params = adapt.update(astate, params, info)
        out = (info.acceptance, used, state.position if return_chain else None, info if return_infos else None)
        return (state, params, astate), out

    keys = jax.random.split(key, n_steps)
    (state, params, astate), (acc, steps, chain, infos) = jax.lax.scan(body, (state, params, astate), keys)
    if adapt is not None:
        params = adapt.final(astate, params)
    return state, RunInfo(acc, params, steps, chain, infos)
