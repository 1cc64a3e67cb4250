import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from flows.grid import axis_points, coordinates, make_grid
from flows.hamiltonian import (apply_hamiltonian, check_velocity, dense_hamiltonian, gradient_flow,
                               helmholtz_potential, kinetic_diagonal, velocity_flow,
                               velocity_on_grid)


def _random_periodic_field(grid, seed=0):
    rng = np.random.default_rng(seed)
    x = coordinates(grid)
    w = np.pi / grid.L
    v = np.zeros(grid.shape + (grid.d,))
    for a in range(grid.d):
        for m in range(1, 3):
            c = rng.normal(size=(grid.d, 2))
            v[..., a] += sum(c[b, 0] * np.sin(m * w * x[..., b]) + c[b, 1] * np.cos(m * w * x[..., b])
                             for b in range(grid.d))
    return v


def test_dense_hamiltonian_is_hermitian_and_imaginary():
    g = make_grid(3, 2, 2.0)
    H = dense_hamiltonian(_random_periodic_field(g), g)
    assert H.shape == (64, 64)
    np.testing.assert_allclose(H, H.conj().T, atol=1e-13)
    assert np.max(np.abs(H.real)) < 1e-13          # i x (real antisymmetric): exp(-iHt) is real
    assert np.max(np.abs(H)) > 0.1


def test_matrix_free_matches_dense():
    g = make_grid(3, 2, 1.5)
    v = _random_periodic_field(g, 1)
    rng = np.random.default_rng(2)
    psi = rng.normal(size=g.shape) + 1j * rng.normal(size=g.shape)
    Hpsi = np.asarray(apply_hamiltonian(jnp.asarray(psi), jnp.asarray(v), g))
    np.testing.assert_allclose(Hpsi.ravel(), dense_hamiltonian(v, g) @ psi.ravel(), atol=1e-12)


def test_symmetric_form_equals_commutator_for_band_limited_states():
    # H psi = -i (v psi' + v' psi / 2) = i[K, V] psi when v = V'; exact on the grid below Nyquist
    g = make_grid(5, 1, np.pi)
    x = axis_points(g)
    V = -0.8 * np.cos(x)
    v = 0.8 * np.sin(x)
    psi = 1 + 0.3 * np.sin(2 * x) + 0.2 * np.cos(3 * x)
    Hpsi = np.asarray(apply_hamiltonian(jnp.asarray(psi + 0j), jnp.asarray(v[:, None]), g))
    Kd = kinetic_diagonal(g)

    def K(f):
        return np.fft.ifft(Kd * np.fft.fft(f))
    comm = 1j * (K(V * psi) - V * K(psi))
    np.testing.assert_allclose(Hpsi, comm, atol=1e-12)
    direct = -1j * (v * (0.6 * np.cos(2 * x) - 0.6 * np.sin(3 * x)) + 0.5 * 0.8 * np.cos(x) * psi)
    np.testing.assert_allclose(Hpsi, direct, atol=1e-12)


def test_velocity_on_grid_of_gradient_flow():
    g = make_grid(3, 2, np.pi)
    flow = gradient_flow(lambda x, t: jnp.cos(x[0]) * jnp.sin(x[1]) * (1 + t), 2)
    v = np.asarray(velocity_on_grid(flow, g, 0.5))
    x = coordinates(g)
    np.testing.assert_allclose(v[..., 0], -1.5 * np.sin(x[..., 0]) * np.sin(x[..., 1]), atol=1e-12)
    np.testing.assert_allclose(v[..., 1], 1.5 * np.cos(x[..., 0]) * np.cos(x[..., 1]), atol=1e-12)


def test_check_velocity_bad_fields():
    g = make_grid(4, 1, 2.0)
    x = axis_points(g)
    flat = np.ones(g.shape) / g.N
    with pytest.raises(ValueError, match="exploding"):
        check_velocity(velocity_flow(lambda x, t: 1e5 * x, 1), g)
    with pytest.raises(ValueError, match="not finite"):
        check_velocity(velocity_flow(lambda x, t: jnp.log(x + 1.0), 1), g)
    with pytest.raises(ValueError, match="boundary|near the edge"):
        check_velocity(velocity_flow(lambda x, t: x, 1), g, prob=flat)     # jump 2L, mass at edge
    peaked = np.exp(-x ** 2 / 0.1)
    with pytest.warns(UserWarning, match="not periodic.*boundary mass"):
        info = check_velocity(velocity_flow(lambda x, t: x, 1), g, prob=peaked / peaked.sum())
    assert info["boundary_mass"] < 1e-6
    with pytest.raises(ValueError, match="dimension"):
        check_velocity(velocity_flow(lambda x, t: x, 2), g)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = check_velocity(velocity_flow(lambda x, t: jnp.sin(np.pi / 2 * x), 1), g, prob=flat)
    assert info["periodic_jump"] < 1e-12


def test_helmholtz_projection():
    g = make_grid(4, 2, np.pi)
    x = coordinates(g)
    grad = np.stack([np.cos(x[..., 0]) * np.sin(x[..., 1]), np.sin(x[..., 0]) * np.cos(x[..., 1])], -1)
    V, frac = helmholtz_potential(jnp.asarray(grad), g)
    assert frac < 1e-12
    np.testing.assert_allclose(np.asarray(V), np.sin(x[..., 0]) * np.sin(x[..., 1]), atol=1e-12)
    rot = np.stack([np.sin(x[..., 1]), np.zeros(g.shape)], -1)          # divergence-free
    _, frac = helmholtz_potential(jnp.asarray(rot), g)
    assert frac > 0.999
