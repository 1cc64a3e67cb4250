"""vmc's configuration: the defaults (:data:`DEFAULTS`, nested dicts), their checks, the precision
modes and the molecule a configuration names.

A configuration is ``qsim.infra.validation.merge(DEFAULTS, overrides)`` (unknown keys raise, naming
them); :func:`validate_config` checks its values before any heavy work. Atomic units (Hartree, bohr).

Precision (``precision``, see :data:`PRECISIONS`): parameters, optimiser state, walkers, local
energies' sums and every statistic are float64 in all modes; what changes is the dtype the network
is *evaluated* in (parameters and positions cast on the way in, results cast back to float64):

- ``"float64"``: everything in float64.
- ``"mixed"``: the MCMC (which needs only differences of log|psi|) and the optimiser's per-walker
  Jacobian of log|psi| (and SR's kernel AAᵀ; its solve stays float64) in float32; the local energy
  and its Laplacian in float64, as the physics needs. Energies agree with float64 within their
  statistical error (tests/vmc/test_train.py).
- ``"float32"``: also the local energy in float32 (DeepQMC's default precision; for like-for-like
  timing, benchmarks/deepqmc.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from qsim.infra.validation import merge, nonnegative_int, one_of, positive_float, positive_int
from vmc import objectives as objectives_mod
from vmc import optimizers as optimizers_mod
from vmc import systems

__all__ = ["DEFAULTS", "PRECISIONS", "Precision", "LAPLACIANS", "make_config", "validate_config",
           "molecule_from_config", "enable_x64"]

DEFAULTS: dict[str, Any] = {
    "system": "H2",            # catalog name or path to an .xyz file (Angstrom)
    "charge": 0,
    "spin": None,              # n_up - n_down; None: the catalog's / lowest
    "objective": "fisher_rao",  # fisher_rao | wasserstein | joint
    "optimizer": "sr",         # vmc.optimizers.OPTIMIZERS: sr | singd | adam | lamb | sgd
    "steps": 600,
    "walkers": 128,
    "seed": 0,
    "laplacian": "folx",       # folx | jvp
    "precision": "float64",    # float64 | mixed | float32 (PRECISIONS; module docstring)
    "network": {"kind": "ferminet", "hidden": [[32, 8], [32, 8]], "n_det": 4, "jastrow": True},
    "mcmc": {"steps": 10, "burn_in": 100, "step_size": 0.3},
    "optim": {"learning_rate": None, "decay": 1000.0, "damping": 1e-3, "norm_constraint": 1e-3,
              "structure": "dense", "singd_interval": 1,  # SINGD: factor structure, factor-update interval T
              "project": None},  # project: SR's span projection; None = not for FR
    "objective_options": {"clip_width": 5.0, "center": "mean", "n_mad": 5.0, "fr_weight": 1.0},
    "pretrain": {"steps": 100, "basis": "sto-6g", "learning_rate": 3e-3},
    "eval": {"steps": 50},
    "checkpoint_every": 50,
    "max_nan_steps": 10,
}

LAPLACIANS = ("folx", "jvp")


class Precision(NamedTuple):
    """The dtype the network is evaluated in for each part of a step (module docstring)."""

    sampling: Any   # MCMC log|psi| evaluations
    jacobian: Any   # the optimiser's per-walker ∇θ log|psi| (and SR's kernel AAᵀ)
    energy: Any     # local energy (Laplacian) and the objective's own network evaluations


PRECISIONS = {
    "float64": Precision(jnp.float64, jnp.float64, jnp.float64),
    "mixed": Precision(jnp.float32, jnp.float32, jnp.float64),
    "float32": Precision(jnp.float32, jnp.float32, jnp.float32),
}


def enable_x64() -> None:
    """Turn on float64 (entry points call this; the library never does it at import time)."""
    jax.config.update("jax_enable_x64", True)


def make_config(config: dict | None) -> dict:
    """``config`` merged over :data:`DEFAULTS` (a new dict) and checked by :func:`validate_config`."""
    cfg = merge(DEFAULTS, config, where="the vmc configuration")
    validate_config(cfg)
    return cfg


def validate_config(cfg: dict) -> None:
    """Bad values raise ValueError (TypeError for a value of the wrong type) naming them, before any
    heavy work."""
    nonnegative_int(cfg["steps"], "steps")
    nonnegative_int(cfg["walkers"], "walkers")
    if cfg["walkers"] < objectives_mod.MIN_WALKERS:
        raise ValueError(f"walkers={cfg['walkers']} is too few for the estimators (clipping width, "
                         f"median/MAD mask, variance); use at least {objectives_mod.MIN_WALKERS}")
    one_of(cfg["objective"], "objective", objectives_mod.OBJECTIVES)
    one_of(cfg["optimizer"], "optimizer", optimizers_mod.OPTIMIZERS)
    one_of(cfg["precision"], "precision", tuple(PRECISIONS))
    one_of(cfg["laplacian"], "laplacian", LAPLACIANS)
    positive_int(cfg["mcmc"]["steps"], "mcmc.steps")
    nonnegative_int(cfg["mcmc"]["burn_in"], "mcmc.burn_in")
    positive_float(cfg["mcmc"]["step_size"], "mcmc.step_size")
    positive_int(cfg["optim"]["singd_interval"], "optim.singd_interval")
    nonnegative_int(cfg["pretrain"]["steps"], "pretrain.steps")
    nonnegative_int(cfg["eval"]["steps"], "eval.steps")
    positive_int(cfg["checkpoint_every"], "checkpoint_every")
    positive_int(cfg["max_nan_steps"], "max_nan_steps")


def molecule_from_config(cfg: dict) -> systems.Molecule:
    """The molecule of ``cfg["system"]``: a :class:`vmc.systems.Molecule`, a catalog name, or an .xyz
    file / text (Angstrom) with ``cfg["charge"]`` and ``cfg["spin"]``."""
    name = cfg["system"]
    if isinstance(name, systems.Molecule):
        return name
    if not isinstance(name, str):
        raise TypeError(f"system must be a catalog name or an .xyz path, got {type(name).__name__}")
    if name.lower().endswith(".xyz") or "\n" in name:
        return systems.from_xyz(name, charge=int(cfg.get("charge", 0)), spin=cfg.get("spin"))
    return systems.get(name, charge=int(cfg.get("charge", 0)), spin=cfg.get("spin"))
