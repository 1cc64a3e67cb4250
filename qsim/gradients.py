"""Gradients for backends that only return numbers: parameter shift and SPSA, usable under ``jax.grad``.

    loss = make_expval(backend, circuit, H, shots=1000, gradient="parameter-shift")
    value = loss(params, key)                  # a JAX scalar
    g = jax.grad(loss)(params, key)            # parameter shift on the backend (one job per gradient)
    # optax: updates, opt_state = opt.update(jax.grad(loss)(params, key), opt_state)

**Parameter shift** reads the rule of every gate parameter from the gate table
(``GateDef.shift_rules``: pairs ``(c, s)`` with ``df/dt = sum c f(t + s)``; two-term rules for Pauli
rotations, phase shifts, U3 and the Ising gates, four-term rules for CRX/CRY/CRZ). A slot used by
several gates (shared parameters) gets the sum of the per-use derivatives: the circuit is expanded so
that every use has its own slot, each use is shifted alone, and the derivatives are summed back.
Controlled versions of table gates (``Circuit.ctrl``) take the table's rule for their generator's
spectrum (:func:`qsim.circuits.gates.op_shift_rule`: a controlled Pauli rotation gets the four-term
rule, a controlled phase keeps two terms).
All shifted evaluations go to the backend as one ``expval_batch`` call (one job).

With ``shots`` each shifted evaluation is an independent estimate, so the gradient's variance is
``sum_k c_k**2 Var f(t + s_k)`` per use (see :func:`parameter_shift_stderr`).

**SPSA** estimates ``g = (f(t + eps d) - f(t - eps d)) / (2 eps) * d`` with a random Rademacher
direction ``d`` (averaged over ``n_samples`` directions): two evaluations per sample whatever the
number of parameters; unbiased to ``O(eps**2)`` in expectation.

Both are wrapped in a ``jax.custom_vjp`` whose forward and backward passes call the backend through
``jax.pure_callback``, so the loss also works inside ``jax.jit``.

**A cost over sampled bitstrings** (``E = sum_b p(b) cost(b)``, on any backend that can ``sample``):
:func:`sample_cost` estimates it, :func:`parameter_shift_sampled` and :func:`spsa_sampled` give its
gradients by the same rules (every shifted circuit sampled with its own key, so a key reproduces the
gradient); :func:`sampled_cost_batch` is the ``evaluate_batch`` they use.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qsim.circuits.circuit import Circuit, Op, ParamRef
from qsim.circuits.gates import op_shift_rule
from qsim.circuits.operators import PauliSum
from qsim.backends import get_backend
from qsim.backends.base import seed_from_key
from qsim.infra import validation

__all__ = ["expand_slots", "shift_rule", "parameter_shift_grad", "parameter_shift", "spsa_grad",
           "make_expval", "parameter_shift_stderr", "sample_bits", "sample_cost", "sampled_cost_batch", "parameter_shift_sampled",
           "spsa_sampled"]


# ---------------------------------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------------------------------
def shift_rule(op: Op, j: int) -> tuple:
    """The ``((coefficient, shift), ...)`` rule for parameter ``j`` of ``op``, from the gate table
    (:func:`qsim.circuits.gates.op_shift_rule`, which knows controlled versions)."""
    return op_shift_rule(op.gate, j, op.n_controls)


def expand_slots(circuit: Circuit) -> tuple[Circuit, np.ndarray, list[tuple]]:
    """Give every use of a slot its own slot.

    Returns:
        ``(expanded, slot_of_use, rules)``: ``expanded`` has one slot per use (``U`` of them), its
        params are ``params[slot_of_use]`` (``(U,)`` ints), ``rules[u]`` is the shift rule of use ``u``.
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qsim.Circuit, got {type(circuit).__name__}")
    ex = Circuit(circuit.n_wires)
    slot_of_use: list[int] = []
    rules: list[tuple] = []
    for op in circuit.ops:
        refs = []
        for j, r in enumerate(op.params):
            if r.slot is None:
                refs.append(r)
                continue
            rules.append(shift_rule(op, j))
            refs.append(ParamRef(slot=len(slot_of_use)))
            slot_of_use.append(r.slot)
        ex.ops.append(Op(op.name, op.wires, tuple(refs), op.n_controls, op.adjoint, op.matrix))
    ex.num_params = len(slot_of_use)
    return ex, np.asarray(slot_of_use, dtype=np.int64), rules


