"""The one driver loop that every command's training runs through (vmc, vqe, nqs, hypernet, flow).

A training is a pure step ``step_fn(t, state) -> (state, metrics)``; :func:`run_loop` does the rest,
in the spirit of NetKet's driver callbacks but writing this project's run directory:

- a progress bar (tqdm on a terminal; when stderr is not a terminal one plain line every 30 s and one
  at the end);
- ``metrics.csv``: one row per step (the step's metrics plus ``step_time_s``), or one every
  ``log_every`` steps and at the last (``log_every=None``: the step writes its own rows);
- a checkpoint every ``checkpoint_every`` steps and at the last step;
- the NaN guard: a step whose watched metrics are not finite (or that says it skipped itself: metric
  ``nan_skipped`` true, or ``skipped(state, metrics)`` true) counts towards a streak; ``max_nan_steps``
  in a row stop the run with :class:`NonFiniteError`, which names the step and what to change;
- SIGINT and SIGTERM both end the loop as "interrupted" (the last completed step's checkpoint is kept,
  ``summary.json`` says so) and are re-raised as ``KeyboardInterrupt`` for the caller;
- callbacks ``callback(step, metrics, state) -> bool | None``: ``False`` stops the loop early (status
  stays "completed": the callback decided it was done; the state is checkpointed).

The same call works with ``run=None`` (no ``--out``): nothing is written, the result has the same shape.
A command's whole shape::

    with open_run(out, "demo", cfg) as run:               # a RunDir, or a NullRun for out=None
        start, state, resumed = resume(run, state0)       # the last checkpoint, if any
        res = run_loop(step, state, cfg["steps"], start=start, run=run, checkpoint_every=50,
                       progress=True, desc="demo", max_nan_steps=10)
        summary = run.write_summary(energy=...)           # the same dict with or without out
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
from tqdm import tqdm

from qsim.infra.runs import NullRun, RunDir
from qsim.infra.validation import nonnegative_int, positive_int

__all__ = ["run_loop", "LoopResult", "NonFiniteError", "Progress", "interruptible", "resume"]

StepFn = Callable[[int, Any], tuple[Any, dict]]
Callback = Callable[[int, dict, Any], "bool | None"]


class NonFiniteError(RuntimeError):
    """Training produced non-finite values for too many steps in a row."""


class LoopResult(NamedTuple):
    state: Any
    status: str          # "completed" (ran to n_steps, or a callback stopped it)
    steps: int           # steps done in total (the index of the next step)
    metrics: list        # the metrics dict of every step run in this call


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` like SIGINT (main thread only; the
    previous handler comes back on exit, so blocks nest)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


class Progress:
    """A progress display: tqdm when ``stream`` (default stderr) is a terminal, else one plain line
    to ``stream`` every ``every_s`` seconds and one at the last step."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", enabled: bool = True,
                 every_s: float = 30.0, stream=None):
        self.total, self.n, self.desc = int(total), int(initial), desc
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self._bar = None
        self._post: dict = {}
        self._t0 = self._last = time.perf_counter()
        self._n0 = self.n
        self.enabled = enabled and total > initial
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                             file=self.stream)

    def update(self, n: int = 1, postfix: dict | None = None) -> None:
        self.n += n
        if postfix is not None:
            self._post = postfix
        if not self.enabled:
            return
        if self._bar is not None:
            if postfix is not None:
                self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last >= self.every_s or self.n >= self.total:
            self._last = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        """The plain progress line: ``desc: step n/total (p%), r step/s, k=v ...``."""
        now = time.perf_counter() if now is None else now
        rate = (self.n - self._n0) / max(now - self._t0, 1e-9)
        post = " ".join(f"{k}={v}" for k, v in self._post.items())
        return (f"{self.desc}: step {self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f}%), "
                f"{rate:.3g} step/s {post}").rstrip()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def resume(run: RunDir | NullRun, state: Any) -> tuple[int, Any, bool]:
    """``(start, state, resumed)``: the step after the run's last checkpoint and its state (NumPy
    leaves in the structure and dtypes of ``state``), or ``(0, state, False)`` when there is none."""
    restored = run.load_checkpoint(state)
    if restored is None:
        return 0, state, False
    step, restored_state = restored
    return step + 1, restored_state, True


