"""Time per step against device count: vmc walkers sharded over a 1-D mesh, and one evaluation of
a statevector sharded on its leading qubits (qsim.simulator.sharded), on 1, 2 and 4 devices.

Two measurements, both written to benchmarks/results/scaling.json:

- ``subprocess``: each device count in its own process with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=D`` (the flag is read when JAX starts), the
  processes alternating over rounds (1, 2, 4, 1, 2, 4, ...); per count the median over rounds of each
  process's median step time.
- ``interleaved``: one process with 4 forced devices, meshes of 1, 2 and 4 of them timed in turn,
  step by step (the fairest ratio on a shared machine).

On CPU the forced "devices" are threads of one machine: with 2 cores, more than 2 devices cannot
speed anything up, and sharding adds communication (copies) and a partitioned program. The point of
the CPU numbers is that the sharded code runs and what it costs; speed-ups need real devices (GPUs):
``--devices`` there is the same switch. The JSON records the machine, its core count and load.

    python benchmarks/scaling.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)  # the repository's vmc package, not benchmarks/vmc.py beside this script
OUT = os.path.join(ROOT, "benchmarks", "results", "scaling.json")

VMC = {"system": "He", "optimizer": "sr", "walkers": 256, "seed": 0, "pretrain": {"steps": 0},
       "network": {"hidden": [[32, 8], [32, 8]], "n_det": 4}, "mcmc": {"steps": 10, "burn_in": 10},
       "eval": {"steps": 0}}


def _vmc_setup(cfg):
    import jax
    import jax.numpy as jnp

    from vmc import train

    train.enable_x64()
    cfg = train.make_config(cfg)
    b = train.build(cfg)
    k_init, k_walk = jax.random.split(jax.random.PRNGKey(cfg["seed"]))
    p = b.wf.init(k_init)
    st = train.TrainState(p, b.optimizer.init(p), b.mol.initial_electrons(k_walk, cfg["walkers"]),
                          jnp.asarray(0.3), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    return train.make_train_step(b, cfg["mcmc"]["steps"]), st


def _circuit(n, layers):
    import qsim

    c = qsim.Circuit(n)
    for _ in range(layers):
        for w in range(n):
            c.ry(w)
            c.rz(w)
        for w in range(n - 1):
            c.cnot(w, w + 1)
    return c


def _timed(fn, reps):
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def worker(counts, vmc_cfg, n_qubits, layers, reps):
    """Time each device count in ``counts`` (meshes over this process's devices), interleaved."""
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from qsim.infra import meshes as distributed
    from qsim.simulator import sharded
    from qsim.simulator import statevector as sv

    step, st0 = _vmc_setup(vmc_cfg)
    c = _circuit(n_qubits, layers)
    params = jax.numpy.asarray(np.random.default_rng(0).normal(size=c.num_params))
    runs = {}
    for d in counts:
        mesh = distributed.make_mesh(d) if d > 1 else None
        st = distributed.place(st0, mesh=mesh) if mesh is not None else st0
        key = jax.random.PRNGKey(1)
        t0 = time.perf_counter()
        st, m = step(st, key)
        jax.block_until_ready(m["energy"])
        compile_vmc = time.perf_counter() - t0
        energy0 = float(m["energy"])
        # a second warm-up step: the returned state is committed to the mesh (the input may not be),
        # which may compile once more
        st, m = step(st, jax.random.PRNGKey(2))
        jax.block_until_ready(m["energy"])
        if d > 1:
            sim = lambda: sharded.simulate(c, params, mesh=mesh)  # noqa: E731
        else:
            sim = lambda: sv.simulate(c, params)  # noqa: E731
        t0 = time.perf_counter()
        jax.block_until_ready(sim())
        compile_sv = time.perf_counter() - t0
        runs[d] = {"state": st, "sim": sim, "vmc_s": [], "sv_s": [], "compile_vmc_s": compile_vmc,
                   "compile_sv_s": compile_sv, "energy0": energy0,
                   "n_swaps": sharded.plan(c, int(np.log2(d))).n_swaps if d > 1 else 0}
    for r in range(reps):  # interleaved: one step of each device count in turn
        for d in counts:
            R = runs[d]

            def one():
                R["state"], m = step(R["state"], jax.random.PRNGKey(100 + r))
                jax.block_until_ready(m["energy"])
            R["vmc_s"] += _timed(one, 1)
            R["sv_s"] += _timed(lambda: jax.block_until_ready(R["sim"]()), 1)
    out = {}
    for d in counts:
        R = runs[d]
        out[str(d)] = {"vmc_step_s": statistics.median(R["vmc_s"]), "vmc_step_s_all": R["vmc_s"],
                       "sv_eval_s": statistics.median(R["sv_s"]), "sv_eval_s_all": R["sv_s"],
                       "compile_vmc_s": R["compile_vmc_s"], "compile_sv_s": R["compile_sv_s"],
                       "first_energy": R["energy0"], "sv_swaps": R["n_swaps"]}
    return out


def _spawn(n_devices, args):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n_devices}"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    counts = [n_devices] if args.worker_counts is None else args.worker_counts
    cmd = [sys.executable, __file__, "--worker", ",".join(map(str, counts)), "--qubits", str(args.qubits),
           "--layers", str(args.layers), "--reps", str(args.reps), "--walkers", str(args.walkers)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3000)
    if res.returncode:
        raise RuntimeError(f"worker with {n_devices} devices failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and a smaller state")
    ap.add_argument("--counts", default="1,2,4")
    ap.add_argument("--rounds", type=int, default=2, help="subprocess rounds per device count")
    ap.add_argument("--reps", type=int, default=6, help="timed steps per device count and process")
    ap.add_argument("--qubits", type=int, default=18)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--walkers", type=int, default=256)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.worker_counts = None
    if args.quick:
        args.rounds, args.reps, args.qubits, args.walkers = 1, 3, 14, 64
    vmc_cfg = {**VMC, "walkers": args.walkers}
    if args.worker:
        counts = [int(x) for x in args.worker.split(",")]
        print(json.dumps(worker(counts, vmc_cfg, args.qubits, args.layers, args.reps)))
        return 0
    counts = [int(x) for x in args.counts.split(",")]
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    sub: dict[str, list] = {str(d): [] for d in counts}
    for r in range(args.rounds):
        for d in counts:
            sub[str(d)].append(_spawn(d, args)[str(d)])
            print(f"round {r} devices {d}: vmc step {sub[str(d)][-1]['vmc_step_s']:.3f} s, "
                  f"statevector {sub[str(d)][-1]['sv_eval_s']:.4f} s", flush=True)
    args.worker_counts = counts
    inter = _spawn(max(counts), args)
    args.worker_counts = None

    def med(rows, k):
        return statistics.median(row[k] for row in rows)

    base = {k: med(sub[str(counts[0])], k) for k in ("vmc_step_s", "sv_eval_s")}
    table = []
    for d in counts:
        rows = sub[str(d)]
        row = {"devices": d, "vmc_step_s": med(rows, "vmc_step_s"), "sv_eval_s": med(rows, "sv_eval_s"),
               "vmc_speedup_vs_1": base["vmc_step_s"] / med(rows, "vmc_step_s"),
               "sv_speedup_vs_1": base["sv_eval_s"] / med(rows, "sv_eval_s"),
               "interleaved_vmc_step_s": inter[str(d)]["vmc_step_s"],
               "interleaved_sv_eval_s": inter[str(d)]["sv_eval_s"],
               "interleaved_vmc_speedup_vs_1": inter[str(counts[0])]["vmc_step_s"] / inter[str(d)]["vmc_step_s"],
               "interleaved_sv_speedup_vs_1": inter[str(counts[0])]["sv_eval_s"] / inter[str(d)]["sv_eval_s"],
               "sv_swaps": inter[str(d)]["sv_swaps"],
               "first_energy": inter[str(d)]["first_energy"]}
        table.append(row)
    result = {
        "benchmark": "scaling",
        "what": (f"vmc train step ({vmc_cfg['system']}, FermiNet {vmc_cfg['network']['hidden']} x "
                 f"{vmc_cfg['network']['n_det']} dets, {vmc_cfg['optimizer']}, {vmc_cfg['walkers']} walkers, "
                 f"{vmc_cfg['mcmc']['steps']} MCMC moves per step) with walkers sharded over D devices; one "
                 f"{args.qubits}-qubit complex128 statevector evaluation ({args.layers} layers RY+RZ+CNOT chain) "
                 "sharded on its leading log2(D) qubits (D=1: the plain simulator)"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "devices": "forced host (CPU) devices",
                    "gpu": "none lent to this session; no GPU numbers"},
        "loadavg_start": load0, "loadavg_end": os.getloadavg(),
        "rounds": args.rounds, "reps": args.reps,
        "rows": table, "subprocess_runs": sub, "interleaved_run": inter,
        "note": ("CPU 'devices' here are threads of one 2-core machine shared with other jobs: more than 2 "
                 "cannot speed up and sharding adds copies and collectives, so speed-ups below 1 are expected. "
                 "first_energy equal across device counts shows the same numbers on 1, 2, 4 devices."),
        "wall_s": time.perf_counter() - t_start,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(result, f, indent=2)
    print(f"{'devices':>8} {'vmc step s':>11} {'x vs 1':>7} {'sv eval s':>10} {'x vs 1':>7}   (interleaved)")
    for row in table:
        print(f"{row['devices']:>8} {row['vmc_step_s']:>11.3f} {row['vmc_speedup_vs_1']:>7.2f} "
              f"{row['sv_eval_s']:>10.4f} {row['sv_speedup_vs_1']:>7.2f}   "
              f"{row['interleaved_vmc_speedup_vs_1']:.2f} / {row['interleaved_sv_speedup_vs_1']:.2f}")
    print(f"load average {load0} -> {os.getloadavg()}; wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
