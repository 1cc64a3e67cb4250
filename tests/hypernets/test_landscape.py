import numpy as np
import pytest

from hypernets.landscape import compute_landscape, evaluate_networks
from hypernets.layout import bits_from_index
from hypernets.tasks import digits_task, gaussian_task, make_task


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_mlp_cost(p, x, y, act="relu"):
    h = x @ p["W1"] + p["b1"]
    h = np.maximum(h, 0) if act == "relu" else _sigmoid(h)
    z = h @ p["W2"] + p.get("b2", 0.0)
    return np.mean((_sigmoid(z) - y) ** 2), np.mean((z > 0) == (y > 0.5))


def test_landscape_matches_direct_numpy(tiny_task, tiny_landscape, rng):
    d = tiny_task.data
    for i in rng.choice(2 ** 8, 12, replace=False):
        p = {k: np.asarray(v[0], np.float64) for k, v in tiny_task.layout.decode_index([i]).items()}
        cost, acc = _numpy_mlp_cost(p, d.x_train, d.y_train)
        _, acc_te = _numpy_mlp_cost(p, d.x_test, d.y_test)
        assert tiny_landscape.cost[i] == pytest.approx(cost, rel=1e-12)
        assert tiny_landscape.train_accuracy[i] == pytest.approx(acc, abs=1e-6)
        assert tiny_landscape.test_accuracy[i] == pytest.approx(acc_te, abs=1e-6)


def test_symmetry_reduction_is_exact(tiny_task, tiny_landscape):
    plain = make_task("tiny_plain", tiny_task.layout, tiny_task.forward, "mse", tiny_task.data)
    full = compute_landscape(plain, cache=False, chunk_size=64)   # chunked, no symmetry
    np.testing.assert_allclose(full.cost, tiny_landscape.cost, rtol=1e-12)
    np.testing.assert_array_equal(full.train_accuracy, tiny_landscape.train_accuracy)


def test_cache_roundtrip_and_damaged_file(tiny_task, tmp_path):
    a = compute_landscape(tiny_task, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    b = compute_landscape(tiny_task, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.cost, b.cost)
    files[0].write_bytes(b"not an npz")
    c = compute_landscape(tiny_task, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.cost, c.cost)


def test_landscape_memory_guard(tiny_task):
    with pytest.raises(ValueError, match="max_bytes"):
        compute_landscape(tiny_task, cache=False, max_bytes=1000)


def test_gaussian_optimum_and_ties(tmp_path):
    task = gaussian_task()
    # float32 is exact enough here: the 24 permutation-tied optima share one orbit representative
    land = compute_landscape(task, dtype="float32", cache_dir=tmp_path)
    opt = land.optimal_set()
    assert land.optimum == pytest.approx(0.0044, abs=2e-4)
    assert len(opt) == 24
    acts = task.layout.option(task.layout.decode_index(opt), "activation")
    assert set(acts) == {"relu"}
    assert np.all(land.train_accuracy[opt] == 1.0)
    # the reference's 0.77% of networks at >= 99% training accuracy
    assert np.mean(land.train_accuracy >= 0.99) == pytest.approx(0.0077, abs=0.001)
    # the optimum re-evaluated directly in NumPy (float64)
    d = task.data
    p = {k: np.asarray(v[0], np.float64) for k, v in task.layout.decode_index(opt[:1]).items()}
    cost, acc = _numpy_mlp_cost(p, d.x_train, d.y_train)
    assert land.optimum == pytest.approx(cost, rel=1e-5)


@pytest.mark.parametrize("value_bits", [False, True])
def test_digits_costs_match_numpy(value_bits, rng):
    task = digits_task((0, 1), value_bits=value_bits)
    n = task.num_bits
    picks = rng.choice(2 ** n, 6, replace=False)
    cost, _, acc_te = evaluate_networks(task, picks)      # the landscape's own jitted path
    d = task.data
    lows = [0, -1, -2, -3]
    for k, i in enumerate(picks):
        bits = bits_from_index(np.array([i]), n)[0].astype(np.float64)
        if value_bits:
            low = lows[int(bits[0]) * 2 + int(bits[1])]
            vals = np.where(bits[2:] == 1, 1.0, low)
        else:
            vals = 2 * bits - 1
        z = d.x_train @ vals[:16] + vals[16]
        bce = np.mean(np.logaddexp(0, z) - d.y_train * z)
        assert cost[k] == pytest.approx(bce, rel=1e-10)
        assert acc_te[k] == pytest.approx(np.mean((d.x_test @ vals[:16] + vals[16] > 0) == d.y_test),
                                                      abs=1e-6)


def test_make_task_bad_inputs(tiny_task):
    from hypernets.data import Dataset

    d = tiny_task.data
    with pytest.raises(ValueError, match="empty"):
        make_task("x", tiny_task.layout, tiny_task.forward, "mse",
                  Dataset(d.x_train[:0], d.y_train[:0], d.x_test, d.y_test))
    with pytest.raises(ValueError, match="outside the task's classes"):
        make_task("x", tiny_task.layout, tiny_task.forward, "mse",
                  Dataset(d.x_train, d.y_train * 2, d.x_test, d.y_test))
    with pytest.raises(ValueError, match="loss"):
        make_task("x", tiny_task.layout, tiny_task.forward, "hinge", d)
    with pytest.raises(ValueError, match="permutable_units"):
        make_task("x", tiny_task.layout, tiny_task.forward, "mse", d, permutable_units=((0, 1), (1, 2)))


@pytest.mark.multidevice  # 4 CPU devices: run by tests/test_multidevice.py
def test_landscape_sharded_over_four_devices_equals_one_device(tiny_task):
    """Issue 9: chunks of bitstrings split over a 1-D mesh of 4 (forced host) devices."""
    import jax

    from hypernets.landscape import _sharding, resolve_devices

    devs = jax.devices()
    assert len(devs) >= 4, "tests/conftest.py forces 4 host devices"
    plain = make_task("tiny_plain", tiny_task.layout, tiny_task.forward, "mse", tiny_task.data)
    for task in (plain, tiny_task):                      # plain chunks and permutation orbits
        one = compute_landscape(task, cache=False, chunk_size=40, devices=1)
        four = compute_landscape(task, cache=False, chunk_size=40, devices=devs[:4])
        np.testing.assert_allclose(four.cost, one.cost, rtol=1e-13)
        np.testing.assert_array_equal(four.train_accuracy, one.train_accuracy)
        np.testing.assert_array_equal(four.test_accuracy, one.test_accuracy)
    x = jax.device_put(np.arange(8), _sharding(resolve_devices(4)))
    assert x.sharding.device_set == set(devs[:4]) and len(x.addressable_shards) == 4
    from qsim.infra import meshes as distributed

    assert resolve_devices() == [devs[0]]                  # no mesh set: the default device
    with distributed.using(distributed.make_mesh(4)):      # what `qsim ... --devices 4` sets
        assert resolve_devices() == list(devs[:4])
    with pytest.raises(ValueError, match="devices"):
        compute_landscape(tiny_task, cache=False, devices=len(devs) + 1)
    with pytest.raises(TypeError, match="devices"):
        compute_landscape(tiny_task, cache=False, devices=["cpu"])