def _non_finite(metrics: dict, keys: Sequence[str] | None) -> bool:
    if metrics.get("nan_skipped"):
        return True
    names = metrics if keys is None else [k for k in keys if k in metrics]
    for k in names:
        v = metrics[k]
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isfinite(v):
            return True
    return False


def run_loop(step_fn: StepFn, state: Any, n_steps: int, *, start: int = 0, run: RunDir | NullRun | None = None,
             checkpoint_every: int | None = None, checkpoint: Callable[[Any], Any] | None = None,
             progress: bool = False, desc: str = "", postfix: Callable[[dict], dict] | None = None,
             callbacks: Sequence[Callback] = (), nan_keys: Sequence[str] | None = None,
             max_nan_steps: int | None = None, nan_hint: str = "", log_every: int | None = 1,
             skipped: Callable[[Any, dict], bool] | None = None,
             progress_every_s: float = 30.0, progress_stream=None) -> LoopResult:
    """Run ``step_fn`` for steps ``start .. n_steps - 1``; see the module docstring.

    ``checkpoint(state)`` picks the pytree to save (default: the whole state); ``postfix(metrics)``
    gives the progress bar's values (called only while a bar is shown); ``nan_keys`` are the metrics
    the NaN guard watches (default: all of them; ``()`` none); ``skipped(state, metrics)`` says that a
    step skipped itself (the step's own NaN handling); ``max_nan_steps=None`` switches the guard off.
    ``log_every``: log a row every ``log_every`` steps and at the last (``None``: no rows, the step
    writes its own; a summary's ``steps`` then counts logged steps unless given).
    Metrics of a step must be plain numbers or scalar arrays (or ``None``), and not named ``step``;
    they are logged as they come. ``progress_every_s``/``progress_stream``: see :class:`Progress`.
    """
    n_steps, start = nonnegative_int(n_steps, "n_steps"), nonnegative_int(start, "start")
    every = positive_int(checkpoint_every, "checkpoint_every") if checkpoint_every else None
    limit = positive_int(max_nan_steps, "max_nan_steps") if max_nan_steps is not None else None
    run = run if run is not None else NullRun()
    save = checkpoint if checkpoint is not None else (lambda s: s)
    bar = Progress(n_steps, start, desc, enabled=progress, every_s=progress_every_s, stream=progress_stream)
    history: list[dict] = []
    streak, t = 0, start
    try:
        with interruptible():
            for t in range(start, n_steps):
                state, metrics = _timed_step(step_fn, t, state)
                if log_every is not None and ((t + 1) % int(log_every) == 0 or t == n_steps - 1):
                    run.log_metrics(t, **metrics)
                history.append(metrics)
                bad = _non_finite(metrics, nan_keys) or (skipped is not None and bool(skipped(state, metrics)))
                streak = streak + 1 if bad else 0
                if limit is not None and streak >= limit:
                    raise NonFiniteError(
                        f"{streak} consecutive steps produced non-finite values (step {t}); the run stops "
                        f"here.{(' ' + nan_hint) if nan_hint else ''} The last checkpoint is kept.")
                saved = (every is not None and (t + 1) % every == 0) or t == n_steps - 1
                if saved:
                    run.save_checkpoint(t, save(state))
                bar.update(1, postfix(metrics) if postfix is not None and bar.enabled else None)
                if any([cb(t, metrics, state) is False for cb in callbacks]):
                    if not saved:
                        run.save_checkpoint(t, save(state))
                    return LoopResult(state, "completed", t + 1, history)
    except KeyboardInterrupt:
        run.update_summary(interrupted_at_step=t)
        raise
    finally:
        bar.close()
    return LoopResult(state, "completed", max(n_steps, start), history)


def _timed_step(step_fn: StepFn, t: int, state: Any) -> tuple[Any, dict]:
    """One step, its metrics as plain Python values plus ``step_time_s`` (which includes the wait for
    the step's results: converting them to Python values blocks on the device)."""
    t0 = time.perf_counter()
    state, metrics = step_fn(t, state)
    metrics = {k: _plain(k, v) for k, v in metrics.items()}
    metrics["step_time_s"] = time.perf_counter() - t0
    return state, metrics


def _plain(name: str, v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    a = np.asarray(v)
    if a.ndim == 0:
        return a.item()
    raise TypeError(f"metric {name!r} must be a scalar, got an array of shape {a.shape}")
