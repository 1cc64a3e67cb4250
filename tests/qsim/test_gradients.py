"""Parameter shift and SPSA: exact agreement with jax.grad for every parametrised gate, shot-based
gradients on Aer within 4 standard errors, the custom_vjp under jax.grad / jit / optax, and a noisy
2-qubit VQE on the fake IBM backend that reaches the noisy optimum."""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import qsim
from qsim.circuits.gates import FOUR_TERM, GATES, TWO_TERM
from qsim.gradients import (expand_slots, make_expval, parameter_shift, parameter_shift_grad, parameter_shift_sampled,
                            parameter_shift_stderr, sample_cost, shift_rule, spsa_grad, spsa_sampled)

HAS_AER = importlib.util.find_spec("qiskit_aer") is not None
HAS_IBM = importlib.util.find_spec("qiskit_ibm_runtime") is not None

PARAM_GATES = sorted(n for n, g in GATES.items() if g.num_params and g.num_wires)
H3 = qsim.Z(0) @ qsim.X(1) + 0.7 * qsim.Y(2) + 0.3 * qsim.X(0) @ qsim.Y(1) @ qsim.Z(2) + 0.4 * qsim.Z(2)


def all_gates_circuit() -> qsim.Circuit:
    """Every parametrised table gate once, shared slots, controlled versions and an inverse."""
    c = qsim.Circuit(3)
    for w in range(3):
        c.h(w)
    for i, name in enumerate(PARAM_GATES):
        g = GATES[name]
        wires = [(0,), (1,), (2,)][i % 3] if g.num_wires == 1 else [(1, 2), (2, 0), (0, 1)][i % 3]
        c.add(name, wires)
    c.ry(2, param=1)                  # shared slots
    c.crx(1, 0, param=0)
    c.u3(0, param=[2, 2, 3])
    c.ctrl("ry", [0], 2)              # controlled Pauli rotation: four-term rule
    c.ctrl("phaseshift", [1, 2], 0)   # controlled phase: two-term rule
    c.ctrl("u3", [2], 1)
    c.ctrl("rxx", [0], [1, 2])
    tail = qsim.Circuit(3)
    tail.crz(0, 1)
    tail.ryy(1, 2)
    tail.u3(2)
    c.append(tail.inverse(), share_params=False)   # adjoint ops
    return c


def circuit_a() -> qsim.Circuit:
    """2 qubits, 3 slots (one shared) - used by the shot-gradient and SPSA tests."""
    c = qsim.Circuit(2)
    c.ry(0)
    c.crx(0, 1)
    c.ry(1, param=0)
    c.rz(1)
    c.cnot(1, 0)
    return c


H_A = qsim.Z(0) @ qsim.Z(1) + 0.8 * qsim.X(1) + 0.5 * qsim.Y(0)
P_A = np.array([0.7, 1.4, -0.4])


def test_table_rules_and_derived_rules():
    for name in PARAM_GATES:
        g = GATES[name]
        expected = FOUR_TERM if name in ("CRX", "CRY", "CRZ") else TWO_TERM
        assert all(r == expected for r in g.shift_rules), name
    c = qsim.Circuit(3)
    c.ctrl("ry", [0], 1)
    c.ctrl("phaseshift", [0], 1)
    c.ctrl("u3", [0], 1)
    assert shift_rule(c.ops[0], 0) == FOUR_TERM
    assert shift_rule(c.ops[1], 0) == TWO_TERM
    assert [shift_rule(c.ops[2], j) for j in range(3)] == [FOUR_TERM, TWO_TERM, TWO_TERM]
    with pytest.raises(ValueError, match="no parameter 1"):
        shift_rule(c.ops[0], 1)


def test_expand_slots_bookkeeping():
    c = qsim.Circuit(2)
    c.rx(0)
    c.ry(1, param=0)
    c.crz(0, 1)
    c.rz(1, value=0.2)
    ex, slot_of_use, rules = expand_slots(c)
    assert ex.num_params == 3 and list(slot_of_use) == [0, 0, 1]
    assert rules == [TWO_TERM, TWO_TERM, FOUR_TERM]
    assert ex.ops[3].params[0].value == 0.2


def test_parameter_shift_equals_jax_grad_for_every_gate():
    c = all_gates_circuit()
    assert c.num_params > 2 * len(PARAM_GATES)
    p = jnp.asarray(np.random.default_rng(0).uniform(-3, 3, c.num_params))
    g_ref = np.asarray(jax.grad(lambda q: qsim.expval(c, q, H3))(p))
    ex = expand_slots(c)[0]
    f_batch = jax.jit(jax.vmap(lambda q: qsim.expval(ex, q, H3)))
    g = parameter_shift_grad(lambda b: f_batch(jnp.asarray(b)), c, p)
    assert np.abs(g_ref).max() > 0.1
    np.testing.assert_allclose(g, g_ref, atol=1e-8)


