"""kfac-jax's KFAC on the SINGD benchmark's networks: measured optimiser-state bytes and step time vs AdamW.

``benchmarks/singd.py`` compares SINGD with KFAC, but kfac-jax 0.0.8 fails on jax >= 0.9.2 (this project
runs jax 0.10), so this script runs in a SEPARATE venv and prints one JSON line on stdout for singd.py (or a
person) to read. Same networks, parameters and data as singd.py: both import ``benchmarks/_singd_models.py``.

    KFAC_PY=/path/to/kfac-venv/bin/python
    $KFAC_PY benchmarks/singd_kfac_peer.py --network mlp --batch 1024 [--repeats 5] [--expect-n-params 167178]

The venv (python 3.12; versions this was run with; flax 0.12.6 is the newest flax that keeps jax 0.8.3):

    python3.12 -m venv kfac-venv
    kfac-venv/bin/pip install "jax==0.8.3" "jaxlib==0.8.3" "kfac-jax==0.0.8" "optax==0.2.8" \\
        "dm-haiku==0.0.17" "chex==0.1.92" "flax==0.12.6"        # numpy 2.5.5 came with them

What it measures, with ``kfac_jax.Optimizer`` (options in the JSON's ``kfac_options``; fixed learning rate,
momentum and damping passed to every step, no adaptive learning rate / momentum / damping, l2_reg 0, no
burn-in, curvature estimate updated every step, inverses recomputed every ``--inverse-update-period`` steps
(default 10, as SINGD's T), estimation mode ``fisher_gradients`` as FermiNet uses, ``multi_device=False``):

* the optimiser state's bytes (sum of ``nbytes`` of every array leaf) after ``init``, after one step and
  after eleven (it does not grow), with a breakdown: velocities (momentum), curvature factors, cached
  inverses, other (EMA weights, counters); and the bytes with ``inverse_update_period=1`` (FermiNet's
  default), where kfac-jax keeps no cached inverses at all;
* which layers kfac-jax's automatic registration found (block type, parameter / input / output shapes) and
  which parameters it left to generic (diagonal) blocks. The MLP: all 4 dense layers, kernel and bias, in
  Kronecker blocks. The FermiNet-sized network: 9 of its 10 kernels as repeated-dense Kronecker blocks
  WITHOUT their bias (kfac-jax's pattern does not match flax's bias add over the repeated axes), the 10
  biases as diagonal blocks, and the last two-electron layer (``Dense_7``, whose output the network never
  uses, so it has no gradient) as diagonal blocks;
* step time: 10 consecutive ``optimizer.step`` calls (kfac-jax jits its step itself and says not to wrap it in
  jit) against optax.adamw(1e-3) run the same way (10 calls of one jitted step) and as singd.py times it (one
  jitted ``lax.scan`` of 10 steps); interleaved, median over repeats, wall (perf_counter) and CPU
  (process_time) time. On a shared machine XLA's thread pool makes KFAC's many small ops slow down far more
  than AdamW's under load (ratios doubled at load 4 on 2 cores); for stable ratios run it pinned to one core
  with one XLA thread: ``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
  taskset -c 0 $KFAC_PY ...`` (the JSON records ``xla_flags`` and ``cpu_affinity``).

Registered losses: the MLP's per-example softmax cross-entropy is ``register_softmax_cross_entropy_loss`` on
the logits; the FermiNet-sized network's VMC-style loss (mean log|psi| over walkers) has log|psi| per walker
registered with ``register_normal_predictive_distribution`` (what FermiNet does for VMC). The loss value kfac-jax
optimises is checked equal to ``make_problem``'s ``mean_loss`` before anything is timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmarks._singd_models import MODELS, NETWORKS, make_problem, n_params as count_params  # noqa: E402

STEPS = 10          # steps per timed run (singd.py's T)


def kfac_loss(network):
    """``loss(params, batch)`` = make_problem's mean_loss, with the loss registered for kfac-jax."""
    import kfac_jax

    model = MODELS[network]()
    apply = lambda p, example: model.apply({"params": p}, example)  # noqa: E731
    if network == "mlp":
        def loss(p, batch):
            x, y = batch
            logits = jax.vmap(lambda xi: apply(p, xi))(x)
            kfac_jax.register_softmax_cross_entropy_loss(logits, y)
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
    else:
        def loss(p, batch):
            (r,) = batch
            log_psi = jax.vmap(lambda ri: apply(p, ri))(r)
            kfac_jax.register_normal_predictive_distribution(log_psi[:, None])
            return jnp.mean(log_psi)
    return loss


