"""vmc: neural-wavefunction variational Monte Carlo for molecules in continuous space (docs/vmc.md).

The modules, in the order one training uses them:

- ``vmc.systems``: molecules (catalog, .xyz files), initial electron positions;
- ``vmc.networks``: FermiNet and Slater-Jastrow wavefunctions;
- ``vmc.hamiltonian``: the local energy (folx or jvp Laplacians);
- ``vmc.objectives``: Fisher-Rao QVMC, Wasserstein QMC, their joint objective;
- ``vmc.optimizers``: SR, SINGD, Adam, LAMB, SGD behind one interface;
- ``vmc.pretrain``: Hartree-Fock pretraining of the orbitals;
- ``vmc.config``: the configuration (:data:`DEFAULTS`), its checks and the precision modes;
- ``vmc.step``: one jitted step (MCMC, objective, update, NaN rollback) and the final evaluation;
- ``vmc.train``: ``train(config, out=None)``, the whole run through qsim's driver loop;
- ``vmc.stats``: blocking error bars; ``vmc.cli``: the ``qsim vmc`` command.

Everything in :data:`__all__` is importable from ``vmc`` and loaded on first use (``import vmc`` itself
loads none of vmc's modules, Flax or folx). The training function is ``vmc.train.train`` (``vmc.train`` is the module).
"""

from __future__ import annotations

from qsim.infra.lazy import lazy_exports

_MODULES = ("cli", "config", "hamiltonian", "networks", "objectives", "optimizers", "pretrain", "stats",
            "step", "systems", "train")

_NAMES = {  # public name -> the module that defines it
    "DEFAULTS": "vmc.config", "PRECISIONS": "vmc.config", "make_config": "vmc.config",
    "validate_config": "vmc.config", "enable_x64": "vmc.config",
    "build": "vmc.train", "NanError": "vmc.train",
    "TrainState": "vmc.step", "make_train_step": "vmc.step",
    "Molecule": "vmc.systems",
    "make_wavefunction": "vmc.networks", "make_local_energy": "vmc.hamiltonian",
    "make_objective": "vmc.objectives", "hartree_fock": "vmc.pretrain",
    "blocking_stderr": "vmc.stats", "mean_and_stderr": "vmc.stats",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES, _NAMES)
