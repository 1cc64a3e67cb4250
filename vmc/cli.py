"""``qsim vmc``: optimise a molecular ground state with a neural wavefunction.

Example::

    qsim vmc --system He --steps 200 --out runs/he
    qsim vmc --system LiH --objective wasserstein --optimizer sr --steps 1000 --walkers 512 --out runs/lih_w
    qsim vmc --system mol.xyz --spin 0 network.hidden="[[64,16],[64,16]]" --out runs/x

Writes config.json, metrics.csv, summary.json, checkpoints/ and energy.png into --out; running the
same command again resumes from the last checkpoint (raise --steps to continue training).
"""

from __future__ import annotations

from qsim.infra.cli import add_common_arguments, resolve_config
from vmc import train
from vmc.config import DEFAULTS, enable_x64, make_config
from vmc.networks import NETWORKS
from vmc.objectives import OBJECTIVES
from vmc.optimizers import OPTIMIZERS

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser("vmc", help="neural-wavefunction VMC for molecules (FR-QVMC / WQMC)",
                              description=__doc__.split("\n\n")[0],
                              epilog="Dotted overrides (key=value) reach every setting, e.g. network.n_det=8 "
                                     "mcmc.steps=20 optim.learning_rate=0.05 pretrain.steps=0 eval.steps=100; with "
                                     "--optimizer singd: optim.structure=diagonal optim.singd_interval=10.")
    p.add_argument("--system", default=None, help="catalog name (H, He, H2, LiH, Li, Be, B, C, N, Li2, H4) "
                   "or an .xyz file in Angstrom (default H2)")
    p.add_argument("--charge", type=int, default=None, help="total charge (default 0)")
    p.add_argument("--spin", type=int, default=None, help="n_up - n_down (default: catalog / lowest)")
    p.add_argument("--objective", default=None, choices=OBJECTIVES,
                   help="fisher_rao (standard QVMC), wasserstein (WQMC) or joint (default fisher_rao)")
    p.add_argument("--optimizer", default=None, choices=OPTIMIZERS,
                   help="sr (stochastic reconfiguration, default), singd, adam, lamb, sgd")
    p.add_argument("--network", dest="network_kind", default=None, choices=NETWORKS,
                   help="wavefunction (default ferminet)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default 600)")
    p.add_argument("--walkers", type=int, default=None, help="MCMC walkers (default 128)")
    p.add_argument("--lr", dest="optim_learning_rate", type=float, default=None, help="learning rate")
    add_common_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    enable_x64()
    cfg = resolve_config(DEFAULTS, args, cli_keys=["system", "charge", "spin", "objective", "optimizer",
                                                   "steps", "walkers"])
    if getattr(args, "network_kind", None):
        cfg["network"]["kind"] = args.network_kind
        if args.network_kind == "slater_jastrow" and cfg["network"]["hidden"] == DEFAULTS["network"]["hidden"]:
            cfg["network"]["hidden"] = [[32, 0]]
            cfg["network"]["n_det"] = 1
    if getattr(args, "optim_learning_rate", None) is not None:
        cfg["optim"]["learning_rate"] = args.optim_learning_rate
    make_config(cfg)  # bad values fail here, before anything is built
    summary = train.train(cfg, out=args.out, progress=not args.no_progress)
    if args.out:
        print(f"run directory: {args.out}")
    return 0 if summary.get("status", "completed") == "completed" else 1
