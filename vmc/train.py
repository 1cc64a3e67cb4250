"""The VMC driver: pretraining, burn-in, then per step MCMC -> objective -> optimiser update.

``train(config, out=None)`` runs one configuration (see :data:`DEFAULTS`; nested dicts) and returns
the summary dict. With ``out`` it writes a run directory (qsim.infra.runs.RunDir): config.json,
metrics.csv (one row per step: energy, variance, grad_eloc_norm, acceptance, step_size, n_kept,
nan_skips, step_time_s, error_mha), summary.json, checkpoints/ and energy.png; an existing run
directory of the same configuration resumes from its last checkpoint and reaches the same numbers
as an uninterrupted run (random keys are derived from (seed, step), not carried).

NaN guard: a step whose loss, energy or new parameters are not finite is skipped (parameters and
optimiser state roll back to the previous step; the walkers keep their valid positions); skips are
counted in ``nan_skips``; ``max_nan_steps`` consecutive skips stop the run with a clear message.

Final evaluation: ``eval.steps`` sampling rounds at fixed parameters; energy and standard error by
blocking analysis over the per-round means. Atomic units (Hartree, bohr). Call :func:`enable_x64`
(done by the CLI and by :func:`train`) before building anything.

Precision (``precision``, see :data:`PRECISIONS`): parameters, optimiser state, walkers, local
energies' sums and every statistic are float64 in all modes; what changes is the dtype the network
is *evaluated* in (parameters and positions cast on the way in, results cast back to float64):

- ``"float64"``: everything in float64.
- ``"mixed"``: the MCMC (which needs only differences of log|psi|) and the optimiser's per-walker
  Jacobian of log|psi| (and SR's kernel AAᵀ; its solve stays float64) in float32; the local energy
  and its Laplacian in float64, as the physics needs. Energies agree with float64 within their
  statistical error (tests/vmc/test_train.py).
- ``"float32"``: also the local energy in float32 (DeepQMC's default precision; for like-for-like
  timing, benchmarks/deepqmc.py).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from qsim import samplers
from qsim.infra import meshes as distributed
from vmc import objectives as objectives_mod
from vmc import optimizers as optimizers_mod
from vmc import stats, systems
from vmc.hamiltonian import make_local_energy
from vmc.networks import make_wavefunction
import importlib
from threadpoolctl import threadpool_limits
from qsim.infra.runs import RunDir
from tqdm import tqdm
from vmc.pretrain import pretrain
from qsim.infra.plots import plot_runs

__all__ = ["DEFAULTS", "PRECISIONS", "Precision", "TrainState", "train", "build", "enable_x64",
           "molecule_from_config", "NanError", "cast_floats", "single_threaded_blas"]

DEFAULTS: dict[str, Any] = {
    "system": "H2",            # catalog name or path to an .xyz file (Angstrom)
    "charge": 0,
    "spin": None,              # n_up - n_down; None: the catalog's / lowest
    "objective": "fisher_rao",  # fisher_rao | wasserstein | joint
    "optimizer": "sr",         # adam | lamb | sgd | sr | singd | kfac
    "steps": 600,
    "walkers": 128,
    "seed": 0,
    "laplacian": "folx",       # folx | jvp
    "precision": "float64",    # float64 | mixed | float32 (PRECISIONS; module docstring)
    "network": {"kind": "ferminet", "hidden": [[32, 8], [32, 8]], "n_det": 4, "jastrow": True},
    "mcmc": {"steps": 10, "burn_in": 100, "step_size": 0.3},
    "optim": {"learning_rate": None, "decay": 1000.0, "damping": 1e-3, "norm_constraint": 1e-3,
              "structure": "dense", "singd_interval": 1,  # SINGD: factor structure, factor-update interval T
              "project": None},  # project: SR's span projection; None = not for FR
    "objective_options": {"clip_width": 5.0, "center": "mean", "n_mad": 5.0, "fr_weight": 1.0},
    "pretrain": {"steps": 100, "basis": "sto-6g", "learning_rate": 3e-3},
    "eval": {"steps": 50},
    "checkpoint_every": 50,
    "max_nan_steps": 10,
}


class Precision(NamedTuple):
    """The dtype the network is evaluated in for each part of a step (module docstring)."""

    sampling: Any   # MCMC log|psi| evaluations
    jacobian: Any   # the optimiser's per-walker ∇θ log|psi| (and SR's kernel AAᵀ)
    energy: Any     # local energy (Laplacian) and the objective's own network evaluations


PRECISIONS = {
    "float64": Precision(jnp.float64, jnp.float64, jnp.float64),
    "mixed": Precision(jnp.float32, jnp.float32, jnp.float64),
    "float32": Precision(jnp.float32, jnp.float32, jnp.float32),
}


def cast_floats(tree, dtype):
    """``tree`` with its floating leaves cast to ``dtype`` (other leaves unchanged)."""
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, tree)


def _evaluated_in(fn, dtype):
    """``fn(params, x)`` evaluated with params and x cast to ``dtype`` and its result cast back to
    float64 (gradients with respect to the float64 inputs flow through the casts); ``fn`` itself
    for float64."""
    if jnp.dtype(dtype) == jnp.float64:
        return fn

    def wrapped(params, x):
        out = fn(cast_floats(params, dtype), x.astype(dtype))
        return jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), out)

    return wrapped


def single_threaded_blas():
    """Context in which the process's BLAS/LAPACK libraries run on one thread (threadpoolctl; a no-op
    without it). On CPU, jaxlib's LAPACK calls (SR's B x B solve, slogdet's LU) go through scipy's
    OpenBLAS, whose worker threads spin against XLA's own thread pool: with the machine's cores
    busy, a 256 x 256 LU then cost tens of ms instead of ~1 ms and the median LiH step was 1.5-4x
    slower (docs/vmc.md). train() runs inside it; the step's heavy products are XLA's, not BLAS's."""
    try:


        importlib.import_module("scipy.linalg")  # loads the OpenBLAS that jaxlib's LAPACK kernels call
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


