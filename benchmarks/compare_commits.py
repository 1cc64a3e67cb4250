"""Old commit against new, side by side in one run: does a refactoring keep every benchmark's speed?

    python benchmarks/compare_commits.py --old 6d72fed --new HEAD [--rounds 3] [--quick]

Each revision is checked out into its own git worktree (under ``--workdir``) and imported from there
(``PYTHONPATH``, run from a neutral folder so no ``qsim/`` checkout shadows it). Every workload runs in a
fresh subprocess per revision and round, old and new interleaved (old, new, new, old, ...), so machine
load hits both alike. A workload times qsim's own part of a benchmark, the part a refactoring can
change, with the public API both revisions share:

- ``statevector.py``: <H> of 10 layers RY + CNOT chain and of a random 1-/2-qubit circuit, forward and
  value+grad (complex128), at 12 qubits (scan engine) and 20 qubits (native engine);
- ``vmc.py`` / ``deepqmc.py``: the median training-step time of ``vmc.train.train`` on LiH (FermiNet,
  128 walkers, float64) from its metrics table;
- ``hypernets.py``: value+grad of the exact-mode objective (17 qubits, 4 layer steps) with the
  specialised engine and with ``qsim.probs``.

The peers' times do not change between revisions, so a benchmark's ratio moves exactly as qsim's time
does: ``new / old`` per workload (median over rounds) is the ratio's change. Results:
``benchmarks/results/compare_commits.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_TIMER = r'''
import json, sys, time
import numpy as np
def med(fn, repeats):
    fn()  # compile
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts))
'''

WORKLOADS = {
    "statevector": r'''
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
import qsim
def layers(n, L=10):
    c = qsim.Circuit(n)
    for _ in range(L):
        for w in range(n): c.ry(w)
        for w in range(n - 1): c.cnot(w, w + 1)
    return c
def random_circuit(n, depth, seed=1):
    rng = np.random.default_rng(seed); c = qsim.Circuit(n)
    for _ in range(depth):
        for w in range(n):
            g = rng.integers(3); [c.rx, c.ry, c.rz][g](w)
        perm = rng.permutation(n)
        for a, b in zip(perm[::2], perm[1::2]): c.cz(int(a), int(b))
    return c
out = {}
for n in SIZES:
    H = sum((qsim.Z(w) @ qsim.Z(w + 1) for w in range(n - 1)), qsim.X(0))
    for case, c in (("layers", layers(n)), ("random", random_circuit(n, 10))):
        p = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, c.num_params))
        f = jax.jit(lambda q, c=c: qsim.expval(c, q, H))
        g = jax.jit(jax.value_and_grad(lambda q, c=c: qsim.expval(c, q, H)))
        out[f"{case}_{n}q_forward"] = med(lambda: f(p).block_until_ready(), REPEATS)
        out[f"{case}_{n}q_value_grad"] = med(lambda: jax.block_until_ready(g(p)), REPEATS)
print(json.dumps(out))
''',
    "vmc": r'''
import csv, tempfile
from vmc.train import train
out = {}
with tempfile.TemporaryDirectory() as d:
    cfg = {"system": "LiH", "steps": STEPS, "walkers": 128, "seed": 0, "pretrain": {"steps": 0},
           "eval": {"steps": 0}}
    train(cfg, out=d + "/run")
    with open(d + "/run/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    out["vmc_LiH_step"] = float(np.median([float(r["step_time_s"]) for r in rows[5:]]))
print(json.dumps(out))
''',
    "hypernets": r'''
import jax, jax.numpy as jnp
from hypernets.train import make_exact_objective
n, depth = 17, 4
costs = np.random.default_rng(0).uniform(0, 1, 2 ** n)
out = {}
for engine in ("fast", "qsim"):
    vg, _, circuit = make_exact_objective(costs, n_qubits=n, depth=depth, engine=engine)
    x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, circuit.num_params), jnp.float32)
    out[f"exact_{n}q_{engine}_value_grad"] = med(lambda: jax.block_until_ready(vg(x)), REPEATS)
print(json.dumps(out))
''',
}


def worktree(rev: str, workdir: Path) -> tuple[str, Path]:
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    path = workdir / f"qsim_{sha}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True,
                       capture_output=True)
    return sha, path


def run_one(src: Path, name: str, params: dict, timeout: float) -> dict:
    code = _TIMER + "".join(f"{k} = {v!r}\n" for k, v in params.items()) + WORKLOADS[name]
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_WAIT_POLICY": "passive"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tempfile.gettempdir(), env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} at {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default="HEAD~1")
    ap.add_argument("--new", default="HEAD")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="12 and 16 qubits, 20 vmc steps, one round")
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="statevector widths (default 12 20)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per process (default 5)")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "qsim_compare"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compare_commits.json"))
    args = ap.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    params = {"SIZES": args.sizes or ([12, 16] if args.quick else [12, 20]),
              "REPEATS": args.repeats or (3 if args.quick else 5), "STEPS": 20 if args.quick else 40}
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    revs = dict([worktree(args.old, workdir), worktree(args.new, workdir)])
    (old_sha, old_src), (new_sha, new_src) = list(revs.items())
    times: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    t_start = time.time()
    for r in range(rounds):
        order = [("old", old_src), ("new", new_src)] if r % 2 == 0 else [("new", new_src), ("old", old_src)]
        for name in args.workloads:
            for label, src in order:
                res = run_one(src, name, params, timeout=1800)
                for k, v in res.items():
                    times[label].setdefault(k, []).append(v)
                print(f"round {r} {label:3s} {name}: " + ", ".join(f"{k}={v:.4g}s" for k, v in res.items()),
                      flush=True)
    rows = {}
    for k in times["new"]:
        o, n = statistics.median(times["old"][k]), statistics.median(times["new"][k])
        rows[k] = {"old_s": o, "new_s": n, "new_over_old": n / o, "within_15pct": abs(n / o - 1) <= 0.15}
    print(f"\n{'workload':36s} {'old s':>10s} {'new s':>10s} {'new/old':>8s}")
    for k, v in rows.items():
        print(f"{k:36s} {v['old_s']:10.4g} {v['new_s']:10.4g} {v['new_over_old']:8.3f}")
    record = {"old": old_sha, "new": new_sha, "rounds": rounds, "params": params, "rows": rows,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_avg": os.getloadavg()}, "wall_s": round(time.time() - t_start, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
