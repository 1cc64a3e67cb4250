import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows.learn as fl
from flows.evolve import evolve, reference_probabilities
from flows.grid import coordinates, make_grid, state_from_density
from flows.learn import LearnerConfig, batch, init_learner, learned_flow, make_loss, train
from flows.metrics import bhattacharyya, probabilities
from flows.targets import gaussian, get_target
from qsim.infra.driver import NonFiniteError
from qsim.infra.runs import RunDir, read_metrics


def test_network_is_periodic_on_the_box():
    cfg = LearnerConfig(width=16, depth=2)
    model, _, state = init_learner(cfg, 2, 3.0, seed=1, dtype=jnp.float64)
    x = jnp.array([[0.3, -1.1], [6.3, -1.1], [0.3, 4.9], [-5.7, -7.1]])   # shifts by 2L = 6
    vals = np.asarray(jax.jit(jax.vmap(lambda y: model.apply(state.params, y, 0.4)))(x))
    np.testing.assert_allclose(vals, vals[0], atol=1e-12)
    flow = learned_flow(model, state.params, "gfm", 2)
    vel = np.asarray(jax.jit(jax.vmap(lambda y: flow.velocity(y, 0.1)))(jnp.array([[3.0, 0.2], [-3.0, 0.2]])))
    np.testing.assert_allclose(vel[0], vel[1], atol=1e-12)
    assert np.abs(vel).max() > 1e-6


def test_action_matching_equals_gradient_flow_matching_in_expectation():
    """Integrating d_t s by parts along x_t turns the AM loss into the gradient-FM loss exactly,
    for any s: two Monte Carlo estimates agree within their standard error."""
    cfg = LearnerConfig(width=32, depth=2)
    model, _, state = init_learner(cfg, 2, 4.0, seed=3, dtype=jnp.float64)
    src, tgt = gaussian(2, 0.8), get_target("gmm2d")
    am, gfm = jax.jit(make_loss(model, "am", 4.0)), jax.jit(make_loss(model, "gfm", 4.0))
    vals = []
    for k in range(8):
        x0, x1, t = batch(src, tgt, k, 0, 4000, np.float64)
        vals.append((float(am(state.params, x0, x1, t)), float(gfm(state.params, x0, x1, t))))
    d = np.array([a - g for a, g in vals])
    assert abs(d.mean()) < 4 * d.std(ddof=1) / np.sqrt(len(d)) + 1e-6
    assert np.std([g for _, g in vals]) > 0                 # the estimates are random, not constant


def test_cfm_training_reduces_the_regression_loss():
    src, tgt = gaussian(1, 0.8, L=4.0), get_target("gmm1d")
    cfg = LearnerConfig(learner="cfm", width=16, depth=1, n_freq=3, steps=150, batch=256, lr=1e-2)
    model, _, state = init_learner(cfg, 1, 4.0, seed=0)
    loss = jax.jit(make_loss(model, "cfm", 4.0))
    x0, x1, t = batch(src, tgt, 10_000, 0, 4096)
    before = float(loss(state.params, x0, x1, t))
    _, params, info = train(cfg, src, tgt, 4.0, seed=0, progress=False)
    after = float(loss(params, x0, x1, t))
    # the regression target x1 - x0 has irreducible variance; the fit removes the mean field part
    assert after < 0.8 * before and info["nonfinite_steps"] == 0
    v = learned_flow(model, params, "cfm", 1).velocity(jnp.array([0.1]), 0.5)
    assert v.shape == (1,)


@pytest.mark.parametrize("learner", ["gfm"])
def test_short_1d_training_transports_to_target(learner):
    src, tgt = gaussian(1, 0.8, L=4.0), get_target("gmm1d")
    cfg = LearnerConfig(learner=learner, width=32, depth=2, n_freq=4, steps=300, batch=256, lr=5e-3)
    model, params, info = train(cfg, src, tgt, 4.0, seed=0, progress=False)
    assert info["nonfinite_steps"] == 0
    flow = learned_flow(model, params, learner, 1)
    g = make_grid(6, 1, 4.0)
    x = coordinates(g).reshape(-1, 1)
    lp0 = np.asarray(jax.vmap(src.log_prob)(jnp.asarray(x)))
    pt = np.exp(np.asarray(jax.vmap(tgt.log_prob)(jnp.asarray(x))))
    ref = reference_probabilities(flow, src.log_prob, g, 1.0, steps=16)
    psi = evolve(state_from_density(np.exp(lp0)), flow, g, 1.0, *((400, "8") if learner == "gfm"
                                                                  else (50, "split")))
    assert bhattacharyya(probabilities(psi), ref) > 0.999       # simulation matches the flow
    assert bhattacharyya(ref, pt) > 0.97                        # the flow learned the target
    assert bhattacharyya(np.exp(lp0), pt) < 0.9                 # ... which differs from the source


def test_training_resumes_to_the_same_parameters(tmp_path):
    src, tgt = gaussian(1, 0.8, L=4.0), get_target("gmm1d")
    cfg = LearnerConfig(width=8, depth=1, steps=12, batch=32)
    _, p_full, _ = train(cfg, src, tgt, 4.0, seed=5, progress=False)
    with RunDir.open(tmp_path, command="flow", config={"x": 1}) as run:
        train(cfg, src, tgt, 4.0, seed=5, run=run, progress=False, ckpt_every=4, until=7)
    with RunDir.open(tmp_path, command="flow", config={"x": 1}) as run:
        _, p_b, info = train(cfg, src, tgt, 4.0, seed=5, run=run, progress=False, ckpt_every=4)
    assert info["resumed_from"] == 7
    for a, b in zip(jax.tree_util.tree_leaves(p_full), jax.tree_util.tree_leaves(p_b)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_learner_bad_inputs():
    with pytest.raises(ValueError, match="unknown learner"):
        init_learner(LearnerConfig(learner="ot"), 2, 1.0)
    with pytest.raises(ValueError, match="width"):
        init_learner(LearnerConfig(width=0), 2, 1.0)
    with pytest.raises(ValueError, match="dimension"):
        train(LearnerConfig(steps=1), gaussian(1), get_target("gmm2d"), 4.0, progress=False)


def test_twenty_non_finite_steps_in_a_row_stop_training(monkeypatch, tmp_path):
    """The driver loop's NaN guard: skipped steps (non-finite loss or gradient) leave the state as it
    was; 20 in a row stop the run naming the step and the learning rate, with metrics logged so far."""
    src, tgt = gaussian(1, 0.8, L=4.0), get_target("gmm1d")
    cfg = LearnerConfig(width=8, depth=1, steps=40, batch=16, lr=0.5)
    model, opt, init, step = fl._build(cfg, 1, 4.0)
    calls = []

    def bad_after_five(state, x0, x1, t):
        calls.append(1)
        new, loss, ok = step(state, x0, x1, t)
        return (new, loss, ok) if len(calls) <= 5 else (state, jnp.nan, jnp.asarray(False))

    monkeypatch.setattr(fl, "_build", lambda *a: (model, opt, init, bad_after_five))
    with pytest.raises(NonFiniteError, match=r"20 consecutive.*step 24.*lr=0.5"):
        with RunDir.open(tmp_path, command="flow", config={"x": 1}) as run:
            train(cfg, src, tgt, 4.0, run=run, progress=False, log_every=10)
    m = read_metrics(tmp_path)
    assert m["step"].tolist() == [9, 19] and m["nonfinite_steps"].tolist() == [5, 15]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"
