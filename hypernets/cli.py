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
import sys

from .train import ANNEAL_T0
from qsim.infra.cli import add_common_arguments
import qsim
import numpy as np
from qsim.infra.runs import RunDir
from tqdm import tqdm
import os
import jax
from qsim.infra.cli import resolve_config
import signal

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
    if not cfg["depths"] or any((not isinstance(d, int)) or d < 1 for d in cfg["depths"]):
        raise ValueError(f"depths must be positive ints, got {cfg['depths']!r}")
    if int(cfg["restarts"]) < 1:
        raise ValueError(f"restarts must be >= 1, got {cfg['restarts']}")
    if int(cfg["shots"]) < 0:
        raise ValueError(f"shots must be >= 0 (0 = exact), got {cfg['shots']}")
    if cfg["noise"] < 0 or cfg["noise"] > 0.1:
        raise ValueError(f"noise must be in [0, 0.1], got {cfg['noise']}")
    if cfg["noise"] and not str(cfg["backend"]).startswith("qiskit:aer"):
        raise ValueError(f"noise applies to the qiskit:aer backend, not {cfg['backend']!r}")
    if cfg["noise"] and not cfg["shots"]:
        raise ValueError("noise needs shot mode (--shots S)")
    if not (float(cfg["anneal"]) >= 0 and math.isfinite(float(cfg["anneal"]))):
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
    from .tasks import get_task

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


