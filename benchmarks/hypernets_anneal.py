"""Exact-mode training strategies on the Gaussian hypernetwork task, side by side: mean p_optimal over restarts.

    python benchmarks/hypernets_anneal.py --depths 3,6 --strategies plain,ent:0.01,log,logent:0.3 \
        --restarts 10 --iters 800 --stages 8 --final 400 --out benchmarks/results/hypernets_anneal.json

Strategies (each followed by ``--final`` plain L-BFGS iterations on the Born expectation sum_b p(b) C(b)):
``plain`` (L-BFGS on sum p C for ``--iters``), ``log`` (on sum p log C), ``ent:T0`` (``--stages`` stages on
sum p C + T sum p log p, T falling from T0 to T0/100), ``logent:T0`` (the same on log C: what
``qsim hypernet --anneal T0`` / ``train_exact(anneal=T0)`` does). All restarts run batched (optax.lbfgs
under vmap, fresh memory every 100 iterations), from the CLI's initial angles (key fold_in(key(1000 d), r)).
Minutes on a GPU; hours on this 2-core CPU. Measured on an H100: benchmarks/results/hypernets_anneal.json."""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

from hypernets.ansatz import init_params, make_ansatz, make_probs_fn  # noqa: E402
from hypernets.landscape import compute_landscape  # noqa: E402
from hypernets.tasks import get_task  # noqa: E402
from hypernets.train import anneal_temperatures, make_anneal_stage  # noqa: E402

STAGE = 100      # L-BFGS iterations per stage (fresh memory each stage)


def schedule(strategy: str, iters: int, stages: int, final: int):
    """[(log_cost, T, iterations)] for one strategy, ending with ``final`` plain iterations."""
    kind, _, t0 = strategy.partition(":")
    if kind in ("ent", "logent"):
        steps = [(kind == "logent", float(t), iters // stages) for t in anneal_temperatures(float(t0), stages)]
    elif kind in ("plain", "log"):
        steps = [(kind == "log", 0.0, iters)]
    else:
        raise ValueError(f"unknown strategy {strategy!r} (plain, log, ent:T0, logent:T0)")
    return steps + [(False, 0.0, final)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", default="3,6")
    ap.add_argument("--strategies", default="plain,ent:0.01,log,logent:0.3")
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--iters", type=int, default=800)
    ap.add_argument("--stages", type=int, default=8)
    ap.add_argument("--final", type=int, default=400)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hypernets_anneal.json"))
    a = ap.parse_args(argv)

    land = compute_landscape(get_task("gaussian", seed=0), dtype="float64")
    cost = np.asarray(land.cost, np.float64)
    optset = land.optimal_set()
    print(f"gaussian task: {land.num_bits} bits, optimum {land.optimum:.6g}, {len(optset)} tied optima", flush=True)
    results = {}
    for depth in [int(d) for d in a.depths.split(",")]:
        circ = make_ansatz("brickwork", land.num_bits, depth)
        probs_fn = make_probs_fn("brickwork", land.num_bits, depth)
        stages = {True: make_anneal_stage(probs_fn, cost, STAGE, log=True),
                  False: make_anneal_stage(probs_fn, cost, STAGE, log=False)}
        X0 = jnp.stack([init_params(jax.random.fold_in(jax.random.key(1000 * depth), r), circ, jnp.float64)
                        for r in range(a.restarts)])
        for strat in a.strategies.split(","):
            t0 = time.perf_counter()
            X = X0
            for use_log, t, it in schedule(strat, a.iters, a.stages, a.final):
                for _ in range(max(1, it // STAGE)):
                    X, _ = stages[use_log](X, jnp.asarray(t))
            P = np.asarray(jax.vmap(probs_fn)(X))
            pop, ec = P[:, optset].sum(1), P @ cost
            dt = time.perf_counter() - t0
            results[f"d{depth}_{strat}"] = {"depth": depth, "strategy": strat, "p_optimal": pop.tolist(),
                                            "mean_p_optimal": float(pop.mean()), "expected_cost": ec.tolist(),
                                            "seconds": dt}
            print(f"depth {depth} {strat:12s} mean p_opt {pop.mean():.3f}  per restart {np.round(pop, 2).tolist()}  "
                  f"E/opt median {np.median(ec) / land.optimum:.2f}  {dt:.0f}s", flush=True)
            Path(a.out).write_text(json.dumps({"devices": [str(d) for d in jax.devices()], "command": " ".join(sys.argv),
                                               "results": results}, indent=1))


if __name__ == "__main__":
    main()
