import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from vmc import hamiltonian, objectives, systems
from vmc.networks import make_wavefunction

H = systems.get("H")


def _h_log_psi(params, x):
    return -params["a"] * jnp.linalg.norm(x)


def _exact_h_samples(alpha, n, seed=0):
    """Exact samples of |exp(-alpha r)|^2: r ~ Gamma(3, scale 1/(2 alpha)), isotropic direction."""
    rng = np.random.default_rng(seed)
    r = rng.gamma(3.0, 1.0 / (2 * alpha), n)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return jnp.asarray(r[:, None] * d)


def test_fisher_rao_gradient_is_the_energy_derivative_hydrogen():
    # E(alpha) = alpha^2/2 - alpha  =>  dE/dalpha = alpha - 1
    alpha = 0.8
    x = _exact_h_samples(alpha, 20000)
    obj = objectives.fisher_rao(_h_log_psi, H, clip_width=0.0)
    params = {"a": jnp.asarray(alpha)}
    (loss, aux), g = jax.value_and_grad(obj, has_aux=True)(params, x)
    r = np.linalg.norm(np.asarray(x), axis=1)
    e = np.asarray(aux.e_loc)
    se = np.std(2 * (e - e.mean()) * (-r)) / np.sqrt(len(r))
    assert abs(float(g["a"]) - (alpha - 1)) < 4 * se, (float(g["a"]), se)
    assert float(aux.energy) == pytest.approx(alpha**2 / 2 - alpha, abs=0.02)


def test_fisher_rao_gradient_equals_finite_difference_on_fixed_sample():
    mol = systems.get("He")
    wf = make_wavefunction(mol, "ferminet", hidden=[[4, 2]], n_det=1)
    params = wf.init(jax.random.PRNGKey(1))
    x = mol.initial_electrons(jax.random.PRNGKey(2), 16)
    flat, unravel = ravel_pytree(params)
    obj = objectives.fisher_rao(wf.log_psi, mol, clip_width=0.0)
    (loss, aux), g = jax.jit(jax.value_and_grad(obj, has_aux=True))(params, x)
    g = ravel_pytree(g)[0]
    e = aux.e_loc  # frozen local energies at theta
    lp0 = jax.vmap(wf.log_psi, (None, 0))(params, x)

    @jax.jit
    def reweighted_energy(theta):
        lp = jax.vmap(wf.log_psi, (None, 0))(unravel(theta), x)
        w = jnp.exp(2 * (lp - lp0))
        return jnp.sum(w * e) / jnp.sum(w)

    v = jax.random.normal(jax.random.PRNGKey(3), flat.shape, jnp.float64)
    h = 1e-6
    fd = (reweighted_energy(flat + h * v) - reweighted_energy(flat - h * v)) / (2 * h)
    np.testing.assert_allclose(float(g @ v), float(fd), rtol=1e-6)


def test_wasserstein_gradient_equals_direct_mixed_derivative():
    mol = systems.get("He")
    wf = make_wavefunction(mol, "ferminet", hidden=[[4, 2]], n_det=1)
    params = wf.init(jax.random.PRNGKey(4))
    x = mol.initial_electrons(jax.random.PRNGKey(5), 8)
    flat, unravel = ravel_pytree(params)
    obj = objectives.wasserstein(wf.log_psi, mol)
    (loss, aux), g = jax.jit(jax.value_and_grad(obj, has_aux=True))(params, x)
    g = ravel_pytree(g)[0]
    # direct: E[<tanh(grad_x E_loc), d/dtheta grad_x log q>] over the kept walkers
    eg = jax.vmap(hamiltonian.make_local_energy_gradient(wf.log_psi, mol), (None, 0))
    _, ge = jax.jit(eg)(params, x)
    grad_logq = lambda th, y: jax.grad(lambda z: 2.0 * wf.log_psi(unravel(th), z))(y)
    J = jax.jit(jax.vmap(jax.jacfwd(grad_logq), (None, 0)))(flat, x)      # (B, 3N, P)
    norms = jnp.linalg.norm(jax.vmap(grad_logq, (None, 0))(flat, x), axis=-1)
    mask = objectives.outlier_mask(norms)
    direct = jnp.einsum("bi,bip->p", jnp.tanh(ge) * mask[:, None], J) / jnp.sum(mask)
    assert int(aux.n_kept) == int(jnp.sum(mask))
    np.testing.assert_allclose(g, direct, rtol=1e-9, atol=1e-12)
    assert np.isfinite(float(aux.grad_eloc_norm)) and float(aux.grad_eloc_norm) > 0


@pytest.mark.parametrize("alpha, sign", [(0.8, -1.0), (1.2, 1.0)])
def test_wasserstein_moves_hydrogen_exponent_towards_exact(alpha, sign):
    x = _exact_h_samples(alpha, 256, seed=1)
    obj = objectives.wasserstein(_h_log_psi, H)
    g = jax.grad(lambda p: obj(p, x)[0])({"a": jnp.asarray(alpha)})["a"]
    assert np.sign(float(g)) == sign  # descent moves alpha towards 1 (every walker agrees in sign)


def test_wasserstein_masks_outlier_walkers():
    log_psi = lambda p, x: -p["a"] * jnp.sum(x**2)   # |grad_x log q| = 4 a r grows with r
    x = _exact_h_samples(1.0, 64, seed=2)
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True) * (1.0 + 0.01 * jnp.arange(64)[:, None] / 64)
    x = x.at[0].set(jnp.array([50.0, 0.0, 0.0]))
    obj = objectives.wasserstein(log_psi, H)
    loss, aux = obj({"a": jnp.asarray(0.5)}, x)
    assert int(aux.n_kept) == 63
    loss_rest, aux_rest = obj({"a": jnp.asarray(0.5)}, x[1:])
    assert int(aux_rest.n_kept) == 63
    np.testing.assert_allclose(loss, loss_rest, rtol=1e-12)  # rescaled by N/N_kept


def test_clipping_centre_and_width():
    e = jnp.array([0.0, 0.0, 0.0, 0.0, 100.0])
    c = objectives.clip_local_energy(e, 1.0, "median")      # median 0, mean |e| = 20
    assert float(c[-1]) == pytest.approx(20.0)
    c = objectives.clip_local_energy(e, 1.0, "mean")        # mean 20, mean |e - 20| = 32
    assert float(c[-1]) == pytest.approx(52.0) and float(c[0]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="center"):
        objectives.clip_local_energy(e, 1.0, "mode")


def test_joint_is_sum_and_bad_inputs():
    x = _exact_h_samples(0.9, 32, seed=3)
    p = {"a": jnp.asarray(0.9)}
    fr = objectives.fisher_rao(_h_log_psi, H)(p, x)[0]
    w = objectives.wasserstein(_h_log_psi, H)(p, x)[0]
    j = objectives.joint(_h_log_psi, H, fr_weight=0.5)(p, x)[0]
    np.testing.assert_allclose(j, w + 0.5 * fr, rtol=1e-12)
    with pytest.raises(ValueError, match="too few"):
        objectives.fisher_rao(_h_log_psi, H)(p, x[:2])
    with pytest.raises(ValueError, match="unknown objective"):
        objectives.make_objective("energy", _h_log_psi, H)