def run_hypernet(cfg: dict, out=None, progress: bool = False) -> dict:
    """Run the configured sweep (see module docstring); returns the summary dict."""


    from .landscape import compute_landscape
    from .train import train_exact, train_shots

    _validate(cfg)
    task = _make_task(cfg)
    land = compute_landscape(task, dtype=cfg["landscape_dtype"], progress=progress)
    depths = [int(d) for d in cfg["depths"]]
    R = int(cfg["restarts"])
    shots = int(cfg["shots"])
    opt = land.optimal_set()
    warm = int(cfg["anneal_stages"]) * int(cfg["stage_iters"]) if float(cfg["anneal"]) > 0 else 0
    n_total = len(depths) * R * (warm + int(cfg["max_iter"]) if not shots else int(cfg["steps"]))

    def body(run):
        table = {d: [] for d in depths}
        done = np.zeros((len(depths), R), bool)
        vals = np.full((len(depths), R, len(METRIC_KEYS)), np.nan)
        step = [0]
        if run is not None:
            restored = run.load_checkpoint({"done": done, "vals": vals, "step": np.zeros((), np.int64)})
            if restored is not None:
                done, vals, st = restored[1]["done"], restored[1]["vals"], restored[1]["step"]
                step[0] = int(st)
        bar = None
        if progress:
            bar = tqdm(total=n_total, desc=f"hypernet {task.name}", unit="it")
        log_every = max(1, int(cfg["log_every"]))
        last_it = {}

        def log(depth, restart, it, value, **final):
            step[0] += 1
            if run is not None and (it % log_every == 0 or final):
                run.log_metrics(step[0], depth=depth, restart=restart, iteration=it, expected_cost=value,
                                **{k: final.get(k) for k in ("p_optimal", "p_top_k", "best_accuracy")})
            if bar is not None and not final:       # the annealed warm-up reports once per stage
                bar.update(max(1, it - last_it.get((depth, restart), 0)))
                last_it[(depth, restart)] = it

        def finish(di, d, r, row):
            log(d, r, -1, row["expected_cost"], p_optimal=row["p_optimal"], p_top_k=row["p_top_k"],
                best_accuracy=row["best_accuracy"])
            table[d].append(row)
            vals[di, r] = [row[k] for k in METRIC_KEYS]
            done[di, r] = True
            if run is not None:
                run.save_checkpoint(step[0], {"done": done, "vals": vals, "step": np.asarray(step[0])})

        per_restart = n_total // (len(depths) * R)
        for di, d in enumerate(depths):
            start = 0
            while start < R and done[di, start]:       # restarts finish in order: resume after the last
                table[d].append(dict(zip(METRIC_KEYS, vals[di, start].tolist())))
                start += 1
                if bar is not None:
                    bar.update(per_restart)
            if start == R:
                continue
            if not shots:
                def on_restart(r, res, di=di, d=d):
                    mp = res.most_probable[0]
                    finish(di, d, r, {"expected_cost": res.expected_cost, "p_optimal": res.p_optimal,
                                      "p_top_k": res.p_top_k, "best_accuracy": res.best_accuracy,
                                      "train_accuracy": mp["train_accuracy"], "iterations": res.iterations})
                    if bar is not None:
                        bar.update(max(0, per_restart - res.iterations))

                train_exact(land, d, restarts=R, start=start, seed=cfg["seed"] + 1000 * d,
                            ansatz=cfg["ansatz"], optimizer=cfg["optimizer"], max_iter=cfg["max_iter"],
                            learning_rate=cfg["learning_rate"], engine=cfg["engine"], dtype=cfg["dtype"],
                            top_k=cfg["top_k"], callback=lambda rr, it, v, d=d: log(d, rr, it, v),
                            on_restart=on_restart, anneal=float(cfg["anneal"]),
                            anneal_stages=int(cfg["anneal_stages"]), stage_iters=int(cfg["stage_iters"]))
                continue
            backend = cfg["backend"]
            if cfg["noise"]:
                backend = noisy_aer_backend(cfg["noise"], cfg["seed"])
            for r in range(start, R):
                sres = train_shots(land, d, backend, shots=shots, steps=cfg["steps"],
                                   learning_rate=cfg["learning_rate"], gradient=cfg["gradient"],
                                   ansatz=cfg["ansatz"], seed=cfg["seed"] + 1000 * d + r,
                                   callback=lambda it, v, d=d, r=r: log(d, r, it, v))
                mp = sres["most_probable"]
                # shot mode: fractions and accuracies from the final samples
                finish(di, d, r, {"expected_cost": sres["expected_cost"], "p_optimal": sres["p_optimal_sampled"],
                                  "p_top_k": sres["p_top_k_sampled"], "best_accuracy": mp["test_accuracy"],
                                  "train_accuracy": mp["train_accuracy"], "iterations": sres["steps"]})
        if bar is not None:
            bar.close()

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
        summary = {"task": task.name, "depths": depths, "mode": "shots" if shots else "exact",
                   "depth_counts": "layer steps", "optimal_cost": land.optimum, "n_optimal": int(len(opt)),
                   "top_k": int(cfg["top_k"]), "per_depth": per_depth}
        for key in ("expected_cost", "p_optimal", "p_top_k", "best_accuracy"):
            summary[key] = [per_depth[str(d)][key] for d in depths]
        if run is not None and len(depths) > 1:
            _plot(run.path / "success_vs_depth.png", depths, table, land.optimum)
        return summary

    if out is None:
        return body(None)
    with RunDir.open(out, command="hypernet", config=cfg) as run:
        summary = body(run)
        return run.write_summary(**summary)


def run(args) -> int:

    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


    cache = os.path.join(os.environ.get("QSIM_CACHE") or os.path.expanduser("~/.cache/qsim"), "jax")
    try:  # the layered simulators take a while to compile: keep them between runs
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)
    except Exception:  # pragma: no cover - older/newer jax without these options
        pass
    cfg = resolve_config(DEFAULTS, args, cli_keys=["task", "classes", "depths", "restarts", "ansatz", "optimizer",
                                                   "max_iter", "anneal", "backend", "shots", "gradient", "steps", "noise"])
    if isinstance(cfg["depths"], int):
        cfg["depths"] = [cfg["depths"]]
    progress = not args.no_progress and sys.stderr.isatty()

    def _term(signum, frame):  # SIGTERM -> the run directory records "interrupted", like Ctrl-C
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, _term)
    except ValueError:  # not in the main thread
        pass
    summary = run_hypernet(cfg, out=args.out, progress=progress)
    for d, pd in summary["per_depth"].items():
        print(f"depth {d}: expected cost {pd['expected_cost']:.6g} (optimum {pd['optimal_cost']:.6g}), "
              f"p_optimal {pd['p_optimal']:.3f}, best accuracy {pd['best_accuracy']:.3f}")
    if args.out:
        print(f"run directory: {args.out}")
    return 0
