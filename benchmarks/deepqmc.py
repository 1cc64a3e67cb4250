"""qsim vmc vs DeepQMC: seconds per training step on LiH (CPU), matched walkers and network, one run.

    python benchmarks/deepqmc.py --deepqmc-python /path/to/deepqmc-venv/bin/python
    python benchmarks/deepqmc.py --deepqmc-python ... --steps 40 --rounds 3 --walkers 256 \
        --precisions float64 mixed float32

DeepQMC's pins clash with ours (it needs jax < 0.9 and Python >= 3.12), so it runs from its own
virtual environment (see docs/vmc.md for the install recipe); qsim runs from this one. Each round runs
DeepQMC and qsim in each of ``--precisions`` (vmc.train's ``precision`` option) as subprocesses (so
all pay their compilation in the same way and none warms another's caches), in an order rotated from
round to round; the load average is recorded before and after each run.
Per-step times: a time stamp per iteration of each code's training loop, wall clock and the process's
CPU time (all threads): for DeepQMC per item of ``deepqmc.fit.fit_wf`` (it yields once per step and
the loop syncs on each), for qsim per call of vmc.train's step function (blocked until done; the loop
syncs on its metrics right after). Stamp to stamp covers a whole iteration of each loop, logging
included. qsim's own ``metrics.csv`` ``step_time_s`` is kept beside. The first ``--skip`` steps
(compilation) are dropped and the median of the rest is reported; the ratio is the median over rounds
of DeepQMC's s/step over qsim's, for wall time and for CPU time (CPU time is less sensitive to what
else runs on the machine, since waiting for a core does not count; but XLA's worker threads may spin
while they wait, which CPU time counts). ``--threads 1`` runs both codes with single-threaded XLA
(``XLA_FLAGS`` for both subprocesses) and writes ``deepqmc_1thread.json``: on a loaded machine the
per-step CPU time is then the work of one step. ``--blas-threads 1`` sets OPENBLAS_NUM_THREADS=1 (and
OMP/MKL) for both subprocesses (``deepqmc_blas1.json``): qsim's vmc.train limits OpenBLAS, which jaxlib's
CPU LAPACK kernels call, to one thread itself (its spinning workers fought XLA's pool); this option
gives DeepQMC the same, to check that the ratio does not come from DeepQMC running without it.
``--cpus 1`` pins both codes to one core (``deepqmc_1cpu.json``): with jax 0.10, qsim's XLA still runs
YNNPACK fusions on a second thread under ``--threads 1``, so that option alone is not single-core.

Matched settings: LiH (R = 3.015 bohr), ``--walkers`` walkers, 10 random-walk Metropolis moves per step
(DeepQMC's ``decorr_metropolis_ferminet`` sampler), no pretraining, a FermiNet-like network of the same
size on both sides (qsim's default FermiNet: 2 layers, one-electron width 32, two-electron width 8,
4 determinants; DeepQMC's ``ansatz=ferminet`` with embedding_dim 32, two_particle_stream_dim 8,
n_interactions 2, n_determinants 4), each code's default natural-gradient optimiser (DeepQMC: KFAC;
qsim: stochastic reconfiguration). DeepQMC runs in its default float32; qsim's rows: ``float64``
(everything), ``mixed`` (float32 MCMC and SR Jacobian/kernel, float64 local energies) and
``float32`` (the network evaluated in float32 everywhere, like DeepQMC; statistics in float64).
Writes benchmarks/results/deepqmc.json. Target from the issue: qsim >= 2x faster per step.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIH_COORDS = "[[0.0,0.0,0.0],[3.015,0.0,0.0]]"

QSIM_SNIPPET = """
import json, sys, time
import jax
from vmc import train
stamps, make = [], train.make_train_step
def make_timed(*a, **k):
    step = make(*a, **k)
    def timed(*args):
        out = jax.block_until_ready(step(*args))
        stamps.append((time.perf_counter(), time.process_time()))
        return out
    return timed
train.make_train_step = make_timed
cfg = json.loads(sys.argv[1])
s = train.train(cfg, out=sys.argv[2], log=lambda *a: None)
print(json.dumps({"n_parameters": s.get("n_parameters"), "stamps": stamps[:cfg["steps"]]}))
"""

# DeepQMC's training loop (deepqmc.train.train) iterates over deepqmc.fit.fit_wf, one item per step, and
# syncs on every item (it checks the step's log psi for NaN); a time stamp per item gives s/step.
DEEPQMC_SNIPPET = """
import json, sys, time
import deepqmc.train as T
stamps, fit_wf = [], T.fit_wf
def timed(*a, **k):
    for item in fit_wf(*a, **k):
        stamps.append((time.perf_counter(), time.process_time()))
        yield item
T.fit_wf = timed
out = sys.argv[1]
sys.argv = ["deepqmc"] + sys.argv[2:]
from deepqmc.app import cli
try:
    cli()
finally:
    open(out, "w").write(json.dumps(stamps))
