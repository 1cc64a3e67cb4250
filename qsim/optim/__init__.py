"""Optimisers: SINGD as optax transformations, plus the layer-statistics capture it needs.

    from qsim.optim import singd, value_grad_and_stats
    tx = singd(learning_rate=1e-3, structure="diagonal")   # = optax.chain(scale_by_singd(...), ...)
    opt_state = tx.init(params)
    loss, grads, stats = value_grad_and_stats(per_example_loss, params, xs, ys)
    updates, opt_state = tx.update(grads, opt_state, params, layer_stats=stats)

See :mod:`qsim.optim.singd` for the update equations and the chain, :mod:`qsim.optim.structures` for
the structured factors and :mod:`qsim.optim.capture` for the VMC use (per-walker log-amplitude).
Importing this package imports jax and optax only (flax when capturing).
"""

from .capture import LayerStats, capture_dense, layer_statistics, value_grad_and_stats
from .singd import (LayerFactors, SINGDState, find_dense_layers, needs_layer_stats, scale_by_singd, singd,
                    singd_state)
from .structures import STRUCTURES, make_structure

__all__ = ["singd", "scale_by_singd", "singd_state", "needs_layer_stats", "SINGDState", "LayerFactors",
           "find_dense_layers", "LayerStats", "value_grad_and_stats", "layer_statistics", "capture_dense",
           "STRUCTURES", "make_structure"]