# (controls, targets) of each use, by gate width: plain, inverse, one control, two controls,
# controlled inverse, controlled on the first use's slots (shared)
_USES = {1: [((), (3,)), ((), (2,)), ((0,), (3,)), ((0, 1), (2,)), ((3,), (1,)), ((1,), (0,))],
         2: [((), (2, 3)), ((), (3, 1)), ((0,), (2, 3)), ((0, 1), (3, 2)), ((3,), (0, 1)), ((1,), (0, 2))]}


def _every_use_circuit(name: str) -> qsim.Circuit:
    """Gate ``name`` plain, as an inverse, with one and two controls, controlled-inverse and on shared
    slots, on a generic 4-wire state (no use acts on a trivial state)."""
    g = GATES[name]
    c = qsim.Circuit(4)
    for w in range(4):
        c.ry(w, value=0.3 + 0.4 * w)
        c.rz(w, value=0.9 - 0.2 * w)
    c.cnot(0, 1)
    c.cnot(2, 3)
    for i, (controls, targets) in enumerate(_USES[g.num_wires]):
        if i in (1, 4):                                   # the inverse of a (controlled) use
            one = qsim.Circuit(4)
            one.ctrl(name, controls, targets)
            c.append(one.inverse())
        else:
            c.ctrl(name, controls, targets, param=list(range(g.num_params)) if i == 5 else None)
    for w in range(3):
        c.cnot(w, w + 1)
    return c


@pytest.mark.parametrize("name", PARAM_GATES)
def test_parameter_shift_equals_jax_grad_for_every_use_of_every_gate(name):
    """The gate table's rules (op_shift_rule) give the exact gradient for every parametrised gate,
    plain, inverted, with one and two controls, and on shared slots."""
    c = _every_use_circuit(name)
    assert sorted({op.n_controls for op in c.ops}) == [0, 1, 2] and any(op.adjoint for op in c.ops)
    p = jnp.asarray(np.random.default_rng(1).uniform(-3, 3, c.num_params))
    h = qsim.Z(0) @ qsim.X(3) + 0.6 * qsim.Y(1) + 0.4 * qsim.X(0) @ qsim.Z(2) + 0.3 * qsim.Y(3)
    with jax.enable_x64(True):
        p = p.astype(jnp.float64)
        g_ref = np.asarray(jax.grad(lambda q: qsim.expval(c, q, h))(p))
        ex = expand_slots(c)[0]
        f_batch = jax.jit(jax.vmap(lambda q: qsim.expval(ex, q, h)))
        g = parameter_shift_grad(lambda b: f_batch(jnp.asarray(b, jnp.float64)), c, p)
    assert np.all(np.abs(g_ref) > 1e-4), g_ref   # every slot moves the value: a wrong rule would show
    np.testing.assert_allclose(g, g_ref, atol=1e-9)


def test_exact_statevector_loss_runs_in_jax_without_a_callback():
    """make_expval on the JAX statevector backend (exact, parameter shift) is plain JAX: no host
    callback in its jaxpr (a JAX call inside one can deadlock), and its value and gradient equal
    qsim.expval's and the parameter-shift gradient's, eagerly and under jit."""
    c = all_gates_circuit()
    p = jnp.asarray(np.random.default_rng(3).uniform(-3, 3, c.num_params))
    loss = make_expval("statevector", c, H3)
    jaxpr = str(jax.make_jaxpr(jax.grad(loss))(p))
    assert "callback" not in jaxpr
    ex = expand_slots(c)[0]
    f_batch = jax.jit(jax.vmap(lambda q: qsim.expval(ex, q, H3)))
    g_shift = parameter_shift_grad(lambda b: f_batch(jnp.asarray(b)), c, p)
    np.testing.assert_allclose(float(jax.jit(loss)(p)), float(qsim.expval(c, p, H3)), atol=1e-12)
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(p, jax.random.key(0)), g_shift, atol=1e-8)
    with pytest.raises(ValueError, match="params has shape"):
        loss(jnp.zeros(2))


@pytest.mark.skipif(not HAS_AER, reason="qiskit-aer not installed")
def test_parameter_shift_on_exact_aer_through_custom_vjp_and_jit():
    c = circuit_a()
    p = jnp.asarray(P_A)
    g_ref = np.asarray(jax.grad(lambda q: qsim.expval(c, q, H_A))(p))
    aer = qsim.get_backend("qiskit:aer")
    loss = make_expval(aer, c, H_A)
    assert float(loss(p)) == pytest.approx(float(qsim.expval(c, p, H_A)), abs=1e-10)
    np.testing.assert_allclose(np.asarray(jax.grad(loss)(p)), g_ref, atol=1e-8)
    np.testing.assert_allclose(np.asarray(jax.jit(jax.grad(loss))(p)), g_ref, atol=1e-8)
    np.testing.assert_allclose(parameter_shift(aer, c, p, H_A), g_ref, atol=1e-8)


