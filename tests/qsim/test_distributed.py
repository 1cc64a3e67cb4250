"""qsim.infra.meshes: the device switch and multi-host flags of every sub-command, the
jax.distributed.initialize call path, meshes over the 4 CPU devices of the test session
(tests/conftest.py), batches of circuit parameters sharded through qsim.simulate under vmap, and a
two-process jax.distributed vmc run on loopback where process 0 alone writes the run directory."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsim
from qsim.infra import meshes as distributed
from qsim.infra.cli import build_parser, main

pytestmark = pytest.mark.multidevice  # 4 CPU devices: run by tests/test_multidevice.py

ROOT = Path(__file__).resolve().parents[2]
VMC = ["vmc", "--system", "H", "--optimizer", "adam", "--steps", "3", "--walkers", "8", "--no-progress",
       "network.hidden=[[8,4]]", "network.n_det=1", "pretrain.steps=0", "mcmc.burn_in=4", "mcmc.steps=2",
       "eval.steps=2"]


@pytest.mark.parametrize("command", ["vmc", "vqe", "hypernet", "flow"])
def test_every_subcommand_has_the_device_switch(command):
    args = build_parser().parse_args([command, "--devices", "2", "--coordinator", "10.0.0.1:1234",
                                      "--num-processes", "3", "--process-id", "2"])
    assert (args.devices, args.coordinator, args.num_processes, args.process_id) == (2, "10.0.0.1:1234", 3, 2)
    args = build_parser().parse_args([command])
    assert args.devices is None and args.coordinator is None


def test_initialize_calls_jax_distributed_with_the_flags_or_the_environment(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    assert distributed.initialize(environ={}) is False and calls == []        # one process: no call
    assert distributed.initialize("127.0.0.1:5000", 2, 1, environ={}) is True
    assert calls[-1] == {"coordinator_address": "127.0.0.1:5000", "num_processes": 2, "process_id": 1}
    env = {"JAX_COORDINATOR_ADDRESS": "host.example:77", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    assert distributed.initialize(environ=env) is True
    assert calls[-1] == {"coordinator_address": "host.example:77", "num_processes": 4, "process_id": 3}
    # the CLI path: setup() reads the parsed flags
    monkeypatch.setattr(jax, "process_count", lambda: 1)
    args = build_parser().parse_args(["vmc", "--devices", "2", "--coordinator", "127.0.0.1:6000",
                                      "--num-processes", "2", "--process-id", "0"])
    mesh = distributed.setup(args)
    assert calls[-1]["coordinator_address"] == "127.0.0.1:6000" and mesh.size == 2


@pytest.mark.parametrize("kw, match", [
    (dict(coordinator="127.0.0.1", num_processes=2, process_id=0), "HOST:PORT"),
    (dict(coordinator="127.0.0.1:99999", num_processes=2, process_id=0), "HOST:PORT"),
    (dict(coordinator="127.0.0.1:80", num_processes=2), "all three"),
    (dict(coordinator="127.0.0.1:80", num_processes=2, process_id=2), "process_id must be in 0..1"),
    (dict(coordinator="127.0.0.1:80", num_processes=0, process_id=0), "num_processes must be >= 1"),
])
def test_bad_multihost_flags_are_refused(kw, match, monkeypatch):
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: pytest.fail("must not start"))
    with pytest.raises(ValueError, match=match):
        distributed.initialize(environ={}, **kw)


def test_meshes_and_the_device_record():
    assert jax.device_count() == 4
    m = distributed.make_mesh(2)
    assert m.axis_names == ("batch",) and [d.id for d in m.devices.flat] == [0, 1]
    with pytest.raises(ValueError, match="devices=5, but 4 device"):
        distributed.make_mesh(5)
    assert distributed.current_mesh() is None
    assert distributed.describe()["n_devices"] == 1
    with distributed.using(m):
        assert distributed.current_mesh() is m
        rec = distributed.describe()
        assert rec["n_devices"] == 2 and rec["visible_devices"] == 4 and rec["mesh_axes"] == {"batch": 2}
    assert distributed.current_mesh() is None
    args = build_parser().parse_args(["vmc", "--devices", "1"])
    assert distributed.setup(args) is None                  # one device: nothing sharded
    assert distributed.setup(build_parser().parse_args(["vmc"])).size == 4   # default: all visible


def test_a_batch_of_parameters_sharded_through_simulate_under_vmap():
    c = qsim.Circuit(4)
    for w in range(4):
        c.ry(w)
    for w in range(3):
        c.cnot(w, w + 1)
    for w in range(4):
        c.rx(w)
    H = qsim.Z(0) @ qsim.Z(1) + 0.5 * qsim.X(2) - 0.25 * qsim.Y(3)
    thetas = jnp.asarray(np.random.default_rng(0).normal(size=(8, c.num_params)))
    mesh = distributed.make_mesh(4)
    sharded = distributed.shard_batch(thetas, mesh)
    assert len(sharded.sharding.device_set) == 4
    f = jax.jit(jax.vmap(lambda p: qsim.expval(c, p, H)))
    e4 = f(sharded)
    assert len(e4.sharding.device_set) == 4 and e4.sharding.shard_shape(e4.shape) == (2,)
    e1 = np.array([float(qsim.expval(c, p, H)) for p in thetas])
    np.testing.assert_allclose(np.asarray(e4), e1, atol=1e-12)
    states = jax.jit(jax.vmap(lambda p: qsim.simulate(c, p)))(sharded)
    np.testing.assert_allclose(np.asarray(states), np.asarray(qsim.simulate(c, thetas)), atol=1e-12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(path):
    from qsim.infra.runs import read_metrics

    return read_metrics(path)


@pytest.mark.slow  # two processes + one in-process run: ~80 s on the loaded 2-core machine
def test_two_process_vmc_run_on_loopback(tmp_path):
    """Two processes with two CPU devices each form one 4-device mesh through jax.distributed
    (coordinator on 127.0.0.1); process 0 writes the run directory, process 1 writes nothing (its
    --out is another path that must stay absent). The numbers equal a one-process 4-device run."""
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    outs = [tmp_path / "run", tmp_path / "not_written"]
    procs = [subprocess.Popen([sys.executable, "-m", "qsim", *VMC, "--coordinator", f"127.0.0.1:{port}",
                               "--num-processes", "2", "--process-id", str(i), "--out", str(outs[i])],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=400)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)[-3000:]
    assert not outs[1].exists()
    summary = json.loads((outs[0] / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 3
    rec = json.loads((outs[0] / "config.json").read_text())
    assert rec["process_count"] == 2 and rec["n_devices"] == 4 and rec["mesh_axes"] == {"batch": 4}
    two = _metrics(outs[0])
    assert len(two["energy"]) == 3
    # the same run in this one process over its 4 devices (the CLI's --devices)
    old = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        assert main([*VMC, "--devices", "4", "--out", str(tmp_path / "one")]) == 0
    finally:
        jax.config.update("jax_disable_most_optimizations", old)
    one = _metrics(tmp_path / "one")
    assert json.loads((tmp_path / "one" / "config.json").read_text())["n_devices"] == 4
    for k in ("energy", "variance", "acceptance"):
        np.testing.assert_allclose(two[k], one[k], rtol=1e-9, err_msg=k)
    one_summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    np.testing.assert_allclose(summary["energy"], one_summary["energy"], rtol=1e-9)


def test_sampler_on_sharded_walkers_matches_one_device():
    """qsim.samplers with the walkers sharded over 4 devices: the same chain (partitionable threefry
    draws the same numbers for a sharded array) and the same acceptance statistics."""
    from qsim import samplers

    assert jax.config.jax_threefry_partitionable
    scales = jnp.linspace(0.5, 2.0, 3)
    logp = lambda x: -0.5 * jnp.sum((x / scales) ** 2)  # noqa: E731
    x0 = jax.random.normal(jax.random.PRNGKey(0), (16, 3))
    k = samplers.mala()

    @jax.jit
    def run(x):
        st, info = samplers.run(k, jax.random.PRNGKey(1), k.init(x, logp), logp, {"step_size": 0.4}, n_steps=30)
        return st.position, info.acceptance

    x1, a1 = run(x0)
    x4, a4 = run(distributed.shard_batch(x0, distributed.make_mesh(4)))
    assert len(x4.sharding.device_set) == 4
    np.testing.assert_allclose(np.asarray(x4), np.asarray(x1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(a4), np.asarray(a1), rtol=1e-12)
    assert 0.3 < float(jnp.mean(a1)) < 1.0          # the chain did move and reject