def _shift_table(circuit: Circuit):
    ex, slot_of_use, rules = expand_slots(circuit)
    rows, coefs, uses = [], [], []
    for u, rule in enumerate(rules):
        for c, s in rule:
            rows.append((u, s))
            coefs.append(c)
            uses.append(u)
    return ex, slot_of_use, rows, np.asarray(coefs), np.asarray(uses, dtype=np.int64)


def parameter_shift_grad(evaluate_batch: Callable, circuit: Circuit, params):
    """``d f / d params`` ``(P,)`` by parameter shift.

    Args:
        evaluate_batch: ``(B, U) expanded params -> (B,)`` values of ``f`` on ``expand_slots(circuit)[0]``.
        params: ``(P,)`` parameters of ``circuit``.
    """
    ex, slot_of_use, rows, coefs, uses = _shift_table(circuit)
    params = np.asarray(validation.circuit_params(circuit, params), dtype=np.float64)
    if not rows:
        return np.zeros(circuit.num_params)
    base = params[slot_of_use]
    batch = np.repeat(base[None], len(rows), axis=0)
    for i, (u, s) in enumerate(rows):
        batch[i, u] += s
    vals = np.asarray(evaluate_batch(batch), dtype=np.float64).reshape(-1)
    d_use = np.zeros(len(slot_of_use))
    np.add.at(d_use, uses, coefs * vals)
    grad = np.zeros(circuit.num_params)
    np.add.at(grad, slot_of_use, d_use)
    return grad


def parameter_shift(backend, circuit: Circuit, params, observable: PauliSum, shots=None, key=None):
    """Parameter-shift gradient ``(P,)`` of ``backend.expval(circuit, params, observable)`` (one batch)."""
    ex = expand_slots(circuit)[0]
    return parameter_shift_grad(lambda b: backend.expval_batch(ex, b, observable, shots=shots, key=key),
                                circuit, params)


def parameter_shift_stderr(circuit: Circuit, params, observable: PauliSum, shots: int, backend=None):
    """Exact standard error ``(P,)`` of the ``shots``-shot parameter-shift gradient (needs an exact
    backend; default ``statevector``): ``sqrt(sum_k c_k**2 Var_k / shots)`` summed over uses."""
    if backend is None:

        backend = get_backend("statevector")
    ex, slot_of_use, rows, coefs, uses = _shift_table(circuit)
    params = np.asarray(params, dtype=np.float64)
    base = params[slot_of_use]
    var = np.zeros(circuit.num_params)
    for (u, s), c in zip(rows, coefs):
        p = base.copy()
        p[u] += s
        se = backend.shot_stderr(ex, p, observable, shots)
        var[slot_of_use[u]] += c * c * se * se
    return np.sqrt(var)


def spsa_grad(evaluate_batch: Callable, params, key, n_samples: int = 1, epsilon: float = 0.1):
    """SPSA gradient ``(P,)``: ``mean_k (f(t + eps d_k) - f(t - eps d_k)) / (2 eps) * d_k``.

    ``evaluate_batch``: ``(B, P) -> (B,)``; the ``2 * n_samples`` points go in one batch.
    """
    n_samples = validation.positive_int(n_samples, "n_samples")
    epsilon = validation.positive_float(epsilon, "epsilon")
    params = np.asarray(params, dtype=np.float64)
    rng = np.random.default_rng(seed_from_key(key))
    d = rng.choice([-1.0, 1.0], size=(n_samples, params.shape[0]))
    batch = np.concatenate([params + epsilon * d, params - epsilon * d])
    vals = np.asarray(evaluate_batch(batch), dtype=np.float64).reshape(-1)
    diff = (vals[:n_samples] - vals[n_samples:]) / (2 * epsilon)
    return (diff[:, None] * d).mean(axis=0)


