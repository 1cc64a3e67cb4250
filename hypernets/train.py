"""Training a hypernetwork circuit: exact mode and shot mode.

**Exact mode** minimises the Born expectation ``E(theta) = sum_b p_theta(b) C(b)`` with ``p_theta`` the
exact output distribution of the circuit (``qsim.probs``, or the equivalent specialised simulator of
:func:`hypernets.ansatz.make_probs_fn`, engine ``"fast"``) and ``C`` the task's cost landscape; the
gradient is exact (``jax.grad``). Optimisers: L-BFGS (scipy's L-BFGS-B on the jitted value and
gradient) or Adam (optax). Each restart starts from angles uniform in [0, 2 pi).

Plain descent on the Born expectation ends wherever the circuit first concentrates on one network,
which on the Gaussian task is mostly a near-optimal one (a network every single-bit change makes
worse). ``anneal=T0 > 0`` adds a warm-up before it: L-BFGS stages (all restarts batched in one jitted
``vmap``) on the free energy ``sum_b p(b) log C~(b) - T sum_b p(b) log(1/p(b))`` with the entropy weight ``T``
falling geometrically from ``T0`` to ``T0 / 100``, where ``log C~`` is the log of the cost shifted to be
positive (:func:`log_costs`; monotone, so the optimal set is unchanged). The entropy keeps the circuit
spread over many networks while the cost sharpens, and the log makes near-optimal networks distinguishable
(on a linear scale a 2x worse network differs by 0.004 in an MSE range of 0.25). The final phase is then
the plain Born expectation from where the warm-up ended, so what is reported is still that objective's
optimum. Measured on the Gaussian task (10 restarts, H100): depth 3 p_optimal 0.2 plain vs 0.6 annealed,
depth 6 0.0 vs 0.5 (benchmarks/results/hypernets_anneal.json).

**Shot mode** works on any backend with ``backend.sample(circuit, params, shots=S, key=key) -> (S, n)``
bits (``qsim.get_backend(name)``): the cost is the average of the sampled networks' costs
(:func:`qsim.gradients.sample_cost`), gradients come from the parameter-shift rule
(:func:`qsim.gradients.parameter_shift_sampled`: every slot of these ansatze feeds one RY / phase-shift /
RZ gate, whose rule is ``dE/dθ_k = (E(θ + π/2 e_k) - E(θ - π/2 e_k)) / 2``) or SPSA
(:func:`qsim.gradients.spsa_sampled`), and Adam takes the steps. Only the sampled bitstrings' costs are
needed, as on hardware.

Results (:func:`evaluate`): ``expected_cost``, ``p_optimal`` (mass on the networks tied at the minimum
cost, within 1e-9 relative), ``p_top_k`` (mass on the k lowest-cost networks) and the most probable
networks with their cost and train/test accuracy.
"""

from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple

import numpy as np

from .ansatz import init_params, make_ansatz, make_probs_fn
from .landscape import TIE_RTOL, Landscape
from .layout import bits_from_index, index_from_bits
import jax
import jax.numpy as jnp
import qsim
import optax
from qsim.gradients import parameter_shift_sampled, sample_bits, sample_cost, spsa_sampled
from qsim.infra import validation
from scipy.optimize import minimize

__all__ = ["RestartResult", "evaluate", "make_exact_objective", "train_exact", "log_costs", "anneal_temperatures",
           "ANNEAL_T0", "sample_cost", "train_shots", "resolve_backend", "StatevectorSampler"]


class RestartResult(NamedTuple):
    """One training run. ``params (P,)``; metrics as in :func:`evaluate`."""

    params: np.ndarray
    iterations: int
    expected_cost: float
    p_optimal: float
    p_top_k: float
    most_probable: list          # [{index, probability, cost, train_accuracy, test_accuracy, optimal}]
    best_accuracy: float         # test accuracy of the most probable network
    seconds: float


