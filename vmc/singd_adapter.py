"""SINGD (qsim.optim.singd) for VMC: the Fisher factors come from per-walker log|psi| statistics.

The network's ``nn.Dense`` layers are factored (statistics captured by
``qsim.optim.layer_statistics`` from d log|psi(x_n)| / d(layer output)); the envelope and Jastrow
parameters go to SINGD's fallback (SGD with momentum at the same learning rate). The objective's
gradient (Fisher-Rao or Wasserstein) is what gets preconditioned. With ``interval`` T > 1 the
statistics are captured only at factor-update steps (every T-th, ``lax.cond`` on
``qsim.optim.needs_layer_stats``); the other steps only precondition. Updates are scaled so their
global norm is at most ``max_norm`` (a trust region, like the norm constraint of KFAC).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from qsim.optim import layer_statistics, needs_layer_stats, singd
from vmc.optimizer_api import VMCOptimizer

__all__ = ["make"]


class _State(NamedTuple):
    inner: Any


def make(log_psi, module, lr_fn, damping: float, options: dict):


    if log_psi is None:
        raise ValueError("optimizer 'singd' needs log_psi")
    structure = options.get("structure", "dense")
    max_norm = float(options.get("max_norm", 1.0))
    interval = int(options.get("interval", 1))
    tx = singd(learning_rate=lr_fn, structure=structure, damping=max(float(damping), 1e-8),
               momentum=float(options.get("momentum", 0.9)), update_interval=interval,
               lr_cov=float(options.get("lr_cov", 1e-2)), factor_dtype=jnp.float64,
               ikfac=bool(options.get("ikfac", False)))

    def init(params):
        return _State(tx.init(params["params"]))

    def with_stats(g, s, p, walkers):
        _, stats = layer_statistics(lambda q, x: log_psi({"params": q}, x), p, walkers)
        return tx.update(g, s, p, layer_stats=stats)

    def without_stats(g, s, p, walkers):
        return tx.update(g, s, p)

    def update(grads, state, params, walkers):
        inner = params["params"]
        args = (grads["params"], state.inner, inner, walkers)
        if interval == 1:                          # every step updates the factors
            upd, new = with_stats(*args)
        else:                                      # capture only at factor-update steps (the taken branch runs)
            upd, new = jax.lax.cond(needs_layer_stats(state.inner, interval), with_stats, without_stats, *args)
        norm = optax.global_norm(upd)
        upd = jax.tree_util.tree_map(lambda u: u * jnp.minimum(1.0, max_norm / (norm + 1e-30)), upd)
        return {"params": upd}, _State(new)

    return VMCOptimizer(init, update, "singd")
