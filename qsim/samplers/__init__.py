"""MCMC kernels for many walkers: random walk, MALA, HMC (one involutive builder), their irreversible
variants, orbital MCMC; ``run`` through ``lax.scan``; step-size adaptation; diagnostics.

    from qsim import samplers
    k = samplers.mala()
    state = k.init(positions, logdensity_fn)        # positions (walkers, dim); logdensity_fn: (dim,) -> ()
    state, info = k.step(key, state, logdensity_fn, {"step_size": 0.1})   # info.acceptance: (walkers,)
    state, rinfo = samplers.run(k, key, state, logdensity_fn, {"step_size": 0.1}, n_steps=100,
                                adapt=samplers.acceptance_targeting((0.5, 0.55)))

``logdensity_fn`` is unbatched (the kernels vmap it). Params are pytree arguments: new step sizes never
recompile. The state caches the log density at the walkers: after the density changes (VMC parameter
update), call ``k.init(state.position, new_fn)`` or ``samplers.refresh(state, new_fn)``. Proposals with a
NaN/-inf log density are rejected. Only jax is imported.
"""

from .adapt import Adapter, DualAveragingState, acceptance_targeting, dual_averaging, scale_step_size
from .base import Info, Kernel, Point, State, refresh
from .diagnostics import acceptance_rate, autocorrelation, ess, split_rhat
from .involutive import hmc, involutive, mala, rwm
from .orbital import OrbitalInfo, orbital, rotation, weighted_mean
from .run import RunInfo, run

__all__ = [
    "State", "Info", "Kernel", "Point", "refresh",
    "involutive", "rwm", "mala", "hmc",
    "orbital", "OrbitalInfo", "rotation", "weighted_mean",
    "run", "RunInfo",
    "Adapter", "acceptance_targeting", "dual_averaging", "scale_step_size", "DualAveragingState",
    "acceptance_rate", "ess", "split_rhat", "autocorrelation",
]
