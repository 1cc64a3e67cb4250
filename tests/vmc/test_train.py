import json
import math

import numpy as np
import pytest
SMALL_NET = {"kind": "ferminet", "hidden": [[16, 4]], "n_det": 1, "jastrow": True}

from vmc import train
from vmc.config import make_config

FAST = {"walkers": 128, "network": SMALL_NET, "pretrain": {"steps": 0}, "mcmc": {"steps": 10, "burn_in": 50},
        "optimizer": "sr"}


def _check_run(s, run, steps):
    ref = s["reference_energy"]
    assert s["status"] == "completed" and s["steps"] == steps and s["nan_skips"] == 0
    # variational: not below the exact energy beyond 4 standard errors; above it by < 5 mHa
    assert s["energy"] > ref - 4 * s["energy_stderr"]
    assert s["error_mha"] < 5.0, s
    assert 0 < s["energy_stderr"] < 2e-3 and 0 < s["variance"] < 0.05
    for f in ("config.json", "metrics.csv", "summary.json", "energy.png"):
        assert (run / f).exists(), f
    assert list((run / "checkpoints").glob("step_*.npz"))
    summary = json.loads((run / "summary.json").read_text())
    for k in ("system", "objective", "optimizer", "energy", "energy_stderr", "variance", "reference_energy",
              "error_mha", "command", "status", "steps", "wall_time_s"):
        assert k in summary, k
    from qsim.infra.runs import read_metrics

    m = read_metrics(run)
    assert len(m["step"]) == steps
    for col in ("energy", "variance", "grad_eloc_norm", "acceptance", "step_time_s", "nan_skips", "error_mha"):
        assert col in m, col
    assert 0.4 < np.median(m["acceptance"]) < 0.65  # width adapted towards [0.50, 0.55]


@pytest.mark.parametrize("system", ["He", "H2"])
def test_reaches_reference_within_5_mha_in_float64_and_mixed(system, tmp_path):
    """Both precision modes reach the reference; the mixed mode (float32 MCMC and SR Jacobian/kernel,
    float64 local energies) trains to the float64 energy from the same seed: the final evaluations
    differ by less than 4 combined standard errors (blocking) and less than 1 mHa."""
    steps, res = 400, {}
    for precision in ("float64", "mixed"):
        run = tmp_path / precision
        res[precision] = train.train({**FAST, "system": system, "steps": steps, "eval": {"steps": 150},
                                      "precision": precision}, out=str(run), log=lambda *a: None)
        _check_run(res[precision], run, steps)
    a, b = res["float64"], res["mixed"]
    diff = abs(a["energy"] - b["energy"])
    sigma = math.hypot(a["energy_stderr"], b["energy_stderr"])
    assert diff < 4 * sigma and diff < 1e-3, (a["energy"], b["energy"], sigma)


@pytest.mark.parametrize("cfg, match", [
    ({"walkers": 2}, "too few"),
    ({"objective": "energy"}, "unknown objective"),
    ({"optimizer": "bfgs"}, "unknown optimizer"),
    ({"system": "Xe2"}, "unknown system"),
    ({"steps": -1}, "steps"),
    ({"mcmc": {"step_size": 0.0}}, "step_size"),
    ({"network": {"kind": "psiformer"}}, "unknown network"),
    ({"colour": 1}, "unknown configuration key"),
    ({"precision": "float16"}, "precision"),
    ({"optim": {"singd_interval": 0}}, "singd_interval"),
    ({"max_nan_steps": 0}, "max_nan_steps"),
    ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"mcmc": {"burn_in": -1}}, "mcmc.burn_in"),
    ({"laplacian": "fd"}, "unknown laplacian"),
    ({"network": {"colour": 1}}, "unknown configuration key 'network.colour'"),
])
def test_bad_configuration(cfg, match):
    with pytest.raises(ValueError, match=match):
        train.train(cfg, log=lambda *a: None)


def test_kfac_without_kfac_jax_is_a_clear_error():
    try:
        import kfac_jax  # noqa: F401
        pytest.skip("kfac-jax installed")
    except ImportError:
        pass
    with pytest.raises(ValueError, match="kfac"):  # "needs kfac-jax", or not offered: "unknown optimizer 'kfac'"
        train.train({"optimizer": "kfac", "steps": 1}, log=lambda *a: None)


