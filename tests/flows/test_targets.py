import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flows.targets import from_samples, gaussian_mixture, get_target, ring, two_moons


def _grid_mass(t, L, n=120):
    ax = np.linspace(-L, L, n, endpoint=False) + L / n
    X, Y = np.meshgrid(ax, ax, indexing="ij")
    lp = jax.jit(jax.vmap(t.log_prob))(jnp.asarray(np.stack([X.ravel(), Y.ravel()], -1)))
    return float(np.sum(np.exp(np.asarray(lp))) * (2 * L / n) ** 2)


@pytest.mark.parametrize("name", ["gmm2d", "moons", "ring"])
def test_targets_are_normalised_and_samples_match(name):
    t = get_target(name)
    assert abs(_grid_mass(t, t.L) - 1) < 3e-3                 # normalised, negligible mass outside the box
    x = t.sample(np.random.default_rng(0), 4000)
    assert x.shape == (4000, 2) and np.all(np.abs(x) < t.L)
    # samples agree with the density: mean log density of samples vs the density's own entropy
    f = jax.jit(jax.vmap(t.log_prob))
    lp = np.asarray(f(jnp.asarray(x)))
    ax = np.linspace(-t.L, t.L, 120, endpoint=False) + t.L / 120
    X, Y = np.meshgrid(ax, ax, indexing="ij")
    lpg = np.asarray(f(jnp.asarray(np.stack([X.ravel(), Y.ravel()], -1))))
    neg_entropy = float(np.sum(np.exp(lpg) * lpg) * (2 * t.L / 120) ** 2)
    se = lp.std() / np.sqrt(lp.size)
    assert abs(lp.mean() - neg_entropy) < 5 * se + 1e-3


def test_from_samples_and_bad_inputs():
    data = np.random.default_rng(1).normal(size=(500, 2))
    t = from_samples(data)
    assert t.d == 2 and abs(_grid_mass(t, 6.0) - 1) < 1e-3
    with pytest.raises(ValueError, match="shape"):
        from_samples(np.ones(5))
    with pytest.raises(ValueError, match="non-finite"):
        from_samples(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="weights"):
        gaussian_mixture([[0.0], [1.0]], 1.0, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="unknown target"):
        get_target("spiral")
    assert two_moons().d == 2 and ring().d == 2