# -------------------------------------------------------------------------------------------------
# metrics
# -------------------------------------------------------------------------------------------------
def evaluate(p, landscape: Landscape, top_k: int = 64, n_most_probable: int = 5,
             rtol: float = TIE_RTOL) -> dict:
    """Metrics of a distribution ``p (2^N,)`` over networks (see module docstring)."""
    p = np.asarray(p, dtype=np.float64)
    if p.shape != landscape.cost.shape:
        raise ValueError(f"distribution has shape {p.shape}, the landscape {landscape.cost.shape}")
    opt = landscape.optimal_set(rtol)
    top = landscape.top_k(top_k)
    order = np.argsort(-p, kind="stable")[:n_most_probable]
    optset = set(opt.tolist())
    mp = [{"index": int(i), "probability": float(p[i]), "cost": float(landscape.cost[i]),
           "train_accuracy": float(landscape.train_accuracy[i]),
           "test_accuracy": float(landscape.test_accuracy[i]), "optimal": int(i) in optset} for i in order]
    return {"expected_cost": float(p @ landscape.cost), "p_optimal": float(p[opt].sum()),
            "p_top_k": float(p[top].sum()), "most_probable": mp,
            "best_accuracy": float(landscape.test_accuracy[order[0]])}


# -------------------------------------------------------------------------------------------------
# exact mode
# -------------------------------------------------------------------------------------------------
def make_exact_objective(costs, ansatz: str = "brickwork", n_qubits: int | None = None, depth: int = 1,
                         engine: str = "fast"):
    """``(vg, probs_fn, circuit)`` for ``E(theta) = probs(theta) . costs``.

    ``vg(params) -> ((E, probs), dE/dparams)`` is one jitted function (the distribution comes along as
    auxiliary output, so there is a single compilation); params ``(2 n depth,)``. engine: "fast" (the
    specialised layered simulator) or "qsim" (``qsim.probs`` on the circuit); both compute the same
    distribution. ``probs_fn`` is the un-jitted distribution."""

    costs = np.asarray(costs)
    n = int(costs.shape[0]).bit_length() - 1 if n_qubits is None else int(n_qubits)
    if costs.shape != (2 ** n,):
        raise ValueError(f"costs must have shape (2^{n},) = ({2 ** n},) for {n} qubits, got {costs.shape}")
    circuit = make_ansatz(ansatz, n, depth)
    if engine == "fast":
        probs_fn = make_probs_fn(ansatz, n, depth)
    elif engine == "qsim":

        def probs_fn(params):
            return qsim.probs(circuit, params)
    else:
        raise ValueError(f"engine must be 'fast' or 'qsim', got {engine!r}")
    c = jnp.asarray(costs)

    def energy(q):
        p = probs_fn(q)
        return jnp.dot(p, c.astype(q.dtype)), p

    vg = jax.jit(jax.value_and_grad(energy, has_aux=True))
    return vg, probs_fn, circuit


ANNEAL_T0 = 0.3          # initial entropy weight of the annealed warm-up, in units of log cost (CLI default)


def log_costs(costs) -> np.ndarray:
    """``log(C - min C + s)`` with ``s = min C`` if ``min C > 0`` (so plain ``log C``), else
    ``1e-3 (max C - min C)`` (or 1 for a flat landscape). Monotone: the same optimal set and order."""
    c = np.asarray(costs, dtype=np.float64)
    lo, hi = float(c.min()), float(c.max())
    s = lo if lo > 0 else (1e-3 * (hi - lo) if hi > lo else 1.0)
    return np.log(c - lo + s)


def anneal_temperatures(t0: float, stages: int, decay: float = 0.01) -> np.ndarray:
    """Entropy weights of the warm-up stages: ``t0 * decay ** (k / (stages - 1))``, k = 0 .. stages-1."""
    t0 = validation.positive_float(t0, "anneal temperature")
    stages = validation.positive_int(stages, "anneal_stages")
    k = np.arange(stages)
    return t0 * decay ** (k / max(1, stages - 1))


