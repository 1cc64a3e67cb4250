"""The one driver loop (qsim.infra.driver): metrics and checkpoints, progress without a terminal,
SIGTERM, the NaN guard, callbacks, resume, and the same result shape without a run directory."""

import io
import json
import math
import os
import signal

import numpy as np
import pytest

from qsim.infra import runs
from qsim.infra.driver import NonFiniteError, Progress, interruptible, resume, run_loop


def _step(t, state):
    """A deterministic toy training: the key of step t is derived from t, not carried."""
    rng = np.random.default_rng(1000 + t)
    w = state["w"] - 0.1 * state["w"] + rng.normal(size=state["w"].shape)
    return {"w": w, "n": state["n"] + 1}, {"loss": float(np.sum(w ** 2)), "t": t}


STATE0 = {"w": np.ones(3), "n": np.asarray(0)}


def _ckpt_steps(path):
    return sorted(int(f.stem.split("_")[1]) for f in (path / "checkpoints").glob("step_*.npz"))


def test_metrics_rows_and_checkpoints_every_n(tmp_path, monkeypatch):
    saved = []
    with runs.open_run(tmp_path / "r", "demo", {"steps": 7}) as run:
        save = run.save_checkpoint
        monkeypatch.setattr(run, "save_checkpoint", lambda t, tree, keep=2: (saved.append(t), save(t, tree)))
        res = run_loop(_step, STATE0, 7, run=run, checkpoint_every=3)
    assert saved == [2, 5, 6]  # every 3 steps and the last one
    assert _ckpt_steps(tmp_path / "r") == [5, 6]  # the run directory keeps the last two
    m = runs.read_metrics(tmp_path / "r")
    np.testing.assert_array_equal(m["step"], np.arange(7))
    np.testing.assert_array_equal(m["t"], np.arange(7))
    assert np.all(m["step_time_s"] >= 0)
    np.testing.assert_allclose(m["loss"], [r["loss"] for r in res.metrics])
    assert res.status == "completed" and res.steps == 7 and int(res.state["n"]) == 7
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 7