# ---------------------------------------------------------------------------------------------------
# a cost over sampled bitstrings (sample-only backends, e.g. hardware or hypernets' shot mode)
# ---------------------------------------------------------------------------------------------------
def sample_bits(backend, circuit: Circuit, params, shots: int, key=None) -> np.ndarray:
    """``backend.sample(circuit, params, shots=, key=)`` checked to be ``(shots, n_wires)`` bits."""
    bits = np.asarray(backend.sample(circuit, params, shots=shots, key=key))
    if bits.shape != (shots, circuit.n_wires):
        raise ValueError(f"backend {getattr(backend, 'name', backend)!r} returned samples of shape {bits.shape}, "
                         f"expected ({shots}, {circuit.n_wires})")
    return bits


def _sampled_costs(backend, circuit: Circuit, params, cost, shots: int, key) -> np.ndarray:
    """``cost`` of each of ``shots`` bitstrings sampled from ``backend``: ``(shots,)``."""
    bits = sample_bits(backend, circuit, params, shots, key)
    if callable(cost):
        return np.asarray(cost(bits), dtype=np.float64).reshape(shots)
    idx = bits.astype(np.int64) @ (1 << np.arange(circuit.n_wires - 1, -1, -1, dtype=np.int64))
    return np.asarray(cost)[idx]


def sample_cost(backend, circuit: Circuit, params, cost, shots: int, key=None) -> tuple[float, float]:
    """Shot estimate of ``E = sum_b p_params(b) cost(b)``: (mean of the sampled costs, its standard error).

    ``backend`` needs only ``sample(circuit, params, shots=, key=) -> (shots, n_wires)`` bits (wire 0
    first). ``cost``: ``(2**n_wires,)`` costs indexed by the basis index (wire 0 most significant), or
    a function ``bits (shots, n_wires) -> (shots,)``.
    """
    c = _sampled_costs(backend, circuit, params, cost, validation.positive_int(shots, "shots"), key)
    return float(c.mean()), (float(c.std(ddof=1) / np.sqrt(len(c))) if len(c) > 1 else float("nan"))


def sampled_cost_batch(backend, circuit: Circuit, cost, shots: int, key) -> Callable:
    """``evaluate_batch`` ``(B, P) -> (B,)`` for :func:`parameter_shift_grad` / :func:`spsa_grad`: row ``i``
    is the :func:`sample_cost` mean at that row's parameters, sampled with ``jax.random.split(key, B)[i]``."""
    shots = validation.positive_int(shots, "shots")

    def evaluate_batch(batch):
        keys = jax.random.split(key, len(batch))
        return np.array([_sampled_costs(backend, circuit, p, cost, shots, k).mean() for p, k in zip(batch, keys)])

    return evaluate_batch


def parameter_shift_sampled(backend, circuit: Circuit, params, cost, shots: int, key) -> np.ndarray:
    """Parameter-shift gradient ``(P,)`` of the sampled cost :func:`sample_cost` (each shifted circuit
    sampled ``shots`` times with its own key from ``key``)."""
    ex = expand_slots(circuit)[0]
    return parameter_shift_grad(sampled_cost_batch(backend, ex, cost, shots, key), circuit, params)


def spsa_sampled(backend, circuit: Circuit, params, cost, shots: int, key, n_samples: int = 1,
                 epsilon: float = 0.1) -> np.ndarray:
    """SPSA gradient ``(P,)`` of the sampled cost :func:`sample_cost`: directions from one half of ``key``,
    the ``2 n_samples`` sampled evaluations from the other."""
    k_dir, k_eval = jax.random.split(key)
    return spsa_grad(sampled_cost_batch(backend, circuit, cost, shots, k_eval), params, k_dir,
                     n_samples=n_samples, epsilon=epsilon)


