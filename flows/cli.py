"""``qsim flow``: learn a flow, simulate its continuity Hamiltonian on a qubit grid, compare.

    qsim flow --target gmm2d --qubits-per-dim 6 --steps 400 --formula 8 --out runs/flow

Writes the run directory of DESIGN.md: ``config.json``, ``metrics.csv`` (training loss rows,
``phase`` 0, then one evaluation row, ``phase`` 1), ``summary.json`` (``target``,
``qubits_per_dim``, ``formula``, ``trotter_steps``, ``bhattacharyya_model``,
``bhattacharyya_target``, ``overlap`` and more), ``checkpoints/``, ``qsample.npz`` (the final state,
the reference and target probabilities) and ``densities.png`` (reference density beside |psi|^2).
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from flows.estimate import tail_mask, tail_probability
from flows.evolve import FORMULAS, evolve, reference_probabilities
from flows.grid import axis_points, boundary_mass, coordinates, make_grid, state_from_density
from flows.hamiltonian import check_velocity
from flows.learn import LearnerConfig, learned_flow, train
from flows.metrics import bhattacharyya, overlap, probabilities, total_variation
from flows.targets import from_samples, gaussian, get_target
from qsim.infra.cli import add_common_arguments, resolve_config
from qsim.infra.runs import atomic_write_bytes, open_run
from qsim.infra.validation import positive_float, positive_int

__all__ = ["register", "run_flow", "DEFAULTS"]

DEFAULTS = {
    "target": "gmm2d",          # catalogue name (flows.targets.TARGETS) or "file:PATH.npy" (M, d)
    "qubits_per_dim": 6,
    "steps": 400,               # product-formula (Trotter) steps R
    "formula": "8",             # exact | 4 | 8 | split
    "time": 1.0,
    "box": 0.0,                 # half-width L; 0 = the target's suggestion
    "source_std": 0.8,          # the Gaussian source N(0, std^2 I)
    "reference_steps": 32,      # RK4 steps of the pushforward reference
    "tail_threshold": 0.0,      # amplitude estimation of P(x_0 > threshold)
    "learner": {"learner": "gfm", "width": 128, "depth": 3, "n_freq": 6, "t_freq": 3,
                "batch": 512, "lr": 2e-3, "steps": 3000, "warmup": 100},
}


def register(subparsers) -> None:
    p = subparsers.add_parser("flow", help="wavefunction flows: learn a flow, simulate it on qubits",
                              description=__doc__.splitlines()[0])
    p.add_argument("--target", default=None, help="gmm2d | gmm1d | moons | ring | gaussian | file:PATH.npy")
    p.add_argument("--qubits-per-dim", dest="qubits_per_dim", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="product-formula steps R (default 400)")
    p.add_argument("--formula", default=None, choices=["exact", "4", "8", "split"])
    p.add_argument("--learner", dest="learner_learner", default=None, choices=["gfm", "am", "cfm"])
    p.add_argument("--train-steps", dest="learner_steps", type=int, default=None)
    add_common_arguments(p)
    p.set_defaults(func=_main)


def _main(args) -> int:
    cfg = resolve_config(DEFAULTS, args, cli_keys=["target", "qubits_per_dim", "steps", "formula",
                                                    "learner.learner", "learner.steps"])
    summary = run_flow(cfg, args.out, progress=not args.no_progress)
    print(f"flow {cfg['target']}: Bhattacharyya vs flow {summary['bhattacharyya_model']:.5f}, "
          f"vs target {summary['bhattacharyya_target']:.5f}, overlap {summary['overlap']:.5f}"
          + (f" -> {args.out}" if args.out else ""))
    return 0


def _load_target(name: str):
    if isinstance(name, str) and name.startswith("file:"):
        path = name[5:]
        if not Path(path).exists():
            raise FileNotFoundError(f"sample file {path!r} not found")
        return from_samples(np.load(path, allow_pickle=False))
    return get_target(name)


def _validate(cfg: dict) -> None:
    if str(cfg["formula"]) not in FORMULAS:
        raise ValueError(f"unknown formula {cfg['formula']!r}; choose one of {FORMULAS}")
    if cfg["learner"]["learner"] == "cfm" and str(cfg["formula"]) in ("4", "8"):
        raise ValueError("the cfm learner gives a velocity without a potential; use --formula split "
                         "or exact (the 4/8-step formulas need v = grad V)")
    for k in ("qubits_per_dim", "steps", "reference_steps"):
        positive_int(cfg[k], k)
    for k in ("time", "source_std"):
        positive_float(cfg[k], k)


def _figure(path, grid, ref, prob, target_prob) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    ax = axis_points(grid)
    if grid.d == 1:
        fig, a = plt.subplots(figsize=(6, 3.5))
        a.plot(ax, ref, label="reference (flow pushforward)")
        a.plot(ax, prob, "--", label="|psi|^2 (qsample)")
        a.plot(ax, target_prob, ":", label="target")
        a.legend()
        a.set_xlabel("x")
    else:
        sl = (slice(None), slice(None)) + (grid.N // 2,) * (grid.d - 2)
        fig, axs = plt.subplots(1, 3, figsize=(12, 4))
        ext = [ax[0], ax[-1] + grid.dx, ax[0], ax[-1] + grid.dx]
        for a, img, title in zip(axs, (ref, prob, target_prob),
                                 ("reference density (flow pushforward)", "|psi|^2 (qsample)", "target")):
            a.imshow(np.asarray(img)[sl].T, origin="lower", extent=ext)
            a.set_title(title)
            a.set_xlabel("x0")
            a.set_ylabel("x1")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _densities(grid, source, target) -> tuple[np.ndarray, np.ndarray]:
    """The source density on the grid (unnormalised, peak 1) and the target's probabilities."""
    pts = jnp.asarray(coordinates(grid).reshape(-1, grid.d))
    lp0 = np.asarray(jax.vmap(source.log_prob)(pts)).reshape(grid.shape)
    lpt = np.asarray(jax.vmap(target.log_prob)(pts)).reshape(grid.shape)
    p0 = np.exp(lp0 - lp0.max())
    pt = np.exp(lpt - lpt.max())
    return p0, pt / pt.sum()


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - t0, 3)