def tree_bytes(tree) -> int:
    return int(sum(x.nbytes for x in jax.tree.leaves(tree) if hasattr(x, "nbytes")))


def state_breakdown(state) -> dict:
    """Bytes of a kfac_jax Optimizer.State by role."""
    out = {"velocities": tree_bytes(state.velocities), "factors": 0, "inverse_cache": 0, "other": 0}
    for block in state.estimator_state.blocks_states:
        for field in dataclasses.fields(block):
            value = getattr(block, field.name)
            if field.name == "cache":
                out["inverse_cache"] += tree_bytes(value)
            elif field.name in ("factors", "diagonal_factors"):
                vals = [f.value for f in value]               # WeightedMovingAverage: value + scalar weight
                out["factors"] += tree_bytes(vals)
                out["other"] += tree_bytes(value) - tree_bytes(vals)
            else:
                out["other"] += tree_bytes(value)
    out["other"] += tree_bytes((state.estimator_state.synced, state.damping, state.data_seen, state.step_counter))
    assert sum(out.values()) == tree_bytes(state)
    return out


def registered_layers(optimizer, state) -> list:
    blocks = optimizer._estimator.blocks          # kfac-jax has no public accessor for the block list
    return [{"name": b.name, "block": type(b).__name__,
             "parameter_shapes": [list(s) for s in b.parameters_shapes],
             "input_shapes": [list(s) for s in b.inputs_shapes], "output_shapes": [list(s) for s in b.outputs_shapes],
             "state_bytes": tree_bytes(bs)}
            for b, bs in zip(blocks, state.estimator_state.blocks_states)]


