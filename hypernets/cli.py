"""``qsim hypernet``: train a quantum hypernetwork whose measured bitstrings are binary networks.

Examples::

    qsim hypernet --task gaussian --depth 8 --restarts 10 --out runs/gauss_d8
    qsim hypernet --task gaussian --depth 1 2 3 4 5 6 --restarts 10 --out runs/gauss_sweep
    qsim hypernet --task digits --classes 0 1 --depth 4 --restarts 5 --out runs/digits
    qsim hypernet --task gaussian --depth 1 --backend qiskit:aer --shots 1000 --noise 0.001 \\
        --gradient spsa --steps 200 --out runs/gauss_aer

``--depth`` counts LAYER STEPS (one step = CNOT brickwork + RY on every qubit + phase shift on every
qubit), not pairs of them. Without ``--shots`` (or with ``--shots 0``) training is exact (Born
expectation from the statevector, L-BFGS or Adam); with ``--shots S`` it samples S bitstrings per
cost estimate on ``--backend`` (parameter-shift or SPSA gradients, Adam).

Writes config.json, metrics.csv (one row per logged iteration), summary.json (task, depths and, as
lists aligned with depths, expected_cost, p_optimal (mean over restarts), p_top_k, best_accuracy; plus
optimal_cost and per_depth details), checkpoints/ (completed restarts: a rerun resumes) and
success_vs_depth.png when several depths are given.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np

import qsim
from qsim.infra import settings
from qsim.infra.cli import add_common_arguments, resolve_config
from qsim.infra.driver import Progress, resume, run_loop
from qsim.infra.runs import open_run
from qsim.infra.validation import finite_float, nonnegative_int, positive_int

from .landscape import compute_landscape
from .tasks import get_task
from .train import ANNEAL_T0, train_exact, train_shots

__all__ = ["register", "run", "DEFAULTS", "run_hypernet"]

DEFAULTS = {
    "task": "gaussian",
    "classes": [0, 1],
    "depths": [4],
    "restarts": 10,
    "ansatz": "brickwork",
    "optimizer": "lbfgs",
    "max_iter": 500,
    "anneal": ANNEAL_T0,
    "anneal_stages": 8,
    "stage_iters": 100,
    "learning_rate": 0.05,
    "engine": "fast",
    "dtype": "float64",
    "backend": "statevector",
    "shots": 0,
    "gradient": "parameter_shift",
    "steps": 100,
    "noise": 0.0,
    "top_k": 64,
    "log_every": 10,
    "landscape_dtype": "float64",
    "seed": 0,
}

METRIC_KEYS = ("expected_cost", "p_optimal", "p_top_k", "best_accuracy", "train_accuracy", "iterations")


def register(subparsers) -> None:
    p = subparsers.add_parser("hypernet", help="quantum hypernetworks: train binary networks in superposition",
                              description=__doc__.split("\n\n")[0],
                              epilog="--depth counts layer steps (CNOT brickwork + RY + phase shift each). "
                                     "Dotted overrides reach every setting, e.g. max_iter=300 top_k=24.")
    p.add_argument("--task", default=None, choices=["gaussian", "digits", "digits_values"],
                   help="gaussian (18 bits), digits (17 bits), digits_values (19 bits) (default gaussian)")
    p.add_argument("--classes", type=int, nargs=2, default=None, help="two digit classes (default 0 1)")
    p.add_argument("--depth", dest="depths", type=int, nargs="+", default=None,
                   help="layer steps of the circuit; several give a success-vs-depth curve (default 4)")
    p.add_argument("--restarts", type=int, default=None, help="random restarts per depth (default 10)")
    p.add_argument("--ansatz", default=None, choices=["brickwork", "hardware_efficient"])
    p.add_argument("--optimizer", default=None, choices=["lbfgs", "adam"], help="exact mode (default lbfgs)")
    p.add_argument("--max-iter", dest="max_iter", type=int, default=None, help="exact-mode iterations (500)")
    p.add_argument("--anneal", type=float, default=None,
                   help=f"exact mode: initial entropy weight of the annealed log-cost warm-up before the "
                        f"max-iter iterations (default {ANNEAL_T0}; 0 = plain L-BFGS from random angles, "
                        f"the reference method); anneal_stages=8 stage_iters=100 set its length")
    p.add_argument("--backend", default=None, help="shot-mode backend (statevector, qiskit:aer, "
                   "pennylane:lightning.qubit, ...)")
    p.add_argument("--shots", type=int, default=None, help="shots per estimate; 0 = exact mode (default)")
    p.add_argument("--gradient", default=None, choices=["parameter_shift", "spsa"], help="shot-mode gradient")
    p.add_argument("--steps", type=int, default=None, help="shot-mode Adam steps (default 100)")
    p.add_argument("--noise", type=float, default=None,
                   help="qiskit:aer depolarising noise: p on 1-qubit gates, 10p on CNOTs, p readout (default 0)")
    add_common_arguments(p)
    p.set_defaults(func=run)


def _validate(cfg: dict) -> None:
    if not isinstance(cfg["depths"], (list, tuple)) or not cfg["depths"]:
        raise ValueError(f"depths must be a non-empty list of positive ints, got {cfg['depths']!r}")
    for d in cfg["depths"]:
        positive_int(d, "depths")
    for key in ("restarts", "max_iter", "steps", "anneal_stages", "stage_iters", "top_k", "log_every"):
        positive_int(cfg[key], key)
    nonnegative_int(cfg["shots"], "shots (0 = exact)")
    if not 0 <= finite_float(cfg["noise"], "noise") <= 0.1:
        raise ValueError(f"noise must be in [0, 0.1], got {cfg['noise']}")
    if cfg["noise"] and not str(cfg["backend"]).startswith("qiskit:aer"):
        raise ValueError(f"noise applies to the qiskit:aer backend, not {cfg['backend']!r}")
    if cfg["noise"] and not cfg["shots"]:
        raise ValueError("noise needs shot mode (--shots S)")
    if finite_float(cfg["anneal"], "anneal") < 0:
        raise ValueError(f"anneal must be a finite number >= 0 (0 = no warm-up), got {cfg['anneal']}")


def noise_model(p: float):
    """An Aer noise model: depolarising p (1-qubit gates), 10 p (CNOT), readout flips with probability p."""
    from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

    nm = NoiseModel()
    nm.add_all_qubit_quantum_error(depolarizing_error(p, 1), ["ry", "rz", "p", "u", "u3", "sx", "x"])
    nm.add_all_qubit_quantum_error(depolarizing_error(min(10 * p, 0.5), 2), ["cx"])
    nm.add_all_qubit_readout_error(ReadoutError([[1 - p, p], [p, 1 - p]]))
    return nm


def noisy_aer_backend(p: float, seed: int = 0, method: str = "matrix_product_state"):
    """qsim's ``qiskit:aer`` backend with :func:`noise_model`. Shots of wide circuits are noise
    trajectories; ``method="matrix_product_state"`` (default) simulates each trajectory as an exact
    (untruncated) MPS, which for these shallow brickwork circuits was ~100x faster per shot than Aer's
    statevector at 18 qubits here; few-wire circuits still use one density matrix."""

    return qsim.get_backend("qiskit:aer", noise_model=noise_model(p), seed=seed,
                            simulator_options={"method": method} if method else None)


def _make_task(cfg):
    if cfg["task"] == "gaussian":
        return get_task("gaussian", seed=cfg["seed"])
    return get_task(cfg["task"], classes=tuple(cfg["classes"]), seed=cfg["seed"])


def _plot(path, depths, table, optimal_cost):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    p = np.asarray([[r["p_optimal"] for r in table[d]] for d in depths])
    k = np.asarray([[r["p_top_k"] for r in table[d]] for d in depths])
    e = np.asarray([[r["expected_cost"] for r in table[d]] for d in depths])
    axes[0].errorbar(depths, p.mean(1), yerr=p.std(1) / math.sqrt(p.shape[1]), marker="o", capsize=3,
                     label="p_optimal")
    axes[0].errorbar(depths, k.mean(1), yerr=k.std(1) / math.sqrt(k.shape[1]), marker="s", capsize=3,
                     label="p_top_k")
    axes[0].set_xlabel("depth (layer steps)")
    axes[0].set_ylabel("probability (mean over restarts)")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend()
    axes[1].semilogy(depths, e.mean(1) / optimal_cost, marker="o")
    axes[1].set_xlabel("depth (layer steps)")
    axes[1].set_ylabel("expected cost / optimal cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class _Sweep:
    """The (depth, restart) units of a sweep, trained in order; each unit is one step of the driver loop.

    Rows go to metrics.csv as the optimisers report them (every ``log_every`` iterations, plus one
    final row per restart, ``iteration`` -1), numbered by a running count kept in the checkpoint.
    Exact mode trains the remaining restarts of a depth in one call (the annealed warm-up batches
    them), so several units can finish inside one loop step: each restart's checkpoint
    (``done``/``vals``/``step``, labelled by its unit) is written as it finishes."""

    def __init__(self, cfg: dict, land, depths: list[int], run, bar: Progress, per_restart: int):
        self.cfg, self.land, self.depths, self.run, self.bar = cfg, land, depths, run, bar
        self.R, self.per_restart = int(cfg["restarts"]), per_restart
        self.units = [(di, d, r) for di, d in enumerate(depths) for r in range(self.R)]
        self.done = np.zeros((len(depths), self.R), bool)
        self.vals = np.full((len(depths), self.R, len(METRIC_KEYS)), np.nan)
        self.count = 0
        self.last_it: dict = {}
        self.backends: dict = {}

    def snapshot(self) -> dict:
        return {"done": self.done.copy(), "vals": self.vals.copy(), "step": np.asarray(self.count, np.int64)}

    def restore(self, state: dict) -> int:
        """Take a checkpoint's state; the number of units done (restarts finish in order)."""
        self.done, self.vals = np.asarray(state["done"], bool), np.asarray(state["vals"], np.float64)
        self.count = int(state["step"])
        return int(np.cumprod(self.done.ravel()).sum())

    def log(self, depth: int, restart: int, it: int, value: float, **final) -> None:
        self.count += 1
        if it % int(self.cfg["log_every"]) == 0 or final:
            self.run.log_metrics(self.count, depth=depth, restart=restart, iteration=it, expected_cost=value,
                                 **{k: final.get(k) for k in ("p_optimal", "p_top_k", "best_accuracy")})
        if not final:       # the annealed warm-up reports once per stage
            self.bar.update(max(1, it - self.last_it.get((depth, restart), 0)))
            self.last_it[(depth, restart)] = it

    def finish(self, di: int, d: int, r: int, row: dict) -> None:
        self.log(d, r, -1, row["expected_cost"], p_optimal=row["p_optimal"], p_top_k=row["p_top_k"],
                 best_accuracy=row["best_accuracy"])
        self.vals[di, r] = [row[k] for k in METRIC_KEYS]
        self.done[di, r] = True
        self.run.save_checkpoint(di * self.R + r, self.snapshot())

    def step(self, t: int, state: dict) -> tuple[dict, dict]:
        di, d, r = self.units[t]
        if not self.done[di, r]:
            (self._train_shots if int(self.cfg["shots"]) else self._train_exact)(di, d, r)
        return self.snapshot(), dict(zip(METRIC_KEYS, self.vals[di, r].tolist()))

    def _train_exact(self, di: int, d: int, start: int) -> None:
        cfg = self.cfg

        def on_restart(r, res):
            mp = res.most_probable[0]
            self.finish(di, d, r, {"expected_cost": res.expected_cost, "p_optimal": res.p_optimal,
                                   "p_top_k": res.p_top_k, "best_accuracy": res.best_accuracy,
                                   "train_accuracy": mp["train_accuracy"], "iterations": res.iterations})
            self.bar.update(max(0, self.per_restart - res.iterations))

        train_exact(self.land, d, restarts=self.R, start=start, seed=cfg["seed"] + 1000 * d,
                    ansatz=cfg["ansatz"], optimizer=cfg["optimizer"], max_iter=cfg["max_iter"],
                    learning_rate=cfg["learning_rate"], engine=cfg["engine"], dtype=cfg["dtype"],
                    top_k=cfg["top_k"], callback=lambda rr, it, v: self.log(d, rr, it, v),
                    on_restart=on_restart, anneal=float(cfg["anneal"]),
                    anneal_stages=int(cfg["anneal_stages"]), stage_iters=int(cfg["stage_iters"]))

    def _train_shots(self, di: int, d: int, r: int) -> None:
        cfg = self.cfg
        if di not in self.backends:      # one backend per depth (a noisy Aer backend carries its seed)
            self.backends[di] = noisy_aer_backend(cfg["noise"], cfg["seed"]) if cfg["noise"] else cfg["backend"]
        sres = train_shots(self.land, d, self.backends[di], shots=int(cfg["shots"]), steps=cfg["steps"],
                           learning_rate=cfg["learning_rate"], gradient=cfg["gradient"],
                           ansatz=cfg["ansatz"], seed=cfg["seed"] + 1000 * d + r,
                           callback=lambda it, v: self.log(d, r, it, v))
        mp = sres["most_probable"]
        # shot mode: fractions and accuracies from the final samples
        self.finish(di, d, r, {"expected_cost": sres["expected_cost"], "p_optimal": sres["p_optimal_sampled"],
                               "p_top_k": sres["p_top_k_sampled"], "best_accuracy": mp["test_accuracy"],
                               "train_accuracy": mp["train_accuracy"], "iterations": sres["steps"]})

    def table(self) -> dict:
        """Per depth, the metrics of each restart."""
        return {d: [dict(zip(METRIC_KEYS, self.vals[di, r].tolist())) for r in range(self.R)]
                for di, d in enumerate(self.depths)}


