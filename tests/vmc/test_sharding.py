"""Walkers sharded over 4 CPU devices (tests/conftest.py forces 4 host devices): the same seed gives
the same training step, sampler statistics and energies as one device, up to the order of the
floating-point reductions (means over walkers become cross-device sums)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding

from qsim.infra import meshes as distributed
from vmc import train
from vmc.config import make_config

pytestmark = pytest.mark.multidevice  # 4 CPU devices: run by tests/test_multidevice.py

CFG = {"system": "He", "optimizer": "sr", "walkers": 16, "steps": 3, "seed": 3,
       "network": {"kind": "slater_jastrow", "hidden": [[16, 0]], "n_det": 1}, "pretrain": {"steps": 0},
       "mcmc": {"steps": 4, "burn_in": 8}, "eval": {"steps": 3}}
# reductions over 16 walkers summed in another order: a few ulps of the energy, more after the
# SR solve and three optimisation steps amplify them, still far below any statistical error
RTOL = 1e-9


def _state(cfg):
    b = train.build(cfg)
    k_init, k_walk = jax.random.split(jax.random.PRNGKey(cfg["seed"]))
    p = b.wf.init(k_init)
    st = train.TrainState(p, b.optimizer.init(p), b.mol.initial_electrons(k_walk, cfg["walkers"]),
                          jnp.asarray(0.3), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    return b, st


def test_sharded_train_steps_match_one_device():
    cfg = make_config(CFG)
    b, st1 = _state(cfg)
    mesh = distributed.make_mesh(4)
    st4 = distributed.place(st1, mesh=mesh)
    assert st4.walkers.sharding.is_equivalent_to(
        NamedSharding(mesh, jax.sharding.PartitionSpec("batch")), 2)
    assert len(st4.walkers.sharding.device_set) == 4
    step = train.make_train_step(b, 4)
    for t in range(2):
        key = jax.random.fold_in(jax.random.PRNGKey(7), t)
        st1, m1 = step(st1, key)
        st4, m4 = step(st4, key)
        # the walkers stay sharded: each device moves its own quarter
        assert len(st4.walkers.sharding.device_set) == 4
        assert st4.walkers.sharding.shard_shape(st4.walkers.shape)[0] == cfg["walkers"] // 4
        np.testing.assert_allclose(np.asarray(st4.walkers), np.asarray(st1.walkers), rtol=RTOL, atol=1e-12)
        for k in ("energy", "variance", "acceptance", "step_size"):
            np.testing.assert_allclose(float(m4[k]), float(m1[k]), rtol=RTOL, err_msg=k)
        np.testing.assert_allclose(np.asarray(m4["e_loc"]), np.asarray(m1["e_loc"]), rtol=RTOL)
    for a, c in zip(jax.tree_util.tree_leaves(st4.params), jax.tree_util.tree_leaves(st1.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=RTOL, atol=1e-12)
    # the walkers moved (a test on frozen walkers would prove nothing)
    assert float(m1["acceptance"]) > 0.2


@pytest.mark.slow  # two whole runs (~25 s CPU); the step test above checks the same numbers by default
def test_train_under_a_mesh_matches_one_device(tmp_path):
    quiet = lambda *a: None  # noqa: E731
    cfg = {**CFG, "optimizer": "adam"}
    one = train.train(cfg, log=quiet)
    with distributed.using(distributed.make_mesh(4)):
        four = train.train(cfg, out=str(tmp_path / "run"), log=quiet)
    np.testing.assert_allclose(four["energy"], one["energy"], rtol=RTOL)
    np.testing.assert_allclose(four["energy_stderr"], one["energy_stderr"], rtol=1e-6)
    np.testing.assert_allclose(four["variance"], one["variance"], rtol=1e-6)
    import json

    rec = json.loads((tmp_path / "run" / "config.json").read_text())
    assert rec["n_devices"] == 4 and len(rec["devices"]) == 4 and rec["mesh_axes"] == {"batch": 4}


def test_walkers_that_do_not_split_evenly_are_refused():
    cfg = make_config(CFG)
    _, st = _state(cfg)
    with pytest.raises(ValueError, match="does not split evenly over 3 devices"):
        distributed.place(st, mesh=distributed.make_mesh(3))


def test_train_refuses_walkers_that_do_not_split_before_any_work(monkeypatch):
    """The device check comes before the network is built or pretrained (build is never reached)."""
    def no_build(cfg):
        raise AssertionError("train() built the network before checking the walker count")

    monkeypatch.setattr(train, "build", no_build)
    with distributed.using(distributed.make_mesh(3)):
        with pytest.raises(ValueError, match="walkers=16 does not split evenly over 3 devices"):
            train.train(dict(CFG))
