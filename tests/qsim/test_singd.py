"""Tests of qsim.optim: SINGD against a NumPy reference of the update equations (written from notes.md),
IKFAC's convergence to the damped KFAC inverse, the structured-matrix algebra, the Flax capture of
per-example statistics (loss and VMC log-amplitude), MLP training in float32/bfloat16, bad inputs."""

import functools
import pathlib
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import qsim.optim as optim
from qsim.optim import (STRUCTURES, LayerStats, layer_statistics, make_structure, needs_layer_stats, singd,
                        value_grad_and_stats)
from qsim.optim.structures import gram_left, gram_self

jax.config.update("jax_enable_x64", True)

BLOCK, HIER = 3, 2


# ---- NumPy reference, written from notes.md -----------------------------------------------------
def ref_project(name, m):
    d = m.shape[0]
    i, j = np.indices((d, d))
    if name == "dense":
        return m.copy()
    if name == "diagonal":
        return np.diag(np.diag(m))
    if name == "block":
        return np.where(i // BLOCK == j // BLOCK, m, 0.0)
    if name == "hierarchical":
        h = min(HIER, d)
        keep = (i < h) | (i == j)
        return np.where(keep, m, 0.0)
    if name in ("tril_toeplitz", "triu_toeplitz"):
        off = i - j if name == "tril_toeplitz" else j - i
        out = np.zeros_like(m)
        for o in range(d):
            sel = off == o
            out[sel] = m[sel].mean()
        return out
    raise AssertionError(name)


class RefLayer:
    """One dense layer W (d_out x d_in) with a bias column, the notes' SINGD state as dense matrices."""

    def __init__(self, d_in, d_out):
        self.K, self.C = np.eye(d_in + 1), np.eye(d_out)
        self.mK, self.mC = np.zeros((d_in + 1, d_in + 1)), np.zeros((d_out, d_out))
        self.m = np.zeros((d_out, d_in + 1))


def ref_step(layer, w_aug, grad_aug, a, g, t, *, structure, lr, damping, alpha2, gamma, alpha1, T, lr_cov, ikfac):
    """w_aug, grad_aug: (d_out, d_in + 1) [W | b]; a (N, d_in), g (N, d_out). Returns the new w_aug."""
    P = lambda m: ref_project(structure, m)
    if t % T == 0:
        n = a.shape[0]
        a1 = np.concatenate([a, np.ones((n, 1))], axis=1)
        U = a1.T @ a1 / n
        G = g.T @ g / n
        K, C = layer.K, layer.C
        d_in, d_out = K.shape[0], C.shape[0]
        HK, HC = P(K.T @ U @ K), P(C.T @ G @ C)
        KK, CC = P(K.T @ K), P(C.T @ C)
        if ikfac:
            mK = 0.5 * (HK + damping * KK - np.eye(d_in))
            mC = 0.5 * (HC + damping * CC - np.eye(d_out))
        else:
            mK = alpha1 * layer.mK + 0.5 * (np.trace(HC) / d_out * HK + damping * np.trace(CC) / d_out * KK
                                            - np.eye(d_in))
            mC = alpha1 * layer.mC + 0.5 * (np.trace(HK) / d_in * HC + damping * np.trace(KK) / d_in * CC
                                            - np.eye(d_out))
        layer.mK, layer.mC = mK, mC
        layer.K = K @ (np.eye(d_in) - lr_cov * mK)
        layer.C = C @ (np.eye(d_out) - lr_cov * mC)
    delta = layer.C @ layer.C.T @ grad_aug @ layer.K @ layer.K.T
    layer.m = alpha2 * layer.m + delta + gamma * w_aug
    return w_aug - lr * layer.m


class TwoLayer(nn.Module):
    hidden: int = 7
    out: int = 5

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.out)(jnp.tanh(nn.Dense(self.hidden)(x)))


@pytest.mark.parametrize("structure,ikfac", [(s, False) for s in STRUCTURES] + [("dense", True)] + [
    pytest.param(s, True, marks=pytest.mark.slow) for s in STRUCTURES if s != "dense"])
