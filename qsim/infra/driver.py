"""The one driver loop that every command's training runs through (vmc, vqe, nqs, hypernet, flow).

A training is a pure step ``step_fn(t, state) -> (state, metrics)``; :func:`run_loop` does the rest,
in the spirit of NetKet's driver callbacks but writing this project's run directory:

- a progress bar (tqdm on a terminal; when stderr is not a terminal one plain line every 30 s);
- ``metrics.csv``: one row per step (the step's metrics plus ``step_time_s``), or one every
  ``log_every`` steps and at the last (``log_every=None``: the step writes its own rows);
- a checkpoint every ``checkpoint_every`` steps and at the last step;
- the NaN guard: a step whose watched metrics are not finite (or that says it skipped itself, metric
  ``nan_skipped`` true) counts towards a streak; ``max_nan_steps`` in a row stop the run with
  :class:`NonFiniteError`, which names the step and what to change;
- SIGINT and SIGTERM both end the loop as "interrupted" (the last completed step's checkpoint is kept,
  ``summary.json`` says so) and are re-raised as ``KeyboardInterrupt`` for the caller;
- callbacks ``callback(step, metrics, state) -> bool | None``: ``False`` stops the loop early (status
  stays "completed": the callback decided it was done).

The same call works with ``run=None`` (no ``--out``): nothing is written, the result has the same shape.
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

__all__ = ["run_loop", "LoopResult", "NonFiniteError", "Progress", "interruptible", "resume"]

StepFn = Callable[[int, Any], tuple[Any, dict]]
Callback = Callable[[int, dict, Any], "bool | None"]


class NonFiniteError(RuntimeError):
    """Training produced non-finite values for too many steps in a row."""


class LoopResult(NamedTuple):
    state: Any
    status: str          # "completed" or "interrupted"
    steps: int           # steps done in total (the index of the next step)
    metrics: list        # the metrics dict of every step run in this call


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` like SIGINT (main thread only)."""
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
    """A progress display: tqdm on a terminal, else one line to ``stream`` every ``every_s`` seconds."""

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
            rate = (self.n - self._n0) / max(now - self._t0, 1e-9)
            post = " ".join(f"{k}={v}" for k, v in self._post.items())
            print(f"{self.desc}: step {self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f}%), "
                  f"{rate:.3g} step/s {post}".rstrip(), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def resume(run: RunDir | NullRun, state: Any) -> tuple[int, Any, bool]:
    """``(start, state, resumed)``: the step after the run's last checkpoint and its state, or 0 and
    ``state`` when there is none."""
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
        try:
            if not math.isfinite(float(metrics[k])):
                return True
        except (TypeError, ValueError):
            continue
    return False


def run_loop(step_fn: StepFn, state: Any, n_steps: int, *, start: int = 0, run: RunDir | NullRun | None = None,
             checkpoint_every: int | None = None, checkpoint: Callable[[Any], Any] | None = None,
             progress: bool = False, desc: str = "", postfix: Callable[[dict], dict] | None = None,
             callbacks: Sequence[Callback] = (), nan_keys: Sequence[str] | None = None,
             max_nan_steps: int | None = None, nan_hint: str = "", log_every: int | None = 1) -> LoopResult:
    """Run ``step_fn`` for steps ``start .. n_steps - 1``; see the module docstring.

    ``checkpoint(state)`` picks the pytree to save (default: the whole state); ``postfix(metrics)``
    gives the progress bar's values; ``nan_keys`` are the metrics the NaN guard watches (default: all
    of them); ``max_nan_steps=None`` switches the guard off.
    ``log_every``: log a row every ``log_every`` steps and at the last (``None``: no rows, the step
    writes its own; a summary's ``steps`` then counts logged steps unless given).
    Metrics of a step must be plain numbers
    (or ``None``); they are logged as they come.
    """
    run = run if run is not None else NullRun()
    bar = Progress(n_steps, start, desc, enabled=progress)
    history: list[dict] = []
    streak, t = 0, start
    save = checkpoint if checkpoint is not None else (lambda s: s)
    every = int(checkpoint_every) if checkpoint_every else None
    try:
        with interruptible():
            for t in range(start, n_steps):
                t0 = time.perf_counter()
                state, metrics = step_fn(t, state)
                metrics = {k: _plain(v) for k, v in metrics.items()}
                metrics["step_time_s"] = time.perf_counter() - t0
                if log_every is not None and ((t + 1) % int(log_every) == 0 or t == n_steps - 1):
                    run.log_metrics(t, **metrics)
                history.append(metrics)
                streak = streak + 1 if _non_finite(metrics, nan_keys) else 0
                if max_nan_steps is not None and streak >= int(max_nan_steps):
                    raise NonFiniteError(
                        f"{streak} consecutive steps produced non-finite values (step {t}); the run stops "
                        f"here.{(' ' + nan_hint) if nan_hint else ''} The last checkpoint is kept.")
                if (every and (t + 1) % every == 0) or t == n_steps - 1:
                    run.save_checkpoint(t, save(state))
                bar.update(1, postfix(metrics) if postfix is not None else None)
                if any(cb(t, metrics, state) is False for cb in callbacks):
                    run.save_checkpoint(t, save(state))
                    return LoopResult(state, "completed", t + 1, history)
    except KeyboardInterrupt:
        run.update_summary(interrupted_at_step=t)
        raise
    finally:
        bar.close()
    return LoopResult(state, "completed", max(n_steps, start), history)


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    a = np.asarray(v)
    if a.ndim == 0:
        return a.item()
    raise TypeError(f"metric values must be scalars, got an array of shape {a.shape}")
