"""SINGD (qsim.optim.singd) for VMC: the Fisher factors come from per-walker log|psi| statistics.

The network's ``nn.Dense`` layers are factored (statistics captured by
``qsim.optim.layer_statistics`` from d log|psi(x_n)| / d(layer output)); the envelope and Jastrow
parameters pass through SINGD's preconditioner unchanged (SGD with momentum at the same learning
rate). The objective's gradient (Fisher-Rao or Wasserstein) is what gets preconditioned. With
``interval`` T > 1 the statistics are captured only at factor-update steps (every T-th, ``lax.cond``
on ``qsim.optim.needs_layer_stats``); the other steps only precondition. Updates are scaled so their
global norm is at most ``max_norm`` (a trust region, like the norm constraint of KFAC).

The optimiser is ``optax.chain(with_walker_statistics(singd(...)), scale_to_max_norm)``: an optax
transformation taking ``walkers=`` (vmc.optimizer_api).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from qsim.optim import layer_statistics, needs_layer_stats, singd
from vmc.optimizer_api import VMCOptimizer

__all__ = ["make", "with_walker_statistics", "scale_to_max_norm"]


def with_walker_statistics(tx: optax.GradientTransformationExtraArgs, log_psi, interval: int
                           ) -> optax.GradientTransformationExtraArgs:
    """``tx`` (a SINGD transformation of the Flax "params" collection) as a transformation of vmc's
    ``{"params": ...}`` tree taking ``walkers=``: the layer statistics of ``log_psi`` at the walkers are
    captured at factor-update steps (every step when ``interval`` is 1) and passed as ``layer_stats``."""

    def with_stats(g, s, p, walkers):
        _, stats = layer_statistics(lambda q, x: log_psi({"params": q}, x), p, walkers)
        return tx.update(g, s, p, layer_stats=stats)

    def without_stats(g, s, p, walkers):
        return tx.update(g, s, p)

    def init(params):
        return tx.init(params["params"])

    def update(grads, state, params=None, *, walkers=None, **extra):
        if params is None or walkers is None:
            raise ValueError("singd needs params and walkers: opt.update(grads, state, params, walkers=x)")
        args = (grads["params"], state, params["params"], walkers)
        if interval == 1:                          # every step updates the factors
            upd, new = with_stats(*args)
        else:                                      # capture only at factor-update steps (the taken branch runs)
            upd, new = jax.lax.cond(needs_layer_stats(state, interval), with_stats, without_stats, *args)
        return {"params": upd}, new

    return optax.GradientTransformationExtraArgs(init, update)


def scale_to_max_norm(max_norm: float) -> optax.GradientTransformation:
    """Updates scaled by ``min(1, max_norm / |u|)`` (|u| the global norm): a stateless trust region."""

    def scale(updates, params=None):
        norm = optax.global_norm(updates)
        return jax.tree_util.tree_map(lambda u: u * jnp.minimum(1.0, max_norm / (norm + 1e-30)), updates)

    return optax.stateless(scale)


def make(log_psi, module, lr_fn, damping: float, options: dict) -> VMCOptimizer:
    """The vmc SINGD optimiser: ``options`` ``structure`` (default dense), ``interval`` (T, 1),
    ``momentum`` (0.9), ``lr_cov`` (1e-2), ``ikfac`` (False), ``max_norm`` (1.0); ``module`` is unused
    (the layers are found in the params tree)."""
    if log_psi is None:
        raise ValueError("optimizer 'singd' needs log_psi")
    interval = int(options.get("interval", 1))
    tx = singd(learning_rate=lr_fn, structure=options.get("structure", "dense"),
               damping=max(float(damping), 1e-8), momentum=float(options.get("momentum", 0.9)),
               update_interval=interval, lr_cov=float(options.get("lr_cov", 1e-2)), factor_dtype=jnp.float64,
               ikfac=bool(options.get("ikfac", False)))
    chain = optax.chain(with_walker_statistics(tx, log_psi, interval),
                        scale_to_max_norm(float(options.get("max_norm", 1.0))))
    return VMCOptimizer(chain, "singd")
