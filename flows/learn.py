"""Flow learners on the periodic box (Flax networks, optax training).

The probability path is the interpolation ``x_t = (1 - t) x0 + t x1`` of independent pairs
``x0 ~ source``, ``x1 ~ target``. Learners (``LearnerConfig.learner``):

- ``"gfm"`` (gradient-restricted flow matching, default): a scalar ``V(x, t)``, ``v = grad V``,
  loss ``E[|grad V(x_t, t)|^2 / 2 - grad V . (x1 - x0)]``; same minimiser as Action Matching.
- ``"am"`` (Action Matching): a scalar action ``s``, ``v = grad s``, loss
  ``E_q0[s_0] - E_q1[s_1] + E_t E_qt[|grad s|^2 / 2 + d_t s]``.
- ``"cfm"`` (conditional flow matching): a vector field ``v``, loss ``E|v(x_t, t) - (x1 - x0)|^2``;
  not a gradient in general (simulate it with the 'split' formula).

Periodicity: the networks see ``x`` only through ``sin(m pi x / L)``, ``cos(m pi x / L)``,
``m = 1..n_freq``, so ``V`` and ``v`` are exactly periodic on [-L, L)^d; time enters as
``t, sin(j pi t), cos(j pi t)``. Smooth activations (swish) keep ``div v`` well defined.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from flows.hamiltonian import Flow
from qsim.infra.driver import resume, run_loop
from qsim.infra.runs import NullRun
from qsim.infra.validation import positive_float, positive_int

__all__ = ["LearnerConfig", "FlowNet", "TrainState", "init_learner", "make_loss", "make_train_step",
           "learned_flow", "train", "LEARNERS", "batch"]

LEARNERS = ("gfm", "am", "cfm")
# evaluation columns of metrics.csv (empty in training rows; filled by the ``qsim flow`` pipeline)
EVAL_COLUMNS = ("bhattacharyya_model", "bhattacharyya_target", "overlap", "total_variation",
                "norm_error", "boundary_mass")


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    learner: str = "gfm"
    width: int = 128
    depth: int = 3
    n_freq: int = 6
    t_freq: int = 3
    batch: int = 512
    lr: float = 2e-3
    steps: int = 3000
    warmup: int = 100


def _flax():
    class _FlowNet(nn.Module):
        L: float
        d: int
        out: int
        width: int = 128
        depth: int = 3
        n_freq: int = 6
        t_freq: int = 3
        scalar: bool = True

        @nn.compact
        def __call__(self, x, t):
            m = jnp.arange(1, self.n_freq + 1, dtype=x.dtype)
            ang = (math.pi / self.L) * x[:, None] * m[None, :]
            j = jnp.arange(1, self.t_freq + 1, dtype=x.dtype)
            h = jnp.concatenate([jnp.sin(ang).ravel(), jnp.cos(ang).ravel(), jnp.atleast_1d(t),
                                 jnp.sin(math.pi * j * t), jnp.cos(math.pi * j * t)])
            for _ in range(self.depth):
                h = nn.swish(nn.Dense(self.width, param_dtype=x.dtype)(h))
            y = nn.Dense(self.out, param_dtype=x.dtype)(h)
            return y[0] if self.scalar else y

    return _FlowNet


def FlowNet(L: float, d: int, out: int | None, width: int = 128, depth: int = 3, n_freq: int = 6,
            t_freq: int = 3):
    """The network ``(x (d,), t ()) -> ()`` (``out=None``: a potential) or ``-> (out,)`` (a field),
    with periodic input encoding."""
    return _flax()(L=float(L), d=int(d), out=1 if out is None else int(out), width=int(width),
                   depth=int(depth), n_freq=int(n_freq), t_freq=int(t_freq), scalar=out is None)


class TrainState(NamedTuple):
    params: Any
    opt_state: Any


def _check_cfg(cfg: LearnerConfig):
    if cfg.learner not in LEARNERS:
        raise ValueError(f"unknown learner {cfg.learner!r}; choose one of {LEARNERS}")
    for k in ("width", "depth", "n_freq", "batch", "steps"):
        positive_int(getattr(cfg, k), f"learner option {k}")
    positive_float(cfg.lr, "learning rate lr")


@functools.lru_cache(maxsize=16)
def _build(cfg: LearnerConfig, d: int, L: float):
    """Model, optimiser, jitted init and jitted train step for one configuration (cached, so that
    repeated and resumed runs in one process compile once)."""

    out = d if cfg.learner == "cfm" else None
    model = FlowNet(L, d, out, cfg.width, cfg.depth, cfg.n_freq, cfg.t_freq)
    warm = min(int(cfg.warmup), int(cfg.steps) // 10)
    sched = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, warm, max(int(cfg.steps), warm + 1),
                                               cfg.lr * 0.02)
    opt = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(sched))
    # jitted: eager Flax init dispatches op by op and costs seconds on a busy CPU
    init = jax.jit(model.init)
    step = make_train_step(make_loss(model, cfg.learner, L), opt)
    return model, opt, init, step


def init_learner(cfg: LearnerConfig, d: int, L: float, seed: int = 0, dtype=None):
    """``(model, optimizer, TrainState)`` for ``cfg`` on the box [-L, L)^d."""

    _check_cfg(cfg)
    dtype = dtype or jnp.float32
    model, opt, init, _ = _build(cfg, int(d), float(L))
    params = init(jax.random.PRNGKey(seed), jnp.zeros(d, dtype), jnp.zeros((), dtype))
    return model, opt, TrainState(params, opt.init(params))


def make_loss(model, learner: str, L: float) -> Callable:
    """``loss(params, x0 (B, d), x1 (B, d), t (B,)) -> ()`` for ``learner``."""

    def wrap(x):
        return jnp.mod(x + L, 2 * L) - L

    if learner == "cfm":
        def loss(params, x0, x1, t):
            xt = wrap((1 - t)[:, None] * x0 + t[:, None] * x1)
            v = jax.vmap(lambda x, s: model.apply(params, x, s))(xt, t)
            return jnp.mean(jnp.sum((v - (x1 - x0)) ** 2, axis=-1))
        return loss

    def V(params, x, s):
        return model.apply(params, x, s)

    grad_x = jax.grad(V, argnums=1)

    if learner == "gfm":
        def loss(params, x0, x1, t):
            xt = wrap((1 - t)[:, None] * x0 + t[:, None] * x1)
            g = jax.vmap(lambda x, s: grad_x(params, x, s))(xt, t)
            return jnp.mean(0.5 * jnp.sum(g * g, -1) - jnp.sum(g * (x1 - x0), -1))
        return loss

    grad_t = jax.grad(V, argnums=2)

    def loss(params, x0, x1, t):  # Action Matching
        xt = wrap((1 - t)[:, None] * x0 + t[:, None] * x1)
        zero, one = jnp.zeros_like(t), jnp.ones_like(t)
        s0 = jax.vmap(lambda x, s: V(params, x, s))(x0, zero)
        s1 = jax.vmap(lambda x, s: V(params, x, s))(x1, one)
        g = jax.vmap(lambda x, s: grad_x(params, x, s))(xt, t)
        dt = jax.vmap(lambda x, s: grad_t(params, x, s))(xt, t)
        return jnp.mean(s0) - jnp.mean(s1) + jnp.mean(0.5 * jnp.sum(g * g, -1) + dt)
    return loss


def make_train_step(loss_fn: Callable, opt) -> Callable:
    """A jitted ``step(state, x0, x1, t) -> (state, loss, ok)``; a non-finite loss or gradient
    leaves the state unchanged (``ok`` False)."""

    @jax.jit
    def step(state: TrainState, x0, x1, t):
        loss, g = jax.value_and_grad(loss_fn)(state.params, x0, x1, t)
        ok = jnp.isfinite(loss) & jnp.all(jnp.array([jnp.all(jnp.isfinite(x))
                                                     for x in jax.tree_util.tree_leaves(g)]))
        updates, opt_state = opt.update(g, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        keep = lambda new, old: jax.tree_util.tree_map(  # noqa: E731
            lambda a, b: jnp.where(ok, a, b), new, old)
        return TrainState(keep(params, state.params), keep(opt_state, state.opt_state)), loss, ok
    return step


def batch(source, target, step: int, seed: int, size: int, dtype=np.float32):
    """The deterministic minibatch of training step ``step``: ``(x0, x1, t)``."""
    rng = np.random.default_rng([int(seed), int(step)])
    x0 = source.sample(rng, size)
    x1 = target.sample(rng, size)
    t = rng.uniform(0.0, 1.0, size)
    return x0.astype(dtype), x1.astype(dtype), t.astype(dtype)


def learned_flow(model, params, learner: str, d: int) -> Flow:
    """The :class:`~flows.hamiltonian.Flow` of trained ``params`` (potential for gfm/am).

    Parameters are cast to the dtype of the evaluation point, so the same flow runs in float64."""

    def cast(x):
        return jax.tree_util.tree_map(lambda p: p.astype(x.dtype), params)

    if learner == "cfm":
        def velocity(x, t):
            x = jnp.asarray(x)
            return model.apply(cast(x), x, jnp.asarray(t, x.dtype))
        return Flow(velocity=velocity, d=d, potential=None)

    def potential(x, t):
        x = jnp.asarray(x)
        return model.apply(cast(x), x, jnp.asarray(t, x.dtype))
    return Flow(velocity=jax.grad(potential, argnums=0), d=d, potential=potential)


def train(cfg: LearnerConfig, source, target, L: float, seed: int = 0, run=None,
          progress: bool = True, log_every: int = 50, ckpt_every: int = 500,
          until: int | None = None):
    """Train a learner through the driver loop (:func:`qsim.infra.driver.run_loop`); returns
    ``(model, params, info)``.

    With ``run`` (a :class:`qsim.infra.runs.RunDir`) it logs every ``log_every`` steps the mean
    ``loss`` since the last row to metrics.csv, checkpoints ``(params, opt_state)`` every
    ``ckpt_every`` steps and resumes from the last checkpoint (same numbers as an uninterrupted run:
    batches depend only on ``(seed, step)``). ``until`` stops (with a checkpoint) before step
    ``until``, as an interruption would. A step with a non-finite loss or gradient leaves the state
    unchanged; 20 such steps in a row stop the run (:class:`qsim.infra.driver.NonFiniteError`).
    """
    if source.d != target.d:
        raise ValueError(f"source dimension {source.d} does not match target dimension {target.d}")
    model, opt, state = init_learner(cfg, target.d, L, seed)
    step_fn = _build(cfg, int(target.d), float(L))[3]
    run = run if run is not None else NullRun()
    start, tree, _ = resume(run, tuple(state))
    state = TrainState(*jax.tree_util.tree_map(jnp.asarray, tuple(tree)))
    window: list[float] = []
    tally = {"ok": True, "bad": 0, "last": float("nan")}

    def step(k, st):
        x0, x1, t = batch(source, target, k, seed, cfg.batch)
        st, loss, ok = step_fn(st, x0, x1, t)
        tally["ok"] = bool(ok)
        if tally["ok"]:
            window.append(float(loss))
        else:
            tally["bad"] += 1
        if (k + 1) % log_every == 0 or k == cfg.steps - 1:     # the rows run_loop logs (log_every)
            tally["last"] = float(np.mean(window)) if window else float("nan")
            window.clear()
        return st, {"phase": 0, "loss": tally["last"], "nonfinite_steps": tally["bad"],
                    **{c: None for c in EVAL_COLUMNS}}

    stop = cfg.steps if until is None else min(int(until), cfg.steps)
    if start < stop:
        state = run_loop(step, state, cfg.steps, start=start, run=run, checkpoint_every=ckpt_every,
                         checkpoint=tuple, progress=progress, desc=f"flow {cfg.learner}",
                         postfix=lambda m: {"loss": f"{m['loss']:.4f}"}, log_every=log_every,
                         callbacks=[lambda k, m, s: k + 1 < stop], nan_keys=(),
                         skipped=lambda s, m: not tally["ok"], max_nan_steps=20,
                         nan_hint=f"Training diverged: lower the learning rate (lr={cfg.lr}).").state
    return model, state.params, {"final_loss": tally["last"], "nonfinite_steps": tally["bad"],
                                 "resumed_from": start}
