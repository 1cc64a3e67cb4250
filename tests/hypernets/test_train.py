import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsim
from hypernets.ansatz import init_params, make_ansatz
from hypernets.landscape import Landscape
from hypernets.train import evaluate, make_exact_objective, resolve_backend, sample_cost, train_exact, train_shots
from qsim.gradients import parameter_shift_sampled, spsa_sampled


def test_born_expectation_equals_sample_average(tiny_landscape):
    n = tiny_landscape.num_bits
    c = make_ansatz("brickwork", n, 2)
    p = init_params(jax.random.key(7), c, jnp.float64)
    exact = float(qsim.probs(c, p) @ jnp.asarray(tiny_landscape.cost))
    backend = resolve_backend("statevector")
    mean, se = sample_cost(backend, c, p, tiny_landscape.cost, 4000, jax.random.key(3))
    assert se > 0
    assert abs(mean - exact) < 4 * se          # a 4-sigma test (false alarm ~6e-5)


def test_evaluate_metrics_on_a_hand_made_distribution(tiny_landscape):
    land = tiny_landscape
    opt = land.optimal_set()
    assert len(opt) == 2                         # the two hidden units permuted
    p = np.zeros_like(land.cost)
    p[opt[0]] = 0.6
    worst = int(np.argmax(land.cost))
    p[worst] = 0.4
    m = evaluate(p, land, top_k=2)
    assert m["p_optimal"] == pytest.approx(0.6) and m["p_top_k"] == pytest.approx(0.6)
    assert m["expected_cost"] == pytest.approx(0.6 * land.optimum + 0.4 * land.cost[worst])
    assert m["most_probable"][0]["index"] == opt[0] and m["most_probable"][0]["optimal"]
    assert m["best_accuracy"] == pytest.approx(float(land.test_accuracy[opt[0]]))
    with pytest.raises(ValueError, match="shape"):
        evaluate(p[:-1], land)


def test_exact_training_concentrates_on_the_optimum(tiny_landscape):
    res = train_exact(tiny_landscape, depth=2, restarts=3, seed=0, max_iter=120)
    p_opt = np.mean([r.p_optimal for r in res])
    assert p_opt >= 0.5, [r.p_optimal for r in res]
    best = min(res, key=lambda r: r.expected_cost)
    assert best.expected_cost == pytest.approx(tiny_landscape.optimum, rel=1e-3)
    assert best.most_probable[0]["optimal"]


def test_adam_lowers_the_expected_cost(tiny_landscape):
    seen = []
    res = train_exact(tiny_landscape, depth=1, restarts=1, optimizer="adam", max_iter=60, learning_rate=0.1,
                      callback=lambda r, i, v: seen.append(v))
    assert len(seen) == 60
    assert res[0].expected_cost < 0.7 * seen[0]


def test_parameter_shift_matches_exact_gradient(tiny_landscape):
    n = tiny_landscape.num_bits
    vg, _, c = make_exact_objective(tiny_landscape.cost, "brickwork", n, 1)
    with jax.enable_x64(True):
        x = init_params(jax.random.key(11), c, jnp.float64)
        _, g_exact = vg(x)
    shots = 4000
    g = parameter_shift_sampled(resolve_backend("statevector"), c, np.asarray(x), tiny_landscape.cost, shots,
                                jax.random.key(5))
    # each component: (E+ - E-)/2 with independent shot noise; bound the cost spread by its range
    se = np.std(tiny_landscape.cost) / np.sqrt(2 * shots) * 1.5
    assert np.all(np.abs(g - np.asarray(g_exact)) < 5 * se), np.abs(g - np.asarray(g_exact)) / se


def _old_parameter_shift(backend, circuit, params, costs, shots, key):
    """hypernets' own parameter shift before it called qsim.gradients (the reference for the numbers)."""
    params = np.asarray(params, dtype=np.float64)
    g = np.zeros_like(params)
    keys = jax.random.split(key, 2 * len(params))
    for k in range(len(params)):
        e = np.zeros_like(params)
        e[k] = np.pi / 2
        plus, _ = sample_cost(backend, circuit, params + e, costs, shots, keys[2 * k])
        minus, _ = sample_cost(backend, circuit, params - e, costs, shots, keys[2 * k + 1])
        g[k] = 0.5 * (plus - minus)
    return g


def _old_spsa(backend, circuit, params, costs, shots, key, c=0.2):
    """hypernets' own SPSA (one direction) before it called qsim.gradients."""
    kd, k1, k2 = jax.random.split(jax.random.fold_in(key, 0), 3)
    delta = np.asarray(jax.random.rademacher(kd, params.shape), dtype=np.float64)
    plus, _ = sample_cost(backend, circuit, params + c * delta, costs, shots, k1)
    minus, _ = sample_cost(backend, circuit, params - c * delta, costs, shots, k2)
    return (plus - minus) / (2 * c) * delta


