import json

import numpy as np
import pytest

from flows.cli import DEFAULTS, run_flow
from qsim.infra.cli import main
from qsim.infra.validation import merge
from qsim.infra.runs import read_metrics


def test_qsim_flow_cli_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    rc = main(["flow", "--target", "gmm1d", "--qubits-per-dim", "5", "--steps", "60", "--formula",
               "split", "--train-steps", "60", "--no-progress", "--out", str(out),
               "learner.width=16", "learner.depth=1", "learner.batch=128", "learner.lr=0.01",
               "reference_steps=8"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    for k in ("command", "status", "steps", "wall_time_s", "target", "qubits_per_dim", "formula",
              "trotter_steps", "bhattacharyya_model", "bhattacharyya_target", "overlap"):
        assert k in s
    assert s["status"] == "completed" and s["target"] == "gmm1d" and s["qubits_per_dim"] == 5
    assert s["formula"] == "split" and s["trotter_steps"] == 60
    assert 0.9 < s["bhattacharyya_model"] <= 1 + 1e-12 and s["norm_error"] < 1e-12
    m = read_metrics(out)
    assert m["phase"][-1] == 1 and np.isfinite(m["loss"][:-1]).all()
    assert (out / "densities.png").stat().st_size > 1000
    data = np.load(out / "qsample.npz")
    assert data["psi"].shape == (32,)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["learner"]["width"] == 16


def test_qsim_flow_cli_bad_inputs(tmp_path, capsys):
    assert main(["flow", "--target", "spiral", "--out", str(tmp_path / "a")]) == 2
    assert "unknown target" in capsys.readouterr().err
    assert main(["flow", "--learner", "cfm", "--formula", "8", "--out", str(tmp_path / "b")]) == 2
    assert "potential" in capsys.readouterr().err
    assert main(["flow", "--qubits-per-dim", "40", "--out", str(tmp_path / "c")]) == 2
    assert "too large" in capsys.readouterr().err
    assert main(["flow", "--out", str(tmp_path / "d"), "learner.nope=1"]) == 2


def test_run_flow_without_out_returns_the_same_summary_keys(tmp_path):
    cfg = merge(DEFAULTS, {"target": "gmm1d", "qubits_per_dim": 4, "steps": 8, "formula": "split",
                           "reference_steps": 4, "learner": {"width": 8, "depth": 1, "batch": 32, "steps": 20}})
    cfg["seed"] = 0
    with_out = run_flow(cfg, tmp_path / "run", progress=False)
    without = run_flow(cfg, None, progress=False)
    assert set(without) == set(with_out) and without["status"] == "completed"
    assert without["bhattacharyya_model"] == with_out["bhattacharyya_model"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]        # nothing written without out
