"""FR-QVMC vs WQMC on one molecule at equal steps, walkers, network, optimiser and seed.

    python benchmarks/vmc.py                                  # LiH, SR, full settings (long on a CPU)
    python benchmarks/vmc.py --optimizers singd,sr,adam       # one FR/WQMC pair per optimiser
    python benchmarks/vmc.py --quick                          # reduced: fewer steps/walkers
    python benchmarks/vmc.py --system Be --steps 2000

For each optimiser and objective it runs ``vmc.train.train`` into
benchmarks/results/vmc_runs/<system>_<objective>_<optimizer>/ (resumable: an interrupted run
continues from its last checkpoint; a completed run with the same steps is read from its
summary.json, not re-run; ``--fresh`` starts over). Both objectives of a pair get the same
optimiser, learning rate and schedule lr / (1 + 2t/T) (the reference code's), except SR, whose
WQMC learning rate defaults to vmc.optimizers.WQMC_SR_LEARNING_RATE (docs/vmc.md, WQMC section).

Reported per run: final energy error with its blocking error bar and the local-energy variance of
the final evaluation (fixed parameters), the median seconds per step and the wall time. Reported
per pair, at equal steps over the whole run: the ratio Var_WQMC / Var_FR of the per-step
local-energy variances in ``--windows`` windows of steps (geometric mean over the window's steps,
error bar from blocking the per-step log-variances), and the same ratio for the final evaluation.
Writes benchmarks/results/vmc_fr_vs_wqmc.json and .png. Targets from the issue: LiH within 1.6 mHa
in <= 30 min on this 2-core CPU; WQMC variance >= 3x lower than FR's at equal steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OBJECTIVES = ("fisher_rao", "wasserstein")
# learning rate per optimiser, the same for both objectives (None: vmc's default for the objective)
LEARNING_RATES = {"sr": None, "singd": 2e-2, "adam": 3e-3, "lamb": 3e-3, "sgd": 1e-2}


def window_ratios(var_w, var_fr, n_windows: int) -> list[dict]:
    """Var_W / Var_FR per window of equal steps: exp(mean log var_W - mean log var_FR) with a
    1-sigma error from blocking each per-step log-variance series (independent runs)."""
    from vmc.stats import blocking_stderr

    n = min(len(var_w), len(var_fr))
    out = []
    for k in range(n_windows):
        sl = slice(k * n // n_windows, (k + 1) * n // n_windows)
        lw, lf = np.log(var_w[sl]), np.log(var_fr[sl])
        d = float(np.nanmean(lw) - np.nanmean(lf))
        err = float(np.hypot(blocking_stderr(lw), blocking_stderr(lf)))
        out.append({"steps": [sl.start, sl.stop], "ratio_w_over_fr": float(np.exp(d)),
                    "ratio_err": float(np.exp(d) * err), "var_fr": float(np.exp(np.nanmean(lf))),
                    "var_w": float(np.exp(np.nanmean(lw)))})
    return out


def plot(record: dict, runs_dir: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qsim.infra.runs import read_metrics

    pairs = record["pairs"]
    fig, axes = plt.subplots(3, len(pairs), figsize=(4.5 * len(pairs), 9), squeeze=False, sharex="col")
    for j, (opt, pair) in enumerate(pairs.items()):
        for obj, colour in zip(OBJECTIVES, ("C0", "C3")):
            if obj not in pair["runs"]:
                continue
            m = read_metrics(ROOT / pair["runs"][obj]["run_dir"])
            k = max(1, len(m["step"]) // 100)
            smooth = lambda v: np.convolve(v, np.ones(k) / k, mode="valid")
            ref = pair["runs"][obj]["reference_energy"]
            axes[0, j].semilogy(smooth(np.abs(m["energy"] - ref) * 1e3), colour, label=obj)
            axes[1, j].semilogy(np.exp(smooth(np.log(m["variance"]))), colour, label=obj)
        axes[0, j].set_title(f"{record['system']}, {opt}")
        axes[0, j].set_ylabel("|E - E_ref| (mHa), running mean")
        axes[1, j].set_ylabel("Var E_loc (Ha²), running geo. mean")
        axes[0, j].legend()
        w = pair.get("windows") or []
        if w:
            mid = [0.5 * (x["steps"][0] + x["steps"][1]) for x in w]
            axes[2, j].errorbar(mid, [x["ratio_w_over_fr"] for x in w], [x["ratio_err"] for x in w], fmt="o-")
            axes[2, j].axhline(1.0, color="k", lw=0.5)
            axes[2, j].axhline(1 / 3, color="g", lw=0.5, ls="--", label="target 1/3")
            axes[2, j].set_yscale("log")
            axes[2, j].legend()
        axes[2, j].set_ylabel("Var_WQMC / Var_FR at equal steps")
        axes[2, j].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default="LiH")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--walkers", type=int, default=None)
    ap.add_argument("--optimizers", "--optimizer", default="sr", help="comma-separated; one FR/WQMC pair each")
    ap.add_argument("--lr", type=float, default=None, help="learning rate of both objectives (default: per optimiser)")
    ap.add_argument("--wqmc-lr", type=float, default=None, help="WQMC's learning rate if it must differ from --lr")
    ap.add_argument("--wqmc-damping", type=float, default=None,
                    help="WQMC's SR/SINGD damping if it must differ from train's default (1e-3)")
    ap.add_argument("--decay", type=float, default=None, help="lr / (1 + t/decay); default steps/2 (lr/(1 + 2t/T))")
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pretrain-steps", type=int, default=None)
    ap.add_argument("--eval-steps", type=int, default=None, help="final evaluation rounds (default 300)")
    ap.add_argument("--windows", type=int, default=10, help="windows of steps for the variance ratio")
    ap.add_argument("--quick", action="store_true", help="reduced settings (a few minutes per run)")
    ap.add_argument("--fresh", action="store_true", help="delete earlier runs instead of resuming them")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    from vmc import train
    from qsim.infra.runs import read_metrics

    out = Path(args.out)
    json_path = out / "vmc_fr_vs_wqmc.json"
    steps = args.steps or (300 if args.quick else 2000)
    walkers = args.walkers or (128 if args.quick else 256)
    decay = args.decay if args.decay is not None else steps / 2
    pre = args.pretrain_steps if args.pretrain_steps is not None else (50 if args.quick else 200)
    cfg = {"system": args.system, "steps": steps, "walkers": walkers, "seed": args.seed,
           "network": {"kind": "ferminet", "hidden": [[32, 8], [32, 8]], "n_det": 4, "jastrow": True},
           "pretrain": {"steps": pre},
           "mcmc": {"steps": 10, "burn_in": 100},
           "eval": {"steps": args.eval_steps or (100 if args.quick else 300)},
           "checkpoint_every": 100}
    runs_dir = out / "vmc_runs"
    optimizers = args.optimizers.split(",")
    for opt in optimizers:
        if opt not in LEARNING_RATES:
            raise ValueError(f"unknown optimizer {opt!r}; choose from {', '.join(LEARNING_RATES)}")
    new_runs: dict[str, dict] = {}
    for opt in optimizers:
        lr = args.lr if args.lr is not None else LEARNING_RATES[opt]
        for obj in args.objectives.split(","):
            run_dir = runs_dir / f"{args.system}_{obj}_{opt}"
            if args.fresh and run_dir.exists():
                shutil.rmtree(run_dir)
            obj_lr = args.wqmc_lr if (obj != "fisher_rao" and args.wqmc_lr is not None) else lr
            optim = {"learning_rate": obj_lr, "decay": decay}
            if obj != "fisher_rao" and args.wqmc_damping is not None:
                optim["damping"] = args.wqmc_damping
            run_cfg = {**cfg, "objective": obj, "optimizer": opt, "optim": optim}
            t0 = time.perf_counter()
            load_start = os.getloadavg()
            done = run_dir / "summary.json"
            summary = json.loads(done.read_text()) if done.exists() else {}
            trained = not (summary.get("status") == "completed" and summary.get("steps") == steps
                           and summary.get("energy") is not None)
            if trained:
                summary = train.train(run_cfg, out=str(run_dir), progress=sys.stderr.isatty())
            m = read_metrics(run_dir)
            run_record = json.loads((run_dir / "config.json").read_text())
            new_runs.setdefault(opt, {})[obj] = {
                "energy": summary.get("energy"), "energy_stderr": summary.get("energy_stderr"),
                "error_mha": summary.get("error_mha"), "variance": summary.get("variance"),
                "median_step_time_s": float(np.nanmedian(m["step_time_s"][1:])),
                "wall_time_s": summary.get("wall_time_s"), "this_invocation_s": time.perf_counter() - t0,
                "reference_energy": summary.get("reference_energy"),
                "run_dir": os.path.relpath(run_dir, ROOT), "optim": run_record["config"]["optim"],
                "load_average_start": load_start, "load_average_end": os.getloadavg(),
                "device": run_record.get("device_kind"), "trained_this_invocation": trained,
            }
    # merged only now: a side-by-side invocation (the other objective) may have finished meanwhile
    old = json.loads(json_path.read_text()) if json_path.exists() else {}
    same = old.get("system") == args.system and old.get("config") == cfg
    pairs = dict(old.get("pairs", {})) if same else {}
    for opt, runs in new_runs.items():
        pair = pairs.get(opt, {"runs": {}})
        for obj, r in runs.items():
            before = pair["runs"].get(obj, {})
            if not r["trained_this_invocation"] and "load_average_start" in before:
                for k in ("load_average_start", "load_average_end", "this_invocation_s"):
                    r[k] = before[k]  # a run read back keeps the load of the invocation that ran it
            pair["runs"][obj] = r
        if all(o in pair["runs"] for o in OBJECTIVES):
            mw = read_metrics(ROOT / pair["runs"]["wasserstein"]["run_dir"])
            mf = read_metrics(ROOT / pair["runs"]["fisher_rao"]["run_dir"])
            pair["windows"] = window_ratios(mw["variance"], mf["variance"], args.windows)
            pair["final_eval_ratio_w_over_fr"] = (pair["runs"]["wasserstein"]["variance"]
                                                  / pair["runs"]["fisher_rao"]["variance"])
        pairs[opt] = pair
    record = {"system": args.system, "config": cfg, "pairs": pairs,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_average_at_end": os.getloadavg()},
              "targets": {"error_mha_max": 1.6, "wall_time_s_max": 1800, "variance_ratio_w_over_fr_max": 1 / 3}}
    out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(record, indent=2))
    plot(record, runs_dir, out / "vmc_fr_vs_wqmc.png")
    print(f"\n{args.system}: {steps} steps, {walkers} walkers, seed {args.seed}")
    print(f"{'optimizer':<8}{'objective':<13}{'E (Ha)':>14}{'err (mHa)':>16}{'Var E_loc':>12}{'s/step':>9}{'wall s':>9}")
    for opt, pair in pairs.items():
        for n, r in pair["runs"].items():
            err = "n/a" if r["error_mha"] is None else f"{r['error_mha']:+.2f}±{1e3 * r['energy_stderr']:.2f}"
            print(f"{opt:<8}{n:<13}{r['energy']:>14.6f}{err:>16}{r['variance']:>12.3e}"
                  f"{r['median_step_time_s']:>9.3f}{(r['wall_time_s'] or float('nan')):>9.0f}")
        if "windows" in pair:
            w = " ".join(f"{x['ratio_w_over_fr']:.2f}±{x['ratio_err']:.2f}" for x in pair["windows"])
            print(f"  Var_W/Var_FR per window of steps: {w}; final evaluation "
                  f"{pair['final_eval_ratio_w_over_fr']:.2f} (target <= 0.33)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