@pytest.mark.parametrize("ansatz", ["brickwork", "hardware_efficient"])
def test_shot_parameter_shift_gives_the_same_numbers_as_before(tiny_landscape, ansatz):
    """qsim.gradients' sampled parameter shift reproduces hypernets' former implementation bit for bit
    (same key -> same shifted circuits, same sampling keys)."""
    c = make_ansatz(ansatz, tiny_landscape.num_bits, 1)
    x = np.asarray(init_params(jax.random.key(2), c, jnp.float64), np.float64)
    backend = resolve_backend("statevector")
    for k in (0, 9):
        key = jax.random.key(k)
        new = parameter_shift_sampled(backend, c, x, tiny_landscape.cost, 64, key)
        np.testing.assert_array_equal(new, _old_parameter_shift(backend, c, x, tiny_landscape.cost, 64, key))


def test_shot_spsa_is_statistically_the_same_estimator_as_before():
    """qsim.gradients' sampled SPSA draws its directions differently from hypernets' former SPSA, so
    the numbers differ; both must estimate E_d[(E(x + c d) - E(x - c d)) / 2c d] (computed exactly over
    all 2^P directions): each mean over N keys within 5 standard errors of it."""
    c = make_ansatz("brickwork", 3, 1)
    x = np.asarray(init_params(jax.random.key(1), c, jnp.float64), np.float64)
    costs = np.random.default_rng(0).uniform(0, 1, 8)
    eps, shots, n = 0.2, 128, 120
    dirs = np.array(np.meshgrid(*[[-1.0, 1.0]] * len(x))).reshape(len(x), -1).T
    energy = jax.jit(jax.vmap(lambda q: qsim.probs(c, q) @ jnp.asarray(costs)))
    with jax.enable_x64(True):
        diff = np.asarray(energy(jnp.asarray(x + eps * dirs)) - energy(jnp.asarray(x - eps * dirs)))
    expected = ((diff / (2 * eps))[:, None] * dirs).mean(axis=0)
    backend = resolve_backend("statevector")
    new = np.array([spsa_sampled(backend, c, x, costs, shots, jax.random.key(k), epsilon=eps) for k in range(n)])
    old = np.array([_old_spsa(backend, c, x, costs, shots, jax.random.key(k), eps) for k in range(n)])
    for est in (new, old):
        se = est.std(axis=0, ddof=1) / np.sqrt(n)
        assert np.all(np.abs(est.mean(axis=0) - expected) < 5 * se), (est.mean(axis=0), expected, se)
    assert not np.array_equal(new, old)


@pytest.mark.parametrize("gradient", ["parameter_shift", "spsa"])
def test_shot_mode_on_statevector_backend_learns(tiny_landscape, gradient):
    hist = []
    out = train_shots(tiny_landscape, 1, "statevector", shots=256, steps=25, learning_rate=0.15,
                      gradient=gradient, seed=1, callback=lambda t, e: hist.append(e))
    assert len(hist) == 25
    assert np.mean(hist[-5:]) < 0.8 * hist[0]
    assert 0 <= out["most_probable"]["frequency"] <= 1
    assert out["circuit_runs"] > 25


def test_shot_mode_checks_backend_output(tiny_landscape):
    class Bad:
        def sample(self, circuit, params, shots, key=None):
            return np.zeros((shots, 3), np.int8)

    with pytest.raises(ValueError, match="expected"):
        train_shots(tiny_landscape, 1, Bad(), shots=8, steps=1)
    with pytest.raises(TypeError):
        resolve_backend(object())


def test_costs_size_must_match_qubits():
    with pytest.raises(ValueError, match="shape"):
        make_exact_objective(np.zeros(10), "brickwork", 4, 1)
    land = Landscape(np.zeros(16), np.zeros(16, np.float32), np.zeros(16, np.float32))
    with pytest.raises(ValueError, match="optimizer"):
        train_exact(land, 1, optimizer="sgd")


def test_noisy_aer_mps_shots_match_the_exact_noisy_distribution(monkeypatch):
    """The wide-circuit path of noisy_aer_backend (MPS noise trajectories) samples the same noisy
    distribution as the exact density-matrix result of qiskit:aer (chi-square-like bound per cell)."""
    pytest.importorskip("qiskit_aer")
    import qsim.backends.qiskit as qk
    from hypernets.cli import noisy_aer_backend

    monkeypatch.setattr(qk, "_DENSITY_MATRIX_MAX_WIRES", 0)   # 3 wires, but the wide-circuit path

    c = make_ansatz("brickwork", 3, 2)
    x = np.asarray(init_params(jax.random.key(4), c, jnp.float64))
    backend = noisy_aer_backend(0.02, seed=0)
    assert backend._sim_shots.options.method == "matrix_product_state"
    exact = np.asarray(backend.probs(c, x))                    # density matrix + readout
    shots = 4000
    bits = backend.sample(c, x, shots=shots, key=jax.random.key(7))
    freq = np.bincount(np.asarray(bits) @ (1 << np.arange(2, -1, -1)), minlength=8) / shots
    se = np.sqrt(exact * (1 - exact) / shots) + 1e-3
    assert np.all(np.abs(freq - exact) < 5 * se), (freq, exact)


