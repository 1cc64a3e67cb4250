"""Run directories: the contract every sub-command writes (see DESIGN.md).

A run directory holds

- ``config.json``: the resolved configuration, the seed, package versions and the devices used
  (the mesh of :func:`qsim.infra.meshes.current_mesh`, or the default device);
- ``metrics.csv``: one row per step with named columns (flushed row by row);
- ``summary.json``: ``command``, ``status`` ("completed", "interrupted", "failed"), ``steps``,
  ``wall_time_s`` plus the command's own keys;
- ``checkpoints/step_XXXXXXXX.npz``: atomic, loaded with ``allow_pickle=False``;
- figures (``*.png``).

Usage::

    with runs.RunDir.open(out, command="vmc", config=cfg) as run:
        restored = run.load_checkpoint(template)      # None or (step, pytree)
        for step in ...:
            run.log_metrics(step, energy=e, variance=v)
            run.save_checkpoint(step, state)
        run.write_summary(energy=e, ...)              # status "completed" when the block exits

Writes are atomic (temporary file then ``os.replace``), so a crash never leaves a half-written
file. Secrets: configuration values whose key looks like a credential are refused.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np

from qsim.infra.meshes import describe, fetch

__all__ = ["RunDir", "NullRun", "open_run", "read_metrics", "atomic_write_bytes", "atomic_write_text",
           "package_versions", "to_jsonable"]

_SECRET_KEY = re.compile(r"(token|password|secret|api[_-]?key|credential)", re.IGNORECASE)
_VERSIONED = ("qsim", "jax", "jaxlib", "numpy", "scipy", "optax", "flax", "pennylane",
              "pennylane-lightning", "qiskit", "qiskit-aer", "netket", "pyscf", "folx")


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (same-directory temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def to_jsonable(x: Any) -> Any:
    """Convert numpy/jax scalars and arrays, paths and tuples to JSON-friendly values.

    Non-finite floats become ``None`` (JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "__array__") and not isinstance(x, (str, bytes)):
        arr = np.asarray(x)
        if arr.ndim == 0:
            return to_jsonable(arr.item())
        return [to_jsonable(v) for v in arr.tolist()]
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, (np.floating,)):
        return to_jsonable(float(x))
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


def _check_no_secrets(cfg: Any, prefix: str = "") -> None:
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            if _SECRET_KEY.search(str(k)) and v not in (None, "", False):
                raise ValueError(
                    f"configuration key {prefix + str(k)!r} looks like a credential; credentials come "
                    "from the environment or the provider's saved account and are never written to a run "
                    "directory")
            _check_no_secrets(v, prefix + str(k) + ".")


def _flatten(tree: Any) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {f"leaf{i:05d}": fetch(leaf) for i, (_, leaf) in enumerate(leaves)}


def _with_defaults(cfg: dict, defaults: dict) -> dict:
    """``cfg`` with the keys it lacks (at any depth of nested dicts) taken from ``defaults``."""
    out = dict(cfg)
    for k, v in defaults.items():
        if k not in out:
            out[k] = v
        elif isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = _with_defaults(out[k], v)
    return out


