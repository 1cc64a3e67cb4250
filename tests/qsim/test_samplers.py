"""Tests of qsim.samplers: moments on known targets (tolerance from the ESS), a chi-square test on a gridded
target, detailed balance of the involutive kernels (with a negative control that must fail it),
NaN/-inf proposals, adaptation, diagnostics and bad inputs. Seeded and deterministic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from qsim import samplers

jax.config.update("jax_enable_x64", True)

N_SIGMA = 4.0


def _run(kernel, logp, x0, params, n_steps, seed=0, **kw):
    """init + run in one compiled program (eager init would compile every primitive separately)."""
    f = jax.jit(lambda key, x, p: samplers.run(kernel, key, kernel.init(x, logp), logp, p, n_steps,
                                               return_chain=True, **kw))
    return f(jax.random.key(seed), x0, params)


def _check_moments(chain, mean, var, label):
    """Sample mean and variance per coordinate within N_SIGMA standard errors (from the ESS)."""
    chain = np.asarray(chain)
    m = chain.mean(axis=(0, 1))
    ess_x = np.asarray(samplers.ess(chain))
    se_m = np.sqrt(chain.var(axis=(0, 1)) / ess_x)
    sq = (chain - np.asarray(mean)) ** 2
    v = sq.mean(axis=(0, 1))
    ess_sq = np.asarray(samplers.ess(sq))
    se_v = np.sqrt(sq.var(axis=(0, 1)) / ess_sq)
    assert np.all(np.abs(m - mean) < N_SIGMA * se_m), (label, "mean", m, mean, se_m)
    assert np.all(np.abs(v - var) < N_SIGMA * se_v), (label, "var", v, var, se_v)
    # the test must be able to fail: standard errors are small compared with the scale of the target
    assert np.all(se_m < 0.1 * np.sqrt(var)), (label, se_m)


# ---- targets ------------------------------------------------------------------------------------
GAUSS_MEAN = np.array([1.0, -2.0])
GAUSS_COV = np.array([[1.0, 0.6], [0.6, 2.0]])
_PREC = np.linalg.inv(GAUSS_COV)


def gauss_logp(x):
    d = x - GAUSS_MEAN
    return -0.5 * d @ jnp.asarray(_PREC) @ d


BANANA_B = 0.5


def banana_logp(x):  # x1 ~ N(0,1), x2 | x1 ~ N(b (x1^2 - 1), 1): E = 0, Var = (1, 1 + 2 b^2)
    return -0.5 * x[0] ** 2 - 0.5 * (x[1] - BANANA_B * (x[0] ** 2 - 1.0)) ** 2


MIX_MU = 4.0
MIX_W = 0.3  # weight of the mode at -MIX_MU (0.7 at +MIX_MU)


def mixture_logp(x):
    a = jnp.log(MIX_W) - 0.5 * jnp.sum((x - jnp.array([-MIX_MU, 0.0])) ** 2)
    b = jnp.log(1 - MIX_W) - 0.5 * jnp.sum((x - jnp.array([MIX_MU, 0.0])) ** 2)
    return jnp.logaddexp(a, b)


# A product target: every kernel is checked on all components in ONE compiled run (compile time
# dominates on CPU). Coordinates: 0-1 correlated Gaussian, 2-3 banana, 4-5 a well-separated mixture
# (walkers started in proportion to its weights), 6 a density that returns NaN (value and gradient) past
# z = 1.5, 7 a gridded piecewise-constant density with -inf outside [0, 6).
TRUNC = 1.5
GRID_P = np.array([0.05, 0.2, 0.1, 0.3, 0.25, 0.1])


def trunc_logp(z):
    return jnp.log(TRUNC - z) - 0.5 * z ** 2          # NaN beyond TRUNC


def grid_logp1(z):
    cell = jnp.floor(z).astype(jnp.int32)
    inside = (z >= 0) & (z < len(GRID_P))
    lp = jnp.log(jnp.asarray(GRID_P))[jnp.clip(cell, 0, len(GRID_P) - 1)]
    return jnp.where(inside, lp, -jnp.inf)


def product_logp(x):
    return (gauss_logp(x[0:2]) + banana_logp(x[2:4]) + mixture_logp(x[4:6]) + trunc_logp(x[6])
            + grid_logp1(x[7]))


def _trunc_moments():
    from scipy import integrate
    dens = lambda z: (TRUNC - z) * np.exp(-0.5 * z * z)
    z0 = integrate.quad(dens, -np.inf, TRUNC)[0]
    m1 = integrate.quad(lambda z: z * dens(z), -np.inf, TRUNC)[0] / z0
    m2 = integrate.quad(lambda z: z * z * dens(z), -np.inf, TRUNC)[0] / z0
    return m1, m2 - m1 ** 2


def _grid_moments():
    c = np.arange(len(GRID_P)) + 0.5
    m = np.sum(GRID_P * c)
    return m, np.sum(GRID_P * (c ** 2 + 1.0 / 12)) - m ** 2


def _product_start(walkers, rng):
    side = np.where(np.arange(walkers) < MIX_W * walkers, -MIX_MU, MIX_MU)
    x = rng.normal(size=(walkers, 8))
    x[:, 4] += side
    x[:, 6] = -np.abs(x[:, 6])
    x[:, 7] = rng.uniform(0, len(GRID_P), walkers)
    return jnp.asarray(x), side


KERNELS = {
    "rwm": (lambda: samplers.rwm(), 0.55),
    "mala": (lambda: samplers.mala(), 0.12),
    "hmc": (lambda: samplers.hmc(n_leapfrog=5), 0.25),
    "irreversible_rwm": (lambda: samplers.rwm(irreversible=True), 0.45),
    "irreversible_mala": (lambda: samplers.mala(irreversible=True), 0.12),
    "irreversible_hmc": (lambda: samplers.hmc(n_leapfrog=5, irreversible=True), 0.25),
}
_SLOW = {"irreversible_rwm", "irreversible_mala"}


@pytest.mark.parametrize("name", [pytest.param(k, marks=pytest.mark.slow) if k in _SLOW else k
                                  for k in sorted(KERNELS)])
def test_moments_gaussian_banana_mixture_nan_grid(name):
    make, step = KERNELS[name]
    walkers, burn = 300, 150
    x0, side = _product_start(walkers, np.random.default_rng(0))
    state, info = _run(make(), product_logp, x0, {"step_size": step}, 500)
    acc = float(np.mean(info.acceptance))
    assert 0.2 < acc < 0.99, (name, acc)
    chain = np.asarray(info.chain[burn:])
    assert np.all(np.isfinite(chain)) and np.all(np.isfinite(np.asarray(state.logdensity)))
    if state.grad is not None:
        assert np.all(np.isfinite(np.asarray(state.grad)))
    # NaN region and -inf region never entered
    assert np.all(chain[..., 6] < TRUNC) and np.all((chain[..., 7] >= 0) & (chain[..., 7] < len(GRID_P)))
    _check_moments(chain[..., 0:2], GAUSS_MEAN, np.diag(GAUSS_COV), name + ":gaussian")
    _check_moments(chain[..., 2:4], np.zeros(2), np.array([1.0, 1.0 + 2 * BANANA_B ** 2]), name + ":banana")
    offs = chain[..., 4:6] - np.stack([side, np.zeros(walkers)], -1)[None]
    _check_moments(offs, np.zeros(2), np.ones(2), name + ":mixture-modes")
    tm, tv = _trunc_moments()
    _check_moments(chain[..., 6:7], np.array([tm]), np.array([tv]), name + ":nan-truncated")
    gm, gv = _grid_moments()
    _check_moments(chain[..., 7:8], np.array([gm]), np.array([gv]), name + ":grid")
    # chi-square on the gridded coordinate: one draw per (independent) walker at the end
    counts = np.bincount(np.floor(chain[-1, :, 7]).astype(int), minlength=len(GRID_P))
    assert stats.chisquare(counts, walkers * GRID_P).pvalue > 1e-3, (name, counts)
    # power: the same counts are far from uniform over the cells
    assert stats.chisquare(counts, np.full(len(GRID_P), walkers / len(GRID_P))).pvalue < 1e-3


def _mixture_truth():
    mean = np.array([(1 - 2 * MIX_W) * MIX_MU, 0.0])
    second = np.array([1.0 + MIX_MU ** 2, 1.0])
    return mean, second - mean ** 2


def test_orbital_jumps_between_separated_modes():
    """All walkers start in the light mode; only the orbit's reflection about 0 can move mass across
    a barrier of ~exp(-8); the chain and the weighted orbit estimator must both find the 0.3/0.7 weights.
    The second coordinate returns NaN beyond y = 2 (such orbit points get weight 0, never entered)."""
    mean, var = _mixture_truth()
    cut = 2.0
    tn = stats.truncnorm(-np.inf, cut)
    mean[1], var[1] = tn.mean(), tn.var()
    x0 = np.random.default_rng(2).normal(size=(256, 2)) + np.array([-MIX_MU, 0.0])
    x0[:, 1] = np.minimum(x0[:, 1], 0.0)
    logp = lambda x: mixture_logp(x) + jnp.where(x[1] > cut, jnp.nan, 0.0)
    kern = samplers.orbital(period=8)
    _, info = _run(kern, logp, jnp.asarray(x0), {"step_size": 0.7}, 300, seed=2, return_infos=True)
    chain = np.asarray(info.chain[50:])
    assert np.all(chain[..., 1] <= cut)
    _check_moments(chain, mean, var, "orbital")
    # weighted estimator over all orbit points: per-step, per-walker weighted means as the "chain"
    orbit, w = info.infos.orbit[50:], info.infos.weights[50:]             # (n, walkers, 8, 2), (n, walkers, 8)
    assert np.all(np.asarray(w)[np.asarray(orbit)[..., 1] > cut] == 0)
    per = np.asarray(jnp.sum(w[..., None] * orbit, axis=2))              # (n, walkers, 2)
    est = np.asarray(samplers.weighted_mean(orbit, w))
    np.testing.assert_allclose(est, per.mean(axis=(0, 1)), rtol=1e-10, atol=1e-12)
    se = np.sqrt(per.var(axis=(0, 1)) / np.asarray(samplers.ess(per)))
    assert np.all(np.abs(est - mean) < N_SIGMA * se), (est, mean, se)
    assert se[0] < 0.2


# ---- detailed balance ---------------------------------------------------------------------------
def _db_logp(x):  # a skewed 1D mixture, sampled exactly below
    return jnp.logaddexp(jnp.log(0.4) - 0.5 * (x[0] + 1.0) ** 2, jnp.log(0.6) - 0.5 * ((x[0] - 1.5) / 0.7) ** 2
                         - jnp.log(0.7))


def _db_exact(n, rng):
    comp = rng.uniform(size=n) < 0.4
    return np.where(comp, rng.normal(-1.0, 1.0, n), rng.normal(1.5, 0.7, n))[:, None]


def _detailed_balance_pvalue(kernel, params, n=60_000, seed=5):
    rng = np.random.default_rng(seed)
    x0 = jnp.asarray(_db_exact(n, rng))
    state = kernel.init(x0, _db_logp)
    new, _ = jax.jit(lambda k, s: kernel.step(k, s, _db_logp, params))(jax.random.key(seed), state)
    a, b = np.asarray(x0[:, 0]), np.asarray(new.position[:, 0])
    edges = np.quantile(a, np.linspace(0, 1, 9))
    edges[0], edges[-1] = -np.inf, np.inf
    h, _, _ = np.histogram2d(a, b, bins=[edges, edges])
    iu = np.triu_indices(len(edges) - 1, 1)
    up, lo = h[iu], h.T[iu]
    keep = up + lo > 0
    stat = np.sum((up - lo)[keep] ** 2 / (up + lo)[keep])
    return stats.chi2.sf(stat, keep.sum())


@pytest.mark.parametrize("name,make,step", [
    pytest.param("rwm", lambda: samplers.rwm(), 1.5, marks=pytest.mark.slow), ("mala", lambda: samplers.mala(), 0.5),
    pytest.param("hmc", lambda: samplers.hmc(n_leapfrog=3), 0.6, marks=pytest.mark.slow)])
def test_detailed_balance(name, make, step):
    """Started from exact samples, one step gives pairs (x, x') whose joint law must be symmetric:
    the counts N_ij and N_ji of an 8x8 histogram agree (chi-square)."""
    assert _detailed_balance_pvalue(make(), {"step_size": step}) > 1e-3


def test_detailed_balance_check_can_fail():
    """Negative control: the MALA proposal with the proposal-density term dropped from the acceptance
    ratio is not reversible with respect to p, and the same check must reject it."""
    good = samplers.mala()

    def sample_aux(xi, point, _, prm):
        e = prm["step_size"]
        return point.x + e * point.grad + jnp.sqrt(2 * e) * xi

    def swap(point, v, evaluate, prm):
        return evaluate(v), point.x, jnp.zeros(())

    bad = samplers.involutive(sample_aux, swap, lambda v, p, prm: jnp.zeros(()), needs_grad=True,
                              defaults=good.defaults)
    assert _detailed_balance_pvalue(bad, {"step_size": 0.8}) < 1e-6


# ---- API behaviour ------------------------------------------------------------------------------
def test_step_shapes_dtype_determinism_and_no_recompile():
    traces = []

    def logp(x):
        traces.append(1)
        return -0.5 * jnp.sum(x ** 2)

    kern = samplers.mala()
    x0 = jnp.ones((7, 6), jnp.float64)
    state = kern.init(x0, logp)
    assert state.position.shape == (7, 6) and state.logdensity.shape == (7,) and state.grad.shape == (7, 6)
    step = jax.jit(lambda k, s, p: kern.step(k, s, logp, p))
    s1, i1 = step(jax.random.key(3), state, {"step_size": 0.1})
    n = len(traces)
    s2, i2 = step(jax.random.key(3), state, {"step_size": 0.1})
    assert i1.acceptance.shape == (7,) and s1.position.dtype == jnp.float64
    np.testing.assert_array_equal(s1.position, s2.position)
    # new step sizes (Python float or array) are arguments: no new trace, no recompilation
    s3, _ = step(jax.random.key(3), state, {"step_size": 0.37})
    assert len(traces) == n
    # an array step size is another argument type (not weak-typed): one trace, then none per value
    step(jax.random.key(4), state, {"step_size": jnp.asarray(0.2)})
    m = len(traces)
    step(jax.random.key(4), state, {"step_size": jnp.asarray(0.3)})
    assert len(traces) == m
    assert not np.array_equal(np.asarray(s3.position), np.asarray(s1.position))
    s32 = kern.init(x0.astype(jnp.float32), logp)
    out, _ = step(jax.random.key(0), s32, {"step_size": 0.1})
    assert out.position.dtype == jnp.float32 and out.grad.dtype == jnp.float32


def test_refresh_after_density_change():
    kern = samplers.mala()
    state = kern.init(jnp.ones((3, 2)), lambda x: -0.5 * jnp.sum(x ** 2))
    new_fn = lambda x: -jnp.sum(x ** 2)
    r = samplers.refresh(state, new_fn)
    np.testing.assert_allclose(r.logdensity, -2.0 * np.ones(3))
    np.testing.assert_allclose(r.grad, -2.0 * np.ones((3, 2)))


def test_acceptance_targeting_reaches_band():
    kern = samplers.rwm()
    _, info = _run(kern, lambda x: -0.5 * jnp.sum(x ** 2), jnp.zeros((500, 4)), {"step_size": 0.01}, 120,
                   adapt=samplers.acceptance_targeting((0.5, 0.55)))
    acc = np.asarray(info.acceptance.mean(axis=1))
    assert 0.45 < acc[-20:].mean() < 0.6
    assert float(info.params["step_size"]) > 0.5          # grew from 0.01 by the 1.1 factor
    np.testing.assert_allclose(info.step_size[1] / info.step_size[0], 1.1, rtol=1e-6)


@pytest.mark.slow
def test_dual_averaging_hits_target():
    kern = samplers.mala()
    logp = lambda x: -0.5 * jnp.sum(x ** 2)
    _, info = _run(kern, logp, jnp.zeros((300, 5)), {"step_size": 0.01}, 300,
                   adapt=samplers.dual_averaging(target=0.7))
    acc = np.asarray(info.acceptance.mean(axis=1))
    assert abs(acc[-100:].mean() - 0.7) < 0.05
    assert np.isfinite(float(info.params["step_size"]))


def test_ess_and_rhat_on_ar1():
    """AR(1) with coefficient r has ESS = N (1 - r) / (1 + r); R-hat ~ 1, and > 1.1 for shifted chains."""
    rng = np.random.default_rng(0)
    n, m, r = 4000, 8, 0.8
    x = np.zeros((n, m))
    x[0] = rng.normal(size=m) / np.sqrt(1 - r ** 2)
    for t in range(1, n):
        x[t] = r * x[t - 1] + rng.normal(size=m)
    expected = n * m * (1 - r) / (1 + r)
    assert abs(float(samplers.ess(x)) / expected - 1) < 0.15
    assert abs(float(samplers.split_rhat(x)) - 1) < 0.01
    shifted = x + np.arange(m) * 2.0
    assert float(samplers.split_rhat(shifted)) > 1.1
    iid = rng.normal(size=(1000, 4, 2))
    assert np.all(np.abs(np.asarray(samplers.ess(iid)) / 4000 - 1) < 0.15)


# ---- bad inputs ---------------------------------------------------------------------------------
def _logp(x):
    return -0.5 * jnp.sum(x ** 2)


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf")])
def test_non_positive_step_size_raises(bad):
    kern = samplers.rwm()
    state = kern.init(jnp.zeros((2, 2)), _logp)
    with pytest.raises(ValueError, match="step_size"):
        kern.step(jax.random.key(0), state, _logp, {"step_size": bad})
    with pytest.raises(ValueError, match="step_size"):
        samplers.run(kern, jax.random.key(0), state, _logp, {"step_size": bad}, 3)


def test_bad_positions_and_states_raise():
    kern = samplers.mala()
    with pytest.raises(ValueError, match="walkers, dim"):
        kern.init(jnp.zeros(5), _logp)
    with pytest.raises(TypeError, match="floating"):
        kern.init(jnp.zeros((2, 2), jnp.int32), _logp)
    with pytest.raises(ValueError, match="UNBATCHED"):
        kern.init(jnp.zeros((4, 2)), lambda x: -0.5 * x ** 2)
    state = kern.init(jnp.zeros((4, 2)), _logp)
    mismatched = state._replace(position=jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match="walkers"):
        kern.step(jax.random.key(0), mismatched, _logp, {"step_size": 0.1})
    with pytest.raises(ValueError, match="grad"):
        kern.step(jax.random.key(0), state._replace(grad=jnp.zeros((4, 3))), _logp, {"step_size": 0.1})
    with pytest.raises(ValueError, match="needs State.grad"):
        kern.step(jax.random.key(0), samplers.rwm().init(jnp.zeros((4, 2)), _logp), _logp, {})
    with pytest.raises(ValueError, match="unknown sampler parameter"):
        kern.step(jax.random.key(0), state, _logp, {"stepsize": 0.1})


def test_bad_kernel_options_raise():
    with pytest.raises(ValueError, match="n_leapfrog"):
        samplers.hmc(n_leapfrog=0)
    with pytest.raises(ValueError, match="period"):
        samplers.orbital(period=1)
    with pytest.raises(ValueError, match="persistence"):
        samplers.rwm(irreversible=True, persistence=1.0)
    with pytest.raises(ValueError, match="n_steps"):
        samplers.run(samplers.rwm(), jax.random.key(0), samplers.rwm().init(jnp.zeros((2, 2)), _logp), _logp,
                     {}, 0)
    with pytest.raises(ValueError, match="target"):
        samplers.acceptance_targeting((0.6, 0.5))