def dense_layers_in_params(params) -> list:
    """The flax Dense layers of the parameter tree: (path, kernel shape, has bias)."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return [("/".join(str(k.key) for k in path[:-1]), list(leaf.shape),
             any(p[:-1] == path[:-1] and p[-1].key == "bias" for p, _ in flat))
            for path, leaf in flat if path[-1].key == "kernel" and leaf.ndim == 2]


def make_kfac(loss, inverse_update_period, estimation_mode):
    import kfac_jax

    options = dict(l2_reg=0.0, use_adaptive_learning_rate=False, use_adaptive_momentum=False,
                   use_adaptive_damping=False, inverse_update_period=inverse_update_period,
                   curvature_update_period=1, curvature_ema=0.95, num_burnin_steps=0,
                   estimation_mode=estimation_mode, multi_device=False)
    return kfac_jax.Optimizer(jax.value_and_grad(loss), **options), options


def copy_tree(tree):
    return jax.block_until_ready(jax.tree.map(lambda a: jnp.array(a, copy=True), tree))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", choices=NETWORKS, required=True)
    ap.add_argument("--batch", type=int, required=True, help="examples (mlp) or walkers (ferminet)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--inverse-update-period", type=int, default=STEPS)
    ap.add_argument("--estimation-mode", default="fisher_gradients")
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--damping", type=float, default=1e-3)
    ap.add_argument("--no-period-1", action="store_true",
                    help="do not also time KFAC with inverse_update_period=1 (state bytes are still given)")
    ap.add_argument("--expect-n-params", type=int, default=None,
                    help="fail unless the network has this many parameters (singd.py passes its own count)")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.repeats < 1 or args.inverse_update_period < 1:
        raise ValueError(f"--batch, --repeats and --inverse-update-period must be >= 1, got {args.batch}, "
                         f"{args.repeats}, {args.inverse_update_period}")
    import kfac_jax

    load_start = os.getloadavg()
    params, _, mean_loss, data = make_problem(args.network, args.batch, steps=STEPS)
    n_params = count_params(params)
    if args.expect_n_params is not None and n_params != args.expect_n_params:
        raise ValueError(f"{args.network} has {n_params} parameters here, the caller expects {args.expect_n_params}")
    batches = [tuple(x[i] for x in data) for i in range(STEPS)]
    loss = kfac_loss(args.network)
    l_kfac, l_ref = float(jax.jit(loss)(params, batches[0])), float(jax.jit(mean_loss)(params, *batches[0]))
    if not np.isclose(l_kfac, l_ref, rtol=1e-5, atol=1e-6):
        raise AssertionError(f"KFAC's loss {l_kfac} differs from make_problem's mean_loss {l_ref}")
    hyper = dict(learning_rate=jnp.asarray(args.learning_rate, jnp.float32),
                 momentum=jnp.asarray(args.momentum, jnp.float32), damping=jnp.asarray(args.damping, jnp.float32))
    keys = jax.random.split(jax.random.key(1), STEPS)

    def kfac_runner(optimizer):
        def run(p, s):
            step0 = int(s.step_counter)
            for i in range(STEPS):                     # global_step_int: no host sync per step
                p, s, stats = optimizer.step(p, s, keys[i], batch=batches[i], global_step_int=step0 + i, **hyper)
            return jax.block_until_ready((p, s, stats["loss"]))
        return run

    kfac, options = make_kfac(loss, args.inverse_update_period, args.estimation_mode)
    runs, starts, mem = {}, {}, {}
    t0 = time.perf_counter()
    s_init = kfac.init(params, jax.random.key(2), batches[0])
    mem["init"] = tree_bytes(s_init)
    breakdown_init = state_breakdown(s_init)
    layers = registered_layers(kfac, s_init)
    run = kfac_runner(kfac)
    p1, s1, _ = kfac.step(copy_tree(params), s_init, keys[0], batch=batches[0], global_step_int=0, **hyper)
    mem["after_1_step"] = tree_bytes(s1)
    p10, s10, l10 = run(p1, s1)                        # steps 1..10: state now at step 11 (compiled, warm)
    mem[f"after_{STEPS + 1}_steps"] = tree_bytes(s10)
    compile_s = {"kfac": time.perf_counter() - t0}
    breakdown = state_breakdown(s10)
    runs["kfac"], starts["kfac"] = run, (p10, s10)
    finite = {"kfac": bool(np.isfinite(float(l10)))}

    kfac1, _ = make_kfac(loss, 1, args.estimation_mode)
    t0 = time.perf_counter()
    s1_init = kfac1.init(params, jax.random.key(2), batches[0])
    mem_period_1 = tree_bytes(s1_init)
    breakdown_period_1 = state_breakdown(s1_init)
    if not args.no_period_1:
        run1 = kfac_runner(kfac1)
        p, s, l1 = run1(copy_tree(params), s1_init)
        compile_s["kfac_period_1"] = time.perf_counter() - t0
        runs["kfac_period_1"], starts["kfac_period_1"] = run1, (p, s)
        finite["kfac_period_1"] = bool(np.isfinite(float(l1)))

    adamw = optax.adamw(1e-3)

    @jax.jit
    def adam_step(p, s, batch):
        value, g = jax.value_and_grad(mean_loss)(p, *batch)
        u, s = adamw.update(g, s, p)
        return optax.apply_updates(p, u), s, value

    @jax.jit
    def adam_scan(p, s, data):                          # as singd.py times AdamW
        def body(carry, batch):
            p, s, value = adam_step(*carry, batch)
            return (p, s), value
        return jax.lax.scan(body, (p, s), data)

    def adam_loop(p, s):
        for b in batches:
            p, s, value = adam_step(p, s, b)
        return jax.block_until_ready((p, s, value))

    s_adam = adamw.init(params)
    t0 = time.perf_counter()
    adam_loop(params, s_adam)
    compile_s["adamw_loop"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(adam_scan(params, s_adam, data))
    compile_s["adamw_scan"] = time.perf_counter() - t0
    runs["adamw_loop"], starts["adamw_loop"] = adam_loop, (params, s_adam)
    runs["adamw_scan"], starts["adamw_scan"] = lambda p, s: jax.block_until_ready(adam_scan(p, s, data)), (params, s_adam)

    wall = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    for _ in range(args.repeats):                       # interleaved; kfac-jax donates params and state: copies
        for name, fn in runs.items():
            p, s = copy_tree(starts[name])
            t0, c0 = time.perf_counter(), time.process_time()
            fn(p, s)
            wall[name].append((time.perf_counter() - t0) / STEPS)
            cpu[name].append((time.process_time() - c0) / STEPS)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    best = {k: min(v) for k, v in wall.items()}

    dense = dense_layers_in_params(params)
    kron = [layer for layer in layers if "KroneckerFactored" in layer["block"]]
    out = {
        "benchmark": "singd_kfac_peer", "network": args.network, "batch": args.batch, "n_params": n_params,
        "n_dense_layers_in_params": len(dense),
        "dense_layers_in_params": [{"path": p, "kernel_shape": k, "bias": b} for p, k, b in dense],
        "n_registered_blocks": len(layers), "n_kronecker_blocks": len(kron),
        "n_params_in_kronecker_blocks": int(sum(np.prod(s) for layer in kron for s in layer["parameter_shapes"])),
        "registered_layers": layers,
        "kfac_state_bytes": mem[f"after_{STEPS + 1}_steps"], "kfac_state_bytes_by_time": mem,
        "breakdown": breakdown, "breakdown_after_init": breakdown_init,
        "kfac_state_bytes_inverse_period_1": mem_period_1, "breakdown_inverse_period_1": breakdown_period_1,
        "adamw_state_bytes": tree_bytes(s_adam),
        "kfac_step_s": med["kfac"], "kfac_step_min_s": best["kfac"], "kfac_cpu_s": cmed["kfac"],
        "adamw_loop_step_s": med["adamw_loop"], "adamw_loop_cpu_s": cmed["adamw_loop"],
        "adamw_scan_step_s": med["adamw_scan"], "adamw_scan_cpu_s": cmed["adamw_scan"],
        "step_time_ratio_vs_adamw": med["kfac"] / med["adamw_loop"],
        "step_time_ratio_vs_adamw_best_of": best["kfac"] / best["adamw_loop"],
        "cpu_time_ratio_vs_adamw": cmed["kfac"] / cmed["adamw_loop"],
        "step_time_ratio_vs_adamw_scan": med["kfac"] / med["adamw_scan"],
        "cpu_time_ratio_vs_adamw_scan": cmed["kfac"] / cmed["adamw_scan"],
        "times_s": wall, "cpu_times_s": cpu, "compile_plus_first_run_s": compile_s, "losses_finite": finite,
        "repeats": args.repeats, "steps_per_run": STEPS,
        "kfac_options": {**options, "learning_rate": args.learning_rate, "momentum": args.momentum,
                         "damping": args.damping, "value_and_grad_func": "jax.value_and_grad(loss)",
                         "registered_loss": ("register_softmax_cross_entropy_loss(logits, labels)"
                                             if args.network == "mlp" else
                                             "register_normal_predictive_distribution(log_psi[:, None])"),
                         "use_automatic_registration": True},
        "step_note": f"mean per step over {STEPS} consecutive steps (one inverse update among them at period "
                     f"{args.inverse_update_period}); kfac = {STEPS} optimizer.step calls (kfac-jax jits its step); "
                     f"adamw_loop = {STEPS} calls of one jitted AdamW step (the same dispatch pattern, the main "
                     "ratio); adamw_scan = a jitted lax.scan of the steps as singd.py times AdamW; interleaved, "
                     "median of repeats; jax here is older than the project's, so compare ratios, not seconds",
        "versions": {"jax": jax.__version__, "jaxlib": __import__("jaxlib").__version__,
                     "kfac_jax": kfac_jax.__version__, "optax": optax.__version__,
                     "flax": __import__("flax").__version__, "numpy": np.__version__},
        "devices": [str(d) for d in jax.devices()], "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_start": load_start, "load_average_end": os.getloadavg(),
    }
    if not args.no_period_1:
        out.update({"kfac_period_1_step_s": med["kfac_period_1"], "kfac_period_1_cpu_s": cmed["kfac_period_1"],
                    "step_time_ratio_vs_adamw_period_1": med["kfac_period_1"] / med["adamw_loop"],
                    "cpu_time_ratio_vs_adamw_period_1": cmed["kfac_period_1"] / cmed["adamw_loop"]})
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