@pytest.mark.skipif(not HAS_AER, reason="qiskit-aer not installed")
def test_shot_gradient_on_aer_within_4_standard_errors():
    c = circuit_a()
    p = jnp.asarray(P_A)
    shots = 4000
    g_ref = np.asarray(jax.grad(lambda q: qsim.expval(c, q, H_A))(p))
    se = parameter_shift_stderr(c, P_A, H_A, shots)
    loss = make_expval(qsim.get_backend("qiskit:aer", seed=5), c, H_A, shots=shots)
    grad = jax.jit(jax.grad(loss))
    g = np.asarray(grad(p, jax.random.key(3)))
    z = (g - g_ref) / se
    assert np.all(np.abs(z) < 4), z
    # seeded: the same key gives the same gradient, another key another one
    np.testing.assert_array_equal(np.asarray(grad(p, jax.random.key(3))), g)
    assert not np.array_equal(np.asarray(grad(p, jax.random.key(4))), g)


def test_spsa_directional_derivative_and_mean():
    c, h, p = circuit_a(), H_A, P_A
    f_batch = jax.jit(jax.vmap(lambda q: qsim.expval(c, q, h)))
    g_ref = np.asarray(jax.grad(lambda q: qsim.expval(c, q, h))(jnp.asarray(p)))
    # one direction d: the estimate is (grad . d) d up to O(eps^2)
    g1 = spsa_grad(lambda b: f_batch(jnp.asarray(b)), p, key=1, n_samples=1, epsilon=1e-3)
    assert np.allclose(np.abs(g1), abs(g1[0]))        # all components have the same magnitude
    assert abs(abs(g1[0]) - g_ref @ np.sign(g1)) < 1e-6  # |grad . d|, with d = +-sign(g1)
    # averaged over many directions it is the gradient: per component variance sum_{j!=i} g_j^2 / n
    n = 400
    gm = spsa_grad(lambda b: f_batch(jnp.asarray(b)), p, key=2, n_samples=n, epsilon=1e-3)
    se = np.sqrt((np.sum(g_ref ** 2) - g_ref ** 2) / n)
    assert np.all(np.abs(gm - g_ref) < 4 * se + 1e-6)
    with pytest.raises(ValueError, match="n_samples"):
        spsa_grad(f_batch, p, key=1, n_samples=0)


def test_spsa_loss_with_optax_reduces_energy():
    c = qsim.Circuit(2)
    c.ry(0)
    c.ry(1)
    c.cnot(0, 1)
    h = qsim.Z(0) + qsim.Z(1)           # minimum -2 at ry angles (pi, pi)
    loss = make_expval("statevector", c, h, shots=None, gradient="spsa", n_samples=2, epsilon=0.1)
    opt = optax.sgd(0.3)
    params = jnp.array([0.5, -0.4])
    state = opt.init(params)
    e0 = float(loss(params))
    grad = jax.jit(jax.grad(loss))
    for step in range(30):
        updates, state = opt.update(grad(params, jax.random.key(step)), state)
        params = optax.apply_updates(params, updates)
    assert e0 > 1.0 and float(loss(params)) < -1.95, (e0, float(loss(params)))


def test_bad_arguments():
    c = qsim.Circuit(1)
    c.rx(0)
    with pytest.raises(ValueError, match="gradient must be"):
        make_expval("statevector", c, qsim.Z(0), gradient="finite-diff")
    with pytest.raises(TypeError, match="PauliSum"):
        make_expval("statevector", c, "Z")
    loss = make_expval("statevector", c, qsim.Z(0))
    with pytest.raises(ValueError, match="params has shape"):
        loss(jnp.zeros(3))
    with pytest.raises(ValueError, match="params has shape"):
        parameter_shift_grad(lambda b: np.zeros(len(b)), c, np.zeros(2))