def test_matches_numpy_reference(structure, ikfac):
    """Six steps (factor updates at 0, 2, 4: T = 2) of a two-layer net on random data: the JAX transform's
    parameters agree with the NumPy reference of the notes' equations to 1e-6."""
    _check_reference(structure, ikfac)


@pytest.mark.parametrize("structure,cache", [("dense", False), ("tril_toeplitz", True), ("triu_toeplitz", True)])
def test_matches_numpy_reference_with_and_without_cached_products(structure, cache):
    """The cached ``K K^T``, ``C C^T`` (default for dense only) give the reference's update too, and so does
    the dense structure without them (the default dense case is covered above)."""
    _check_reference(structure, False, cache_products=cache)


def _check_reference(structure, ikfac, **options):
    rng = np.random.default_rng(0)
    model = TwoLayer()
    n, d = 11, 6
    params = model.init(jax.random.key(0), jnp.zeros(d))["params"]
    params = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape) * 0.5), params)
    hyper = dict(lr=0.05, damping=0.3, alpha2=0.7, gamma=0.01, alpha1=0.4, T=2, lr_cov=0.2)
    tx = singd(hyper["lr"], structure, damping=hyper["damping"], momentum=hyper["alpha2"],
               weight_decay=hyper["gamma"], cov_momentum=hyper["alpha1"], update_interval=hyper["T"],
               lr_cov=hyper["lr_cov"], ikfac=ikfac, factor_dtype=jnp.float64, block_size=BLOCK,
               hierarchical_size=HIER, **options)
    state = tx.init(params)
    cached = options.get("cache_products", structure == "dense")
    assert (optim.singd_state(state).factors["Dense_0"].PK is not None) == cached
    refs = {"Dense_0": RefLayer(7, 5), "Dense_1": RefLayer(d, 7)}   # Dense_0 is built first (outer call)
    w_ref = {k: np.concatenate([np.asarray(params[k]["kernel"]).T, np.asarray(params[k]["bias"])[:, None]], 1)
             for k in refs}

    def per_example(p, x, y):
        return 0.5 * jnp.sum((model.apply({"params": p}, x) - y) ** 2)

    step = jax.jit(lambda p, s, x, y: _singd_step(tx, per_example, p, s, x, y))
    for t in range(6):
        x = rng.normal(size=(n, d))
        y = rng.normal(size=(n, 5))
        new_params, state, grads, stats = step(params, state, x, y)
        for k, layer in refs.items():
            g_aug = np.concatenate([np.asarray(grads[k]["kernel"]).T, np.asarray(grads[k]["bias"])[:, None]], 1)
            a = np.asarray(stats[k].inputs)[:, 0]
            gg = np.asarray(stats[k].out_grads)[:, 0]
            w_ref[k] = ref_step(layer, w_ref[k], g_aug, a, gg, t, structure=structure, ikfac=ikfac, **hyper)
            got = np.concatenate([np.asarray(new_params[k]["kernel"]).T, np.asarray(new_params[k]["bias"])[:, None]], 1)
            np.testing.assert_allclose(got, w_ref[k], rtol=1e-6, atol=1e-6, err_msg=f"{structure} step {t} {k}")
        params = new_params
    # the check has teeth: the preconditioner moved away from the identity
    assert np.abs(refs["Dense_1"].K - np.eye(d + 1)).max() > 1e-3


# ---- the same numbers as the closure implementation of commit 972b801 --------------------------------
GOLDEN = pathlib.Path(__file__).parent / "data" / "singd_972b801.npz"
GOLDEN_HYPER = dict(damping=0.3, momentum=0.7, weight_decay=0.01, cov_momentum=0.4, update_interval=2, lr_cov=0.2,
                    factor_dtype=jnp.float64, block_size=BLOCK, hierarchical_size=HIER)
GOLDEN_CASES = {**{s: {} for s in STRUCTURES}, "dense_ikfac": {"ikfac": True},
                "dense_uncached": {"cache_products": False}, "tril_toeplitz_cached": {"cache_products": True},
                "diagonal_schedule_one_layer": {"learning_rate": lambda t: 0.05 / (1.0 + t / 3.0),
                                                "layers": ["Dense_1"], "weight_decay": 0.0},
                "block_adam_fallback": {"fallback": optax.adam(0.01)}}


