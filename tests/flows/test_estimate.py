import jax.numpy as jnp
import numpy as np
import pytest

import qsim
from flows.estimate import (compare_errors, grover_circuit, mlae, mlae_uses,
                            state_preparation_unitary, tail_mask, tail_probability)
from flows.evolve import evolve
from flows.grid import coordinates, make_grid, state_from_density
from flows.hamiltonian import gradient_flow
from flows.metrics import probabilities


@pytest.fixture(scope="module")
def qsample():
    """A flow's qsample on 2 x 2 qubits (small: dense unitaries in the Grover circuit)."""
    g = make_grid(2, 2, 3.0)
    x = coordinates(g)
    flow = gradient_flow(lambda y, t: 0.4 * jnp.sin(np.pi / 3 * y[0]) + 0.2 * jnp.cos(np.pi / 3 * y[1]), 2)
    psi0 = state_from_density(np.exp(-(x[..., 0] ** 2 + x[..., 1] ** 2) / 2))
    return g, np.asarray(evolve(psi0, flow, g, 1.0, 50, "8"))


def test_grover_law_on_the_qsample_circuit(qsample):
    g, psi = qsample
    mask = tail_mask(g, 0.0, axis=0)
    a = tail_probability(probabilities(psi), mask)
    assert 0.05 < a < 0.6
    theta = np.arcsin(np.sqrt(a))
    np.testing.assert_allclose(state_preparation_unitary(psi)[:, 0], psi.ravel(), atol=1e-12)
    for m in (2,):
        p = np.asarray(qsim.probs(grover_circuit(psi, mask, m), jnp.zeros(0)))
        assert abs(p[mask.ravel()].sum() - np.sin((2 * m + 1) * theta) ** 2) < 1e-10


def test_mlae_beats_monte_carlo_at_equal_uses():
    a = 0.2
    rows = compare_errors(a, n_powers_list=(2, 6), shots=50, reps=100, seed=1)
    lo, hi = rows
    assert hi["uses"] == mlae_uses([0, 1, 2, 4, 8, 16], 50)
    # Monte Carlo follows its binomial standard error (within sampling error of the RMSE)
    for r in rows:
        assert abs(r["rmse_mc"] / r["mc_theory"] - 1) < 0.25
    # error ~ 1/M for AE: going from M_lo to M_hi uses cuts the error by ~M_hi/M_lo, MC by its sqrt
    gain_ae = lo["rmse_ae"] / hi["rmse_ae"]
    gain_mc = lo["rmse_mc"] / hi["rmse_mc"]
    ratio = hi["uses"] / lo["uses"]
    assert gain_ae > 0.5 * ratio and gain_mc < 1.5 * np.sqrt(ratio)
    assert hi["rmse_ae"] < hi["rmse_mc"] / 3


def test_estimate_bad_inputs(qsample):
    g, psi = qsample
    with pytest.raises(ValueError, match="axis"):
        tail_mask(g, 0.0, axis=2)
    with pytest.raises(ValueError, match="lie in"):
        mlae(1.5, 3, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        tail_probability(np.ones(4), np.ones(8, bool))
