"""The VMC training: pretraining, burn-in, then per step MCMC -> objective -> optimiser update through
the one driver loop (:func:`qsim.infra.driver.run_loop`), then a final evaluation.

``train(config, out=None)`` runs one configuration (see :data:`vmc.config.DEFAULTS`; nested dicts) and
returns the summary dict plus the final ``params``, with or without ``out``. With ``out`` it writes a
run directory (qsim.infra.runs.RunDir): config.json, metrics.csv (one row per step: energy, variance,
grad_eloc_norm, acceptance, step_size, n_kept, nan_skips, error_mha, step_time_s), summary.json,
checkpoints/ and energy.png; an existing run directory of the same configuration resumes from its last
checkpoint and reaches the same numbers as an uninterrupted run (random keys are derived from
(seed, step), not carried). SIGINT and SIGTERM end a run as "interrupted" (``KeyboardInterrupt``).

NaN guard: a step whose loss, energy or new parameters are not finite is skipped and rolled back
(:mod:`vmc.step`); skips are counted in ``nan_skips``; ``max_nan_steps`` consecutive skips stop the
run with :class:`NanError` (the driver's :class:`~qsim.infra.driver.NonFiniteError`).

Final evaluation: ``eval.steps`` sampling rounds at fixed parameters; energy and standard error by
blocking analysis over the per-round means. Atomic units (Hartree, bohr). Call :func:`enable_x64`
(done by the CLI and by :func:`train`) before building anything. The precision modes are
:mod:`vmc.config`'s; the step itself is :mod:`vmc.step`'s.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from threadpoolctl import threadpool_limits

from qsim.infra import meshes as distributed
from qsim.infra.driver import NonFiniteError, interruptible, resume, run_loop
from qsim.infra.plots import plot_runs
from qsim.infra.runs import open_run
from vmc import objectives as objectives_mod
from vmc import optimizers as optimizers_mod
from vmc import stats
from vmc.config import (DEFAULTS, PRECISIONS, Precision, enable_x64, molecule_from_config, make_config,
                        validate_config)
from vmc.hamiltonian import make_local_energy
from vmc.networks import make_wavefunction
from vmc.pretrain import pretrain
from vmc.step import (Built, TrainState, cast_floats, evaluate, evaluated_in, make_mcmc,
                      make_train_step)

__all__ = ["DEFAULTS", "PRECISIONS", "Precision", "TrainState", "Built", "train", "build", "enable_x64",
           "molecule_from_config", "validate_config", "NanError", "cast_floats", "single_threaded_blas",
           "make_train_step", "make_mcmc", "evaluate"]

NanError = NonFiniteError  # vmc's old name for the driver's NaN-guard error

_NAN_HINT = "Lower the learning rate (optim.learning_rate), raise optim.damping, or resume from the last checkpoint."


def single_threaded_blas():
    """Context in which the process's BLAS/LAPACK libraries run on one thread (threadpoolctl; a no-op
    without scipy). On CPU, jaxlib's LAPACK calls (SR's B x B solve, slogdet's LU) go through scipy's
    OpenBLAS, whose worker threads spin against XLA's own thread pool: with the machine's cores
    busy, a 256 x 256 LU then cost tens of ms instead of ~1 ms and the median LiH step was 1.5-4x
    slower (docs/vmc.md). train() runs inside it; the step's heavy products are XLA's, not BLAS's."""
    try:
        importlib.import_module("scipy.linalg")  # loads the OpenBLAS that jaxlib's LAPACK kernels call
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def build(cfg: dict) -> Built:
    """Molecule, wavefunction, objective and optimiser of a (merged) configuration."""
    mol = molecule_from_config(cfg)
    net = cfg["network"]
    wf = make_wavefunction(mol, net["kind"], hidden=net.get("hidden"), n_det=net.get("n_det"),
                           jastrow=net.get("jastrow"))
    prec = PRECISIONS[cfg.get("precision", "float64")]
    log_psi = evaluated_in(wf.log_psi, prec.energy)  # what the objective differentiates
    e_loc = evaluated_in(make_local_energy(wf.log_psi, mol, cfg["laplacian"]), prec.energy)
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
        cfg["optimizer"], log_psi=evaluated_in(wf.log_psi, prec.jacobian), module=wf.module, learning_rate=lr,
        decay=o["decay"], damping=o["damping"], norm_constraint=o["norm_constraint"],
        singd_options={"structure": o["structure"], "interval": o["singd_interval"]},
        project=wqmc if o.get("project") is None else bool(o["project"]),
        kernel_dtype=None if jnp.dtype(prec.jacobian) == jnp.float64 else prec.jacobian)
    return Built(mol, wf, objective, opt, e_loc, fr_terms, prec)