"""


def _median_tail(values, skip):
    tail = [v for v in values[skip:] if v == v]
    return statistics.median(tail) if tail else float("nan")


def _median_over_rounds(record, name, key):
    return statistics.median(x[name][key] for x in record["rounds"])


def _per_step(stamps):
    """Wall and CPU seconds per step from (wall, cpu) stamps, one per finished step."""
    wall = [b[0] - a[0] for a, b in zip(stamps, stamps[1:])]
    cpu = [b[1] - a[1] for a, b in zip(stamps, stamps[1:])]
    return wall, cpu


def _git_head():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _xla_env(threads, blas_threads=None):
    """Environment for a subprocess: single-threaded XLA when ``threads == 1``; BLAS/LAPACK (OpenBLAS,
    which jaxlib's CPU LAPACK kernels call) on ``blas_threads`` threads when given."""
    env = dict(os.environ)
    if threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                            "intra_op_parallelism_threads=1").strip()
    if blas_threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(blas_threads)
    return env


def _pinned(cpus):
    """preexec_fn pinning a subprocess (and every thread it starts) to the first ``cpus`` cores."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cpus]))


def run_deepqmc(python: str, run_dir: Path, steps: int, walkers: int, seed: int, timeout: float,
                threads=None, blas_threads=None, cpus=None) -> dict:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    stamps_file = run_dir / "step_stamps.json"
    cmd = [python, "-c", DEEPQMC_SNIPPET, str(stamps_file), f"hydra.run.dir={run_dir}",
           "task=train_ferminet", "ansatz=ferminet",
           "task/sampler_factory/elec_sampler=decorr_metropolis_ferminet",
           f"task.steps={steps}", f"task.electron_batch_size={walkers}", "task.pretrain_steps=0",
           f"task.seed={seed}", "+task.max_eq_steps=100",
           f"hamil.mol.coords={LIH_COORDS}", "hamil.mol.unit=bohr",
           "ansatz.omni_factory.embedding_dim=32", "ansatz.n_determinants=4",
           "ansatz.omni_factory.gnn_factory.n_interactions=2",
           "ansatz.omni_factory.gnn_factory.two_particle_stream_dim=8"]
    env = {**_xla_env(threads, blas_threads), "JAX_PLATFORMS": "cpu"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, preexec_fn=_pinned(cpus))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"deepqmc failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    times = json.loads(stamps_file.read_text())
    per_step, per_step_cpu = _per_step(times)
    return {"per_step_s": per_step, "per_step_cpu_s": per_step_cpu, "wall_s": wall, "steps_logged": len(times),
            "n_parameters": _deepqmc_n_parameters(run_dir)}


def _deepqmc_n_parameters(run_dir: Path):
    """DeepQMC logs "Number of model parameters: N" in deepqmc.log; None if absent."""
    import re

    for f in sorted(run_dir.rglob("*.log")):
        m = re.search(r"model parameters:\s*([\d,]+)", f.read_text(errors="replace"))
        if m:
            return int(m.group(1).replace(",", ""))
    return None


def run_qsim(run_dir: Path, steps: int, walkers: int, seed: int, timeout: float, precision: str,
             threads=None, blas_threads=None, cpus=None) -> dict:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cfg = {"system": "LiH", "steps": steps, "walkers": walkers, "seed": seed, "objective": "fisher_rao",
           "optimizer": "sr", "network": {"kind": "ferminet", "hidden": [[32, 8], [32, 8]], "n_det": 4,
                                          "jastrow": True},
           "pretrain": {"steps": 0}, "mcmc": {"steps": 10, "burn_in": 100}, "eval": {"steps": 0},
           "checkpoint_every": 10**9, "precision": precision}
    env = {**_xla_env(threads, blas_threads), "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", QSIM_SNIPPET, json.dumps(cfg), str(run_dir)],
                          capture_output=True, text=True, env=env, timeout=timeout, preexec_fn=_pinned(cpus))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"qsim failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    with open(run_dir / "metrics.csv") as f:
        step_time_s = [float(r["step_time_s"]) for r in csv.DictReader(f)]
    per_step, per_step_cpu = _per_step(info["stamps"])
    return {"precision": precision, "per_step_s": per_step, "per_step_cpu_s": per_step_cpu,
            "metrics_step_time_s": step_time_s, "wall_s": wall, "n_parameters": info.get("n_parameters")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deepqmc-python", default=os.environ.get("DEEPQMC_PYTHON"),
                    help="python of the virtual environment that holds deepqmc (or $DEEPQMC_PYTHON)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--walkers", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip", type=int, default=5, help="first steps dropped (compilation)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precisions", nargs="+", default=["float64", "mixed", "float32"],
                    help="qsim precision modes, one qsim run each per round (vmc.train PRECISIONS)")
    ap.add_argument("--threads", type=int, default=None, choices=[1],
                    help="1: single-threaded XLA in both codes (default: XLA's own thread pool)")
    ap.add_argument("--blas-threads", type=int, default=None, choices=[1],
                    help="1: OpenBLAS (jaxlib's CPU LAPACK) on one thread in both codes through the environment "
                         "(qsim's vmc.train does this itself); default: each code's own setting")
    ap.add_argument("--cpus", type=int, default=None,
                    help="pin both codes to the first N cores (os.sched_setaffinity): with 1, every thread of "
                         "either code shares one core, whatever XLA's or YNNPACK's thread pools do")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per subprocess")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--work", default=None, help="folder for both codes' run directories (checkpoints, "
                    "logs; thrown away); default: a new temporary folder")
    args = ap.parse_args(argv)
    if not args.deepqmc_python or not Path(args.deepqmc_python).exists():
        raise SystemExit("--deepqmc-python (or $DEEPQMC_PYTHON) must name the python of a venv with deepqmc")
    if args.cpus is not None and not 1 <= args.cpus <= len(os.sched_getaffinity(0)):
        raise SystemExit(f"--cpus must be between 1 and {len(os.sched_getaffinity(0))}, got {args.cpus}")
    if args.steps <= args.skip + 2:
        raise SystemExit(f"--steps ({args.steps}) must exceed --skip + 2 ({args.skip + 2})")

    out = Path(args.out)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="qsim-vs-deepqmc-"))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))  # the vmc package, not benchmarks/vmc.py beside this script
    from vmc.train import PRECISIONS

    bad = [p for p in args.precisions if p not in PRECISIONS]
    if bad:
        raise SystemExit(f"unknown precision(s) {bad}; choose from {list(PRECISIONS)}")
    names = ["deepqmc"] + [f"qsim_{p}" for p in args.precisions]
    record = {"system": "LiH", "walkers": args.walkers, "steps": args.steps, "skip": args.skip,
              "precisions": args.precisions, "rounds": [], "target_ratio_min": 2.0, "xla_threads": args.threads,
              "blas_threads_env": args.blas_threads, "cpus": args.cpus,
              "qsim_commit": _git_head(),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    out.mkdir(parents=True, exist_ok=True)
    stem = "deepqmc" + ("" if args.threads is None else f"_{args.threads}thread") + (
        "" if args.blas_threads is None else f"_blas{args.blas_threads}") + (
        "" if args.cpus is None else f"_{args.cpus}cpu")
    json_path = out / f"{stem}.json"
    for r in range(args.rounds):
        row = {}
        order = names[r % len(names):] + names[:r % len(names)]  # rotated: no code always runs first
        for name in order:
            load0 = os.getloadavg()
            if name == "deepqmc":
                res = run_deepqmc(args.deepqmc_python, work / f"deepqmc_{r}", args.steps, args.walkers,
                                  args.seed, args.timeout, args.threads, args.blas_threads, args.cpus)
            else:
                res = run_qsim(work / f"{name}_{r}", args.steps, args.walkers, args.seed, args.timeout,
                               name.removeprefix("qsim_"), args.threads, args.blas_threads, args.cpus)
            res["median_s_per_step"] = _median_tail(res["per_step_s"], args.skip)
            res["median_cpu_s_per_step"] = _median_tail(res["per_step_cpu_s"], args.skip)
            res["load_before"], res["load_after"] = load0, os.getloadavg()
            row[name] = res
            print(f"round {r} {name}: {res['median_s_per_step']:.3f} s/step, {res['median_cpu_s_per_step']:.3f} "
                  f"CPU s/step (load {load0[0]:.1f})", flush=True)
        for name in names[1:]:
            row[f"ratio_deepqmc_over_{name}"] = row["deepqmc"]["median_s_per_step"] / row[name]["median_s_per_step"]
            row[f"cpu_ratio_deepqmc_over_{name}"] = (row["deepqmc"]["median_cpu_s_per_step"]
                                                     / row[name]["median_cpu_s_per_step"])
        record["rounds"].append(row)
        med = lambda key: statistics.median(x[key] for x in record["rounds"])
        record["median_s_per_step"] = {n: _median_over_rounds(record, n, "median_s_per_step") for n in names}
        record["median_cpu_s_per_step"] = {n: _median_over_rounds(record, n, "median_cpu_s_per_step") for n in names}
        record["median_ratio_deepqmc_over"] = {n: med(f"ratio_deepqmc_over_{n}") for n in names[1:]}
        record["median_cpu_ratio_deepqmc_over"] = {n: med(f"cpu_ratio_deepqmc_over_{n}") for n in names[1:]}
        json_path.write_text(json.dumps(record, indent=2))  # written after every round (resumable record)
    print("median over rounds (DeepQMC s/step over qsim's; >= 2 is the target):")
    for n in names[1:]:
        print(f"  {n}: {record['median_s_per_step'][n]:.3f} s/step, wall ratio "
              f"{record['median_ratio_deepqmc_over'][n]:.2f}x, CPU ratio {record['median_cpu_ratio_deepqmc_over'][n]:.2f}x")
    print(f"  deepqmc: {record['median_s_per_step']['deepqmc']:.3f} s/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