@pytest.mark.skipif(not HAS_AER, reason="qiskit-aer not installed")
def test_vqe_on_noisy_fake_manila_reaches_noisy_optimum():
    """Two-qubit VQE with shots + parameter shift + SGD on fake_manila (transpiled, noisy); without
    qiskit-ibm-runtime (the 'ibm' extra) on the GenericBackendV2 stand-in instead."""
    from scipy.optimize import minimize

    c = qsim.Circuit(2)
    c.ry(0)
    c.ry(1)
    c.cnot(0, 1)
    h = qsim.Z(0) @ qsim.Z(1) + 0.6 * qsim.X(0) + 0.4 * qsim.Z(1)
    if HAS_IBM:
        backend = qsim.get_backend("qiskit:fake_manila", seed=0)
        assert backend.capabilities.max_qubits == 5
    else:  # pragma: no cover - exercised where the ibm extra is missing
        backend = qsim.get_backend("qiskit:generic", seed=0, num_qubits=2)
    assert backend.capabilities.noisy
    ideal = make_expval("statevector", c, h)
    exact_noisy = make_expval(backend, c, h)       # shots=None: density matrix + readout
    x0 = np.array([0.4, 0.3])

    def opt_min(f):
        res = minimize(lambda x: float(f(jnp.asarray(x))), x0, method="BFGS",
                       jac=lambda x: np.asarray(jax.grad(f)(jnp.asarray(x))), options={"gtol": 1e-5})
        return float(res.fun), res.x

    ideal_opt, _ = opt_min(ideal)
    noisy_opt, x_noisy = opt_min(exact_noisy)
    assert noisy_opt > ideal_opt + 0.02            # noise costs energy: the two optima differ

    shots = 4000
    loss = make_expval(backend, c, h, shots=shots)
    grad = jax.jit(jax.grad(loss))                 # one job per step (the unused forward is dropped)
    opt = optax.sgd(0.5)
    params = jnp.asarray(x0)
    state = opt.init(params)
    for step in range(20):
        updates, state = opt.update(grad(params, jax.random.key(step)), state)
        params = optax.apply_updates(params, updates)
    final = float(exact_noisy(params))
    se = backend.shot_stderr(c, np.asarray(params), h, shots)
    assert se < 0.03
    assert final - noisy_opt < 0.02, (final, noisy_opt, ideal_opt)
    assert float(ideal(params)) > ideal_opt - 1e-9 and abs(final - ideal_opt) > 0.02


def test_sampled_cost_gradients_on_a_sample_only_backend():
    """A cost over sampled bitstrings on a backend that only samples: the cost as an array or as a
    function of the bits gives the same numbers for the same key; the parameter-shift gradient is
    within 5 standard errors of the exact one and reproducible per key; bad sample shapes are refused."""
    c = circuit_a()
    costs = np.array([0.3, -1.0, 0.8, 0.1])

    class SampleOnly:
        name = "sample-only"

        def sample(self, circuit, params, shots, key=None):
            return np.asarray(qsim.sample(circuit, jnp.asarray(params), shots=shots, key=key))

    b = SampleOnly()
    key = jax.random.key(4)
    by_index = sample_cost(b, c, P_A, costs, 500, key)
    by_bits = sample_cost(b, c, P_A, lambda bits: costs[2 * bits[:, 0] + bits[:, 1]], 500, key)
    assert by_index == by_bits and by_index[1] > 0
    shots = 4000
    g = parameter_shift_sampled(b, c, P_A, costs, shots, key)
    np.testing.assert_array_equal(g, parameter_shift_sampled(b, c, P_A, costs, shots, key))
    with jax.enable_x64(True):
        g_ref = np.asarray(jax.grad(lambda q: qsim.probs(c, q) @ jnp.asarray(costs))(jnp.asarray(P_A)))
    # a slot's estimate is sum_k c_k f_k over its uses' rules, each f_k with variance <= ptp(cost)^2 / 4 / shots;
    # sum_k c_k^2 <= 1 + 2 (C1^2 + C2^2) for circuit_a (slot 0: two RY uses; slot 1: one CRX)
    sum_c2 = 1 + 2 * (FOUR_TERM[0][0] ** 2 + FOUR_TERM[2][0] ** 2)
    se = np.sqrt(sum_c2 * np.ptp(costs) ** 2 / 4 / shots)
    assert np.all(np.abs(g - g_ref) < 5 * se), (g, g_ref, se)
    s1 = spsa_sampled(b, c, P_A, costs, 200, key, n_samples=3, epsilon=0.3)
    np.testing.assert_array_equal(s1, spsa_sampled(b, c, P_A, costs, 200, key, n_samples=3, epsilon=0.3))

    class Wrong(SampleOnly):
        def sample(self, circuit, params, shots, key=None):
            return np.zeros((shots, 3), np.int8)

    with pytest.raises(ValueError, match=r"shape \(10, 3\), expected \(10, 2\)"):
        sample_cost(Wrong(), c, P_A, costs, 10, key)
    with pytest.raises(ValueError, match="shots must be a positive int"):
        sample_cost(b, c, P_A, costs, 0, key)
