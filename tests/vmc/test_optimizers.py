"""Stochastic reconfiguration against dense linear algebra, with and without the span projection; every
vmc optimiser against the numbers of commit 972b801 (before the optax-shaped interface)."""
import pathlib
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from vmc.optimizers import OPTIMIZERS, SRState, make_optimizer

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


def test_one_optax_shaped_interface(setup):
    """Every optimiser is an optax GradientTransformationExtraArgs (``opt.tx``) taking ``walkers=`` (or the
    walkers positionally, as before): keyword and positional calls agree, ``opt.tx`` composes in
    ``optax.chain`` with the walkers reaching SR through the chain, Adam ignores them, SR without them is a
    clear error, and the old always-raising "kfac" choice is gone (an unknown name lists the choices)."""
    params, walkers, _ = setup
    g = jax.tree_util.tree_map(jnp.ones_like, params)
    for name in ("adam", "sr"):
        opt = make_optimizer(name, log_psi=_log_psi, decay=None)
        assert isinstance(opt.tx, optax.GradientTransformationExtraArgs)
        s0 = opt.init(params)
        by_kw, _ = opt.update(g, s0, params, walkers=walkers)
        by_pos, _ = opt.update(g, s0, params, walkers)
        chained = optax.chain(opt.tx, optax.scale(2.0))
        twice, _ = chained.update(g, chained.init(params), params, walkers=walkers)
        for a, b, c in zip(jax.tree.leaves(by_kw), jax.tree.leaves(by_pos), jax.tree.leaves(twice)):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_allclose(c, 2 * a, rtol=1e-15)
    with pytest.raises(ValueError, match="walkers"):
        make_optimizer("sr", log_psi=_log_psi).update(g, SRState(jnp.zeros((), jnp.int32)), params)
    with pytest.raises(ValueError, match=r"unknown optimizer 'kfac'; choose one of adam, lamb, sgd, sr, singd"):
        make_optimizer("kfac")
    assert "kfac" not in OPTIMIZERS


# ---- the same numbers as commit 972b801 ------------------------------------------------------------------
GOLDEN = pathlib.Path(__file__).parent / "data" / "optimizers_972b801.npz"


class _Net(nn.Module):
    @nn.compact
    def __call__(self, r):                           # one walker r (6,) -> log|psi|
        h = jnp.tanh(nn.Dense(5)(r))
        env = self.param("envelope", lambda k: jnp.ones(6))      # not a dense layer: SINGD's fallback
        return jnp.sum(nn.Dense(1)(h)) - 0.5 * jnp.sum(env * r * r)


def _golden_case(case: str) -> np.ndarray:
    """Four steps of the optimiser ``case`` (its updates, flattened, one row per step) on random gradients
    and walkers; "*_fr" uses SR's fused ``update_fr``. Only ``make_optimizer``, ``init`` and ``update`` /
    ``update_fr`` with positional walkers: the same function runs on the package of commit 972b801."""
    rng = np.random.default_rng(11)
    name, _, variant = case.partition("_")
    if name == "singd":
        net = _Net()
        log_psi = net.apply
        params = net.init(jax.random.key(0), jnp.zeros(6))
        structure, interval = variant.split("_")
        opt = make_optimizer("singd", log_psi=log_psi, module=net, learning_rate=0.05, decay=10.0, damping=0.1,
                             singd_options={"structure": structure, "interval": int(interval)})
        n_walkers, dim = 8, 6
    else:
        params = {"w": jnp.asarray(rng.normal(size=P // 2)), "v": jnp.asarray(rng.normal(size=P // 2))}
        log_psi, n_walkers, dim = _log_psi, B, 3
        sr = dict(log_psi=_log_psi, damping=LAM, norm_constraint=1e-3, project="project" in variant,
                  kernel_dtype=jnp.float32 if "float32" in variant else None)
        opt = make_optimizer(name, learning_rate=0.1 if name == "sr" else None, decay=10.0,
                             **(sr if name == "sr" else {}))
    state, rows = opt.init(params), []
    for _ in range(4):
        walkers = jnp.asarray(rng.normal(size=(n_walkers, dim)))
        grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), params)
        if variant.endswith("fr"):
            c = rng.normal(size=n_walkers)
            upd, state, _ = jax.jit(opt.update_fr)(jnp.asarray(c - c.mean()), state, params, walkers)
        else:
            upd, state = jax.jit(opt.update)(grads, state, params, walkers)
        params = optax.apply_updates(params, upd)
        rows.append(np.concatenate([np.ravel(u) for u in jax.tree.leaves(upd)]))
    return np.stack(rows)


GOLDEN_CASES = ("adam", "lamb", "sgd", "sr", "sr_project", "sr_float32", "sr_fr", "sr_project_fr",
                "singd_dense_1", "singd_diagonal_3")


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_same_updates_as_before_the_optax_interface(case):
    """Four steps of every optimiser (SR plain, projected, float32 kernel and fused; SINGD dense T = 1 and
    diagonal T = 3 with its max-norm scaling and its fallback for the envelope; Adam, LAMB, SGD), all with
    the lr / (1 + t / decay) schedule, give the updates stored from commit 972b801 (regenerate with
    ``python tests/vmc/test_optimizers.py --golden OUT.npz`` and that commit's packages on PYTHONPATH)."""
    want = np.load(GOLDEN)[case]
    np.testing.assert_allclose(_golden_case(case), want, rtol=1e-12, atol=1e-15)
    assert np.abs(want).max() > 1e-4


if __name__ == "__main__":          # python tests/vmc/test_optimizers.py --golden OUT.npz (regenerates GOLDEN)
    if sys.argv[1:2] != ["--golden"] or len(sys.argv) != 3:
        sys.exit("usage: python tests/vmc/test_optimizers.py --golden OUT.npz")
    jax.config.update("jax_enable_x64", True)                   # as tests/conftest.py and tests/vmc/conftest.py
    jax.config.update("jax_disable_most_optimizations", True)
    np.savez(sys.argv[2], **{case: _golden_case(case) for case in GOLDEN_CASES})
