import jax.numpy as jnp
import numpy as np
import pytest

from flows.evolve import evolve, pushforward_logdensity, reference_probabilities, sine_check_density
from flows.grid import axis_points, coordinates, make_grid, state_from_density
from flows.hamiltonian import gradient_flow, velocity_flow
from flows.metrics import bhattacharyya, infidelity


def test_exact_evolution_matches_analytic(sine_case):
    grid, flow, psi0, exact = sine_case
    psi = evolve(psi0, flow, grid, 1.0, 2, "exact")
    assert infidelity(psi, exact) <= 1e-10
    assert abs(np.linalg.norm(psi) - 1) <= 1e-12
    assert np.max(np.abs(psi.imag)) < 1e-12                # exp(-iHt) is real orthogonal


def test_eight_step_200_steps(sine_case):
    grid, flow, psi0, exact = sine_case
    psi = np.asarray(evolve(psi0, flow, grid, 1.0, 200, "8"))
    inf = infidelity(psi, exact)
    assert 1e-8 < inf <= 1e-6                              # notes.md: 2.5e-7
    assert abs(np.linalg.norm(psi) - 1) <= 1e-12


@pytest.mark.parametrize("formula,order,steps", [("8", 2.0, (100, 400)), ("4", 1.0, (100, 400))])
def test_convergence_order(sine_case, formula, order, steps):
    """Infidelity ~ dt^(2 q) for a global error O(dt^q): q = 1 for the 8-step formula (local
    O(dt^2)) and q = 1/2 for the 4-step formula (local O(dt^{3/2}))."""
    grid, flow, psi0, exact = sine_case
    infs = [infidelity(evolve(psi0, flow, grid, 1.0, r, formula), exact) for r in steps]
    slope = np.log(infs[0] / infs[1]) / np.log(steps[1] / steps[0])
    assert abs(slope - order) < 0.15, (infs, slope)


def test_split_formula_and_norm(sine_case):
    grid, flow, psi0, exact = sine_case
    psi = np.asarray(evolve(psi0, flow, grid, 1.0, 50, "split"))
    # H(t) = g(t) H0 here, so the exponential midpoint rule is exact up to the series truncation
    assert infidelity(psi, exact) <= 1e-10
    assert abs(np.linalg.norm(psi) - 1) <= 1e-12


def test_2d_time_dependent_non_separable_formulas_agree():
    g = make_grid(4, 2, np.pi)

    def V(x, t):
        return 0.5 * jnp.cos(x[0] - t) * (1 + jnp.sin(x[1])) + 0.3 * t * jnp.sin(x[0] + x[1])
    flow = gradient_flow(V, 2)
    x = coordinates(g)
    psi0 = state_from_density(np.exp(np.cos(x[..., 0]) + 0.5 * np.sin(x[..., 1])))
    ref = evolve(psi0, flow, g, 0.7, 20, "exact")
    assert abs(np.linalg.norm(ref) - 1) <= 1e-12
    assert infidelity(ref, evolve(psi0, flow, g, 0.7, 10, "exact")) < 1e-9   # CF4 converged
    for formula, steps, tol in [("8", 400, 1e-5), ("split", 200, 1e-5), ("4", 800, 1e-3)]:
        psi = np.asarray(evolve(psi0, flow, g, 0.7, steps, formula))
        assert abs(np.linalg.norm(psi) - 1) <= 1e-12
        assert infidelity(ref, psi) < tol, formula
    assert infidelity(ref, psi0) > 1e-2                     # the evolution did something


def test_pushforward_density_matches_analytic(sine_case):
    grid, flow, _, _ = sine_case
    x = axis_points(grid)
    lp = np.asarray(pushforward_logdensity(flow, lambda y: jnp.cos(y[0]), jnp.asarray(x[:, None]),
                                           1.0, steps=200))
    exact = np.log(sine_check_density(x, 1.0))
    np.testing.assert_allclose(lp, exact, atol=1e-7)
    p = reference_probabilities(flow, lambda y: jnp.cos(y[0]), grid, 1.0, steps=100)
    assert bhattacharyya(p, sine_check_density(x)) > 1 - 1e-12


def test_evolve_bad_inputs(sine_case):
    grid, flow, psi0, _ = sine_case
    with pytest.raises(ValueError, match="unknown formula"):
        evolve(psi0, flow, grid, 1.0, 10, "6")
    with pytest.raises(ValueError, match="potential"):
        evolve(psi0, velocity_flow(flow.velocity, 1), grid, 1.0, 10, "8")
    with pytest.raises(ValueError, match="shape"):
        evolve(psi0[:10], flow, grid, 1.0, 10, "8")
    with pytest.raises(ValueError, match="dimension"):
        evolve(psi0, gradient_flow(lambda x, t: x[0] * x[1], 2), grid, 1.0, 10, "8")
    with pytest.raises(ValueError, match="steps"):
        evolve(psi0, flow, grid, 1.0, 0, "8")
    with pytest.raises(ValueError, match="non-finite"):
        evolve(np.full(grid.shape, np.nan), flow, grid, 1.0, 10, "8")


def test_exploding_field_is_reported(sine_case):
    grid, _, psi0, _ = sine_case
    bad = gradient_flow(lambda x, t: jnp.log(jnp.cos(x[0])), 1)      # singular at x = +-pi/2
    with pytest.raises(ValueError, match="non-finite|not finite"):
        evolve(psi0, bad, grid, 1.0, 10, "8")
    with pytest.raises(ValueError, match="exploding"):                # v = -tan x: huge, finite
        evolve(psi0, bad, grid, 1.0, 2, "split")
