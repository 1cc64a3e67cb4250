"""The one interface of the VMC optimisers (:class:`VMCOptimizer`) and their learning-rate schedule."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax.numpy as jnp

__all__ = ["VMCOptimizer", "schedule"]


class VMCOptimizer(NamedTuple):
    """init(params) -> state; update(grads, state, params, walkers) -> (updates, state);
    update_fr(c, state, params, walkers) -> (updates, state, log|psi|) or None (module docstring)."""

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]
    name: str
    update_fr: Callable[..., tuple[Any, Any, Any]] | None = None


def schedule(learning_rate: float, decay: float | None):
    """lr / (1 + t / decay) (constant if decay is None or <= 0)."""
    if decay is None or decay <= 0:
        return lambda t: jnp.asarray(learning_rate)
    return lambda t: learning_rate / (1.0 + t / decay)