class NanError(RuntimeError):
    """Training produced non-finite values for too many consecutive steps."""


class TrainState(NamedTuple):
    """Everything a step needs (and a checkpoint holds): ``params``, ``opt_state``, ``walkers
    (B, 3N)``, MCMC ``step_size ()``, ``nan_total ()`` and ``nan_streak ()`` counters."""

    params: Any
    opt_state: Any
    walkers: jax.Array
    step_size: jax.Array
    nan_total: jax.Array
    nan_streak: jax.Array


def enable_x64() -> None:
    """Turn on float64 (entry points call this; the library never does it at import time)."""
    jax.config.update("jax_enable_x64", True)


def molecule_from_config(cfg: dict) -> systems.Molecule:
    name = cfg["system"]
    if isinstance(name, systems.Molecule):
        return name
    if not isinstance(name, str):
        raise TypeError(f"system must be a catalog name or an .xyz path, got {type(name).__name__}")
    if name.lower().endswith(".xyz") or "\n" in name:
        return systems.from_xyz(name, charge=int(cfg.get("charge", 0)), spin=cfg.get("spin"))
    return systems.get(name, charge=int(cfg.get("charge", 0)), spin=cfg.get("spin"))


def _merge(defaults: dict, cfg: dict | None) -> dict:
    out = copy.deepcopy(defaults)
    for k, v in (cfg or {}).items():
        if k not in out:
            raise ValueError(f"unknown configuration key {k!r}; known: {sorted(out)}")
        if isinstance(out[k], dict) and isinstance(v, dict):
            for kk in v:
                if kk not in out[k]:
                    raise ValueError(f"unknown configuration key {k}.{kk!r}; known: {sorted(out[k])}")
            out[k].update(v)
        else:
            out[k] = v
    return out