def test_progress_line_when_not_a_terminal():
    stream = io.StringIO()  # not a tty: plain lines, no tqdm bar
    run_loop(_step, STATE0, 5, progress=True, desc="demo", progress_stream=stream, progress_every_s=0.0,
             postfix=lambda m: {"loss": f"{m['loss']:.2f}"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5 and "\r" not in stream.getvalue()
    assert lines[0].startswith("demo: step 1/5 (20%)") and "step/s" in lines[0] and "loss=" in lines[0]
    assert lines[-1].startswith("demo: step 5/5 (100%)")
    # with the default 30 s interval only the last step prints
    stream = io.StringIO()
    run_loop(_step, STATE0, 5, progress=True, desc="demo", progress_stream=stream)
    assert stream.getvalue().splitlines() == [ln for ln in stream.getvalue().splitlines() if "5/5" in ln] != []
    # progress off: nothing
    stream = io.StringIO()
    run_loop(_step, STATE0, 5, progress=False, progress_stream=stream, progress_every_s=0.0)
    assert stream.getvalue() == ""


def test_progress_counts_from_the_resumed_step():
    stream = io.StringIO()
    p = Progress(10, initial=4, desc="x", every_s=0.0, stream=stream)
    p.update(1, {"a": 1})
    p.close()
    assert stream.getvalue().startswith("x: step 5/10 (50%)") and "a=1" in stream.getvalue()
    assert not Progress(10, initial=10, stream=io.StringIO()).enabled  # nothing left to do: no display


def test_sigterm_ends_as_interrupted(tmp_path):
    def step(t, state):
        if t == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return _step(t, state)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with runs.open_run(tmp_path / "r", "demo", {}) as run:
            run_loop(step, STATE0, 10, run=run, checkpoint_every=2)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["interrupted_at_step"] == 3
    assert _ckpt_steps(tmp_path / "r") == [1]  # the last completed checkpoint is kept
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored


def test_interruptible_nests_and_restores():
    before = signal.getsignal(signal.SIGTERM)
    with interruptible():
        outer = signal.getsignal(signal.SIGTERM)
        with interruptible():
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is outer
    assert signal.getsignal(signal.SIGTERM) is before


def test_nan_guard_stops_after_max_nan_steps_naming_the_step(tmp_path):
    def step(t, state):
        return state, {"loss": math.nan if t >= 4 else 1.0, "ok": 1.0}

    with pytest.raises(NonFiniteError, match=r"3 consecutive steps .*\(step 6\).*lower the rate"):
        with runs.open_run(tmp_path / "r", "demo", {}) as run:
            run_loop(step, STATE0, 20, run=run, max_nan_steps=3, nan_hint="lower the rate")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "failed" and "NonFiniteError" in summary["error"]
    assert len(runs.read_metrics(tmp_path / "r")["step"]) == 7  # the failing step is logged, then it stops
    # a finite step in between resets the streak; unwatched metrics do not count; off without a limit
    flaky = lambda t, s: (s, {"loss": math.nan if t % 3 else 1.0})
    assert run_loop(flaky, STATE0, 12, max_nan_steps=3).steps == 12
    assert run_loop(step, STATE0, 12, max_nan_steps=3, nan_keys=("ok",)).steps == 12
    assert run_loop(step, STATE0, 12).steps == 12


def test_nan_guard_counts_steps_that_skip_themselves():
    # a step that rolled itself back: its metrics are finite, it says so (metric or skipped())
    by_metric = lambda t, s: (s, {"loss": 1.0, "nan_skipped": t >= 2})
    with pytest.raises(NonFiniteError, match=r"\(step 3\)"):
        run_loop(by_metric, STATE0, 10, max_nan_steps=2)
    by_state = lambda t, s: ({**s, "streak": s["streak"] + 1}, {"loss": 1.0})
    with pytest.raises(NonFiniteError, match=r"\(step 1\)"):
        run_loop(by_state, {"streak": 0}, 10, max_nan_steps=2, nan_keys=(),
                 skipped=lambda s, m: s["streak"] > 0)


def test_a_callback_returning_false_stops_the_loop(tmp_path):
    seen = []

    def watch(t, metrics, state):
        seen.append(t)

    stop = lambda t, metrics, state: t < 4  # noqa: E731  (False at step 4)
    with runs.open_run(tmp_path / "r", "demo", {}) as run:
        res = run_loop(_step, STATE0, 10, run=run, callbacks=[stop, watch])
    assert res.status == "completed" and res.steps == 5 and len(res.metrics) == 5
    assert seen == [0, 1, 2, 3, 4]  # every callback sees every step, the stopping one included
    assert _ckpt_steps(tmp_path / "r") == [4]  # the state where it stopped is checkpointed
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["steps"] == 5


def test_resume_after_an_interruption_reaches_the_same_numbers(tmp_path):
    full = run_loop(_step, STATE0, 10)

    def interrupted(t, state):
        if t == 6:
            raise KeyboardInterrupt
        return _step(t, state)

    with pytest.raises(KeyboardInterrupt):
        with runs.open_run(tmp_path / "r", "demo", {"steps": 10}) as run:
            run_loop(interrupted, STATE0, 10, run=run, checkpoint_every=4)
    with runs.open_run(tmp_path / "r", "demo", {"steps": 10}) as run:
        start, state, resumed = resume(run, STATE0)
        assert (start, resumed) == (4, True)
        res = run_loop(_step, state, 10, start=start, run=run, checkpoint_every=4)
    assert res.steps == 10 and int(res.state["n"]) == 10
    np.testing.assert_array_equal(res.state["w"], full.state["w"])
    m = runs.read_metrics(tmp_path / "r")
    np.testing.assert_array_equal(m["step"], np.arange(10))  # each step once
    np.testing.assert_array_equal(m["loss"], [r["loss"] for r in full.metrics])
    assert resume(runs.NullRun(), STATE0) == (0, STATE0, False)


def test_without_a_run_directory_the_result_has_the_same_shape(tmp_path):
    with runs.open_run(tmp_path / "r", "demo", {}) as run:
        a = run_loop(_step, STATE0, 4, run=run, checkpoint_every=2)
        sa = run.write_summary(loss=a.metrics[-1]["loss"])
    with runs.open_run(None, "demo", {}) as run:
        assert isinstance(run, runs.NullRun)
        b = run_loop(_step, STATE0, 4, run=run, checkpoint_every=2)
        sb = run.write_summary(loss=b.metrics[-1]["loss"])
    c = run_loop(_step, STATE0, 4)  # run=None
    for r in (b, c):
        assert type(r) is type(a) and (r.status, r.steps) == (a.status, a.steps)
        np.testing.assert_array_equal(r.state["w"], a.state["w"])
        assert [set(x) for x in r.metrics] == [set(x) for x in a.metrics]
    assert set(sa) == set(sb) and sb["command"] == "demo" and sb["steps"] == 4 and sb["loss"] == sa["loss"]


def test_metrics_must_be_scalars():
    with pytest.raises(TypeError, match="metric 'x' must be a scalar"):
        run_loop(lambda t, s: (s, {"x": np.zeros(3)}), STATE0, 1)
    res = run_loop(lambda t, s: (s, {"x": np.float32(2.5), "y": np.asarray(3)}), STATE0, 1)
    assert res.metrics[0]["x"] == 2.5 and type(res.metrics[0]["y"]) is int


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="checkpoint_every"):
        run_loop(_step, STATE0, 3, checkpoint_every=-1)
    with pytest.raises(ValueError, match="max_nan_steps"):
        run_loop(_step, STATE0, 3, max_nan_steps=0)
    with pytest.raises(ValueError, match="n_steps"):
        run_loop(_step, STATE0, -1)