def _golden_trajectory(case: str, steps: int = 6) -> np.ndarray:
    """The updates (steps, n_params) of ``singd`` with ``GOLDEN_CASES[case]`` on a two-layer net plus a
    non-layer parameter ``scale``, float64, T = 2: statistics only at the factor-update steps (0, 2, 4).
    Uses only ``singd`` and ``value_grad_and_stats``, so the same function runs on the old package."""
    options = {**GOLDEN_HYPER, **GOLDEN_CASES[case]}
    lr = options.pop("learning_rate", 0.05)
    structure = case.split("_")[0] if not case.startswith(("tril", "triu")) else case[:13]
    tx = singd(lr, structure, **options)
    model, rng = TwoLayer(), np.random.default_rng(7)
    params = model.init(jax.random.key(0), jnp.zeros(6))["params"]
    params = {**jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape) * 0.5), params),
              "scale": jnp.asarray(rng.normal(size=5))}

    def per_example(p, x, y):
        net = {k: v for k, v in p.items() if k != "scale"}
        return 0.5 * jnp.sum((model.apply({"params": net}, x) * p["scale"] - y) ** 2)

    @jax.jit
    def with_stats(p, s, x, y):
        _, g, st = value_grad_and_stats(per_example, p, x, y)
        return tx.update(g, s, p, layer_stats=st)

    @jax.jit
    def without(p, s, x, y):
        g = jax.grad(lambda q: jnp.mean(jax.vmap(lambda a, b: per_example(q, a, b))(x, y)))(p)
        return tx.update(g, s, p)

    state, out = tx.init(params), []
    for t in range(steps):
        x, y = rng.normal(size=(11, 6)), rng.normal(size=(11, 5))
        u, state = (with_stats if t % 2 == 0 else without)(params, state, x, y)
        params = optax.apply_updates(params, u)
        out.append(np.concatenate([np.ravel(v) for v in jax.tree.leaves(u)]))
    return np.stack(out)


@pytest.mark.parametrize("case", list(GOLDEN_CASES))
def test_same_updates_as_the_closure_implementation(case):
    """The optax chain (scale_by_singd, add_decayed_weights, trace, scale_by_learning_rate) gives the updates
    of the one-closure ``singd`` of commit 972b801 (stored by ``python tests/qsim/test_singd.py --golden``
    run with that commit's package on PYTHONPATH) over six steps in float64, for every structure and
    option: to 1e-13 (the chain adds weight decay before momentum, the closure after: one rounding)."""
    want = np.load(GOLDEN)[case]
    got = _golden_trajectory(case)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert np.abs(want[-1]).max() > 1e-3                  # the steps are not all zero


def test_scale_by_singd_is_the_preconditioner_of_the_chain():
    """singd(lr, momentum=0) is -lr times scale_by_singd's Delta (the same factors, bit for bit), Delta is
    not the gradient once the factors moved, the preconditioner composes with other optax transformations
    and extra arguments, and needs_layer_stats / singd_state find its state inside any composition."""
    rng = np.random.default_rng(4)
    model, lr = TwoLayer(), 0.05
    params = model.init(jax.random.key(0), jnp.zeros(6))["params"]
    options = dict(damping=0.3, update_interval=2, lr_cov=0.2, factor_dtype=jnp.float64)
    full = singd(lr, "hierarchical", momentum=0.0, hierarchical_size=HIER, **options)
    pre = optim.scale_by_singd("hierarchical", hierarchical_size=HIER, **options)
    both = optax.chain(optax.clip(1e9), pre, optax.scale(-lr))        # plain optax around it

    def per_example(p, x, y):
        return 0.5 * jnp.sum((model.apply({"params": p}, x) - y) ** 2)

    states = {k: tx.init(params) for k, tx in (("full", full), ("pre", pre), ("both", both))}
    for t in range(3):
        x, y = rng.normal(size=(9, 6)), rng.normal(size=(9, 5))
        _, g, st = value_grad_and_stats(per_example, params, x, y)
        out = {}
        for k, tx in (("full", full), ("pre", pre), ("both", both)):
            assert bool(needs_layer_stats(states[k], 2)) == (t % 2 == 0)
            out[k], states[k] = tx.update(g, states[k], params, layer_stats=st, unused_extra=1.0)
        for a, b, c in zip(jax.tree.leaves(out["full"]), jax.tree.leaves(out["pre"]), jax.tree.leaves(out["both"])):
            np.testing.assert_array_equal(a, -lr * b)
            np.testing.assert_array_equal(a, c)
        params = optax.apply_updates(params, out["full"])
    delta, grad = np.ravel(out["pre"]["Dense_1"]["kernel"]), np.ravel(g["Dense_1"]["kernel"])
    assert np.abs(delta - grad).max() > 1e-3 * np.abs(grad).max()   # preconditioned, not passed through
    assert int(optim.singd_state(states["both"]).count) == 3
    with pytest.raises(ValueError, match="no SINGDState"):
        optim.singd_state(optax.adam(1e-3).init(params))


