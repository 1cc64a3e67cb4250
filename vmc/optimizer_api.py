"""The one interface of the VMC optimisers (:class:`VMCOptimizer`), its adapters and the learning-rate schedule.

A VMC optimiser is an optax ``GradientTransformationExtraArgs`` (``tx``) with a name and, optionally, SR's
fused Fisher-Rao capability (``update_fr``)::

    opt.init(params) -> state
    opt.update(grads, state, params, walkers=x, **extra) -> (updates, state)     # like tx.update
    opt.update_fr(c, state, params, walkers) -> (updates, state, log|psi| (B,))  # or None

``walkers`` (B, 3N) is an extra argument in optax's sense: natural-gradient transformations (SR, SINGD)
build their curvature from per-walker ∇θ log|psi|; plain optax transformations (Adam, LAMB, SGD) enter
through ``optax.with_extra_args_support`` and ignore it. For compatibility with callers of the earlier
interface ``walkers`` may also be passed positionally, as the fourth argument. Because ``opt.tx`` is a
genuine optax transformation, it composes: ``optax.chain(opt.tx, optax.clip_by_global_norm(1.0))`` is a
new ``tx`` for :func:`from_transformation`.

An optimiser that is not an optax transformation enters through an adapter that gives it this shape.
kfac-jax's ``kfac_jax.Optimizer`` (issue 17; kfac-jax 0.0.8 breaks on jax >= 0.9.2, where
``Primitive.get_bind_params`` returns a dict) is the case in view: it differentiates its own loss and
returns new parameters, ``step(params, state, rng, batch) -> (params, state, stats)``, and needs an rng
and a batch at ``init``. Its adapter builds ``VMCOptimizer(GradientTransformationExtraArgs(init, update),
"kfac")`` where ``init(params)`` calls ``kfac.init(params, rng, example_walkers)`` (rng and example
walkers given to the adapter's constructor) and keeps the rng in the state; ``update(grads, state,
params, *, walkers, **extra)`` splits the rng, calls ``kfac.step(params, state.kfac, rng, walkers)``
with a value-and-grad function whose gradient is the objective's (the surrogate loss of
vmc.objectives, log|psi| registered with kfac-jax's layer tags), and returns ``new_params - params`` as
the updates (``optax.apply_updates`` adds them back). Nothing else in vmc changes: the training step
only calls ``init``/``update``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax.numpy as jnp
import optax

__all__ = ["VMCOptimizer", "from_transformation", "schedule"]


class VMCOptimizer(NamedTuple):
    """An optax transformation with extra arguments (``walkers``), a name and an optional fused Fisher-Rao
    update (module docstring). ``init``/``update`` are ``tx``'s, so the optimiser is used like ``tx``."""

    tx: optax.GradientTransformationExtraArgs
    name: str
    update_fr: Callable[..., tuple[Any, Any, Any]] | None = None

    def init(self, params):
        """``tx.init(params)``: the optimiser state."""
        return self.tx.init(params)

    def update(self, grads, state, params=None, walkers=None, **extra):
        """``tx.update(grads, state, params, walkers=walkers, **extra) -> (updates, state)``."""
        if walkers is not None:
            extra["walkers"] = walkers
        return self.tx.update(grads, state, params, **extra)


def from_transformation(tx: optax.GradientTransformation, name: str, update_fr=None) -> VMCOptimizer:
    """A :class:`VMCOptimizer` from any optax transformation (one without extra arguments ignores them)."""
    return VMCOptimizer(optax.with_extra_args_support(tx), name, update_fr)


def schedule(learning_rate: float, decay: float | None):
    """lr / (1 + t / decay) (constant if decay is None or <= 0)."""
    if decay is None or decay <= 0:
        return lambda t: jnp.asarray(learning_rate)
    return lambda t: learning_rate / (1.0 + t / decay)
