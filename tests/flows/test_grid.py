import numpy as np
import pytest

from qsim.infra import settings

from flows.grid import (axis_points, boundary_mass, coordinates, make_grid, spectral_derivative,
                        state_from_density, wavenumbers)


def test_grid_geometry_and_bit_order():
    g = make_grid(3, 2, 2.0)
    assert g.N == 8 and g.shape == (8, 8) and g.num_qubits == 6
    assert np.isclose(g.dx, 0.5)
    np.testing.assert_allclose(axis_points(g), -2.0 + 0.5 * np.arange(8))
    c = coordinates(g)
    # flat index j0 * N + j1: dimension 0 is the most significant register
    flat = c.reshape(-1, 2)
    assert np.allclose(flat[9], [-1.5, -1.5]) and np.allclose(flat[1], [-2.0, -1.5])


def test_nyquist_zeroed_and_spectral_derivative_exact():
    g = make_grid(5, 1, np.pi)
    k = wavenumbers(g)
    assert k[g.N // 2] == 0.0 and wavenumbers(g, nyquist_zero=False)[g.N // 2] == -16.0
    x = axis_points(g)
    d = np.asarray(spectral_derivative(np.sin(3 * x) + np.cos(x), g, 0))
    np.testing.assert_allclose(d.real, 3 * np.cos(3 * x) - np.sin(x), atol=1e-12)


@pytest.mark.parametrize("n,d,L", [(0, 1, 1.0), (3, 0, 1.0), (3, 1, -1.0), (3, 1, float("nan")),
                                   (2.5, 1, 1.0)])
def test_bad_grid_arguments(n, d, L):
    with pytest.raises((ValueError, TypeError), match=r"n|d|L"):
        make_grid(n, d, L)


def test_grid_too_large_for_memory():
    """The one memory limit of qsim (QSIM_MAX_STATE_BYTES, settings.max_state_bytes) bounds grids."""
    with settings.override(max_state_bytes=2**40):
        assert make_grid(14, 2, 1.0).size == 2**28          # only checked, nothing allocated
    with settings.override(max_state_bytes=2**30):
        with pytest.raises(ValueError, match="GiB.*fewer qubits per dimension"):
            make_grid(14, 2, 1.0)
    with pytest.raises(ValueError, match="too large"):
        make_grid(31, 3, 1.0)


def test_state_from_density_bad_inputs():
    g = make_grid(2, 1, 1.0)
    with pytest.raises(ValueError, match="negative"):
        state_from_density([1.0, -0.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        state_from_density([1.0, np.nan, 1.0, 1.0])
    with pytest.raises(ValueError, match="zero"):
        state_from_density(np.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        state_from_density(np.ones(8), g)
    psi = state_from_density([1.0, 2.0, 3.0, 4.0], g)
    assert np.isclose(np.sum(psi ** 2), 1.0) and np.isclose(psi[3] ** 2, 0.4)


def test_boundary_mass():
    g = make_grid(4, 2, 1.0)
    p = np.zeros(g.shape)
    p[8, 8] = 1.0
    assert boundary_mass(p, g) == 0.0
    p[0, 8] = 1.0
    assert np.isclose(boundary_mass(p, g), 0.5)