def _singd_step(tx, fn, p, s, x, y):
    loss, grads, stats = value_grad_and_stats(fn, p, x, y)
    updates, s = tx.update(grads, s, p, layer_stats=stats)
    return optax.apply_updates(p, updates), s, grads, stats


def test_statistics_only_needed_at_factor_update_steps():
    """T = 3: a jitted step that captures statistics only when ``needs_layer_stats`` (lax.cond) gives the
    same parameters over 7 steps as one that always captures them; skipping the capture at a factor-update
    step changes the result (so the comparison can fail), and an eager call there raises."""
    rng = np.random.default_rng(2)
    model, T = TwoLayer(), 3
    params = model.init(jax.random.key(0), jnp.zeros(6))["params"]
    tx = singd(0.05, "diagonal", damping=0.3, update_interval=T, lr_cov=0.2, factor_dtype=jnp.float64)

    def per_example(p, x, y):
        return 0.5 * jnp.sum((model.apply({"params": p}, x) - y) ** 2)

    def mean_loss(p, x, y):
        return jnp.mean(jax.vmap(lambda a, b: per_example(p, a, b))(x, y))

    def with_stats(p, s, x, y):
        _, g, st = value_grad_and_stats(per_example, p, x, y)
        return tx.update(g, s, p, layer_stats=st)

    def without(p, s, x, y):
        return tx.update(jax.grad(mean_loss)(p, x, y), s, p)

    always = jax.jit(with_stats)
    chosen = jax.jit(lambda p, s, x, y: jax.lax.cond(needs_layer_stats(s, T), with_stats, without, p, s, x, y))
    never = jax.jit(without)
    data = [(rng.normal(size=(9, 6)), rng.normal(size=(9, 5))) for _ in range(7)]
    runs = {}
    for name, step in (("always", always), ("chosen", chosen), ("stale", never)):
        p, s = params, tx.init(params)
        for t, (x, y) in enumerate(data):
            u, s = (always if t == 0 else step)(p, s, x, y)
            p = optax.apply_updates(p, u)
        runs[name] = np.concatenate([np.ravel(v) for v in jax.tree.leaves(p)])
    # float32 parameters: the two gradient paths sum in different orders (rounding, ~1e-7)
    np.testing.assert_allclose(runs["chosen"], runs["always"], rtol=1e-5, atol=1e-6)
    assert np.abs(runs["stale"] - runs["always"]).max() > 1e-3
    s = tx.init(params)
    for t in range(T):
        assert bool(needs_layer_stats(s, T)) == (t == 0)
        _, s = without(params, s, *data[t]) if t else always(params, s, *data[t])
    with pytest.raises(ValueError, match="factor-update step"):
        without(params, s, *data[0])
    with pytest.raises(ValueError, match="update_interval"):
        needs_layer_stats(s, 0)