class RunDir:
    """A run directory. Create with :meth:`open`; use as a context manager."""

    def __init__(self, path: Path, command: str, config: dict, resumed: bool):
        self.path = path
        self.command = command
        self.config = config
        self.resumed = resumed
        self._t0 = time.perf_counter()
        self._prior_wall = 0.0
        self._steps = 0
        self._summary_extra: dict[str, Any] = {}
        self._columns: list[str] | None = None
        self.is_writer = _is_process_zero()
        if resumed and (path / "summary.json").exists():
            try:
                prior = json.loads((path / "summary.json").read_text())
                self._prior_wall = float(prior.get("wall_time_s") or 0.0)
            except (ValueError, OSError):
                pass
        if (path / "metrics.csv").exists():
            with open(path / "metrics.csv", newline="") as f:
                header = next(csv.reader(f), None)
            self._columns = header

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def open(cls, out: str | os.PathLike, command: str, config: dict, resume: bool = True,
             compare_keys: tuple[str, ...] | None = None, defaults: dict | None = None) -> "RunDir":
        """Open (create or resume) the run directory ``out``.

        An existing directory is resumed only if its ``config.json`` describes the same run (same
        command and same configuration, ignoring keys that only steer length such as ``steps``);
        otherwise ``ValueError`` names the difference, before anything is overwritten. ``defaults``
        (the command's default configuration): keys missing from an older ``config.json`` (settings
        added by a later version) count as their default, so such a run still resumes.
        """
        path = Path(out)
        _check_no_secrets(config)
        cfg = to_jsonable(config)
        cfg_file = path / "config.json"
        resumed = False
        if cfg_file.exists():
            old = json.loads(cfg_file.read_text())
            if old.get("command") != command:
                raise ValueError(f"run directory {str(path)!r} holds a {old.get('command')!r} run, "
                                 f"not a {command!r} run; choose another --out")
            old_cfg = old.get("config", {})
            if defaults is not None:
                old_cfg = _with_defaults(old_cfg, to_jsonable(defaults))
            ignore = {"steps", "out", "resume", "progress"}
            keys = compare_keys or tuple(sorted(set(old_cfg) | set(cfg)))
            diff = [k for k in keys if k not in ignore and old_cfg.get(k) != cfg.get(k)]
            if diff:
                k = diff[0]
                raise ValueError(
                    f"run directory {str(path)!r} holds a different run ({k}: {old_cfg.get(k)!r} there, "
                    f"{cfg.get(k)!r} now); choose another --out or delete it")
            if not resume:
                raise ValueError(f"run directory {str(path)!r} already exists and resume=False")
            resumed = True
        run = cls(path, command, cfg, resumed)
        if run.is_writer:
            path.mkdir(parents=True, exist_ok=True)
            (path / "checkpoints").mkdir(exist_ok=True)
            record = {"command": command, "config": cfg, "seed": cfg.get("seed"),
                      "versions": package_versions(), **describe()}
            atomic_write_text(cfg_file, json.dumps(record, indent=2, sort_keys=True))
        return run

    # -- metrics ----------------------------------------------------------------------------
    def log_metrics(self, step: int, **values: Any) -> None:
        """Append one row (``step`` plus named values) to metrics.csv; rows past ``step`` from an
        earlier interrupted attempt are dropped on resume so the table has each step once."""
        self._steps = max(self._steps, int(step) + 1)
        if not self.is_writer:
            return
        row = {"step": int(step), **{k: to_jsonable(v) for k, v in values.items()}}
        f = self.path / "metrics.csv"
        if self._columns is None:
            self._columns = list(row)
            atomic_write_text(f, ",".join(self._columns) + "\n")
        elif self.resumed and not getattr(self, "_trimmed", False):
            self._trim_metrics(int(step))
        self._trimmed = True
        missing = [k for k in row if k not in self._columns]
        if missing:
            raise ValueError(f"metrics column(s) {missing} not in the table's header {self._columns}")
        buf = io.StringIO()
        csv.writer(buf).writerow(["" if row.get(c) is None else row.get(c) for c in self._columns])
        with open(f, "a") as fh:
            fh.write(buf.getvalue())
            fh.flush()

    def _trim_metrics(self, first_step: int) -> None:
        f = self.path / "metrics.csv"
        with open(f, newline="") as fh:
            rows = list(csv.reader(fh))
        keep = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) < first_step]
        buf = io.StringIO()
        csv.writer(buf).writerows(keep)
        atomic_write_text(f, buf.getvalue())

    def read_metrics(self) -> dict[str, np.ndarray]:
        return read_metrics(self.path)

    # -- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self, step: int, tree: Any, keep: int = 2) -> None:
        """Save a pytree of arrays atomically as ``checkpoints/step_<step>.npz``; keep the last ``keep``.

        Every process calls this (arrays sharded across processes are gathered, a collective);
        only process 0 writes."""
        arrays = _flatten(tree)
        if not self.is_writer:
            return
        buf = io.BytesIO()
        np.savez(buf, __step__=np.asarray(step), **arrays)
        ck = self.path / "checkpoints"
        atomic_write_bytes(ck / f"step_{int(step):08d}.npz", buf.getvalue())
        for old in sorted(ck.glob("step_*.npz"))[:-keep]:
            old.unlink(missing_ok=True)

    def load_checkpoint(self, template: Any) -> tuple[int, Any] | None:
        """Restore the latest checkpoint into the structure of ``template``; None if there is none."""
        files = sorted((self.path / "checkpoints").glob("step_*.npz"))
        if not files:
            return None
        with np.load(files[-1], allow_pickle=False) as data:
            step = int(data["__step__"])
            leaves, treedef = jax.tree_util.tree_flatten(template)
            arrays = [data[f"leaf{i:05d}"] for i in range(len(leaves))]
        for a, t in zip(arrays, leaves):
            if np.shape(a) != np.shape(t):
                raise ValueError(f"checkpoint {files[-1]} does not match this run's state "
                                 f"(shape {np.shape(a)} vs {np.shape(t)})")
        restored = [np.asarray(a, dtype=np.asarray(t).dtype) for a, t in zip(arrays, leaves)]
        self._steps = step + 1
        return step, jax.tree_util.tree_unflatten(treedef, restored)

    # -- summary ----------------------------------------------------------------------------
    @property
    def wall_time_s(self) -> float:
        return self._prior_wall + time.perf_counter() - self._t0

    def write_summary(self, status: str = "completed", steps: int | None = None, **extra: Any) -> dict:
        """Write summary.json; an explicit ``steps`` is kept for later writes (the one on exit too)."""
        self._summary_extra.update(extra)
        if steps is not None:
            self._summary_extra["steps"] = int(steps)
        summary = {"command": self.command, "status": status, "steps": self._steps,
                   "wall_time_s": round(self.wall_time_s, 3), **self._summary_extra}
        summary = to_jsonable(summary)
        if self.is_writer:
            atomic_write_text(self.path / "summary.json", json.dumps(summary, indent=2))
        return summary

    def update_summary(self, **extra: Any) -> None:
        """Record values for the summary without writing it yet (written on exit)."""
        self._summary_extra.update(extra)

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.write_summary("completed")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.write_summary("interrupted")
        else:
            self.write_summary("failed", error=f"{exc_type.__name__}: {exc}")
        return False


