"""``qsim plot RUN_DIR [RUN_DIR ...]``: overlay the metrics of runs, one panel per quantity.

Generic over ``metrics.csv``: for runs with an ``energy`` column and a known reference energy
(``summary.json``'s ``reference_energy``, or an ``error_mha`` column) the first panel is the energy
error |E - E_ref| in mHa; then ``variance``; runs of other commands get their numeric columns
(or the ones named by ``--metrics``). Quantities that are positive are drawn on a log scale.
Writes a PNG (default: ``comparison.png`` in the first run directory, or ``--output``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from qsim.infra.runs import read_metrics

__all__ = ["plot_runs", "register"]

_SKIP = {"step", "step_time_s", "nan_skips", "n_kept"}


def _reference(run: Path) -> float | None:
    for name in ("summary.json",):
        f = run / name
        if f.exists():
            try:
                ref = json.loads(f.read_text()).get("reference_energy")
                if ref is not None:
                    return float(ref)
            except (ValueError, OSError):
                pass
    return None


def _label(run: Path) -> str:
    cfg = run / "config.json"
    if cfg.exists():
        try:
            c = json.loads(cfg.read_text()).get("config", {})
            parts = [str(c[k]) for k in ("system", "objective", "optimizer") if k in c]
            if parts:
                return f"{run.name} ({', '.join(parts)})"
        except (ValueError, OSError):
            pass
    return run.name


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or y.size < window:
        return y
    k = np.ones(window) / window
    good = np.isfinite(y)
    num = np.convolve(np.where(good, y, 0.0), k, mode="same")
    den = np.convolve(good.astype(float), k, mode="same")
    return np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)


def plot_runs(runs: Sequence[str | Path], output: str | Path, metrics: Sequence[str] | None = None,
              smooth: int | None = None) -> Path:
    """Overlay runs' metrics into one figure at ``output``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [Path(r) for r in runs]
    if not runs:
        raise ValueError("give at least one run directory")
    data = []
    for r in runs:
        if not (r / "metrics.csv").exists():
            raise FileNotFoundError(f"{r} has no metrics.csv (is it a run directory?)")
        cols = read_metrics(r)
        ref = _reference(r)
        if "energy" in cols and "error_mha" not in cols and ref is not None:
            cols["error_mha"] = (cols["energy"] - ref) * 1e3
        data.append((r, cols))
    if metrics:
        names = list(metrics)
        for r, cols in data:
            missing = [m for m in names if m not in cols and not (m == "energy_error" and "error_mha" in cols)]
            if missing:
                raise ValueError(f"{r}: metrics {missing} not in metrics.csv (columns: {sorted(cols)})")
    else:
        names = []
        if any("error_mha" in c and np.any(np.isfinite(c["error_mha"])) for _, c in data):
            names.append("energy_error")
        elif any("energy" in c for _, c in data):
            names.append("energy")
        if any("variance" in c for _, c in data):
            names.append("variance")
        if not names:
            seen = []
            for _, c in data:
                seen += [k for k in c if k not in _SKIP and k not in seen]
            names = seen[:6]
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.6 * len(names) + 0.6), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        all_pos = True
        for r, cols in data:
            step = cols.get("step", np.arange(len(next(iter(cols.values())))))
            if name == "energy_error":
                if "error_mha" not in cols:
                    continue
                y = cols["error_mha"]
            elif name in cols:
                y = cols[name]
            else:
                continue
            w = smooth if smooth is not None else max(1, len(y) // 50)
            y = _smooth(np.asarray(y, dtype=float), w)   # smooth the signed error, then take |.|
            if name == "energy_error":
                y = np.abs(y)
            all_pos &= bool(np.all(y[np.isfinite(y)] > 0))
            ax.plot(step, y, label=_label(r), lw=1.2)
        if name == "energy_error":
            ax.set_ylabel("|E - E_ref| (mHa)")
            ax.axhline(1.6, color="grey", ls="--", lw=0.8, label="chemical accuracy")
        elif name == "variance":
            ax.set_ylabel("Var E_loc (Ha²)")
        else:
            ax.set_ylabel(name)
        if all_pos:
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _run(args) -> int:
    runs = [Path(r) for r in args.runs]
    output = args.output or (runs[0] / "comparison.png")
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    path = plot_runs(runs, output, metrics=metrics, smooth=args.smooth)
    print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("plot", help="overlay runs' metrics (energy error and variance vs step)",
                              description=__doc__)
    p.add_argument("runs", nargs="+", help="run directories (each with metrics.csv)")
    p.add_argument("--output", "-o", default=None, help="PNG path (default RUN_DIR/comparison.png)")
    p.add_argument("--metrics", default=None, help="comma-separated metrics.csv columns to plot "
                   "(energy_error means |E - E_ref|)")
    p.add_argument("--smooth", type=int, default=None, help="moving-average window (default len/50)")
    p.set_defaults(func=_run)