# ---- IKFAC tends to the damped KFAC inverse ------------------------------------------------------
def test_ikfac_dense_tends_to_damped_kfac_inverse():
    rng = np.random.default_rng(1)
    n, d_in, d_out, lam = 40, 4, 3, 0.1
    a = rng.normal(size=(n, d_in)) * 0.7
    g = rng.normal(size=(n, d_out)) * 0.8
    params = {"layer": {"kernel": jnp.zeros((d_in, d_out)), "bias": jnp.zeros(d_out)}}
    stats = {"layer": LayerStats(jnp.asarray(a)[:, None], jnp.asarray(g)[:, None])}
    tx = singd(1e-3, "dense", damping=lam, ikfac=True, lr_cov=0.2, update_interval=1, factor_dtype=jnp.float64)
    grads = jax.tree.map(jnp.zeros_like, params)

    def body(state, _):
        _, state = tx.update(grads, state, params, layer_stats=stats)
        f = optim.singd_state(state).factors["layer"]
        return state, (f.K @ f.K.T, f.C @ f.C.T)

    _, (kk, cc) = jax.jit(lambda s: jax.lax.scan(body, s, None, length=400))(tx.init(params))
    a1 = np.concatenate([a, np.ones((n, 1))], 1)
    k_inv = np.linalg.inv(a1.T @ a1 / n + lam * np.eye(d_in + 1))
    c_inv = np.linalg.inv(g.T @ g / n + lam * np.eye(d_out))
    err = lambda m, ref: np.abs(np.asarray(m) - ref).max() / np.abs(ref).max()
    assert err(kk[-1], k_inv) < 1e-6 and err(cc[-1], c_inv) < 1e-6
    assert err(kk[0], k_inv) > 1e-1                      # it starts far away (the test can fail)
    errs = [err(kk[t], k_inv) for t in (0, 10, 50, 100, 200)]
    assert all(e2 < e1 for e1, e2 in zip(errs, errs[1:]))


# ---- structured matrices --------------------------------------------------------------------------
@pytest.mark.parametrize("upper", [False, True])
def test_toeplitz_gram_dense_bfloat16(upper):
    """The O(d^2) ``K K^T`` of a triangular Toeplitz factor stored in bfloat16 (SINGD's factor_dtype) is
    summed in float32 and returned in bfloat16: within bfloat16's rounding of the exact product."""
    from qsim.optim.structures import toeplitz_gram_dense
    d = 40
    t = jnp.asarray(np.random.default_rng(5).normal(size=d) / np.sqrt(d), jnp.bfloat16)
    k = np.asarray(make_structure("triu_toeplitz" if upper else "tril_toeplitz", d, jnp.float64)
                   .to_dense(jnp.asarray(t, jnp.float64)))
    out = toeplitz_gram_dense(t, upper)
    assert out.dtype == jnp.bfloat16
    exact = k @ k.T
    np.testing.assert_allclose(np.asarray(out, np.float64), exact, atol=2 ** -8 * np.abs(exact).max())