def _summary(task_name: str, cfg: dict, land, depths: list[int], table: dict) -> dict:
    per_depth = {}
    for d in depths:
        rows = table[d]
        best = min(rows, key=lambda q: q["expected_cost"])
        per_depth[str(d)] = {
            "optimal_cost": land.optimum,
            "expected_cost": float(np.mean([q["expected_cost"] for q in rows])),
            "expected_cost_best": best["expected_cost"],
            "p_optimal": float(np.mean([q["p_optimal"] for q in rows])),
            "p_optimal_restarts": [q["p_optimal"] for q in rows],
            "p_top_k": float(np.mean([q["p_top_k"] for q in rows])),
            "best_accuracy": best["best_accuracy"],
            "most_probable_train_accuracy": best["train_accuracy"],
        }
    summary = {"task": task_name, "depths": depths, "mode": "shots" if int(cfg["shots"]) else "exact",
               "depth_counts": "layer steps", "optimal_cost": land.optimum, "n_optimal": int(len(land.optimal_set())),
               "top_k": int(cfg["top_k"]), "per_depth": per_depth}
    for key in ("expected_cost", "p_optimal", "p_top_k", "best_accuracy"):
        summary[key] = [per_depth[str(d)][key] for d in depths]
    return summary


def run_hypernet(cfg: dict, out=None, progress: bool = False) -> dict:
    """Run the configured sweep (see module docstring) through the driver loop, one (depth, restart)
    per step; returns the summary dict (the same keys with or without ``out``). A run directory that
    holds finished restarts resumes after them, with the same numbers."""
    _validate(cfg)
    task = _make_task(cfg)
    land = compute_landscape(task, dtype=cfg["landscape_dtype"], progress=progress)
    depths = [int(d) for d in cfg["depths"]]
    warm = int(cfg["anneal_stages"]) * int(cfg["stage_iters"]) if float(cfg["anneal"]) > 0 else 0
    per_restart = int(cfg["steps"]) if int(cfg["shots"]) else warm + int(cfg["max_iter"])
    with open_run(out, "hypernet", cfg) as run:
        bar = Progress(len(depths) * int(cfg["restarts"]) * per_restart, desc=f"hypernet {task.name}",
                       enabled=progress)
        sweep = _Sweep(cfg, land, depths, run, bar, per_restart)
        _, state, _ = resume(run, sweep.snapshot())
        start = sweep.restore(state)
        bar.update(start * per_restart)
        try:
            run_loop(sweep.step, state, len(sweep.units), start=start, run=run, log_every=None,
                     nan_keys=("expected_cost",), max_nan_steps=1,
                     nan_hint="A restart's expected cost is not finite: try dtype=float64.")
        finally:
            bar.close()
        table = sweep.table()
        if out is not None and len(depths) > 1:
            _plot(run.path / "success_vs_depth.png", depths, table, land.optimum)
        return run.write_summary(steps=sweep.count + 1, **_summary(task.name, cfg, land, depths, table))


def _compilation_cache() -> None:
    """Keep JAX's compiled layered simulators between runs, under the qsim cache directory."""
    try:
        jax.config.update("jax_compilation_cache_dir", str(settings.get().cache_dir / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)
    except Exception:  # pragma: no cover - older/newer jax without these options
        pass


def run(args) -> int:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    _compilation_cache()
    cfg = resolve_config(DEFAULTS, args, cli_keys=["task", "classes", "depths", "restarts", "ansatz", "optimizer",
                                                   "max_iter", "anneal", "backend", "shots", "gradient", "steps",
                                                   "noise"])
    if isinstance(cfg["depths"], int):
        cfg["depths"] = [cfg["depths"]]
    summary = run_hypernet(cfg, out=args.out, progress=not args.no_progress)
    for d, pd in summary["per_depth"].items():
        print(f"depth {d}: expected cost {pd['expected_cost']:.6g} (optimum {pd['optimal_cost']:.6g}), "
              f"p_optimal {pd['p_optimal']:.3f}, best accuracy {pd['best_accuracy']:.3f}")
    if args.out:
        print(f"run directory: {args.out}")
    return 0