def make_anneal_stage(probs_fn, costs, stage_iters: int, log: bool = True):
    """``stage(X, T) -> (X, F)``: ``stage_iters`` L-BFGS iterations (optax, fresh memory) of
    ``F(theta) = p . log C~ + T sum p log p`` for every row of ``X (R, P)`` at once (jit + vmap);
    ``log=False`` uses the cost itself instead of :func:`log_costs`."""

    opt = optax.lbfgs(memory_size=20)

    def run(x0, t):
        lc = jnp.asarray(log_costs(costs) if log else np.asarray(costs, np.float64), x0.dtype)

        def f(x):
            p = probs_fn(x)
            return p @ lc + t * jnp.sum(jax.scipy.special.xlogy(p, p))

        vg = optax.value_and_grad_from_state(f)

        def body(carry, _):
            x, s = carry
            v, g = vg(x, state=s)
            u, s = opt.update(g, s, x, value=v, grad=g, value_fn=f)
            return (optax.apply_updates(x, u), s), v

        (x, _), vs = jax.lax.scan(body, (x0, opt.init(x0)), None, length=int(stage_iters))
        return x, vs[-1]

    return jax.jit(jax.vmap(run, (0, None)))


def _lbfgs(vg, x0, max_iter: int, tol: float, callback):
    """scipy L-BFGS-B; when it stops early on a failed line search (common with float32 values) while
    still improving, it restarts from where it stopped with a fresh memory, until ``max_iter``."""

    dtype = x0.dtype
    it = [0]

    def fun(x):
        (v, _), g = vg(np.asarray(x, dtype=dtype))
        return float(v), np.asarray(g, dtype=np.float64)

    def cb(intermediate_result):
        it[0] += 1
        if callback is not None:
            callback(it[0], float(intermediate_result.fun))

    x = np.asarray(x0, np.float64)
    f_prev = None
    while it[0] < int(max_iter):
        start = it[0]
        res = minimize(fun, x, jac=True, method="L-BFGS-B", callback=cb,
                       options={"maxiter": int(max_iter) - it[0], "ftol": tol, "gtol": 1e-10, "maxcor": 20})
        x = np.asarray(res.x)
        improved = f_prev is None or res.fun < f_prev - 1e-6 * abs(f_prev)
        f_prev = float(res.fun) if f_prev is None else min(f_prev, float(res.fun))
        if res.success or it[0] - start < 2 or not improved:
            break
    return x, it[0]


def _adam(vg, x0, steps: int, lr: float, callback):

    opt = optax.adam(lr)
    x = jnp.asarray(x0)
    state = opt.init(x)
    for i in range(int(steps)):
        (v, _), g = vg(x)
        if not bool(jnp.all(jnp.isfinite(g))):
            raise FloatingPointError(f"non-finite gradient at Adam step {i}")
        upd, state = opt.update(g, state, x)
        x = optax.apply_updates(x, upd)
        if callback is not None:
            callback(i + 1, float(v))
    return np.asarray(x), int(steps)