@pytest.mark.parametrize("name,d", [(s, 7) for s in STRUCTURES] + [("tril_toeplitz", 70), ("triu_toeplitz", 70)])
def test_structure_algebra(name, d):
    """Compact ops agree with dense linear algebra, and each class is closed under multiplication
    (d = 70 exercises the FFT paths of the Toeplitz structures)."""
    s = make_structure(name, d, jnp.float64, block_size=BLOCK, hierarchical_size=HIER)
    rng = np.random.default_rng(2)
    a = s.project(jnp.asarray(rng.normal(size=(d, d))))
    b = s.project(jnp.asarray(rng.normal(size=(d, d))))
    da, db = np.asarray(s.to_dense(a)), np.asarray(s.to_dense(b))
    np.testing.assert_allclose(np.asarray(s.to_dense(s.identity())), np.eye(d), atol=0)
    np.testing.assert_allclose(da, ref_project(name, da), atol=1e-12)            # a is in the class
    np.testing.assert_allclose(np.asarray(s.to_dense(s.mul(a, b))), da @ db, atol=1e-12)
    np.testing.assert_allclose(ref_project(name, da @ db), da @ db, atol=1e-12)    # closed
    x = rng.normal(size=(d, 4))
    np.testing.assert_allclose(np.asarray(s.left(a, jnp.asarray(x))), da @ x, atol=1e-10)
    np.testing.assert_allclose(np.asarray(s.left(a, jnp.asarray(x), transpose=True)), da.T @ x, atol=1e-10)
    np.testing.assert_allclose(np.asarray(s.precondition(a, jnp.asarray(x))), da @ da.T @ x, atol=1e-10)
    np.testing.assert_allclose(np.asarray(s.precondition(a, jnp.asarray(x.T), axis=1)), x.T @ da @ da.T, atol=1e-10)
    if name in ("tril_toeplitz", "triu_toeplitz"):                # the FFT path used for d >= 512
        np.testing.assert_allclose(np.asarray(s.precondition_fft(a, jnp.asarray(x))), da @ da.T @ x, atol=1e-10)
        np.testing.assert_allclose(np.asarray(s.precondition_fft(a, jnp.asarray(x.T), axis=1)), x.T @ da @ da.T,
                                   atol=1e-10)
    if name == "tril_toeplitz":
        for tr in (False, True):
            np.testing.assert_allclose(np.asarray(s.left_fft(a, jnp.asarray(x), transpose=tr)), (da.T if tr else da) @ x,
                                       atol=1e-10)
    rows = rng.normal(size=(9, d))
    m = rng.normal(size=(d, d))
    np.testing.assert_allclose(np.asarray(s.to_dense(s.project(jnp.asarray(m)))), ref_project(name, m), atol=1e-12)
    np.testing.assert_allclose(np.asarray(s.to_dense(s.gram(jnp.asarray(rows), jnp.asarray(0.5)))),
                               ref_project(name, 0.5 * rows.T @ rows), atol=1e-10)
    for n in (3, 4 * d):                  # both orders of gram_left (the U-first one for n > 2d, dense/Toeplitz)
        xr = rng.normal(size=(n, d))
        np.testing.assert_allclose(np.asarray(s.to_dense(gram_left(s, a, jnp.asarray(xr), jnp.asarray(0.5)))),
                                   ref_project(name, 0.5 * da.T @ xr.T @ xr @ da), atol=1e-10)
    np.testing.assert_allclose(np.asarray(s.to_dense(gram_self(s, a))), ref_project(name, da.T @ da), atol=1e-10)
    np.testing.assert_allclose(float(s.trace(a)), np.trace(da), atol=1e-12)


# ---- capture ---------------------------------------------------------------------------------------
class Electrons(nn.Module):
    """A Dense applied to every electron (P = 3 rows per example) and a Dense called twice."""

    @nn.compact
    def __call__(self, r):                      # r (9,) -> 3 electrons x 3 coordinates
        e = r.reshape(3, 3)
        h = jnp.tanh(nn.Dense(4, name="embed")(e))           # (3, 4)
        shared = nn.Dense(4, use_bias=False, name="shared")
        h = jnp.tanh(shared(h)) + jnp.tanh(shared(h ** 2))   # called twice
        return jnp.sum(nn.Dense(1, name="out")(h.mean(0)))