def test_log_costs_is_monotone_and_keeps_the_optimal_set():
    from hypernets.train import log_costs

    rng = np.random.default_rng(5)
    for c in (rng.uniform(0.01, 1, 64), rng.normal(size=64), np.r_[0.0, rng.uniform(0, 2, 63)]):
        lc = log_costs(c)
        assert np.all(np.isfinite(lc))
        np.testing.assert_array_equal(np.argsort(c, kind="stable"), np.argsort(lc, kind="stable"))
    c = rng.uniform(0.01, 1, 64)
    np.testing.assert_allclose(log_costs(c), np.log(c), rtol=1e-15)     # positive costs: plain log
    assert np.all(log_costs(np.full(8, -3.0)) == 0.0)                    # flat landscape


def test_anneal_temperatures_fall_geometrically_and_reject_bad_values():
    from hypernets.train import anneal_temperatures

    t = anneal_temperatures(0.3, 5)
    np.testing.assert_allclose(t, 0.3 * 0.01 ** (np.arange(5) / 4), rtol=1e-14)
    np.testing.assert_allclose(t[1:] / t[:-1], 0.01 ** 0.25, rtol=1e-12)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="anneal"):
            anneal_temperatures(bad, 4)
    with pytest.raises(ValueError, match="anneal_stages"):
        anneal_temperatures(0.3, 0)


def test_anneal_stage_lowers_the_free_energy_and_high_temperature_spreads_the_distribution(tiny_landscape):
    import jax
    import jax.numpy as jnp
    from hypernets.ansatz import init_params, make_ansatz, make_probs_fn
    from hypernets.train import log_costs, make_anneal_stage

    n = tiny_landscape.num_bits
    probs_fn = make_probs_fn("brickwork", n, 2)
    circ = make_ansatz("brickwork", n, 2)
    with jax.enable_x64(True):
        X = jnp.stack([init_params(jax.random.key(k), circ, jnp.float64) for k in range(3)])
        lc = jnp.asarray(log_costs(tiny_landscape.cost))

        def free(x, t):
            p = probs_fn(x)
            return float(p @ lc + t * jnp.sum(jax.scipy.special.xlogy(p, p)))

        stage = make_anneal_stage(probs_fn, tiny_landscape.cost, 30)
        for t in (0.05, 50.0):
            Y, F = stage(X, jnp.asarray(t))
            for x, y, f in zip(X, Y, np.asarray(F)):
                assert free(y, t) < free(x, t)
                assert f == pytest.approx(free(y, t), abs=1e-6 * max(1.0, abs(f)))
        # at a temperature far above the cost spread the free energy's minimum is nearly uniform
        Y, _ = stage(X, jnp.asarray(50.0))
        for y in Y:
            p = np.asarray(probs_fn(y))
            entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
            assert entropy > 0.95 * n * np.log(2), entropy


def test_annealed_training_reports_both_phases_and_finds_the_optimum(tiny_landscape):
    seen = []
    res = train_exact(tiny_landscape, depth=2, restarts=3, seed=0, max_iter=60, anneal=0.3, anneal_stages=3,
                      stage_iters=20, callback=lambda r, i, v: seen.append((r, i, v)))
    assert all(60 <= r.iterations <= 60 + 60 for r in res)
    warm = [(r, i, v) for r, i, v in seen if i in (20, 40, 60)][:9]
    assert sorted({i for _, i, _ in warm}) == [20, 40, 60] and {r for r, _, _ in warm} == {0, 1, 2}
    # warm-up reports are Born expectations of the cost, between the optimum and the worst network
    assert all(tiny_landscape.optimum - 1e-12 <= v <= tiny_landscape.cost.max() + 1e-12 for _, _, v in warm)
    assert np.mean([r.p_optimal for r in res]) >= 0.5, [r.p_optimal for r in res]
    best = min(res, key=lambda r: r.expected_cost)
    assert best.expected_cost == pytest.approx(tiny_landscape.optimum, rel=1e-3)
    with pytest.raises(ValueError, match="anneal"):
        train_exact(tiny_landscape, depth=1, anneal=-0.1)
