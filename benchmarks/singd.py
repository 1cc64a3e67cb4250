"""SINGD: training-step time relative to AdamW, optimiser-state memory relative to KFAC.

Three problems: an MLP (128 -> 256 -> 256 -> 256 -> 10, per-example cross-entropy, batch 256, 1024
and 4096: ``--mlp-batch``), a FermiNet-sized network (one-electron stream width 256, two-electron stream width 32, 4 layers,
16 determinants, LiH-like 4 electrons; the VMC-style step: per-walker log|psi| statistics and the gradient
of mean log|psi|) at 128 walkers (this project's vmc default) and at 1024 walkers (``--walkers``; the
reference FermiNet runs use 4096, too slow for repeats on this machine). SINGD's per-step preconditioning
costs the same at any walker count while forward + backward grow with it, so the ratio to AdamW falls as
walkers grow. Third, the "vmc" rows: the FermiNet-sized network of vmc in vmc's own training step (LiH,
128 walkers, float64, 10 Metropolis moves, folx Laplacian, Fisher-Rao gradient) with SINGD (T = 10, vmc's
``lax.cond``) against Adam -- what a VMC user pays. One step = forward + backward + optimiser update + apply; timed as a host loop of 10
calls of a jitted step (divided by 10), the way training runs (a ``lax.scan`` over the steps would let
XLA hoist the factor products out of the plain steps). Two SINGD rows per structure:

* ``T = 10`` (the notes' default update interval): layer statistics (per-example inputs and output
  gradients) are captured and the factors updated on 1 step in 10; the other 9 run a plain
  ``value_and_grad`` and only precondition. Two ways to choose: "host" (main columns) = two jitted steps,
  chosen on the host; "cond" = one jitted step choosing with ``lax.cond(needs_layer_stats(...))`` (vmc);
* ``T = 1``: capture and factor update at every step (the worst case).

AdamW runs the plain ``value_and_grad`` step. In each repeat the four runs (AdamW, SINGD T=10 host, T=10
cond, T=1) alternate; ratios are of medians over repeats ("best-of" = ratio of minima is recorded too). The load
average is recorded before and after every row (the machine is shared).

Rows: every structure in float32 (dense with its default cached products ``K K^T``, ``C C^T``), diagonal
and dense with bfloat16 factors, and lower-triangular Toeplitz with ``cache_products=True`` (the speed a
Toeplitz step has when it keeps dense d x d products, at their memory cost).

Each row also gives the flop ratio to AdamW from XLA's cost analysis of the compiled steps: the
step-time ratio an implementation reaches if SINGD's products run as efficiently as the network's own.

Memory = bytes of the optimiser state. kfac-jax 0.0.8 cannot run with jax 0.10, so with ``--kfac-python``
(a venv holding kfac-jax on jax 0.8.3; recipe in ``benchmarks/singd_kfac_peer.py``) KFAC runs there on the
same network and data, before the SINGD rows of each problem: its state is MEASURED (and its step time
recorded beside SINGD's). Without it (and for the vmc rows) KFAC's state is analytic: per dense layer the
two dense Kronecker factors ((d_in + 1)^2 + d_out^2) and their inverses, plus one momentum buffer -- which
is what kfac-jax measured (3.96 MB for the MLP, 22.49 vs 22.55 MB for the FermiNet-sized network).

    python benchmarks/singd.py [--quick] [--walkers 128,1024] [--kfac-python VENV/bin/python]
                                                                # writes benchmarks/results/singd.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from benchmarks._singd_models import make_problem, n_params as count_params  # noqa: E402
from qsim.optim import STRUCTURES, find_dense_layers, needs_layer_stats, singd, value_grad_and_stats  # noqa: E402

T = 10


def tree_bytes(tree) -> int:
    return int(sum(np.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree) if hasattr(x, "shape")))


def kfac_state_bytes(params, itemsize: int = 4) -> int:
    """Analytic KFAC state: momentum for all params + per dense layer dense factors and their inverses, in
    ``itemsize``-byte floats (4: float32; the vmc rows run in float64)."""
    n_params = count_params(params)
    factors = sum(2 * ((d_in + int(b)) ** 2 + d_out ** 2) for d_in, d_out, b in find_dense_layers(params).values())
    return itemsize * (n_params + factors)


def precondition_bound(params, batch) -> float:
    """Lower bound of a dense-preconditioned step's time over AdamW's for an MLP, from multiply-adds:
    ``1 + sum d_in d_out (d_in + d_out) / (3 batch sum d_in d_out)`` (``d_in`` counts the bias column): the
    two products ``P_C grad P_K`` every step against forward + backward (3 products of the batch with
    each weight). Dense SINGD (cached products) and Toeplitz (``K K^T`` built in O(d^2)) pay it in full."""
    layers = [(d_in + int(b), d_out) for d_in, d_out, b in find_dense_layers(params).values()]
    pre = sum(a * c * (a + c) for a, c in layers)
    return 1.0 + pre / (3 * batch * sum(a * c for a, c in layers))


def step_fn(tx, per_example, mean_loss, interval=None, schedule="host"):
    """A run over the batches in ``data`` (one batch per step) as users run it: a host loop calling a
    jitted single-step function (forward + backward + update + apply), synchronised once at the end.
    ``interval=None``: plain optax steps (AdamW). ``interval=1``: SINGD with statistics at every step.
    ``interval=T`` (from a state whose count is a multiple of T): ``schedule="host"`` alternates two jitted
    steps chosen on the host (with capture on the factor-update step, plain ``value_and_grad`` on the
    others), ``schedule="cond"`` runs one jitted step that chooses with ``lax.cond(needs_layer_stats(...))``
    (what vmc does).

    Not a ``lax.scan`` over the steps: inside one compiled loop XLA hoists every product that depends
    only on the factors out of the plain steps (the factors are loop-invariant there), which no real
    training loop gets; a scan measured Toeplitz's preconditioning as free (1.49x beside 1.72x per step
    in a loop of calls, MLP batch 256)."""

    def plain(p, s, batch):
        loss, g = jax.value_and_grad(mean_loss)(p, *batch)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    def with_stats(p, s, batch):
        loss, g, st = value_grad_and_stats(per_example, p, *batch)
        u, s = tx.update(g, s, p, layer_stats=st)
        return optax.apply_updates(p, u), s, loss

    def chosen(p, s, batch):
        return jax.lax.cond(needs_layer_stats(s, interval), with_stats, plain, p, s, batch)

    f_plain, f_stats, f_cond = jax.jit(plain), jax.jit(with_stats), jax.jit(chosen)

    def pick(i):
        if interval is None:
            return f_plain
        if interval == 1:
            return f_stats
        if schedule == "cond":
            return f_cond
        return f_stats if i % interval == 0 else f_plain

    def flops(params, state, data):
        """Floating-point operations of the run by XLA's cost analysis of each compiled step (shapes only;
        each distinct step compiled once more; a loop body counts once, so Toeplitz's O(d^2) K K^T
        recurrence is undercounted: it is small beside the products)."""
        per_fn = {}
        for i, batch in enumerate(data):
            f = pick(i)
            if f not in per_fn:
                per_fn[f] = float(f.lower(params, state, batch).compile().cost_analysis()["flops"])
        return sum(per_fn[pick(i)] for i in range(len(data)))

    def run(params, state, data):
        losses = []
        for i, batch in enumerate(data):
            params, state, loss = pick(i)(params, state, batch)
            losses.append(loss)
        return params, state, jnp.stack(losses)

    run.flops = flops
    return run


def split_batches(data):
    """``data`` with a leading step axis -> a list of per-step batches (device arrays, sliced once, outside
    any timing)."""
    return [jax.tree.map(lambda x: x[i], data) for i in range(jax.tree.leaves(data)[0].shape[0])]


def run_kfac_peer(python: str, net: str, batch: int, repeats: int, n_params: int, timeout: float = 3600.0) -> dict:
    """kfac-jax's KFAC on the same network (``benchmarks/singd_kfac_peer.py``, run by ``python``, the
    interpreter of a venv holding kfac-jax 0.0.8 on jax 0.8.3; the recipe is in that script): its JSON, with
    the measured state bytes and its step-time ratio to AdamW. Run before the SINGD rows of the problem, not
    beside them (it would share the 2 cores)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "singd_kfac_peer.py")
    cmd = [python, script, "--network", net, "--batch", str(batch), "--repeats", str(repeats),
           "--expect-n-params", str(n_params)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"the kfac-jax peer failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


VMC_NETWORK = {"kind": "ferminet", "hidden": [[256, 32]] * 4, "n_det": 16, "jastrow": True}


def vmc_run(optimizer: str, structure: str, walkers: int, system: str = "LiH"):
    """A whole VMC training step as ``qsim vmc`` runs it (vmc.train.make_train_step: 10 Metropolis moves,
    folx Laplacian local energy, Fisher-Rao gradient, optimiser update; float64, the vmc default) on the
    FermiNet-sized network of vmc (``VMC_NETWORK``), with ``optimizer`` "adam" or "singd" (``structure``,
    T = 10 through vmc's ``lax.cond``). Returns ``(run, params, opt_state)``: ``run()`` does 10 steps from
    the same start as a host loop of jitted calls and synchronises once. Enables float64 (vmc's default),
    so the vmc rows run after the float32 ones."""
    from vmc import train as vt

    vt.enable_x64()
    cfg = copy.deepcopy(vt.DEFAULTS)
    cfg.update(system=system, walkers=walkers, optimizer=optimizer, network=copy.deepcopy(VMC_NETWORK))
    cfg["optim"].update(structure=structure, singd_interval=T)
    vt.validate_config(cfg)
    b = vt.build(cfg)
    k_init, k_walk, k_run = jax.random.split(jax.random.PRNGKey(0), 3)
    params = b.wf.init(k_init)
    opt_state = b.optimizer.init(params)
    state = vt.TrainState(params, opt_state, b.mol.initial_electrons(k_walk, walkers),
                          jnp.asarray(cfg["mcmc"]["step_size"], jnp.float64), jnp.zeros((), jnp.int32),
                          jnp.zeros((), jnp.int32))
    step = vt.make_train_step(b, int(cfg["mcmc"]["steps"]))
    keys = list(jax.random.split(k_run, T))

    def run():
        st, energies = state, []
        for k in keys:
            st, m = step(st, k)
            energies.append(m["energy"])
        return jax.block_until_ready((st, jnp.stack(energies)))

    return run, params, opt_state


def vmc_rows(walkers: int, structures, repeats: int, on_row):
    """SINGD (T = 10) against Adam in vmc's own training step, per structure; ``on_row(row)`` after each."""
    adam, params, adam_state = vmc_run("adam", "dense", walkers)
    adam()
    layers = params["params"] if "params" in params else params
    n_params = count_params(params)
    kfac_bytes = kfac_state_bytes(layers, itemsize=8)
    print(f"vmc step (LiH, FermiNet-sized, {walkers} walkers, float64): {n_params} parameters, "
          f"{len(find_dense_layers(layers))} dense layers", flush=True)
    for structure in structures:
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        run, _, sstate = vmc_run("singd", structure, walkers)
        out = run()
        compile_s = time.perf_counter() - t0
        runs = {"adam": adam, "singd": run}
        times, cpu = {k: [] for k in runs}, {k: [] for k in runs}
        for _ in range(repeats):
            for k, f in runs.items():
                t1, c1 = time.perf_counter(), time.process_time()
                f()
                times[k].append((time.perf_counter() - t1) / T)
                cpu[k].append((time.process_time() - c1) / T)
        med = {k: statistics.median(v) for k, v in times.items()}
        cmed = {k: statistics.median(v) for k, v in cpu.items()}
        state_bytes = tree_bytes(sstate)
        row = {"network": "vmc_ferminet", "batch": walkers, "structure": structure, "factor_dtype": "float64",
               "cache_products": structure == "dense", "n_params": n_params, "baseline": "adam (vmc)",
               "adamw_step_s": med["adam"], "singd_step_s": med["singd"],
               "step_time_ratio_vs_adamw": med["singd"] / med["adam"],
               "cpu_time_ratio_vs_adamw": cmed["singd"] / cmed["adam"],
               "times_s": times, "cpu_times_s": cpu,
               "singd_state_bytes": state_bytes, "adamw_state_bytes": tree_bytes(adam_state),
               "kfac_state_bytes_analytic": kfac_bytes, "memory_ratio_vs_kfac": state_bytes / kfac_bytes,
               "kfac_measured": False,
               "compile_plus_first_run_s": compile_s,
               "losses_finite": bool(np.all(np.isfinite(np.asarray(out[1])))),
               "load_average_before": load_before, "load_average_after": os.getloadavg()}
        on_row(row)
        print(f"  {structure:20s} Adam {med['adam'] * 1e3:8.1f} ms  SINGD T={T} {med['singd'] * 1e3:8.1f} ms = "
              f"{row['step_time_ratio_vs_adamw']:.2f}x (CPU time {row['cpu_time_ratio_vs_adamw']:.2f}x)  state "
              f"{state_bytes / 1e6:6.2f} MB = {row['memory_ratio_vs_kfac']:.3f} KFAC  load {load_before[0]:.1f}",
              flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    ap.add_argument("--networks", default="mlp,ferminet,vmc",
                    help="comma-separated subset of mlp,ferminet,vmc (vmc: the FermiNet-sized network in vmc's own "
                         "training step, run last: it enables float64)")
    ap.add_argument("--kfac-python", default=os.environ.get("KFAC_PYTHON"),
                    help="python of a venv with kfac-jax 0.0.8 (or $KFAC_PYTHON; recipe in singd_kfac_peer.py): "
                         "KFAC's state is then measured, and its step time too; without it the state is analytic")
    ap.add_argument("--toeplitz-fft-min-dim", type=int, default=None,
                    help="apply Toeplitz K K^T by FFT from this dimension on (default: qsim's "
                         "PRECOND_FFT_MIN_DIM, 512, chosen by measurement on this CPU)")
    ap.add_argument("--vmc-walkers", type=int, default=128, help="walkers of the vmc rows (vmc's default)")
    ap.add_argument("--structures", default=None, help="comma-separated subset of the structures (float32 only)")
    ap.add_argument("--walkers", default="128,1024", help="comma-separated walker counts for the FermiNet-sized network")
    ap.add_argument("--mlp-batch", default="256,1024,4096", help="comma-separated batch sizes for the MLP")
    ap.add_argument("--repeats", type=int, default=None, help="repeats (default 7, --quick 3)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "singd.json"))
    args = ap.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    if args.toeplitz_fft_min_dim is not None:
        import qsim.optim.structures_toeplitz as structures_mod

        structures_mod.PRECOND_FFT_MIN_DIM = args.toeplitz_fft_min_dim
    load_start = os.getloadavg()
    configs = ([(s, None, None) for s in STRUCTURES] + [("diagonal", "bfloat16", None), ("dense", "bfloat16", None),
                                                         ("tril_toeplitz", None, True)])
    if args.structures:
        configs = [(s, None, None) for s in args.structures.split(",")]
    problems = []
    nets = args.networks.split(",")
    for net in nets:
        if net == "vmc":
            continue
        if net == "ferminet":
            problems += [(net, int(w)) for w in args.walkers.split(",")]
        else:
            problems += [(net, int(b)) for b in args.mlp_batch.split(",")]
    if args.kfac_python and not os.path.exists(args.kfac_python):
        raise SystemExit(f"--kfac-python {args.kfac_python!r} does not exist")
    results, kfac_peer = [], []

    def write(complete):
        """The JSON so far (after every row: a run cut short still leaves its finished rows)."""
        out = {"benchmark": "singd", "quick": args.quick, "update_interval": T, "repeats": repeats,
               "load_average_start": load_start, "load_average_end": os.getloadavg(),
               "machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "cpu_count": os.cpu_count(), "devices": [str(d) for d in jax.devices()],
                           "load_average_1min": os.getloadavg()[0]},
               "versions": {"jax": jax.__version__, "optax": optax.__version__},
               "xla_flags": os.environ.get("XLA_FLAGS", ""),
               "toeplitz_fft_min_dim": args.toeplitz_fft_min_dim,
               "kfac_note": "kfac-jax 0.0.8 fails on jax >= 0.9.2: with --kfac-python it runs in its own venv "
                            "(benchmarks/singd_kfac_peer.py, same networks and data; 'kfac_peer' holds its JSON) and "
                            "memory_ratio_vs_kfac uses its measured state bytes; otherwise (and for the vmc rows) "
                            "KFAC's state is analytic: momentum + per dense layer 2 * ((d_in + 1)^2 + d_out^2) "
                            "(factors and inverses), float32 (float64 for the vmc rows)",
               "kfac_peer": kfac_peer,
               "step_note": "one step = forward + backward + update + apply, mean over a host loop of 10 calls of a jitted step; "
                            f"T={T}: statistics captured and factors updated on 1 step in 10, the others plain "
                            "value_and_grad + preconditioning; 'host' schedule = two jitted steps chosen on the host "
                            "(main T=10 columns), 'cond' = one jitted step choosing with lax.cond(needs_layer_stats) "
                            "(as vmc does); T=1: capture and factor update every step; "
                            "AdamW, T=10 host, T=10 cond, T=1 interleaved, median of repeats; 'batch' = examples (MLP) or "
                            "walkers (FermiNet-sized, 4 electrons each); 'cache_products': K K^T and C C^T kept in "
                            "the state (default for dense only)",
               "rows": results, "complete": complete}
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=2)

    for net, batch in problems:
        params, per_example, mean_loss, data = make_problem(net, batch)
        data = split_batches(data)
        n_params = count_params(params)
        adamw = optax.adamw(1e-3)
        f_adam = step_fn(adamw, per_example, mean_loss)
        s_adam = adamw.init(params)
        jax.block_until_ready(f_adam(params, s_adam, data))
        flops_adam = f_adam.flops(params, s_adam, data)
        kfac_bytes = kfac_state_bytes(params)
        adam_bytes = tree_bytes(s_adam)
        print(f"{net} (batch {batch}): {n_params} parameters, {len(find_dense_layers(params))} dense layers; AdamW state "
              f"{adam_bytes / 1e6:.2f} MB, KFAC state (analytic) {kfac_bytes / 1e6:.2f} MB", flush=True)
        peer = None
        if args.kfac_python:
            peer = run_kfac_peer(args.kfac_python, net, batch, repeats, n_params)
            kfac_peer.append(peer)
            print(f"  kfac-jax KFAC: state {peer['kfac_state_bytes'] / 1e6:.2f} MB measured (analytic "
                  f"{kfac_bytes / 1e6:.2f} MB), step {peer['cpu_time_ratio_vs_adamw']:.2f}x AdamW (CPU time)", flush=True)
        kfac_ref = peer["kfac_state_bytes"] if peer else kfac_bytes
        for structure, fdt, cache in configs:
            load_before = os.getloadavg()
            runs = {"adamw": (f_adam, s_adam)}
            compile_s, finite = {}, {}
            for name, interval, schedule in ((f"T{T}", T, "host"), (f"T{T}_cond", T, "cond"), ("T1", 1, None)):
                tx = singd(1e-3, structure, damping=1e-3, update_interval=interval,
                           factor_dtype=jnp.bfloat16 if fdt == "bfloat16" else None, cache_products=cache)
                f, s0 = step_fn(tx, per_example, mean_loss, interval, schedule), tx.init(params)
                t0 = time.perf_counter()
                out = jax.block_until_ready(f(params, s0, data))
                compile_s[name] = time.perf_counter() - t0
                finite[name] = bool(np.all(np.isfinite(np.asarray(out[2]))))
                runs[name] = (f, s0)
            times = {k: [] for k in runs}
            cpu = {k: [] for k in runs}
            for _ in range(repeats):                    # interleaved: AdamW, T=10, T=1, AdamW, ...
                for k, (f, s0) in runs.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    jax.block_until_ready(f(params, s0, data))
                    times[k].append((time.perf_counter() - t0) / T)
                    cpu[k].append((time.process_time() - c0) / T)
            med = {k: statistics.median(v) for k, v in times.items()}
            best = {k: min(v) for k, v in times.items()}
            cmed = {k: statistics.median(v) for k, v in cpu.items()}
            state_bytes = tree_bytes(runs[f"T{T}"][1])
            flop_ratio = runs[f"T{T}"][0].flops(params, runs[f"T{T}"][1], data) / flops_adam
            cached = structure == "dense" if cache is None else cache
            row = {"network": net, "batch": batch, "structure": structure, "factor_dtype": fdt or "float32",
                   "cache_products": cached, "n_params": n_params,
                   "dense_precondition_bound": precondition_bound(params, batch) if net == "mlp" else None,
                   "flop_ratio_vs_adamw": flop_ratio,
                   "adamw_step_s": med["adamw"], "adamw_step_min_s": best["adamw"],
                   "singd_step_s": med[f"T{T}"], "singd_step_min_s": best[f"T{T}"],
                   "step_time_ratio_vs_adamw": med[f"T{T}"] / med["adamw"],
                   "step_time_ratio_vs_adamw_best_of": best[f"T{T}"] / best["adamw"],
                   "singd_T1_step_s": med["T1"], "singd_T1_step_min_s": best["T1"],
                   "step_time_ratio_vs_adamw_T1": med["T1"] / med["adamw"],
                   "step_time_ratio_vs_adamw_T1_best_of": best["T1"] / best["adamw"],
                   "cpu_time_ratio_vs_adamw": cmed[f"T{T}"] / cmed["adamw"],
                   "singd_cond_step_s": med[f"T{T}_cond"],
                   "step_time_ratio_vs_adamw_cond": med[f"T{T}_cond"] / med["adamw"],
                   "cpu_time_ratio_vs_adamw_cond": cmed[f"T{T}_cond"] / cmed["adamw"],
                   "cpu_time_ratio_vs_adamw_T1": cmed["T1"] / cmed["adamw"],
                   "times_s": times, "cpu_times_s": cpu,
                   "singd_state_bytes": state_bytes, "adamw_state_bytes": adam_bytes,
                   "kfac_state_bytes_analytic": kfac_bytes,
                   "kfac_state_bytes_measured": peer["kfac_state_bytes"] if peer else None,
                   "memory_ratio_vs_kfac": state_bytes / kfac_ref, "kfac_measured": peer is not None,
                   "kfac_cpu_time_ratio_vs_adamw": peer["cpu_time_ratio_vs_adamw"] if peer else None,
                   "compile_plus_first_run_s": compile_s, "losses_finite": finite,
                   "load_average_before": load_before, "load_average_after": os.getloadavg()}
            results.append(row)
            print(f"  {structure + ('+cache' if cached else ''):20s} {row['factor_dtype']:8s} AdamW {med['adamw'] * 1e3:7.2f} ms  SINGD T={T} "
                  f"{med[f'T{T}'] * 1e3:7.2f} ms = {row['step_time_ratio_vs_adamw']:.2f}x (best-of "
                  f"{row['step_time_ratio_vs_adamw_best_of']:.2f})  T=1 {med['T1'] * 1e3:7.2f} ms = "
                  f"{row['step_time_ratio_vs_adamw_T1']:.2f}x  (CPU time {row['cpu_time_ratio_vs_adamw']:.2f}x, "
                  f"cond {row['cpu_time_ratio_vs_adamw_cond']:.2f}x, T=1 {row['cpu_time_ratio_vs_adamw_T1']:.2f}x)  state {state_bytes / 1e6:6.2f} MB = "
                  f"{row['memory_ratio_vs_kfac']:.3f} KFAC  flops {flop_ratio:.2f}x  load {load_before[0]:.1f}", flush=True)
            write(False)
    if "vmc" in nets:
        structures = sorted({c[0] for c in configs}, key=STRUCTURES.index)

        def on_row(row):
            results.append(row)
            write(False)

        vmc_rows(args.vmc_walkers, structures, max(3, repeats // 2), on_row)
    write(True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