def test_capture_statistics_reproduce_gradients():
    """For every captured layer the per-example kernel gradient is sum_p a_p g_p^T, so the weighted sum of
    the statistics must reproduce the parameter gradient of the weighted objective (VMC-style weights);
    the batched mode agrees with the per-example (vmapped) mode."""
    model = Electrons()
    rng = np.random.default_rng(3)
    walkers = jnp.asarray(rng.normal(size=(6, 9)))
    params = jax.tree.map(lambda p: p.astype(jnp.float64), model.init(jax.random.key(0), walkers[0])["params"])
    logpsi = lambda p, r: model.apply({"params": p}, r)
    w = jnp.asarray(rng.normal(size=6))
    two = TwoLayer()
    p2 = jax.tree.map(lambda p: p.astype(jnp.float64), two.init(jax.random.key(1), jnp.zeros(9))["params"])
    one = lambda p, x: jnp.sum(two.apply({"params": p}, x) ** 2)
    batched = lambda p, x: jnp.sum(two.apply({"params": p}, x) ** 2, axis=-1)     # model applied to (N, 9)

    @jax.jit
    def everything(p, x, w):
        return (value_grad_and_stats(logpsi, p, x, weights=w), layer_statistics(one, p2, x),
                layer_statistics(batched, p2, x, batched=True))

    (val, grads, stats), (vals_1, st2), (vals_b, st3) = everything(params, walkers, w)
    exact = jax.grad(lambda p: jnp.sum(w * jax.vmap(lambda r: logpsi(p, r))(walkers)))(params)
    np.testing.assert_allclose(val, jnp.sum(w * jax.vmap(lambda r: logpsi(params, r))(walkers)), rtol=1e-12)
    for k in exact:
        np.testing.assert_allclose(grads[k]["kernel"], exact[k]["kernel"], rtol=1e-10, atol=1e-12)
    assert stats["embed"].inputs.shape == (6, 3, 3) and stats["embed"].out_grads.shape == (6, 3, 4)
    assert stats["shared"].inputs.shape == (6, 6, 4)       # 3 electrons x 2 calls
    assert stats["out"].inputs.shape == (6, 1, 4)
    for k, st in stats.items():
        per_example = jnp.einsum("npi,npo->nio", st.inputs, st.out_grads)
        np.testing.assert_allclose(jnp.einsum("n,nio->io", w, per_example), exact[k]["kernel"], rtol=1e-10,
                                   atol=1e-12)
    # statistics only (per-example values returned), and the batched mode
    np.testing.assert_allclose(vals_1, jax.vmap(lambda r: one(p2, r))(walkers), rtol=1e-12)
    np.testing.assert_allclose(vals_b, vals_1, rtol=1e-12)
    for k in ("Dense_0", "Dense_1"):
        np.testing.assert_allclose(st3[k].out_grads, st2[k].out_grads, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(st3[k].inputs, st2[k].inputs, rtol=1e-12)
    # a jax.vmap inside a batched=True function hides the example axis: refused with a clear message
    inner_vmap = lambda p, x: jax.vmap(lambda r: model.apply({"params": p}, r))(x)
    with pytest.raises(ValueError, match="batched=True"):
        layer_statistics(inner_vmap, params, walkers, batched=True)


# ---- training ---------------------------------------------------------------------------------------
class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.tanh(nn.Dense(32)(x))
        x = nn.tanh(nn.Dense(32)(x))
        return nn.Dense(10)(x)


def _digits():
    from sklearn.datasets import load_digits
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    perm = np.random.default_rng(0).permutation(len(x))
    x, y = x[perm], y[perm].astype(np.int32)
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


@functools.lru_cache(maxsize=None)
def _adamw_accuracy():
    return _train(optax.adamw(1e-2), uses_stats=False)[2]


def _train(tx, steps=150, uses_stats=True):
    (xtr, ytr), (xte, yte) = _digits()
    model = MLP()
    params = model.init(jax.random.key(0), jnp.zeros((1, 64), jnp.float32))["params"]
    loss = lambda p, x, y: optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, x), y)
    idx = np.random.default_rng(1).integers(0, len(xtr), size=(steps, 128))

    def body(carry, i):
        p, s = carry
        xb, yb = jnp.asarray(xtr)[i], jnp.asarray(ytr)[i]
        if uses_stats:
            l, g, st = value_grad_and_stats(loss, p, xb, yb)
            u, s = tx.update(g, s, p, layer_stats=st)
        else:
            l, g = jax.value_and_grad(lambda p: loss(p, xb, yb).mean())(p)
            u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), l

    (params, _), losses = jax.jit(lambda p, s: jax.lax.scan(body, (p, s), jnp.asarray(idx)))(params, tx.init(params))
    acc = float(np.mean(np.argmax(np.asarray(model.apply({"params": params}, xte)), -1) == yte))
    return params, np.asarray(losses), acc


@pytest.mark.parametrize("factor_dtype", [jnp.float32, jnp.bfloat16])
def test_mlp_trains_like_adamw(factor_dtype):
    acc_adamw = _adamw_accuracy()
    tx = singd(1e-2, "dense", damping=0.1, lr_cov=0.1, update_interval=5, factor_dtype=factor_dtype)
    params, losses, acc = _train(tx)
    assert all(np.all(np.isfinite(np.asarray(p, np.float32))) for p in jax.tree.leaves(params))
    assert np.all(np.isfinite(losses)) and losses[-20:].mean() < 0.25 * losses[:5].mean()
    assert acc_adamw > 0.9
    assert acc >= acc_adamw - 0.02, (acc, acc_adamw)


