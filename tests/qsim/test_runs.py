"""Run directories: atomic checkpoints, resume, metrics, different-run refusal, secrets; the CLI shell."""

import json
import subprocess
import sys

import numpy as np
import pytest

from qsim.infra import cli
from qsim.infra import runs


def test_run_directory_contract(tmp_path):
    out = tmp_path / "run"
    cfg = {"system": "H2", "steps": 10, "seed": 3, "net": {"width": 8}}
    state = {"w": np.arange(6.0).reshape(2, 3), "step": np.asarray(0)}
    with runs.RunDir.open(out, command="demo", config=cfg) as run:
        assert run.load_checkpoint(state) is None
        for step in range(4):
            run.log_metrics(step, energy=-1.0 - step, variance=0.1)
            state = {"w": state["w"] + 1, "step": np.asarray(step)}
            run.save_checkpoint(step, state)
        run.update_summary(energy=-4.0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "demo" and summary["status"] == "completed"
    assert summary["steps"] == 4 and summary["energy"] == -4.0 and summary["wall_time_s"] >= 0
    conf = json.loads((out / "config.json").read_text())
    assert conf["config"]["net"]["width"] == 8 and conf["seed"] == 3 and conf["versions"]["jax"]
    assert len(list((out / "checkpoints").glob("*.npz"))) == 2  # keeps the last two
    # resume: same run, the latest checkpoint comes back with dtypes of the template
    with runs.RunDir.open(out, command="demo", config={**cfg, "steps": 20}) as run:
        step, restored = run.load_checkpoint({"w": np.zeros((2, 3)), "step": np.asarray(0)})
        assert step == 3
        np.testing.assert_array_equal(restored["w"], np.arange(6.0).reshape(2, 3) + 4)
        run.log_metrics(2, energy=-7.0, variance=0.2)  # an interrupted attempt's rows past 2 are dropped
    m = runs.read_metrics(out)
    np.testing.assert_array_equal(m["step"], [0, 1, 2])
    assert m["energy"][-1] == -7.0


def test_different_run_is_refused(tmp_path):
    with runs.RunDir.open(tmp_path, command="demo", config={"system": "H2"}):
        pass
    with pytest.raises(ValueError, match="holds a different run \\(system: 'H2' there, 'LiH' now\\)"):
        runs.RunDir.open(tmp_path, command="demo", config={"system": "LiH"})
    with pytest.raises(ValueError, match="holds a 'demo' run"):
        runs.RunDir.open(tmp_path, command="other", config={"system": "H2"})


def test_run_of_an_older_version_resumes_with_new_keys_at_their_defaults(tmp_path):
    """A config.json written before a setting existed resumes when the setting has its default value,
    and is refused when it does not."""
    with runs.RunDir.open(tmp_path, command="demo", config={"system": "H2", "optim": {"lr": 0.1}}):
        pass
    defaults = {"system": "H", "optim": {"lr": 0.5, "interval": 1}, "new": None}
    now = {"system": "H2", "optim": {"lr": 0.1, "interval": 1}, "new": None}
    with pytest.raises(ValueError, match="different run \\(optim"):     # without defaults: as before
        runs.RunDir.open(tmp_path, command="demo", config=now)
    with pytest.raises(ValueError, match="different run \\(optim"):
        runs.RunDir.open(tmp_path, command="demo", config={**now, "optim": {"lr": 0.1, "interval": 10}},
                         defaults=defaults)
    with runs.RunDir.open(tmp_path, command="demo", config=now, defaults=defaults) as run:
        assert run.resumed


def test_failed_and_interrupted_status(tmp_path):
    with pytest.raises(RuntimeError):
        with runs.RunDir.open(tmp_path / "a", command="demo", config={}):
            raise RuntimeError("boom")
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert s["status"] == "failed" and "boom" in s["error"]
    with pytest.raises(KeyboardInterrupt):
        with runs.RunDir.open(tmp_path / "b", command="demo", config={}):
            raise KeyboardInterrupt
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["status"] == "interrupted"


def test_credentials_are_never_written(tmp_path):
    with pytest.raises(ValueError, match="looks like a credential"):
        runs.RunDir.open(tmp_path, command="demo", config={"backend": {"token": "abc"}})
    assert not (tmp_path / "config.json").exists()


def test_checkpoint_shape_mismatch_is_clear(tmp_path):
    with runs.RunDir.open(tmp_path, command="demo", config={}) as run:
        run.save_checkpoint(0, {"w": np.zeros(3)})
        with pytest.raises(ValueError, match="does not match"):
            run.load_checkpoint({"w": np.zeros(4)})


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    runs.atomic_write_text(target, "old")

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(runs.os, "replace", boom)
    with pytest.raises(OSError):
        runs.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_config_resolution(tmp_path):
    import argparse

    toml = tmp_path / "c.toml"
    toml.write_text("steps = 5\n[net]\nwidth = 16\n")
    p = argparse.ArgumentParser()
    cli.add_common_arguments(p)
    args = p.parse_args(["--config", str(toml), "--seed", "4", "net.depth=3", "lr=1e-3"])
    cfg = cli.resolve_config({"steps": 1, "lr": 0.1, "net": {"width": 8, "depth": 2}}, args)
    assert cfg == {"steps": 5, "lr": 1e-3, "net": {"width": 16, "depth": 3}, "seed": 4}
    bad = p.parse_args(["net.height=3"])
    with pytest.raises(ValueError, match="unknown configuration key 'net.height'"):
        cli.resolve_config({"net": {"width": 8}}, bad)


def test_console_script_help_and_version():
    out = subprocess.run([sys.executable, "-m", "qsim", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("qsim ")
    out = subprocess.run([sys.executable, "-m", "qsim", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: qsim" in out.stdout


def test_sigterm_ends_a_command_like_ctrl_c(tmp_path, monkeypatch, capsys):
    """qsim's main() turns SIGTERM into the Ctrl-C path: exit status 130, the run directory's
    summary says "interrupted", and the previous SIGTERM handler comes back."""
    import argparse
    import os
    import signal

    def demo(args):
        with runs.open_run(args.out, "demo", {}) as run:
            run.log_metrics(0, x=1.0)
            os.kill(os.getpid(), signal.SIGTERM)
            run.log_metrics(1, x=2.0)  # never reached
        return 0

    parser = argparse.ArgumentParser(prog="qsim")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("demo")
    p.add_argument("--out")
    p.set_defaults(func=demo)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["demo", "--out", str(tmp_path / "r")]) == 130
    assert "interrupted" in capsys.readouterr().err
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["status"] == "interrupted" and s["steps"] == 1
    assert signal.getsignal(signal.SIGTERM) is before


def test_null_run_summary_has_the_run_directory_shape(tmp_path):
    with runs.open_run(tmp_path / "r", "demo", {}) as run:
        run.log_metrics(0, x=1.0)
        a = run.write_summary(energy=np.float64(-1.5), bad=float("nan"))
    with runs.open_run(None, "demo", {}) as run:
        run.log_metrics(0, x=1.0)
        b = run.write_summary(energy=np.float64(-1.5), bad=float("nan"))
    assert set(a) == set(b) and b["command"] == "demo" and b["steps"] == 1
    assert b["energy"] == -1.5 and type(b["energy"]) is float and b["bad"] is None  # JSON-ready, as written


def test_explicit_steps_survive_the_write_on_exit(tmp_path):
    """A command that says how many steps it ran keeps that count when the block's exit rewrites the summary."""
    from qsim.infra.runs import RunDir

    with RunDir.open(tmp_path / "r", command="x", config={"seed": 0}) as run:
        run.log_metrics(0, a=1.0)
        run.log_metrics(1, a=2.0)
        run.write_summary("completed", steps=7)
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["steps"] == 7
    with RunDir.open(tmp_path / "s", command="x", config={"seed": 0}) as run:
        run.log_metrics(0, a=1.0)
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["steps"] == 1
