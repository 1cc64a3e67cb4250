"""Crash safety: a run killed with SIGKILL mid-way and resumed reaches the same numbers as an
uninterrupted run with the same seed (subprocesses running the real CLI)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--system", "H", "--optimizer", "adam", "--steps", "400", "--walkers", "64", "--no-progress",
        "network.hidden=[[8,4]]", "network.n_det=1", "pretrain.steps=0", "mcmc.burn_in=10", "mcmc.steps=5",
        "eval.steps=20", "checkpoint_every=25"]


def _cmd(out):
    return [sys.executable, "-m", "qsim", "vmc", *ARGS, "--out", str(out)]


def _env(cache):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # share compiled programs between the three processes (identical programs, identical results)
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
    env["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    return env


def _rows(path):
    f = path / "metrics.csv"
    return max(0, len(f.read_text().splitlines()) - 1) if f.exists() else 0


def test_sigkill_and_resume_gives_the_same_numbers(tmp_path):
    env = _env(tmp_path / "jax_cache")
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    subprocess.run(_cmd(full), env=env, cwd=ROOT, check=True, capture_output=True, timeout=600)

    proc = subprocess.Popen(_cmd(crashed), env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while _rows(crashed) < 60 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _rows(crashed)
    assert 60 <= killed_at < 400, f"the run was not killed mid-way ({killed_at} rows)"
    assert not (crashed / "summary.json").exists() or \
        json.loads((crashed / "summary.json").read_text()).get("status") != "completed"

    res = subprocess.run(_cmd(crashed), env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming" in res.stdout + res.stderr

    a = json.loads((full / "summary.json").read_text())
    b = json.loads((crashed / "summary.json").read_text())
    assert b["status"] == "completed" and b["steps"] == a["steps"] == 400
    for k in ("energy", "energy_stderr", "variance"):
        assert a[k] == b[k], (k, a[k], b[k])
    from qsim.infra.runs import read_metrics

    ma, mb = read_metrics(full), read_metrics(crashed)
    assert list(mb["step"]) == list(range(400))          # each step once after the resume
    np.testing.assert_array_equal(ma["energy"], mb["energy"])
    np.testing.assert_array_equal(ma["variance"], mb["variance"])