def test_run_directory_of_a_different_run(tmp_path):
    cfg = {**FAST, "system": "H", "optimizer": "adam", "steps": 2, "walkers": 8, "eval": {"steps": 0},
           "mcmc": {"steps": 2, "burn_in": 0}}
    train.train(cfg, out=str(tmp_path / "r"), log=lambda *a: None)
    with pytest.raises(ValueError, match="different run"):
        train.train({**cfg, "walkers": 16}, out=str(tmp_path / "r"), log=lambda *a: None)


def test_nan_guard_rolls_back_and_stops(tmp_path):
    # an absurd SGD step makes the parameters overflow: every step is skipped and rolled back
    cfg = {**FAST, "system": "H", "optimizer": "sgd", "optim": {"learning_rate": 1e300, "decay": 0},
           "steps": 20, "walkers": 8, "max_nan_steps": 3, "eval": {"steps": 0},
           "mcmc": {"steps": 2, "burn_in": 0}}
    with pytest.raises(train.NanError, match="3 consecutive steps"):
        train.train(cfg, out=str(tmp_path / "nan"), log=lambda *a: None)
    from qsim.infra.runs import read_metrics

    m = read_metrics(tmp_path / "nan")
    skips = list(m["nan_skips"])
    assert skips[-3:] == [1, 2, 3] and len(skips) <= 4   # counted, then stopped after 3 in a row
    assert json.loads((tmp_path / "nan" / "summary.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("system", ["H2", pytest.param("LiH", marks=pytest.mark.slow)])  # ~10-20 s each
def test_fused_sr_step_equals_the_objective_gradient_step(system):
    """SR + fisher_rao forms g from its per-walker Jacobian (update_fr) instead of differentiating the
    objective: the same walkers, energies and new parameters (to 1e-10) from the same state."""
    import jax
    import jax.numpy as jnp

    cfg = make_config({"system": system, "walkers": 16, "network": SMALL_NET,
                       "optim": {"norm_constraint": 1e9}})  # lr-limited, not clipped
    b = train.build(cfg)
    assert b.fr_terms is not None and b.optimizer.update_fr is not None
    k_init, k_walk = jax.random.split(jax.random.PRNGKey(0))
    p = b.wf.init(k_init)
    st = train.TrainState(p, b.optimizer.init(p), b.mol.initial_electrons(k_walk, 16), jnp.asarray(0.3),
                          jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    n_params = sum(np.size(x) for x in jax.tree_util.tree_leaves(p))
    assert n_params > 16  # fewer walkers than parameters: the walker-space (Woodbury) solve
    old, new = train.make_train_step(b, 4, fused=False), train.make_train_step(b, 4, fused=True)
    for t in range(2):  # two steps, each from the same state on both paths
        key = jax.random.PRNGKey(t)
        s_old, m_old = old(st, key)
        s_new, m_new = new(st, key)
        np.testing.assert_allclose(np.asarray(m_new["e_loc"]), np.asarray(m_old["e_loc"]), rtol=1e-12)
        moved = 0.0
        for a, c, c0 in zip(*(jax.tree_util.tree_leaves(s.params) for s in (s_new, s_old, st))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=0, atol=1e-10)
            moved = max(moved, float(np.max(np.abs(np.asarray(c) - np.asarray(c0)))))
        assert moved > 1e-4  # the parameters did change (a test on a zero update would prove nothing)
        st = s_old
    assert int(s_new.nan_total) == 0


def test_precision_modes_evaluate_where_they_should():
    """mixed: local energies are the float64 ones exactly; float32: the same within float32 rounding
    but not bit-equal (so it is really evaluated in float32); the mixed SR update (float32 Jacobian
    and kernel, float64 solve) is the float64 update to float32 accuracy, in float64 parameters."""
    import jax

    built = {p: train.build(make_config({"system": "LiH", "walkers": 16, "network": SMALL_NET,
                                         "precision": p}))
             for p in train.PRECISIONS}
    k_init, k_walk = jax.random.split(jax.random.PRNGKey(0))
    b64 = built["float64"]
    p = b64.wf.init(k_init)
    x = b64.mol.initial_electrons(k_walk, 16)
    e = {n: np.asarray(jax.jit(jax.vmap(b.local_energy, (None, 0)))(p, x)) for n, b in built.items()}
    assert all(v.dtype == np.float64 for v in e.values())
    np.testing.assert_array_equal(e["mixed"], e["float64"])
    gap = np.max(np.abs(e["float32"] - e["float64"]))
    assert 1e-9 < gap < 1e-4 * np.max(np.abs(e["float64"])), gap
    from vmc.objectives import fisher_rao_coefficients

    c = fisher_rao_coefficients(e["float64"])
    d = {}
    for n in ("float64", "mixed"):
        opt = built[n].optimizer
        upd, _, _ = jax.jit(opt.update_fr)(c, opt.init(p), p, x)
        assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(upd)} == {np.dtype(np.float64)}
        d[n] = np.concatenate([np.ravel(u) for u in jax.tree_util.tree_leaves(upd)])
    cos = d["mixed"] @ d["float64"] / (np.linalg.norm(d["mixed"]) * np.linalg.norm(d["float64"]))
    assert np.linalg.norm(d["float64"]) > 1e-4 and 1e-14 < 1 - cos < 1e-8, cos  # measured 1.7e-12
    np.testing.assert_allclose(np.linalg.norm(d["mixed"]), np.linalg.norm(d["float64"]), rtol=1e-5)


def test_sampler_layout_walkers_first_gives_the_same_chain():
    """vmc samples with samplers.rwm(walkers_last=False) (faster for a network density): the same
    random numbers as the default walker-minor layout, so the same chain up to rounding."""
    import jax
    import jax.numpy as jnp
    from qsim import samplers

    b = train.build(make_config({"system": "LiH", "walkers": 16, "network": SMALL_NET}))
    k_init, k_walk = jax.random.split(jax.random.PRNGKey(0))
    p = b.wf.init(k_init)
    logp = lambda y: 2.0 * b.wf.log_psi(p, y)
    x0 = b.mol.initial_electrons(k_walk, 16)
    out = []
    for kernel in (samplers.rwm(), samplers.rwm(walkers_last=False)):
        st, info = samplers.run(kernel, jax.random.PRNGKey(1), kernel.init(x0, logp), logp,
                                {"step_size": jnp.asarray(0.3)}, n_steps=6)
        out.append((np.asarray(st.position), np.asarray(info.acceptance)))
    (xa, acc_a), (xb, acc_b) = out
    np.testing.assert_allclose(xb, xa, rtol=0, atol=1e-12)
    np.testing.assert_allclose(acc_b, acc_a, rtol=0, atol=1e-10)
    assert 0.05 < acc_a.mean() < 0.95 and np.max(np.abs(xa - np.asarray(x0))) > 0.1  # the chain moved


def test_fused_step_needs_fisher_rao_and_sr():
    cfg = make_config({"optimizer": "adam", "walkers": 16, "network": SMALL_NET})
    b = train.build(cfg)
    with pytest.raises(ValueError, match="fused"):
        train.make_train_step(b, 4, fused=True)


def test_training_steps_run_with_single_threaded_blas(monkeypatch):
    """jaxlib's CPU LAPACK calls (SR's B x B solve) go through OpenBLAS, whose worker threads fought
    XLA's pool (docs/vmc.md): every training step runs with the BLAS libraries on one thread, and the
    previous limits come back afterwards."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    import importlib

    importlib.import_module("scipy.linalg")  # loads the OpenBLAS that jaxlib's LAPACK kernels call
    before = blas_threads()
    seen, make = [], train.make_train_step

    def make_recording(*a, **k):
        step = make(*a, **k)

        def recording(*args):
            seen.append(blas_threads())
            return step(*args)

        return recording

    monkeypatch.setattr(train, "make_train_step", make_recording)
    train.train({**FAST, "system": "H2", "walkers": 16, "steps": 2, "mcmc": {"steps": 2, "burn_in": 2},
                 "eval": {"steps": 0}}, log=lambda *a: None)
    assert len(seen) == 2 and all(s and set(s) == {1} for s in seen), seen
    assert blas_threads() == before


def test_singd_options_reach_the_optimizer(monkeypatch):
    """optim.structure and optim.singd_interval (settable from the CLI as dotted overrides) are what the
    SINGD adapter is built with."""
    from vmc import singd_adapter

    seen = {}
    make = singd_adapter.make

    def spy(log_psi, module, lr_fn, damping, options):
        seen.update(options)
        return make(log_psi, module, lr_fn, damping, options)

    monkeypatch.setattr(singd_adapter, "make", spy)
    cfg = make_config({"system": "He", "optimizer": "singd",
                       "optim": {"structure": "diagonal", "singd_interval": 10}})
    train.build(cfg)
    assert seen["structure"] == "diagonal" and seen["interval"] == 10


TINY = {**FAST, "system": "H", "optimizer": "adam", "steps": 6, "walkers": 8, "eval": {"steps": 3},
        "mcmc": {"steps": 2, "burn_in": 2}, "network": {"kind": "ferminet", "hidden": [[8, 4]], "n_det": 1},
        "checkpoint_every": 2}


def test_result_has_the_same_shape_with_and_without_out(tmp_path):
    """train() returns the summary (what summary.json holds) plus the final params either way."""
    import jax

    quiet = lambda *a: None  # noqa: E731
    a = train.train(TINY, log=quiet)
    b = train.train(TINY, out=str(tmp_path / "r"), log=quiet)
    assert set(a) == set(b) and "params" in a and a["command"] == "vmc" and a["status"] == "completed"
    assert a["steps"] == b["steps"] == 6 and a["energy"] == b["energy"] and a["nan_skips"] == 0
    for x, y in zip(jax.tree_util.tree_leaves(a["params"]), jax.tree_util.tree_leaves(b["params"])):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    written = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert set(written) == set(b) - {"params"}
    assert {k: v for k, v in written.items() if "time" not in k} == \
        {k: v for k, v in b.items() if k != "params" and "time" not in k}


def test_sigterm_interrupts_the_cli_run_and_it_resumes_to_the_same_numbers(tmp_path, monkeypatch, capsys):
    """`qsim vmc` ends on SIGTERM like Ctrl-C (exit 130, summary "interrupted", last checkpoint kept);
    running it again resumes and reaches the numbers of an uninterrupted run."""
    import os
    import signal

    from qsim.infra import cli
    from qsim.infra.runs import read_metrics

    argv = ["vmc", "--system", "H", "--optimizer", "adam", "--steps", "6", "--walkers", "8", "--no-progress",
            "network.hidden=[[8,4]]", "network.n_det=1", "pretrain.steps=0", "mcmc.burn_in=2", "mcmc.steps=2",
            "eval.steps=3", "checkpoint_every=2"]
    assert cli.main([*argv, "--out", str(tmp_path / "full")]) == 0
    make = train.make_train_step

    def make_terminating(*a, **k):
        step, calls = make(*a, **k), []

        def terminating(*args):
            calls.append(1)
            if len(calls) == 4:  # during step 3: steps 0-2 done, checkpoint at step 1
                os.kill(os.getpid(), signal.SIGTERM)
            return step(*args)

        return terminating

    monkeypatch.setattr(train, "make_train_step", make_terminating)
    assert cli.main([*argv, "--out", str(tmp_path / "cut")]) == 130
    s = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert s["status"] == "interrupted" and s["interrupted_at_step"] == 3
    monkeypatch.setattr(train, "make_train_step", make)
    assert cli.main([*argv, "--out", str(tmp_path / "cut")]) == 0
    assert "resuming" in capsys.readouterr().out
    full, cut = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("full", "cut"))
    assert cut["status"] == "completed" and cut["energy"] == full["energy"]
    m_full, m_cut = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "cut")
    np.testing.assert_array_equal(m_cut["step"], np.arange(6))
    np.testing.assert_array_equal(m_cut["energy"], m_full["energy"])
