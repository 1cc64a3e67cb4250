import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vmc import hamiltonian, systems
from vmc.networks import make_wavefunction


def _points(n, dim, seed=0, scale=1.5):
    return scale * jax.random.normal(jax.random.PRNGKey(seed), (n, dim), jnp.float64)


@pytest.mark.parametrize("method", ["folx", "jvp"])
def test_hydrogen_exp_minus_r_is_exact(method):
    mol = systems.get("H")
    e_loc = jax.jit(jax.vmap(hamiltonian.make_local_energy(lambda p, x: -jnp.linalg.norm(x), mol, method),
                             (None, 0)))
    e = e_loc(None, _points(64, 3))
    assert e.dtype == jnp.float64
    np.testing.assert_allclose(e, -0.5, atol=1e-12)


@pytest.mark.parametrize("method", ["folx", "jvp"])
def test_hydrogen_like_ion_is_exact(method):
    Z = 3.0  # Li2+: psi = exp(-Z r), E = -Z^2/2
    mol = systems.Molecule(("Li",), ((0.0, 0.0, 0.0),), (Z,), 1, 0)
    e_loc = jax.vmap(hamiltonian.make_local_energy(lambda p, x: -Z * jnp.linalg.norm(x), mol, method),
                     (None, 0))
    np.testing.assert_allclose(e_loc(None, _points(32, 3, 1, 0.5)), -Z**2 / 2, atol=1e-11)
    # a wrong exponent is not an eigenfunction: the local energy varies
    e_bad = jax.vmap(hamiltonian.make_local_energy(lambda p, x: -2.0 * jnp.linalg.norm(x), mol, method),
                     (None, 0))(None, _points(32, 3, 1, 0.5))
    assert np.std(np.asarray(e_bad)) > 0.1


@pytest.mark.parametrize("method", ["folx", "jvp", "hessian"])
def test_harmonic_oscillator_kinetic_term(method):
    # psi = exp(-|x|^2/2) in 6 dimensions: T + |x|^2/2 = 6/2 exactly
    f = lambda x: -0.5 * jnp.sum(x**2)
    xs = _points(16, 6, 2)
    e = jax.vmap(lambda x: hamiltonian.kinetic_energy(f, x, method) + 0.5 * jnp.sum(x**2))(xs)
    np.testing.assert_allclose(e, 3.0, atol=1e-12)


def test_potential_by_hand():
    mol = systems.get("H2")
    x = jnp.array([0.0, 1.0, 0.0, 1.4, 0.0, 2.0])
    r1a, r1b = 1.0, np.hypot(1.4, 1.0)
    r2a, r2b = np.hypot(1.4, 2.0), 2.0
    r12 = np.sqrt(1.4**2 + 1.0 + 4.0)
    expect = 1 / r12 - (1 / r1a + 1 / r1b + 1 / r2a + 1 / r2b) + 1 / 1.4
    assert float(hamiltonian.potential_energy(mol, x)) == pytest.approx(expect, rel=1e-13)


def test_forward_laplacian_equals_hessian_trace_on_ferminet():
    mol = systems.get("Li")  # 2 up + 1 down: a real 2x2 determinant and both streams
    wf = make_wavefunction(mol, "ferminet", hidden=[[6, 3]], n_det=2)
    params = wf.init(jax.random.PRNGKey(3))
    xs = mol.initial_electrons(jax.random.PRNGKey(4), 3)
    lap = jax.jit(lambda p, y, m: hamiltonian.laplacian_and_gradient(lambda z: wf.log_psi(p, z), y, m),
                  static_argnums=2)
    for x in xs[:2]:
        lf, gf = lap(params, x, "folx")
        lh, gh = lap(params, x, "hessian")
        np.testing.assert_allclose(lf, lh, rtol=1e-10)
        np.testing.assert_allclose(gf, gh, rtol=1e-10, atol=1e-12)


def test_local_energy_gradient_matches_finite_differences():
    mol = systems.get("He")
    wf = make_wavefunction(mol, "ferminet", hidden=[[4, 2]], n_det=1)
    params = wf.init(jax.random.PRNGKey(5))
    x = mol.initial_electrons(jax.random.PRNGKey(6), 1)[0]
    e_loc = jax.jit(jax.vmap(hamiltonian.make_local_energy(wf.log_psi, mol, "folx"), (None, 0)))
    e, g = jax.jit(hamiltonian.make_local_energy_gradient(wf.log_psi, mol, "folx"))(params, x)
    assert g.shape == (6,)
    h = 1e-5
    eye = jnp.eye(6)
    fd = (e_loc(params, x + h * eye) - e_loc(params, x - h * eye)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


def test_unknown_laplacian_method():
    with pytest.raises(ValueError, match="unknown Laplacian method 'magic'"):
        hamiltonian.make_local_energy(lambda p, x: x.sum(), systems.get("H"), "magic")
