"""Shared fixtures for the hypernets tests: a small 8-bit task whose landscape takes milliseconds."""
import jax
import numpy as np
import pytest

from hypernets.data import gaussian_data
from hypernets.layout import Layout, Weights
from hypernets.tasks import make_task


def tiny_forward(p, x):
    h = jax.nn.relu(x @ p["W1"] + p["b1"])
    return h @ p["W2"]


TINY_LAYOUT = Layout([Weights("W1", (2, 2)), Weights("b1", (2,)), Weights("W2", (2,))])


@pytest.fixture(scope="session")
def tiny_task():
    """A 2-2-1 ReLU network without output bias (8 bits) on 500 Gaussian-task points; hidden units
    permutable."""
    lay = TINY_LAYOUT
    w1, b1, w2 = lay.offsets["W1"][0], lay.offsets["b1"][0], lay.offsets["W2"][0]
    units = tuple((w1 + j, w1 + 2 + j, b1 + j, w2 + j) for j in range(2))
    return make_task("tiny", lay, tiny_forward, "mse", gaussian_data(500, 200, seed=1), permutable_units=units)


@pytest.fixture(scope="session")
def tiny_landscape(tiny_task, tmp_path_factory):
    from hypernets.landscape import compute_landscape

    return compute_landscape(tiny_task, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
