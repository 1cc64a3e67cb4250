"""Shared helpers for the flows tests (float64 is on for the session, see tests/conftest.py)."""
import numpy as np
import pytest

from flows.evolve import sine_check_density, sine_check_flow
from flows.grid import axis_points, make_grid, state_from_density


@pytest.fixture(scope="session")
def sine_case():
    """notes.md's check: 1D, N = 64 on [-pi, pi), v = 0.8 sin(x)(1 + t/2), T = 1,
    p0 ∝ exp(cos x). Returns (grid, flow, psi0, exact psi_T)."""
    grid = make_grid(6, 1, np.pi)
    x = axis_points(grid)
    psi0 = state_from_density(np.exp(np.cos(x)))
    exact = state_from_density(sine_check_density(x, T=1.0))
    return grid, sine_check_flow(0.8), psi0, exact
