import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vmc import systems
from vmc.networks import make_wavefunction


def _swap(x, i, j):
    r = x.reshape(-1, 3)
    idx = np.arange(r.shape[0])
    idx[i], idx[j] = j, i
    return r[idx].reshape(-1)


@pytest.mark.parametrize("kind", ["ferminet", "slater_jastrow"])
def test_antisymmetric_under_same_spin_exchange(kind):
    mol = systems.get("Be")  # 2 up, 2 down
    wf = make_wavefunction(mol, kind, hidden=[[8, 4], [8, 4]] if kind == "ferminet" else [[8, 0]], n_det=2)
    params = wf.init(jax.random.PRNGKey(0))
    f = jax.jit(jax.vmap(wf.sign_log_psi, (None, 0)))
    x = mol.initial_electrons(jax.random.PRNGKey(1), 4)
    s, l = f(params, x)
    for i, j in ((0, 1), (2, 3)):          # up-up, down-down
        xs = jax.vmap(lambda y: _swap(y, i, j))(x)
        s2, l2 = f(params, xs)
        np.testing.assert_allclose(l2, l, rtol=1e-12)
        np.testing.assert_array_equal(s2, -s)
    # exchanging an up with a down electron is not a symmetry of this spin assignment
    xs = jax.vmap(lambda y: _swap(y, 0, 2))(x)
    assert not np.allclose(f(params, xs)[1], l)


def test_outputs_and_orbital_shapes():
    mol = systems.get("Li")
    wf = make_wavefunction(mol, "ferminet", hidden=[[8, 4]], n_det=3)
    params = wf.init(jax.random.PRNGKey(0))
    x = mol.initial_electrons(jax.random.PRNGKey(2), 1)[0]
    sign, logabs = jax.jit(wf.sign_log_psi)(params, x)
    assert sign.dtype == jnp.float64 and logabs.shape == () and np.isfinite(float(logabs))
    orbs = jax.jit(wf.orbitals)(params, x)
    assert [o.shape for o in orbs] == [(3, 2, 2), (3, 1, 1)]
    assert all(p.dtype == jnp.float64 for p in jax.tree_util.tree_leaves(params))


def test_electron_electron_cusp_from_jastrow():
    # d log|psi| / d r12 -> 1/2 for antiparallel electrons as they meet (Kato cusp)
    mol = systems.get("He")
    wf = make_wavefunction(mol, "slater_jastrow", hidden=[[4, 0]])
    wf0 = make_wavefunction(mol, "slater_jastrow", hidden=[[4, 0]], jastrow=False)
    params = wf.init(jax.random.PRNGKey(0))
    p0 = {"params": {k: v for k, v in params["params"].items() if not k.startswith("jastrow")}}
    base = jnp.array([0.5, 0.2, -0.1])

    @jax.jit
    def slope(r12):
        x = lambda r: jnp.concatenate([base, base + jnp.array([r, 0.0, 0.0])])
        d = lambda f, p: jax.grad(lambda r: f(p, x(r)))(r12)
        return d(wf.log_psi, params) - d(wf0.log_psi, p0)   # the Jastrow's share of the slope

    assert float(slope(1e-6)) == pytest.approx(0.5, abs=1e-5)
    assert float(slope(3.0)) < 0.4


def test_bad_network_options():
    mol = systems.get("He")
    with pytest.raises(ValueError, match="unknown network"):
        make_wavefunction(mol, "transformer")
    with pytest.raises(ValueError, match="n_det"):
        make_wavefunction(mol, n_det=0)
    with pytest.raises(ValueError, match=r"hidden\[1\]\[0\] \(one-electron width\)"):
        make_wavefunction(mol, hidden=[[8, 4], [0, 4]])
    with pytest.raises(ValueError, match=r"hidden\[0\]\[1\] \(two-electron width\)"):
        make_wavefunction(mol, hidden=[[8, -1]])
    with pytest.raises(TypeError, match="n_det"):
        make_wavefunction(mol, n_det=2.5)


@pytest.mark.parametrize("kind", ["ferminet", "slater_jastrow"])
def test_float32_evaluation_asks_for_full_float32_matrix_products(kind, float32_dot_precisions, assert_all_highest):
    """vmc's mixed/float32 modes evaluate the network with float32 parameters; on a GPU JAX would run
    those products in TF32 unless the network asks for HIGHEST (checked in the traced program)."""
    mol = systems.get("LiH")
    wf = make_wavefunction(mol, kind, hidden=[[8, 4], [8, 4]] if kind == "ferminet" else [[8, 0]], n_det=2)
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), wf.init(jax.random.PRNGKey(0)))
    x = mol.initial_electrons(jax.random.PRNGKey(1), 1)[0].astype(jnp.float32)
    precisions = float32_dot_precisions(wf.log_psi, params, x)
    assert_all_highest(precisions)