def train_exact(landscape: Landscape, depth: int, *, restarts: int = 1, seed: int = 0,
                ansatz: str = "brickwork", optimizer: str = "lbfgs", max_iter: int = 500,
                learning_rate: float = 0.05, tol: float = 1e-12, engine: str = "fast",
                dtype: str = "float64", top_k: int = 64, callback: Callable | None = None,
                start: int = 0, on_restart: Callable | None = None, anneal: float = 0.0,
                anneal_stages: int = 8, stage_iters: int = 100) -> list[RestartResult]:
    """Train ``restarts`` circuits of ``depth`` layer steps on ``landscape`` in exact mode.

    anneal: initial entropy weight ``T0`` of the warm-up (module docstring; 0 = none, the reference
    method; :data:`ANNEAL_T0` is the tested value): ``anneal_stages`` stages of ``stage_iters`` L-BFGS
    iterations with all restarts batched, before the ``max_iter`` iterations of ``optimizer`` on the
    Born expectation. ``iterations`` in the results counts both phases.

    callback(restart, iteration, expected_cost) is called every iteration (for progress bars and
    metrics). Restart ``r`` uses key ``fold_in(key(seed), r)`` so restarts are reproducible one by one
    (``start`` skips the first ones, for resuming); on_restart(restart, RestartResult) is called as each
    restart finishes (for checkpoints). The objective is compiled once for all restarts."""

    validation.one_of(optimizer, "optimizer", ("lbfgs", "adam"))
    validation.one_of(dtype, "dtype", ("float32", "float64"))
    restarts = validation.positive_int(restarts, "restarts")
    temps = anneal_temperatures(anneal, anneal_stages) if anneal else None
    stage_iters = validation.positive_int(stage_iters, "stage_iters")
    n = landscape.num_bits
    ctx = jax.enable_x64(True) if dtype == "float64" else jax.enable_x64(bool(jax.config.jax_enable_x64))
    out = []
    with ctx:
        jdt = jnp.dtype(dtype)
        vg, probs_fn, circuit = make_exact_objective(landscape.cost.astype(jdt), ansatz, n, depth, engine)
        todo = range(int(start), int(restarts))
        X0 = {r: np.asarray(init_params(jax.random.fold_in(jax.random.key(seed), r), circuit, jdt)) for r in todo}
        warm_iters, warm_s = 0, 0.0
        if temps is not None and len(todo):
            t0 = time.perf_counter()
            stage = make_anneal_stage(probs_fn, landscape.cost, stage_iters)
            X = jnp.stack([jnp.asarray(X0[r]) for r in todo])
            expected = jax.jit(jax.vmap(lambda x: probs_fn(x) @ jnp.asarray(landscape.cost, jdt)))
            for t in temps:
                X, _ = stage(X, jnp.asarray(t, jdt))
                warm_iters += int(stage_iters)
                if callback is not None:           # report the Born expectation, not the free energy
                    for r, e in zip(todo, np.asarray(expected(X))):
                        callback(r, warm_iters, float(e))
            X0 = {r: np.asarray(x) for r, x in zip(todo, np.asarray(X))}
            warm_s = (time.perf_counter() - t0) / len(todo)
        for r in todo:
            t0 = time.perf_counter()
            x0 = X0[r]

            def cb(i, value, r=r):
                callback(r, warm_iters + i, value)

            if optimizer == "lbfgs":
                x, iters = _lbfgs(vg, x0, max_iter, tol, cb if callback else None)
            else:
                x, iters = _adam(vg, jnp.asarray(x0), max_iter, learning_rate, cb if callback else None)
            (_, p), _ = vg(jnp.asarray(x, jdt))
            p = np.asarray(p, np.float64)
            m = evaluate(p / p.sum(), landscape, top_k=top_k)
            res = RestartResult(np.asarray(x), warm_iters + iters, m["expected_cost"], m["p_optimal"], m["p_top_k"],
                                m["most_probable"], m["best_accuracy"], warm_s + time.perf_counter() - t0)
            out.append(res)
            if on_restart is not None:
                on_restart(r, res)
    return out


# -------------------------------------------------------------------------------------------------
# shot mode
# -------------------------------------------------------------------------------------------------
class StatevectorSampler:
    """The backend protocol on the JAX statevector (``qsim.sample``): used when ``qsim.backends`` is
    not available; ``sample(circuit, params, shots=S, key=key) -> (S, n)`` int bits."""

    name = "statevector"

    def sample(self, circuit, params, shots: int, key=None):

        return np.asarray(qsim.sample(circuit, params, shots=int(shots), key=key))