def train(config: dict | None = None, out: str | None = None, progress: bool = False,
          log=print) -> dict:
    """Run VMC with ``config`` (merged over DEFAULTS); see the module docstring.

    Returns the run's summary (what summary.json holds: ``command``, ``status``, ``steps``,
    ``wall_time_s``, ``system``, ``objective``, ``optimizer``, ``reference_energy``, ``energy``,
    ``energy_stderr``, ``variance``, ``error_mha``, ``nan_skips``, ``n_parameters``, ...) plus the final
    ``params``, with or without ``out``. ``progress``: a bar on a terminal, else a line every 30 s."""
    enable_x64()
    cfg = make_config(config)
    _check_devices(cfg)
    b = build(cfg)
    mol, ref = b.mol, b.mol.reference_energy
    keys = dict(zip(("init", "walk", "pre", "burn", "train", "eval"),
                    jax.random.split(jax.random.PRNGKey(int(cfg["seed"])), 6)))
    state = _initial_state(b, cfg, keys)
    record = {**cfg, "system": mol.name if not isinstance(cfg["system"], str) else cfg["system"]}
    with interruptible(), open_run(out, "vmc", record, defaults=DEFAULTS) as run, single_threaded_blas():
        run.update_summary(system=mol.name, objective=cfg["objective"], optimizer=cfg["optimizer"],
                           reference_energy=ref, energy=None, energy_stderr=None, variance=None,
                           error_mha=None)
        start, restored, resumed = resume(run, state)
        if resumed:
            state = jax.tree_util.tree_map(jnp.asarray, restored)
            log(f"resuming {out} from step {start}")
        else:
            state = _pretrain_and_burn_in(b, cfg, state, keys, run, log)
        state = distributed.place(state)  # walkers sharded over qsim.infra.meshes's mesh (--devices), if any
        step_fn = make_train_step(b, int(cfg["mcmc"]["steps"]))
        res = run_loop(_logged_step(step_fn, keys["train"], ref), state, int(cfg["steps"]), start=start,
                       run=run, checkpoint_every=int(cfg["checkpoint_every"]), progress=progress,
                       desc=f"vmc {mol.name}", postfix=_postfix(ref), nan_keys=(),
                       skipped=lambda s, m: int(s.nan_streak) > 0, max_nan_steps=int(cfg["max_nan_steps"]),
                       nan_hint=_NAN_HINT)
        state = res.state
        _final_evaluation(step_fn, state, keys["eval"], int(cfg["eval"]["steps"]), mol, run, log)
        run.update_summary(nan_skips=int(state.nan_total), n_parameters=int(sum(
            np.size(x) for x in jax.tree_util.tree_leaves(state.params))))
        if run.is_writer:
            _plot(run, log)
        summary = run.write_summary("completed")
    return {**summary, "params": state.params}


def _check_devices(cfg: dict) -> None:
    """Walkers must split evenly over the mesh's devices (checked before anything is built)."""
    mesh = distributed.current_mesh()
    if mesh is not None and cfg["walkers"] % mesh.devices.shape[0]:
        n_dev = mesh.devices.shape[0]
        raise ValueError(f"walkers={cfg['walkers']} does not split evenly over {n_dev} devices; "
                         f"choose a multiple of {n_dev} or --devices")