def validate_config(cfg: dict) -> None:
    """Bad values raise ValueError naming them, before any heavy work."""
    for key in ("steps", "walkers"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 0:
            raise ValueError(f"{key} must be a non-negative integer, got {cfg[key]!r}")
    if cfg["walkers"] < objectives_mod.MIN_WALKERS:
        raise ValueError(f"walkers={cfg['walkers']} is too few for the estimators (clipping width, "
                         f"median/MAD mask, variance); use at least {objectives_mod.MIN_WALKERS}")
    if cfg["objective"] not in objectives_mod.OBJECTIVES:
        raise ValueError(f"unknown objective {cfg['objective']!r}; choose one of "
                         f"{', '.join(objectives_mod.OBJECTIVES)}")
    if cfg["optimizer"] not in optimizers_mod.OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg['optimizer']!r}; choose one of "
                         f"{', '.join(optimizers_mod.OPTIMIZERS)}")
    if cfg["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {cfg['precision']!r}")
    if cfg["laplacian"] not in ("folx", "jvp"):
        raise ValueError(f"laplacian must be 'folx' or 'jvp', got {cfg['laplacian']!r}")
    if int(cfg["mcmc"]["steps"]) < 1:
        raise ValueError(f"mcmc.steps must be >= 1, got {cfg['mcmc']['steps']!r}")
    if not float(cfg["mcmc"]["step_size"]) > 0:
        raise ValueError(f"mcmc.step_size must be positive, got {cfg['mcmc']['step_size']!r}")
    t = cfg["optim"]["singd_interval"]
    if not isinstance(t, int) or isinstance(t, bool) or t < 1:
        raise ValueError(f"optim.singd_interval must be a positive integer, got {t!r}")
    if int(cfg["eval"]["steps"]) < 0 or int(cfg["checkpoint_every"]) < 1:
        raise ValueError("eval.steps must be >= 0 and checkpoint_every >= 1")


class Built(NamedTuple):
    mol: systems.Molecule
    wf: Any
    objective: Any
    optimizer: Any
    local_energy: Any
    fr_terms: Any = None  # (params, x) -> (c, aux) when the objective is fisher_rao (objectives.fisher_rao_terms)
    precision: Precision = PRECISIONS["float64"]


