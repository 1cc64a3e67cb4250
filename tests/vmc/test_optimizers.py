"""Stochastic reconfiguration against dense linear algebra, with and without the span projection."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from vmc.optimizers import make_optimizer

P, B, LAM = 12, 6, 1e-2  # fewer walkers than parameters: the sample Fisher is singular


def _log_psi(params, x):
    return jnp.sum(params["w"] * jnp.tanh(params["v"] * x[0] + x[1:].sum()))


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=P // 2)), "v": jnp.asarray(rng.normal(size=P // 2))}
    walkers = jnp.asarray(rng.normal(size=(B, 3)))
    jac = jax.vmap(jax.grad(_log_psi), (None, 0))(params, walkers)
    O = np.stack([np.asarray(ravel_pytree(jax.tree_util.tree_map(lambda a: a[i], jac))[0]) for i in range(B)])
    A = (O - O.mean(0)) / np.sqrt(B)
    return params, walkers, A


def _step(params, walkers, g, project, damping=LAM):
    opt = make_optimizer("sr", log_psi=_log_psi, learning_rate=0.1, decay=None, damping=damping,
                         norm_constraint=1e9, project=project)  # huge constraint: the step is lr * delta
    _, unravel = ravel_pytree(params)
    upd, _ = opt.update(unravel(jnp.asarray(g)), opt.init(params), params, walkers)
    return -np.asarray(ravel_pytree(upd)[0]) / 0.1


def test_sr_is_the_damped_fisher_solve(setup):
    params, walkers, A = setup
    g = np.random.default_rng(1).normal(size=P)
    want = np.linalg.solve(A.T @ A + LAM * np.eye(P), g)
    np.testing.assert_allclose(_step(params, walkers, g, False), want, rtol=1e-8, atol=1e-10)


def test_projected_sr_solves_with_the_projected_gradient(setup):
    params, walkers, A = setup
    g = np.random.default_rng(2).normal(size=P)
    proj = A.T @ np.linalg.solve(A @ A.T + LAM * np.eye(B), A)  # damped projector onto span(rows of A)
    want = np.linalg.solve(A.T @ A + LAM * np.eye(P), proj @ g)
    np.testing.assert_allclose(_step(params, walkers, g, True), want, rtol=1e-8, atol=1e-10)


def test_projection_drops_the_out_of_span_part_and_keeps_fisher_rao_gradients(setup):
    params, walkers, A = setup
    g = np.random.default_rng(3).normal(size=P)
    q, _ = np.linalg.qr(A.T)                      # orthonormal basis of the span
    g_out = g - q @ (q.T @ g)                     # orthogonal to every centred score
    # without projection the sample Fisher cannot see it: it comes back multiplied by 1 / damping
    np.testing.assert_allclose(_step(params, walkers, g_out, False), g_out / LAM, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(_step(params, walkers, g_out, True), 0.0, atol=1e-10)
    # a Fisher-Rao-type gradient A^T r lies in the span: without damping the projection is exact
    r = np.random.default_rng(4).normal(size=B)
    g_in = A.T @ r
    np.testing.assert_allclose(_step(params, walkers, g_in, True, 1e-9), _step(params, walkers, g_in, False, 1e-9),
                               rtol=1e-4, atol=1e-6)


def test_update_fr_equals_update_with_the_fisher_rao_gradient(setup):
    """update_fr(c) takes g = mean_i c_i ∇θ log|psi_i| from its own Jacobian: the same step as update(g)
    with g from a separate backward pass of mean(c · log|psi|), and it returns log|psi| per walker."""
    params, walkers, _ = setup
    c = np.random.default_rng(5).normal(size=B)
    c = jnp.asarray(c - c.mean())
    batch_lp = jax.vmap(_log_psi, (None, 0))
    grads = jax.grad(lambda p: jnp.mean(c * batch_lp(p, walkers)))(params)
    for project in (False, True):
        opt = make_optimizer("sr", log_psi=_log_psi, learning_rate=0.1, decay=None, damping=LAM,
                             norm_constraint=1e-3, project=project)
        want, s_want = opt.update(grads, opt.init(params), params, walkers)
        got, s_got, lp = opt.update_fr(c, opt.init(params), params, walkers)
        np.testing.assert_allclose(ravel_pytree(got)[0], ravel_pytree(want)[0], rtol=1e-10, atol=1e-12)
        assert int(s_got.count) == int(s_want.count) == 1
        np.testing.assert_allclose(lp, batch_lp(params, walkers), rtol=1e-14)
    assert make_optimizer("adam").update_fr is None


def test_float32_sr_kernel_asks_for_full_float32_products(setup, float32_dot_precisions, assert_all_highest):
    """kernel_dtype=float32 (vmc's mixed mode) multiplies A A^T in float32; on a GPU that would be TF32
    unless SR asks for HIGHEST (checked in the traced update)."""
    params, walkers, _ = setup
    opt = make_optimizer("sr", log_psi=_log_psi, learning_rate=0.1, decay=None, kernel_dtype=jnp.float32)
    g = jax.tree_util.tree_map(jnp.ones_like, params)
    precisions = float32_dot_precisions(lambda g: opt.update(g, opt.init(params), params, walkers)[0], g)
    assert_all_highest(precisions)