def resolve_backend(name_or_backend, **options):
    """A backend object from a name (``qsim.get_backend``) or an object with ``.sample``."""
    if not isinstance(name_or_backend, str):
        if not hasattr(name_or_backend, "sample"):
            raise TypeError(f"backend {name_or_backend!r} has no sample(circuit, params, shots=, key=) method")
        return name_or_backend
    try:

        return qsim.get_backend(name_or_backend, **options)
    except ModuleNotFoundError:
        if name_or_backend == "statevector" and not options:
            return StatevectorSampler()
        raise


def train_shots(landscape: Landscape, depth: int, backend="statevector", *, shots: int = 1000,
                steps: int = 100, learning_rate: float = 0.1, gradient: str = "parameter_shift",
                ansatz: str = "brickwork", seed: int = 0, spsa_c: float = 0.2, final_shots: int | None = None,
                callback: Callable | None = None, x0=None, top_k: int = 64) -> dict:
    """Shot-mode training (module docstring) with Adam; returns a dict with ``params``, the final
    shot estimate ``expected_cost`` (± ``expected_cost_stderr``), ``most_probable`` (the most
    frequent network in ``final_shots`` samples with its empirical frequency, cost and accuracies),
    ``history`` (estimated cost per step) and ``circuit_runs``."""

    validation.one_of(gradient, "gradient", ("parameter_shift", "spsa"))
    if int(shots) < 2:
        raise ValueError(f"shots must be >= 2, got {shots}")
    backend = resolve_backend(backend)
    n = landscape.num_bits
    circuit = make_ansatz(ansatz, n, depth)
    costs = landscape.cost
    key = jax.random.key(seed)
    x = np.asarray(init_params(jax.random.fold_in(key, 0), circuit, np.float64), np.float64) if x0 is None \
        else np.asarray(x0, np.float64)
    if x.shape != (circuit.num_params,):
        raise ValueError(f"x0 has shape {x.shape}, the circuit takes ({circuit.num_params},)")
    opt = optax.adam(learning_rate)
    state = opt.init(x)
    history, runs = [], 0
    for t in range(int(steps)):
        kt = jax.random.fold_in(key, t + 1)
        kc, kg = jax.random.split(kt)
        if gradient == "parameter_shift":
            g = parameter_shift_sampled(backend, circuit, x, costs, shots, kg)
            runs += 2 * len(x)
        else:
            g = spsa_sampled(backend, circuit, x, costs, shots, kg, epsilon=spsa_c)
            runs += 2
        if not np.all(np.isfinite(g)):
            raise FloatingPointError(f"non-finite shot gradient at step {t}")
        upd, state = opt.update(g, state, x)
        x = np.asarray(optax.apply_updates(x, upd))
        if callback is not None or t == steps - 1:
            est, _ = sample_cost(backend, circuit, x, costs, shots, kc)
            runs += 1
            history.append(est)
            if callback is not None:
                callback(t + 1, est)
    fs = int(final_shots or max(shots, 1000))
    idx = index_from_bits(sample_bits(backend, circuit, x, fs, jax.random.fold_in(key, 10 ** 6)))
    counts = np.bincount(idx, minlength=2 ** n)
    top = int(np.argmax(counts))
    c = costs[idx]
    opt_set = set(landscape.optimal_set().tolist())
    return {"params": x, "expected_cost": float(c.mean()), "expected_cost_stderr": float(c.std(ddof=1) / math.sqrt(fs)),
            "p_optimal_sampled": float(np.mean([i in opt_set for i in idx])),
            "p_top_k_sampled": float(np.isin(idx, landscape.top_k(top_k)).mean()),
            "most_probable": {"index": top, "frequency": float(counts[top] / fs), "cost": float(costs[top]),
                              "train_accuracy": float(landscape.train_accuracy[top]),
                              "test_accuracy": float(landscape.test_accuracy[top]),
                              "bits": bits_from_index(np.asarray([top]), n)[0].tolist()},
            "history": history, "circuit_runs": runs, "steps": int(steps)}