# ---- bad inputs ---------------------------------------------------------------------------------------
def test_bad_options_raise():
    with pytest.raises(ValueError, match="unknown structure 'toeplitz'"):
        singd(1e-3, "toeplitz")
    for bad in (0.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="damping"):
            singd(1e-3, damping=bad)
        with pytest.raises(ValueError, match="learning_rate"):
            singd(bad)
    with pytest.raises(ValueError, match="lr_cov"):
        singd(1e-3, lr_cov=0.0)
    with pytest.raises(ValueError, match="update_interval"):
        singd(1e-3, update_interval=0)
    with pytest.raises(ValueError, match="momentum"):
        singd(1e-3, momentum=1.0)
    with pytest.raises(TypeError, match="factor_dtype"):
        singd(1e-3, factor_dtype=jnp.int32)
    with pytest.raises(TypeError, match="cache_products"):
        singd(1e-3, cache_products="yes")
    with pytest.raises(ValueError, match="unknown structure"):
        make_structure("nope", 3, jnp.float32)


def test_bad_calls_raise():
    params = {"a": {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}, "scale": jnp.ones(4)}
    tx = singd(1e-3, "diagonal")
    state = tx.init(params)
    assert set(optim.singd_state(state).factors) == {"a"}   # "scale" is not a dense layer
    grads = jax.tree.map(jnp.ones_like, params)
    with pytest.raises(ValueError, match="layer_stats"):
        tx.update(grads, state, params)
    with pytest.raises(ValueError, match="no statistics for layers"):
        tx.update(grads, state, params, layer_stats={"b": LayerStats(jnp.zeros((2, 1, 3)), jnp.zeros((2, 1, 2)))})
    with pytest.raises(ValueError, match="do not match"):
        tx.update(grads, state, params, layer_stats={"a": LayerStats(jnp.zeros((2, 1, 4)), jnp.zeros((2, 1, 2)))})
    with pytest.raises(ValueError, match="needs params"):
        tx.update(grads, state, None, layer_stats={})
    with pytest.raises(ValueError, match="not dense layers"):
        singd(1e-3, layers=["nope"]).init(params)
    # the fallback really updates the other parameters: SGD with momentum, update = -lr * grad at step 0
    st = {"a": LayerStats(jnp.ones((2, 1, 3)), jnp.ones((2, 1, 2)))}
    u, _ = jax.jit(lambda g, s, p: tx.update(g, s, p, layer_stats=st))(grads, state, params)
    np.testing.assert_allclose(u["scale"], -1e-3 * np.ones(4), rtol=1e-6)
    assert np.all(np.isfinite(np.asarray(u["a"]["kernel"])))
    f = lambda p, x: jnp.sum(p["w"] * x)
    with pytest.raises(ValueError, match="no flax.linen.Dense"):
        value_grad_and_stats(f, {"w": jnp.ones(3)}, jnp.ones((2, 3)))
    model = TwoLayer()
    p = model.init(jax.random.key(0), jnp.zeros(6))["params"]
    g = lambda p, x: jnp.sum(model.apply({"params": p}, x))
    with pytest.raises(ValueError, match="weights"):
        value_grad_and_stats(g, p, jnp.ones((4, 6)), weights=jnp.ones(3))
    with pytest.raises(ValueError, match="leading"):
        value_grad_and_stats(lambda p, x, y: g(p, x), p, jnp.ones((4, 6)), jnp.ones((3, 6)))


if __name__ == "__main__":          # python tests/qsim/test_singd.py --golden OUT.npz (regenerates GOLDEN)
    if sys.argv[1:2] != ["--golden"] or len(sys.argv) != 3:
        sys.exit("usage: python tests/qsim/test_singd.py --golden OUT.npz")
    np.savez(sys.argv[2], **{case: _golden_trajectory(case) for case in GOLDEN_CASES})