def _write_outputs(out, grid, psi, ref, prob, pt, p0) -> None:
    buf = io.BytesIO()
    np.savez(buf, psi=psi, reference=ref, target=pt, source=p0 / p0.sum())
    atomic_write_bytes(Path(out) / "qsample.npz", buf.getvalue())
    _figure(Path(out) / "densities.png", grid, ref, prob, pt)


def run_flow(cfg: dict, out=None, progress: bool = True) -> dict:
    """Run the whole pipeline for a resolved configuration; returns the summary dict (the same keys
    with or without ``out``; without it nothing is written)."""
    jax.config.update("jax_enable_x64", True)   # an entry point: the physics needs float64
    _validate(cfg)
    target = _load_target(cfg["target"])
    L = float(cfg["box"]) if cfg["box"] else float(target.L)
    grid = make_grid(int(cfg["qubits_per_dim"]), target.d, L)     # memory checked here
    source = gaussian(target.d, float(cfg["source_std"]), L=L)
    lcfg = LearnerConfig(**cfg["learner"])
    formula, R, T = str(cfg["formula"]), int(cfg["steps"]), float(cfg["time"])
    p0, pt = _densities(grid, source, target)

    with open_run(out, "flow", cfg) as run:
        run.update_summary(target=cfg["target"], qubits_per_dim=grid.n, formula=formula,
                           trotter_steps=R, learner=lcfg.learner)
        (model, params, info), t_train = _timed(train, lcfg, source, target, L, seed=int(cfg["seed"]), run=run,
                                                progress=progress)
        flow = learned_flow(model, params, lcfg.learner, grid.d)
        check_velocity(flow, grid, times=np.linspace(0, T, 5), prob=p0 / p0.sum())
        psi, t_evolve = _timed(lambda: np.asarray(evolve(state_from_density(p0), flow, grid, T, R, formula)))
        ref, t_ref = _timed(reference_probabilities, flow, source.log_prob, grid, T,
                            steps=int(cfg["reference_steps"]))
        prob = probabilities(psi)
        mask = tail_mask(grid, float(cfg["tail_threshold"]), axis=0)
        values = {
            "bhattacharyya_model": bhattacharyya(prob, ref),
            "bhattacharyya_target": bhattacharyya(prob, pt),
            "overlap": overlap(psi, ref),
            "total_variation": total_variation(prob, ref),
            "norm_error": abs(float(np.linalg.norm(psi)) - 1.0),
            "boundary_mass": boundary_mass(prob, grid),
        }
        run.log_metrics(lcfg.steps, phase=1, loss=info["final_loss"],
                        nonfinite_steps=info["nonfinite_steps"], **values)
        if out is not None:
            _write_outputs(out, grid, psi, ref, prob, pt, p0)
        extra = {
            "bhattacharyya_reference_target": bhattacharyya(ref, pt),
            "tail_probability_qsample": tail_probability(prob, mask),
            "tail_probability_reference": tail_probability(ref, mask),
            "final_loss": info["final_loss"], "nonfinite_steps": info["nonfinite_steps"],
            "train_time_s": t_train, "evolve_time_s": t_evolve,
            "reference_time_s": t_ref, "box": L, "dimension": grid.d,
        }
        run.update_summary(**{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                              for k, v in {**values, **extra}.items()})
        return run.write_summary("completed", steps=lcfg.steps)