class NullRun:
    """Stands in for :class:`RunDir` when a command runs without ``--out``: the same methods, nothing
    written; :meth:`write_summary` returns the dict a RunDir would write (``command`` included when
    given), so a command's result has one shape with or without ``--out``."""

    path = None
    resumed = False
    is_writer = False

    def __init__(self, command: str | None = None):
        self.command = command
        self._summary: dict[str, Any] = {}
        self._steps = 0
        self._t0 = time.perf_counter()

    def __enter__(self) -> "NullRun":
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def log_metrics(self, step: int, **values: Any) -> None:
        self._steps = max(self._steps, int(step) + 1)

    def save_checkpoint(self, step: int, tree: Any, keep: int = 2) -> None:
        pass

    def load_checkpoint(self, template: Any) -> None:
        return None

    def update_summary(self, **extra: Any) -> None:
        self._summary.update(extra)

    def write_summary(self, status: str = "completed", steps: int | None = None, **extra: Any) -> dict:
        """The summary a :class:`RunDir` would write, returned only (so results have one shape)."""
        self._summary.update(extra)
        if steps is not None:
            self._summary["steps"] = int(steps)
        head = {"command": self.command} if self.command is not None else {}
        return to_jsonable({**head, "status": status, "steps": self._steps,
                            "wall_time_s": round(time.perf_counter() - self._t0, 3), **self._summary})


def open_run(out: str | os.PathLike | None, command: str, config: dict, **options: Any) -> "RunDir | NullRun":
    """:meth:`RunDir.open` for a path, a :class:`NullRun` for ``None``."""
    if out is None:
        return NullRun(command)
    return RunDir.open(out, command=command, config=config, **options)


def read_metrics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a run's metrics.csv into columns of floats (empty cells become NaN)."""
    with open(Path(path) / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    cols = {}
    for j, name in enumerate(header):
        vals = []
        for r in body:
            try:
                vals.append(float(r[j]) if r[j] != "" else math.nan)
            except (ValueError, IndexError):
                vals.append(math.nan)
        cols[name] = np.asarray(vals)
    return cols


def _is_process_zero() -> bool:
    try:
        return jax.process_index() == 0
    except Exception:  # pragma: no cover - jax not initialised
        return True