def build(cfg: dict) -> Built:
    """Molecule, wavefunction, objective and optimiser of a (merged) configuration."""
    mol = molecule_from_config(cfg)
    net = cfg["network"]
    wf = make_wavefunction(mol, net["kind"], hidden=net.get("hidden"), n_det=net.get("n_det"),
                           jastrow=net.get("jastrow"))
    prec = PRECISIONS[cfg.get("precision", "float64")]
    log_psi = _evaluated_in(wf.log_psi, prec.energy)  # what the objective differentiates
    e_loc = _evaluated_in(make_local_energy(wf.log_psi, mol, cfg["laplacian"]), prec.energy)
    oo = cfg["objective_options"]
    fr_terms = None
    if cfg["objective"] == "fisher_rao":
        opts = dict(clip_width=oo["clip_width"], center=oo["center"])
        fr_terms = objectives_mod.fisher_rao_terms(log_psi, mol, local_energy=e_loc, **opts)
    elif cfg["objective"] == "wasserstein":
        opts = dict(n_mad=oo["n_mad"])
    else:
        opts = dict(clip_width=oo["clip_width"], center=oo["center"], n_mad=oo["n_mad"],
                    fr_weight=oo["fr_weight"])
    objective = objectives_mod.make_objective(cfg["objective"], log_psi, mol, local_energy=e_loc, **opts)
    o = cfg["optim"]
    wqmc = cfg["objective"] != "fisher_rao"
    lr = o["learning_rate"]
    if lr is None and wqmc and cfg["optimizer"] == "sr":
        lr = optimizers_mod.WQMC_SR_LEARNING_RATE
    opt = optimizers_mod.make_optimizer(
        cfg["optimizer"], log_psi=_evaluated_in(wf.log_psi, prec.jacobian), module=wf.module, learning_rate=lr,
        decay=o["decay"], damping=o["damping"], norm_constraint=o["norm_constraint"],
        singd_options={"structure": o["structure"], "interval": o["singd_interval"]},
        project=wqmc if o.get("project") is None else bool(o["project"]),
        kernel_dtype=None if jnp.dtype(prec.jacobian) == jnp.float64 else prec.jacobian)
    return Built(mol, wf, objective, opt, e_loc, fr_terms, prec)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_train_step(b: Built, mcmc_steps: int, fused: bool | None = None):
    """jit-compiled (state, key) -> (state, metrics).

    ``fused`` (default: whenever possible, i.e. a Fisher-Rao objective and an optimiser with
    ``update_fr`` such as SR): the optimiser forms the gradient from its per-walker Jacobian
    (``update_fr``) instead of differentiating the objective, which saves a forward and a backward
    pass of the network per step and gives the same update (tests/vmc/test_train.py)."""
    can_fuse = b.fr_terms is not None and b.optimizer.update_fr is not None
    if fused and not can_fuse:
        raise ValueError("fused=True needs the fisher_rao objective and an optimizer with update_fr (sr)")
    fused = can_fuse if fused is None else bool(fused)
    sample = _sampler(b, mcmc_steps)

    def step(state: TrainState, key):
        x, width, acceptance = sample(state.params, state.walkers, state.step_size, key)
        if fused:
            c, aux = b.fr_terms(state.params, x)
            updates, new_opt, lp = b.optimizer.update_fr(c, state.opt_state, state.params, x)
            loss = jnp.mean(c * lp)  # the objective's value, for the NaN guard
        else:
            (loss, aux), grads = jax.value_and_grad(b.objective, has_aux=True)(state.params, x)
            updates, new_opt = b.optimizer.update(grads, state.opt_state, state.params, x)
        new_params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & jnp.isfinite(aux.energy) & _all_finite(new_params) & _all_finite(new_opt)
        pick = lambda new, old: jax.tree_util.tree_map(lambda a, c: jnp.where(ok, a, c), new, old)
        new_state = TrainState(pick(new_params, state.params), pick(new_opt, state.opt_state), x,
                               width, state.nan_total + (~ok).astype(jnp.int32),
                               jnp.where(ok, 0, state.nan_streak + 1).astype(jnp.int32))
        metrics = {"energy": aux.energy, "variance": aux.variance, "grad_eloc_norm": aux.grad_eloc_norm,
                   "acceptance": acceptance, "step_size": width,
                   "n_kept": aux.n_kept, "nan_skips": new_state.nan_total, "e_loc": aux.e_loc}
        return new_state, metrics

    return jax.jit(step)


def _sampler(b: Built, n_steps: int):
    """(params, walkers (B, 3N), width, key) -> (walkers, width, mean acceptance), all float64 out:
    ``n_steps`` random-walk Metropolis moves of |psi|² with the width adapted towards 50-55%
    acceptance, the network evaluated in ``b.precision.sampling`` (MCMC needs only log|psi|
    differences). Walkers stay on the first axis (``walkers_last=False``: 2-2.6x faster for a
    network density than the kernel's default layout; qsim.samplers.involutive)."""
    kernel = samplers.rwm(walkers_last=False)
    adapt = samplers.acceptance_targeting((0.5, 0.55))
    dtype = b.precision.sampling

    def mcmc(params, walkers, width, key):
        p = cast_floats(params, dtype)  # cast once, outside the moves
        logp = lambda y: 2.0 * b.wf.log_psi(p, y)
        ms = kernel.init(walkers.astype(dtype), logp)
        ms, rinfo = samplers.run(kernel, key, ms, logp, {"step_size": jnp.asarray(width, dtype)}, n_steps=n_steps,
                                 adapt=adapt)
        f64 = lambda a: a.astype(jnp.float64)
        return f64(ms.position), f64(rinfo.params["step_size"]), f64(jnp.mean(rinfo.acceptance))

    return mcmc


def make_mcmc(b: Built, n_steps: int):
    """jit (params, walkers, step_size, key) -> (walkers, step_size, mean acceptance)."""
    return jax.jit(_sampler(b, n_steps))