def _initial_state(b: Built, cfg: dict, keys: dict) -> TrainState:
    params = b.wf.init(keys["init"])
    walkers = b.mol.initial_electrons(keys["walk"], cfg["walkers"])
    return TrainState(params, b.optimizer.init(params), walkers,
                      jnp.asarray(float(cfg["mcmc"]["step_size"]), jnp.float64),
                      jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def _pretrain_and_burn_in(b: Built, cfg: dict, state: TrainState, keys: dict, run, log) -> TrainState:
    """Hartree-Fock pretraining (``pretrain.steps``), then ``mcmc.burn_in`` MCMC moves at fixed
    parameters, with the same compiled sampler (``mcmc.steps`` moves per round)."""
    mcmc = make_mcmc(b, int(cfg["mcmc"]["steps"]))
    pc = cfg["pretrain"]
    if pc["steps"] > 0:
        t0 = time.perf_counter()
        pre = pretrain(b.wf, b.mol, state.params, state.walkers, keys["pre"], steps=int(pc["steps"]),
                       learning_rate=float(pc["learning_rate"]), basis=pc["basis"],
                       step_size=float(state.step_size), mcmc=mcmc)
        state = state._replace(params=pre.params, walkers=pre.walkers, step_size=pre.step_size,
                               opt_state=b.optimizer.init(pre.params))
        run.update_summary(hf_energy=pre.hf_energy)
        log(f"pretrained {pc['steps']} steps to Hartree-Fock ({pc['basis']}, E_HF = {pre.hf_energy:.6f} Ha) "
            f"in {time.perf_counter() - t0:.1f} s; final loss {pre.losses[-1]:.3g}")
    n_rounds = -(-int(cfg["mcmc"]["burn_in"]) // int(cfg["mcmc"]["steps"]))
    w, s = state.walkers, state.step_size
    for r in range(n_rounds):
        w, s, _ = mcmc(state.params, w, s, jax.random.fold_in(keys["burn"], r))
    return state._replace(walkers=w, step_size=s)


def _logged_step(step_fn, key, ref: float | None):
    """The driver's ``(t, state) -> (state, metrics)``: the jitted step with the key of step ``t``,
    its scalar metrics as floats and the error to the reference energy in mHa."""
    def step(t: int, state: TrainState):
        state, m = step_fn(state, jax.random.fold_in(key, t))
        m = {k: float(v) for k, v in m.items() if k != "e_loc"}
        m["error_mha"] = (m["energy"] - ref) * 1e3 if ref is not None else None
        return state, m

    return step


def _postfix(ref: float | None):
    """The progress bar's values: the energy over the last fifth of the steps (at least 10) with its
    blocking error, the variance, the acceptance and the gap to the reference in mHa."""
    energies: list[float] = []

    def postfix(m: dict) -> dict:
        energies.append(m["energy"])
        window = np.asarray(energies[-max(10, len(energies) // 5):])
        e_mean, e_err = float(np.mean(window)), stats.blocking_stderr(window)
        post = {"E": _fmt_energy(e_mean, e_err), "var": f"{m['variance']:.3g}", "acc": f"{m['acceptance']:.2f}"}
        if ref is not None:
            post["gap_mHa"] = f"{(e_mean - ref) * 1e3:+.1f}"
        return post

    return postfix


def _final_evaluation(step_fn, state: TrainState, key, n_eval: int, mol, run, log) -> None:
    """``n_eval`` sampling rounds at the final parameters: energy, blocking error and variance into
    the summary, and one line to ``log``."""
    if n_eval <= 0:
        return
    ref = mol.reference_energy
    t0 = time.perf_counter()
    e_eval, _ = evaluate(step_fn, state, key, n_eval)
    energy, err = stats.mean_and_stderr(e_eval)
    variance = float(np.nanvar(e_eval))
    run.update_summary(energy=energy, energy_stderr=err, variance=variance,
                       error_mha=(energy - ref) * 1e3 if ref is not None else None,
                       eval_time_s=time.perf_counter() - t0)
    msg = f"{mol.name}: E = {_fmt_energy(energy, err)} Ha, variance {variance:.4g} Ha^2"
    if ref is not None:
        msg += f", reference {ref:.6f}: error {(energy - ref) * 1e3:+.2f} ± {err * 1e3:.2f} mHa"
    log(msg)


def _plot(run, log) -> None:
    try:
        plot_runs([run.path], run.path / "energy.png")
    except Exception as exc:  # a figure must never fail a finished run
        log(f"(energy.png not written: {exc})")


def _fmt_energy(e: float, err: float) -> str:
    if not math.isfinite(err) or err <= 0:
        return f"{e:.5f}"
    digits = max(0, min(8, -int(math.floor(math.log10(err))) + 1))
    scaled = int(round(err * 10**digits))
    return f"{e:.{digits}f}({scaled})"
