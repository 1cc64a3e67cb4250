import json
import os
import signal

import numpy as np
import pytest

import hypernets.cli as hcli
from qsim.infra import settings
from qsim.infra.cli import main
from qsim.infra.runs import read_metrics


@pytest.fixture
def tiny_cli(monkeypatch, tiny_task, tmp_path):
    monkeypatch.setattr(hcli, "_make_task", lambda cfg: tiny_task)
    with settings.override(cache_dir=tmp_path / "cache"):
        yield tmp_path


def test_cli_sweep_writes_run_directory_and_resumes(tiny_cli):
    out = tiny_cli / "run"
    args = ["hypernet", "--depth", "1", "2", "--restarts", "2", "--max-iter", "15", "--out", str(out),
            "--no-progress", "log_every=5", "anneal_stages=2", "stage_iters=10"]
    assert main(args) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "completed" and s["task"] == "tiny" and s["depths"] == [1, 2]
    for key in ("expected_cost", "p_optimal", "p_top_k", "best_accuracy"):
        assert len(s[key]) == 2
    for d in ("1", "2"):
        pd = s["per_depth"][d]
        assert pd["optimal_cost"] == pytest.approx(s["optimal_cost"])
        assert pd["expected_cost"] >= pd["optimal_cost"] - 1e-12
        assert 0 <= pd["p_optimal"] <= 1 and len(pd["p_optimal_restarts"]) == 2
    assert (out / "success_vs_depth.png").stat().st_size > 1000
    m = read_metrics(out)
    final = m["iteration"] == -1
    assert final.sum() == 4 and np.all(np.isfinite(m["p_optimal"][final]))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["depths"] == [1, 2] and cfg["config"]["max_iter"] == 15
    # a rerun resumes: every restart is done, nothing is retrained, same numbers
    before = (out / "metrics.csv").read_text()
    assert main(args) == 0
    s2 = json.loads((out / "summary.json").read_text())
    assert s2["p_optimal"] == s["p_optimal"]
    assert (out / "metrics.csv").read_text() == before


def test_cli_shot_mode_statevector(tiny_cli):
    out = tiny_cli / "shots"
    assert main(["hypernet", "--depth", "1", "--restarts", "1", "--shots", "64", "--steps", "3",
                 "--gradient", "spsa", "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["mode"] == "shots" and s["status"] == "completed"


def test_cli_bad_inputs(tiny_cli, capsys):
    assert main(["hypernet", "--depth", "0", "--no-progress"]) == 2
    assert "depths" in capsys.readouterr().err
    assert main(["hypernet", "--noise", "0.01", "--no-progress"]) == 2
    assert "noise" in capsys.readouterr().err


def test_sigterm_mid_sweep_then_resume_gives_the_uninterrupted_run(tiny_cli, monkeypatch):
    """SIGTERM during the second restart: status "interrupted", exit 130; the rerun trains only the
    restarts left and writes the same metrics and summary as a run that was never interrupted."""
    args = ["hypernet", "--depth", "1", "--restarts", "3", "--shots", "32", "--steps", "2", "--gradient", "spsa",
            "--no-progress", "log_every=1"]
    whole, cut = tiny_cli / "whole", tiny_cli / "cut"
    assert main(args + ["--out", str(whole)]) == 0
    real, calls = hcli.train_shots, []

    def terminated_on_second(*a, **k):
        calls.append(k["seed"])
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(hcli, "train_shots", terminated_on_second)
    assert main(args + ["--out", str(cut)]) == 130
    s = json.loads((cut / "summary.json").read_text())
    assert s["status"] == "interrupted" and s["interrupted_at_step"] == 1
    calls.clear()
    monkeypatch.setattr(hcli, "train_shots", lambda *a, **k: (calls.append(k["seed"]), real(*a, **k))[1])
    assert main(args + ["--out", str(cut)]) == 0
    assert calls == [1000 + 1, 1000 + 2]                    # only the restarts left (seed + 1000 d + r)
    assert (cut / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
    a, b = (json.loads((p / "summary.json").read_text()) for p in (whole, cut))
    for s_ in (a, b):
        s_.pop("wall_time_s")
    b.pop("interrupted_at_step", None)
    assert a == b and b["status"] == "completed"


def test_result_has_the_same_shape_without_out(tiny_cli):
    cfg = dict(hcli.DEFAULTS, depths=[1], restarts=1, max_iter=5, anneal=0.0)
    with_out = hcli.run_hypernet(dict(cfg), out=tiny_cli / "o")
    without = hcli.run_hypernet(dict(cfg), out=None)
    assert set(with_out) == set(without) and without["status"] == "completed"
    assert without["p_optimal"] == with_out["p_optimal"] and without["steps"] == with_out["steps"]