# ---------------------------------------------------------------------------------------------------
# jax.custom_vjp wrapper
# ---------------------------------------------------------------------------------------------------
def _float_params(params, circuit):
    """``params`` checked for ``circuit`` (:func:`qsim.infra.validation.circuit_params`) as a floating
    JAX array (ints become float32)."""
    params = jnp.asarray(validation.circuit_params(circuit, params))
    return params if jnp.issubdtype(params.dtype, jnp.floating) else params.astype(jnp.float32)


def make_expval(backend, circuit: Circuit, observable: PauliSum, shots: int | None = None,
                gradient: str = "parameter-shift", n_samples: int = 1, epsilon: float = 0.1):
    """A differentiable loss ``f(params, key=None) -> scalar`` evaluated on ``backend``.

    ``jax.grad(f)`` runs ``gradient`` ("parameter-shift" or "spsa") on the backend. ``key`` (a
    ``jax.random`` key) seeds the forward pass and, folded, the gradient's evaluations; without it
    the backend's own generator is used. Works eagerly and under ``jax.jit`` (through
    ``jax.pure_callback``). An exact (``shots=None``) parameter-shift loss on a differentiable JAX
    backend (``statevector``) is computed directly in JAX instead: the same value and gradient
    (parameter shift is exact there), and no JAX call inside a host callback (which can deadlock,
    jax-ml/jax#24255).
    """
    if isinstance(backend, str):

        backend = get_backend(backend)
    if gradient not in ("parameter-shift", "spsa"):
        raise ValueError(f"gradient must be 'parameter-shift' or 'spsa', got {gradient!r}")
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qsim.Circuit, got {type(circuit).__name__}")
    if not isinstance(observable, PauliSum):
        raise TypeError(f"observable must be a qsim PauliSum, got {type(observable).__name__}")
    if shots is None and gradient == "parameter-shift" and getattr(backend.capabilities, "differentiable", False):
        def direct(params, key=None):
            return backend.expval(circuit, _float_params(params, circuit), observable)
        return direct
    ex = expand_slots(circuit)[0] if gradient == "parameter-shift" else None

    def _key(seed):
        s = int(seed)
        return None if s < 0 else s

    def host_value(p, seed):
        v = backend.expval(circuit, np.asarray(p, np.float64), observable, shots=shots, key=_key(seed))
        return np.asarray(v, dtype=p.dtype)

    def host_grad(p, seed):
        k = _key(seed)
        pp = np.asarray(p, np.float64)
        if gradient == "parameter-shift":
            g = parameter_shift_grad(lambda b: backend.expval_batch(ex, b, observable, shots=shots, key=k),
                                     circuit, pp)
        else:
            g = spsa_grad(lambda b: backend.expval_batch(circuit, b, observable, shots=shots, key=k), pp,
                          k, n_samples=n_samples, epsilon=epsilon)
        return np.asarray(g, dtype=p.dtype)

    def value(p, seed):
        return jax.pure_callback(host_value, jax.ShapeDtypeStruct((), p.dtype), p, seed)

    @jax.custom_vjp
    def f(p, seed):
        return value(p, seed)

    def fwd(p, seed):
        return value(p, seed), (p, seed)

    def bwd(res, g):
        p, seed = res
        seed_g = jnp.where(seed < 0, seed, seed // 2 + 1_000_003)  # a different, valid seed
        grad = jax.pure_callback(host_grad, jax.ShapeDtypeStruct(p.shape, p.dtype), p, seed_g)
        return (g * grad, None)

    f.defvjp(fwd, bwd)

    def loss(params, key=None):
        params = _float_params(params, circuit)
        if key is None:
            seed = jnp.asarray(-1, jnp.int32)
        else:
            if not jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
                key = jax.random.wrap_key_data(key)
            seed = jax.random.randint(key, (), 0, 2**31 - 1, dtype=jnp.int32)
        return f(params, seed)

    return loss