def evaluate(step_fn, state: TrainState, key, n_rounds: int):
    """Local energies (n_rounds, B) at the fixed parameters of ``state``: each round samples with the
    train step's MCMC and evaluates its energies; the parameter update is discarded (so no second
    compilation of the local energy is needed)."""
    out = []
    for r in range(n_rounds):
        new, m = step_fn(state, jax.random.fold_in(key, r))
        state = state._replace(walkers=new.walkers, step_size=new.step_size)
        out.append(distributed.fetch(m["e_loc"]))
    return (np.stack(out) if out else np.zeros((0, state.walkers.shape[0]))), state


def _fmt_energy(e: float, err: float) -> str:
    if not math.isfinite(err) or err <= 0:
        return f"{e:.5f}"
    digits = max(0, min(8, -int(math.floor(math.log10(err))) + 1))
    scaled = int(round(err * 10**digits))
    return f"{e:.{digits}f}({scaled})"


def train(config: dict | None = None, out: str | None = None, progress: bool = False,
          log=print) -> dict:
    """Run VMC with ``config`` (merged over DEFAULTS); see the module docstring. Returns the summary."""
    enable_x64()
    cfg = _merge(DEFAULTS, config)
    validate_config(cfg)
    mesh = distributed.current_mesh()
    if mesh is not None and cfg["walkers"] % mesh.devices.shape[0]:
        n_dev = mesh.devices.shape[0]
        raise ValueError(f"walkers={cfg['walkers']} does not split evenly over {n_dev} devices; "
                         f"choose a multiple of {n_dev} or --devices")
    b = build(cfg)
    mol = b.mol
    ref = mol.reference_energy
    base_key = jax.random.PRNGKey(int(cfg["seed"]))
    k_init, k_walk, k_pre, k_burn, k_train, k_eval = jax.random.split(base_key, 6)
    params0 = b.wf.init(k_init)
    walkers0 = mol.initial_electrons(k_walk, cfg["walkers"])
    state = TrainState(params0, b.optimizer.init(params0), walkers0,
                       jnp.asarray(float(cfg["mcmc"]["step_size"]), jnp.float64),
                       jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    run_ctx = None
    if out is not None:

        cfg_record = {**cfg, "system": mol.name if not isinstance(cfg["system"], str) else cfg["system"]}
        run_ctx = RunDir.open(out, command="vmc", config=cfg_record, defaults=DEFAULTS)
    with (run_ctx if run_ctx is not None else _NullRun()) as run, single_threaded_blas():
        run.update_summary(system=mol.name, objective=cfg["objective"], optimizer=cfg["optimizer"],
                           reference_energy=ref, energy=None, energy_stderr=None, variance=None,
                           error_mha=None)
        start = 0
        restored = run.load_checkpoint(state) if run_ctx is not None else None
        if restored is not None:
            last, st = restored
            state = TrainState(*[jax.tree_util.tree_map(jnp.asarray, s) for s in st])
            start = last + 1
            log(f"resuming {out} from step {start}")
        else:
            mcmc = make_mcmc(b, int(cfg["mcmc"]["steps"]))
            if cfg["pretrain"]["steps"] > 0:

                t0 = time.perf_counter()
                pre = pretrain(b.wf, mol, state.params, state.walkers, k_pre, steps=int(cfg["pretrain"]["steps"]),
                               learning_rate=float(cfg["pretrain"]["learning_rate"]),
                               basis=cfg["pretrain"]["basis"], step_size=float(state.step_size), mcmc=mcmc)
                state = state._replace(params=pre.params, walkers=pre.walkers, step_size=pre.step_size,
                                       opt_state=b.optimizer.init(pre.params))
                run.update_summary(hf_energy=pre.hf_energy)
                log(f"pretrained {cfg['pretrain']['steps']} steps to Hartree-Fock ({cfg['pretrain']['basis']}, "
                    f"E_HF = {pre.hf_energy:.6f} Ha) in {time.perf_counter() - t0:.1f} s; final loss "
                    f"{pre.losses[-1]:.3g}")
            n_rounds = -(-int(cfg["mcmc"]["burn_in"]) // int(cfg["mcmc"]["steps"]))
            w, s = state.walkers, state.step_size
            for r in range(n_rounds):  # burn-in: the same compiled sampler, mcmc.steps moves per round
                w, s, _ = mcmc(state.params, w, s, jax.random.fold_in(k_burn, r))
            state = state._replace(walkers=w, step_size=s)

        state = distributed.place(state)  # walkers sharded over qsim.infra.meshes's mesh (--devices), if any
        step_fn = make_train_step(b, int(cfg["mcmc"]["steps"]))
        n_steps = int(cfg["steps"])
        energies: list[float] = []
        bar = None
        if progress and n_steps > start:

            bar = tqdm(total=n_steps, initial=start, desc=f"vmc {mol.name}", unit="step", dynamic_ncols=True)
        try:
            for t in range(start, n_steps):
                t0 = time.perf_counter()
                state, m = step_fn(state, jax.random.fold_in(k_train, t))
                m = {k: float(v) for k, v in m.items() if k != "e_loc"}
                dt = time.perf_counter() - t0
                energies.append(m["energy"])
                err_mha = (m["energy"] - ref) * 1e3 if ref is not None else None
                run.log_metrics(t, **m, step_time_s=dt, error_mha=err_mha)
                if int(state.nan_streak) >= int(cfg["max_nan_steps"]):
                    raise NanError(
                        f"{int(state.nan_streak)} consecutive steps produced non-finite energies or "
                        f"parameters (step {t}); the run stops here. Lower the learning rate "
                        "(optim.learning_rate), raise optim.damping, or resume from the last checkpoint.")
                if (t + 1) % int(cfg["checkpoint_every"]) == 0 or t == n_steps - 1:
                    run.save_checkpoint(t, state)
                if bar is not None:
                    window = np.asarray(energies[-max(10, len(energies) // 5):])
                    e_mean, e_err = float(np.mean(window)), stats.blocking_stderr(window)
                    post = {"E": _fmt_energy(e_mean, e_err), "var": f"{m['variance']:.3g}",
                            "acc": f"{m['acceptance']:.2f}"}
                    if ref is not None:
                        post["gap_mHa"] = f"{(e_mean - ref) * 1e3:+.1f}"
                    bar.set_postfix(post, refresh=False)
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

        n_eval = int(cfg["eval"]["steps"])
        summary = {}
        if n_eval > 0:
            t0 = time.perf_counter()
            e_eval, _ = evaluate(step_fn, state, k_eval, n_eval)
            energy, err = stats.mean_and_stderr(e_eval)
            variance = float(np.nanvar(e_eval))
            summary = {"energy": energy, "energy_stderr": err, "variance": variance,
                       "error_mha": (energy - ref) * 1e3 if ref is not None else None,
                       "eval_time_s": time.perf_counter() - t0}
            run.update_summary(**summary)
            msg = f"{mol.name}: E = {_fmt_energy(energy, err)} Ha, variance {variance:.4g} Ha^2"
            if ref is not None:
                msg += f", reference {ref:.6f}: error {(energy - ref) * 1e3:+.2f} ± {err * 1e3:.2f} mHa"
            log(msg)
        run.update_summary(nan_skips=int(state.nan_total), n_parameters=int(sum(
            np.size(x) for x in jax.tree_util.tree_leaves(state.params))))
        if run_ctx is not None and run.is_writer:
            try:

                plot_runs([run.path], run.path / "energy.png")
            except Exception as exc:  # a figure must never fail a finished run
                log(f"(energy.png not written: {exc})")
        result = run.write_summary("completed") if run_ctx is not None else {
            "system": mol.name, "objective": cfg["objective"], "optimizer": cfg["optimizer"],
            "reference_energy": ref, **summary, "nan_skips": int(state.nan_total), "steps": n_steps}
    if run_ctx is None:
        result["params"] = state.params
    return result


class _NullRun:
    """Stands in for RunDir when no --out is given."""

    path = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def update_summary(self, **kw):
        pass

    def log_metrics(self, step, **kw):
        pass

    def save_checkpoint(self, step, tree):
        pass

    def load_checkpoint(self, template):
        return None
