"""The learned 2D Gaussian mixture end to end (a few minutes on 2 CPU cores): slow-marked."""
import json

import pytest

from flows.cli import DEFAULTS, run_flow


@pytest.mark.slow
def test_learned_gmm2d_qsample(tmp_path):
    cfg = json.loads(json.dumps(DEFAULTS))
    cfg["seed"] = 0
    assert cfg["target"] == "gmm2d" and cfg["qubits_per_dim"] == 6 and cfg["formula"] == "8"
    s = run_flow(cfg, tmp_path / "run", progress=False)
    assert s["bhattacharyya_model"] >= 0.999          # the qsample vs the flow's own pushforward
    assert s["bhattacharyya_target"] >= 0.99          # ... and vs the true target
    assert s["overlap"] >= 0.99
    assert s["norm_error"] < 1e-12
