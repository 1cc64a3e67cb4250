"""Backend conformance suite: the same circuits and observables on every available backend.

Exact backends must agree with ``statevector`` (complex128) to 1e-8; shot-based results must lie
within 4 standard errors of the exact value, where the standard error is computed exactly (from the
reference's exact probabilities), never from the samples under test. Noisy backends are compared
with their own exact (density-matrix + readout) mode. Also: registry and plugins, size checks before
submission, retries of failing jobs, the IBM hardware path through test doubles, and secrets.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsim
from qsim.backends import (Backend, Capabilities, JobError, RetryPolicy, available_backends, get_backend,
                           register_backend)
from qsim.backends import registry as registry_mod
from qsim.backends.base import group_observable, rotated_circuit

HAS_PL = importlib.util.find_spec("pennylane") is not None
HAS_LIGHTNING = importlib.util.find_spec("pennylane_lightning") is not None
HAS_AER = importlib.util.find_spec("qiskit_aer") is not None
HAS_IBM = importlib.util.find_spec("qiskit_ibm_runtime") is not None

SHOTS = 3000
FAKE_TOKEN = "qsim-fake-token-7f3a9c1e5b2d4e6f8a0b"

# (id, name, options, requirement, ideal?)
SPECS = [
    ("statevector", "statevector", {}, True, True),
    ("pl-default", "pennylane:default.qubit", {}, HAS_PL, True),
    ("pl-lightning", "pennylane:lightning.qubit", {}, HAS_LIGHTNING, True),
    ("aer", "qiskit:aer", {}, HAS_AER, True),
    ("fake_manila", "qiskit:fake_manila", {}, HAS_AER and HAS_IBM, False),
    ("generic", "qiskit:generic", {"num_qubits": 4}, HAS_AER, False),
    ("aer-noise", "qiskit:aer", lambda: {"noise_model": _noise_model()}, HAS_AER, False),
]


def _noise_model():
    """Depolarising gate errors and a 3% readout error on every qubit."""
    from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

    nm = NoiseModel()
    nm.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["rx", "ry", "rz", "h", "u", "s", "sdg"])
    nm.add_all_qubit_quantum_error(depolarizing_error(0.03, 2), ["cx", "crx", "rzz", "iswap"])
    nm.add_all_qubit_readout_error(ReadoutError([[0.97, 0.03], [0.03, 0.97]]))
    return nm


@pytest.fixture(scope="module", params=[s for s in SPECS], ids=[s[0] for s in SPECS])
def spec(request):
    sid, name, opts, ok, ideal = request.param
    if not ok:
        pytest.skip(f"{name} is not installed")
    return sid, get_backend(name, seed=11, **(opts() if callable(opts) else opts)), ideal


def _circuit() -> qsim.Circuit:
    c = qsim.Circuit(3)
    c.h(0)
    c.ry(1)
    c.cnot(0, 1)
    c.crx(1, 2)
    c.u3(2)
    c.rzz(0, 2)
    c.iswap(1, 2)
    c.rx(0, param=0)  # a shared slot
    c.s(2)
    return c


PARAMS = np.array([0.7, -1.1, 0.4, 1.3, -0.6, 0.9])
OBSERVABLES = {
    "zz+x": qsim.Z(0) @ qsim.Z(1) + 0.5 * qsim.X(2),
    "mixed": 0.3 * qsim.X(0) @ qsim.Y(1) - 0.8 * qsim.Y(2) + 0.2 * qsim.Z(1) + 0.25,
    "xyz": qsim.X(0) @ qsim.Y(1) @ qsim.Z(2) + qsim.Z(0),
}


def _ref_probs(wires=None):
    return np.asarray(qsim.probs(_circuit(), jnp.asarray(PARAMS), wires))


# ---------------------------------------------------------------------------------------------------
# conformance
# ---------------------------------------------------------------------------------------------------
def test_protocol_and_capabilities(spec):
    _, b, ideal = spec
    assert isinstance(b, Backend)
    cap = b.capabilities
    assert isinstance(cap, Capabilities)
    assert cap.shots and cap.exact
    assert cap.noisy == (not ideal)
    assert cap.max_qubits is None or cap.max_qubits >= 3
    assert b.name in repr(b)


def test_exact_probs_and_expval_match_statevector(spec):
    sid, b, ideal = spec
    c = _circuit()
    for wires in (None, (2, 0)):
        p = np.asarray(b.probs(c, PARAMS, wires=wires))
        assert p.shape == (2 ** (3 if wires is None else 2),)
        np.testing.assert_allclose(p.sum(), 1.0, atol=1e-10)
        if ideal:
            np.testing.assert_allclose(p, _ref_probs(wires), atol=1e-8, err_msg=sid)
    for name, h in OBSERVABLES.items():
        e = float(b.expval(c, PARAMS, h))
        ref = float(qsim.expval(c, jnp.asarray(PARAMS), h))
        if ideal:
            assert abs(e - ref) < 1e-8, (sid, name, e, ref)
        else:  # noise pulls towards the maximally mixed value but stays a valid expectation
            assert abs(e - ref) < 0.5 and abs(e) <= sum(abs(cf) for cf, _ in h) + 1e-9


def test_shot_expval_within_4_stderr(spec):
    sid, b, ideal = spec
    c = _circuit()
    ref_backend = get_backend("statevector") if ideal else b
    for i, (name, h) in enumerate(OBSERVABLES.items()):
        exact = float(ref_backend.expval(c, PARAMS, h))
        se = ref_backend.shot_stderr(c, PARAMS, h, SHOTS)
        est = b.estimate(c, PARAMS, h, SHOTS, key=jax.random.key(100 + i))
        assert abs(est.mean - exact) < 4 * se, (sid, name, est.mean, exact, se)
        assert 0.8 < est.stderr / se < 1.25, (sid, name, est.stderr, se)  # the sample-based error is honest
        e2 = b.expval(c, PARAMS, h, shots=SHOTS, key=jax.random.key(100 + i))
        assert float(e2) == pytest.approx(est.mean, abs=1e-12)  # same key, same numbers


def test_sample_bit_order_and_frequencies(spec):
    sid, b, ideal = spec
    c = qsim.Circuit(3)
    c.x(0)                       # wire 0 is 1, wires 1, 2 are 0
    c.ry(2, value=2.0)           # wire 2 is 1 with probability sin(1)^2 = 0.708
    bits = np.asarray(b.sample(c, None, SHOTS, key=5, wires=(0, 1, 2)))
    assert bits.shape == (SHOTS, 3) and set(np.unique(bits)) <= {0, 1}
    means = bits.mean(axis=0)
    if ideal:
        assert means[0] == 1 and means[1] == 0
        p = np.sin(1.0) ** 2
        assert abs(means[2] - p) < 4 * np.sqrt(p * (1 - p) / SHOTS)
    else:  # readout errors flip a few percent
        assert means[0] > 0.85 and means[1] < 0.15 and 0.55 < means[2] < 0.85
    # the wires argument orders the columns
    rev = np.asarray(b.sample(c, None, SHOTS, key=5, wires=(2, 0)))
    assert rev.shape == (SHOTS, 2)
    assert abs(rev[:, 0].mean() - means[2]) < 0.1 and abs(rev[:, 1].mean() - means[0]) < 0.1
    # frequencies (probs with shots) agree with the exact probabilities bin by bin
    pe = np.asarray(b.probs(c, None, wires=(0, 2)))
    ps = np.asarray(b.probs(c, None, wires=(0, 2), shots=SHOTS, key=9))
    se = np.sqrt(pe * (1 - pe) / SHOTS) + 1e-12
    assert np.all(np.abs(ps - pe) <= 4 * se + 1e-12), (sid, ps, pe)


def test_seeded_and_reproducible(spec):
    _, b, _ = spec
    c = _circuit()
    a1 = np.asarray(b.sample(c, PARAMS, 200, key=jax.random.key(1)))
    a2 = np.asarray(b.sample(c, PARAMS, 200, key=jax.random.key(1)))
    a3 = np.asarray(b.sample(c, PARAMS, 200, key=jax.random.key(2)))
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, a3)


def test_expval_batch_matches_single_calls(spec):
    _, b, _ = spec
    c = _circuit()
    h = OBSERVABLES["mixed"]
    pb = np.stack([PARAMS, PARAMS + 0.3, PARAMS - 0.2])
    batch = np.asarray(b.expval_batch(c, pb, h))
    single = np.array([float(b.expval(c, p, h)) for p in pb])
    np.testing.assert_allclose(batch, single, atol=1e-10)


def test_bad_inputs_rejected(spec):
    _, b, _ = spec
    c = _circuit()
    with pytest.raises(ValueError, match="shots"):
        b.expval(c, PARAMS, qsim.Z(0), shots=0)
    with pytest.raises(ValueError, match="params"):
        b.probs(c, PARAMS[:2])
    with pytest.raises(ValueError, match="wire 3"):
        b.probs(c, PARAMS, wires=(0, 3))
    with pytest.raises(TypeError, match="PauliSum"):
        b.expval(c, PARAMS, "Z0")
    with pytest.raises(ValueError, match="outside"):
        b.expval(c, PARAMS, qsim.Z(5))
    with pytest.raises(TypeError, match="Circuit"):
        b.probs("not a circuit")


def test_statevector_backend_is_differentiable():
    b = get_backend("statevector")
    c = qsim.Circuit(2)
    c.ry(0)
    c.cnot(0, 1)
    c.rx(1)
    h = qsim.Z(0) @ qsim.Z(1) + 0.5 * qsim.X(1)
    p = jnp.array([0.4, -0.9])
    g = jax.grad(lambda q: b.expval(c, q, h))(p)
    g_ref = jax.grad(lambda q: qsim.expval(c, q, h))(p)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), atol=1e-12)
    assert b.capabilities.differentiable


def test_grouping_is_qubit_wise_commuting_and_complete():
    h = OBSERVABLES["mixed"] + qsim.X(0) @ qsim.X(1) + qsim.Z(0) @ qsim.Z(2) - 1.5
    const, groups = group_observable(h)
    assert const == pytest.approx(0.25 - 1.5)
    terms = h.simplify().terms
    seen = 0
    for g in groups:
        basis = dict(zip(g.wires, g.basis))
        k = len(g.wires)
        for cf, m in zip(g.coeffs, g.masks):
            s = tuple((w, basis[w]) for j, w in enumerate(g.wires) if (m >> (k - 1 - j)) & 1)
            assert terms[s] == pytest.approx(cf)   # every term is measured in a compatible basis
            seen += 1
    assert seen == len(terms) - 1
    assert len(groups) < seen                       # some terms share a measurement
    rc = rotated_circuit(_circuit(), groups[0])
    assert rc.ops[: len(_circuit().ops)] == _circuit().ops or len(rc.ops) >= len(_circuit().ops)
    with pytest.raises(ValueError, match="Hermitian"):
        group_observable(1j * qsim.Z(0))


# ---------------------------------------------------------------------------------------------------
# registry and plugins
# ---------------------------------------------------------------------------------------------------
def test_unknown_backend_lists_known_prefixes():
    with pytest.raises(ValueError, match="known prefixes: .*qiskit.*statevector"):
        get_backend("nosuch:thing")
    with pytest.raises(TypeError):
        get_backend("")
    assert {"statevector", "pennylane", "qiskit"} <= set(available_backends())
    assert qsim.get_backend("statevector").name == "statevector"


def test_register_backend_at_runtime():
    made = []

    def factory(spec, **opts):
        made.append((spec, opts))
        return get_backend("statevector")

    register_backend("mytest", factory, overwrite=True)
    try:
        b = get_backend("mytest:abc", seed=3)
        assert b.name == "statevector" and made == [("abc", {"seed": 3})]
        with pytest.raises(ValueError, match="already registered"):
            register_backend("mytest", factory)
        with pytest.raises(ValueError, match="without ':'"):
            register_backend("a:b", factory)
    finally:
        registry_mod._RUNTIME.pop("mytest", None)


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch):
    """A real installed-distribution entry point (a dist-info on sys.path) resolves by its prefix."""
    pkg = tmp_path / "qsim_toy_plugin.py"
    pkg.write_text("import qsim\n"
                   "def make(spec, **options):\n"
                   "    b = qsim.get_backend('statevector', **options)\n"
                   "    b.name = 'toy:' + str(spec)\n"
                   "    return b\n")
    dist = tmp_path / "qsim_toy_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: qsim-toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[qsim.backends]\ntoy = qsim_toy_plugin:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry_mod._reset_plugins()
    try:
        assert "toy" in available_backends()
        b = get_backend("toy:device7", seed=1)
        assert b.name == "toy:device7"
        assert float(b.expval(_circuit(), PARAMS, qsim.Z(0))) == pytest.approx(
            float(qsim.expval(_circuit(), jnp.asarray(PARAMS), qsim.Z(0))))
    finally:
        sys.modules.pop("qsim_toy_plugin", None)
        monkeypatch.undo()
        registry_mod._reset_plugins()


# ---------------------------------------------------------------------------------------------------
# Qiskit specifics: size checks, retries, hardware path, secrets
# ---------------------------------------------------------------------------------------------------
needs_aer = pytest.mark.skipif(not HAS_AER, reason="qiskit-aer not installed")
needs_ibm = pytest.mark.skipif(not (HAS_AER and HAS_IBM), reason="qiskit-ibm-runtime not installed")


class _Job:
    def __init__(self, jid, result=None, exc=None):
        self._jid, self._result, self._exc = jid, result, exc
        self.cancelled = False

    def job_id(self):
        return self._jid

    def result(self, timeout=None):
        if self._exc is not None:
            raise self._exc
        return self._result

    def cancel(self):
        self.cancelled = True


class FlakyDevice:
    """A BackendV2 test double: its first ``n_fail`` jobs fail, later ones run on a real Aer simulator."""

    def __init__(self, n_fail, num_qubits=3):
        from qiskit_aer import AerSimulator

        self._sim = AerSimulator()
        self.n_fail = n_fail
        self.jobs = []
        self.num_qubits = num_qubits
        self.target = self._sim.target
        self.operation_names = self._sim.operation_names

    def __getattr__(self, item):  # everything the transpiler asks for comes from the real simulator
        return getattr(self._sim, item)

    def run(self, circuits, **kwargs):
        jid = f"job-{len(self.jobs)}"
        if len(self.jobs) < self.n_fail:
            job = _Job(jid, exc=RuntimeError(f"device queue error in {jid}"))
        else:
            job = _Job(jid, result=self._sim.run(circuits, **kwargs).result())
        self.jobs.append(job)
        return job


@needs_aer
def test_failing_twice_then_succeeding_job_is_retried(caplog):
    device = FlakyDevice(n_fail=2)
    delays = []
    b = get_backend("qiskit:flaky", backend=device, seed=1,
                    retry=RetryPolicy(attempts=4, backoff_s=0.5, sleep=delays.append))
    with caplog.at_level(logging.INFO, logger="qsim.backends"):
        est = b.estimate(_circuit(), PARAMS, OBSERVABLES["zz+x"], SHOTS, key=3)
    assert len(device.jobs) == 3 and all(j.cancelled for j in device.jobs[:2])
    assert delays == [0.5, 1.0]                      # exponential back-off
    text = caplog.text
    assert "job-0 failed (attempt 1/4)" in text and "job-1 failed (attempt 2/4)" in text
    assert "succeeded after 2 failed attempt(s)" in text
    exact = float(qsim.expval(_circuit(), jnp.asarray(PARAMS), OBSERVABLES["zz+x"]))
    se = get_backend("statevector").shot_stderr(_circuit(), PARAMS, OBSERVABLES["zz+x"], SHOTS)
    assert abs(est.mean - exact) < 4 * se            # the result comes from the one good job only


@needs_aer
def test_always_failing_job_raises_clear_error():
    device = FlakyDevice(n_fail=10**9)
    b = get_backend("qiskit:broken_device", backend=device, retry=RetryPolicy(attempts=3, backoff_s=0.0))
    with pytest.raises(JobError) as info:
        b.sample(_circuit(), PARAMS, 100, key=1)
    msg = str(info.value)
    assert "qiskit:broken_device" in msg and "after 3 attempt(s)" in msg
    assert "job-0, job-1, job-2" in msg and "device queue error in job-2" in msg
    assert info.value.job_ids == ["job-0", "job-1", "job-2"] and info.value.backend == "qiskit:broken_device"


@needs_aer
def test_timed_out_job_is_cancelled_and_resubmitted():
    class SlowFirst(FlakyDevice):
        timeouts: list = []

        def run(self, circuits, **kwargs):
            jid = f"job-{len(self.jobs)}"
            real = self._sim.run(circuits, **kwargs).result()
            first = not self.jobs

            class Job(_Job):
                def result(inner, timeout=None):
                    SlowFirst.timeouts.append(timeout)
                    if first:
                        raise TimeoutError(f"{jid} still queued after {timeout} s")
                    return real

            job = Job(jid)
            self.jobs.append(job)
            return job

    device = SlowFirst(n_fail=0)
    b = get_backend("qiskit:slow", backend=device, retry=RetryPolicy(attempts=2, backoff_s=0.0, timeout_s=30.0))
    bits = np.asarray(b.sample(_circuit(), PARAMS, 20, key=1))
    assert bits.shape == (20, 3) and len(device.jobs) == 2
    assert device.jobs[0].cancelled and SlowFirst.timeouts == [30.0, 30.0]


@needs_aer
def test_incomplete_results_are_retried_not_mixed():
    """A job whose result lacks a circuit is a failure: the whole job is resubmitted."""
    from qiskit_aer import AerSimulator

    class Truncating(FlakyDevice):
        def run(self, circuits, **kwargs):
            jid = f"job-{len(self.jobs)}"
            res = self._sim.run(circuits, **kwargs).result()
            if not self.jobs:
                res.results = res.results[:-1]     # first job loses a circuit
            job = _Job(jid, result=res)
            self.jobs.append(job)
            return job

    device = Truncating(n_fail=0)
    b = get_backend("qiskit:trunc", backend=device, retry=RetryPolicy(attempts=2, backoff_s=0.0), seed=2)
    h = OBSERVABLES["mixed"]
    vals = b.expval_batch(_circuit(), np.stack([PARAMS, PARAMS + 0.1]), h, shots=SHOTS, key=4)
    assert len(device.jobs) == 2 and vals.shape == (2,)
    ref = AerSimulator  # noqa: F841 - the reference is the statevector
    exact = np.array([float(qsim.expval(_circuit(), jnp.asarray(p), h)) for p in (PARAMS, PARAMS + 0.1)])
    se = np.array([get_backend("statevector").shot_stderr(_circuit(), p, h, SHOTS) for p in (PARAMS, PARAMS + 0.1)])
    assert np.all(np.abs(vals - exact) < 4 * se)


@needs_ibm
def test_circuit_too_large_fails_before_submission():
    device = FlakyDevice(n_fail=0, num_qubits=2)
    b = get_backend("qiskit:small", backend=device)
    with pytest.raises(ValueError, match="3 qubits; backend 'qiskit:small' allows at most 2"):
        b.expval(_circuit(), PARAMS, qsim.Z(0), shots=10)
    assert device.jobs == []
    fm = get_backend("qiskit:fake_manila")
    big = qsim.Circuit(6)
    big.h(5)
    with pytest.raises(ValueError, match="6 qubits; backend 'qiskit:fake_manila' allows at most 5"):
        fm.probs(big, shots=10)
    with pytest.raises(ValueError, match="unknown fake backend"):
        get_backend("qiskit:fake_nowhere")


@needs_ibm
def test_fake_device_circuits_are_transpiled_to_basis_and_coupling_map():
    b = get_backend("qiskit:fake_manila", seed=0)
    c = qsim.Circuit(4)
    c.h(0)
    c.cnot(0, 3)              # not adjacent on manila's line 0-1-2-3-4: needs routing
    c.crx(3, 1)
    c.iswap(1, 2)
    tc, phys = b._compiled(c, (0, 1, 2, 3), False)
    assert set(tc.count_ops()) <= b.capabilities.native_gates
    cmap = {tuple(e) for e in b._device.coupling_map}
    for inst in tc.data:
        if inst.operation.num_qubits == 2:
            assert tuple(tc.find_bit(q).index for q in inst.qubits) in cmap
    assert len(set(phys)) == 4
    # and it still computes the right thing (noisy, so loosely)
    ref = np.asarray(qsim.probs(c, jnp.asarray([0.8])))
    assert np.abs(np.asarray(b.probs(c, [0.8])) - ref).max() < 0.15


@needs_aer
def test_noisy_aer_exact_mode_refuses_wide_circuits_but_allows_shots():
    from qsim.backends.qiskit import _aer_max_qubits

    b = get_backend("qiskit:aer", noise_model=_noise_model())
    n = _aer_max_qubits(True) + 1
    assert b.capabilities.max_qubits >= n                  # shots (trajectories) are allowed this wide
    c = qsim.Circuit(n)
    c.h(0)
    with pytest.raises(ValueError, match="exact noisy results use a density matrix"):
        b.expval(c, None, qsim.Z(0))
    with pytest.raises(ValueError, match="noise_model applies to qiskit:aer only"):
        get_backend("qiskit:generic", noise_model=_noise_model())


@needs_aer
def test_credentials_are_refused_as_options():
    with pytest.raises(TypeError, match="credentials come from the environment"):
        get_backend("qiskit:aer", token="abc")


class ServiceDouble:
    """Stands in for QiskitRuntimeService: records the credentials, serves an ideal or fake device."""

    instances: list = []

    def __init__(self, device=None, **credentials):
        self.credentials = credentials
        self.device = device
        ServiceDouble.instances.append(self)

    def backend(self, name):
        if self.device is not None:
            return self.device
        from qiskit_aer import AerSimulator

        return AerSimulator()


@needs_ibm
def test_hardware_path_through_sampler_primitive(monkeypatch):
    """The real-hardware code path (service -> transpile -> SamplerV2 -> counts) on an ideal device double."""
    monkeypatch.setenv("QISKIT_IBM_TOKEN", FAKE_TOKEN)
    ServiceDouble.instances.clear()
    b = get_backend("qiskit:ibm_double", service=ServiceDouble, seed=4)
    assert ServiceDouble.instances[0].credentials["token"] == FAKE_TOKEN
    assert b.engine == "runtime" and not b.capabilities.exact
    with pytest.raises(ValueError, match="shot-based: give shots"):
        b.expval(_circuit(), PARAMS, qsim.Z(0))
    h = OBSERVABLES["mixed"]
    est = b.estimate(_circuit(), PARAMS, h, SHOTS, key=8)
    exact = float(qsim.expval(_circuit(), jnp.asarray(PARAMS), h))
    se = get_backend("statevector").shot_stderr(_circuit(), PARAMS, h, SHOTS)
    assert abs(est.mean - exact) < 4 * se
    bits = np.asarray(b.sample(_circuit(), PARAMS, 50, key=1, wires=(1,)))
    assert bits.shape == (50, 1)
    # EstimatorV2 route
    be = get_backend("qiskit:ibm_double", service=ServiceDouble, estimator=True, seed=4)
    v = be.expval_batch(_circuit(), np.stack([PARAMS, PARAMS]), h, shots=SHOTS, key=2)
    assert v.shape == (2,) and np.all(np.abs(v - exact) < 0.15)


@needs_ibm
def test_service_errors_never_leak_the_token(monkeypatch):
    monkeypatch.setenv("QISKIT_IBM_TOKEN", FAKE_TOKEN)

    class Refusing:
        def __init__(self, **credentials):
            raise PermissionError(f"invalid token {credentials['token']}")

    with pytest.raises(RuntimeError) as info:
        get_backend("qiskit:ibm_nowhere", service=Refusing)
    assert FAKE_TOKEN not in str(info.value) and "***" in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


@needs_ibm
def test_token_never_reaches_run_directory_or_logs(tmp_path, monkeypatch, caplog):
    """Fake token in the environment; a logged VQE-style workflow on the hardware path with a run dir."""
    from qsim.gradients import make_expval
    from qsim.infra.runs import RunDir

    monkeypatch.setenv("QISKIT_IBM_TOKEN", FAKE_TOKEN)
    ServiceDouble.instances.clear()
    caplog.set_level(logging.DEBUG)
    c = qsim.Circuit(2)
    c.ry(0)
    c.ry(1)
    c.cnot(0, 1)
    h = qsim.Z(0) @ qsim.Z(1) + 0.5 * qsim.X(0)
    b = get_backend("qiskit:ibm_double", service=ServiceDouble, seed=1,
                    retry=RetryPolicy(attempts=2, backoff_s=0.0))
    assert ServiceDouble.instances[0].credentials["token"] == FAKE_TOKEN  # the token did reach the service
    loss = make_expval(b, c, h, shots=500)
    cfg = {"backend": b.name, "shots": 500, "capabilities": repr(b.capabilities)}
    out = tmp_path / "run"
    params = jnp.array([0.3, -0.2])
    with RunDir.open(out, command="vqe", config=cfg) as run:
        for step in range(3):
            key = jax.random.key(step)
            e, g = jax.value_and_grad(loss)(params, key)
            params = params - 0.2 * g
            run.log_metrics(step, energy=float(e), grad_norm=float(jnp.linalg.norm(g)))
            logging.getLogger("qsim.test").info("step %d energy %.4f backend %r", step, float(e), b)
        run.write_summary(energy=float(e), backend=b.name)
    # a failing job's error message and log lines must not carry the token either
    b_fail = get_backend("qiskit:ibm_double", backend=FlakyDevice(n_fail=10), retry=RetryPolicy(2, 0.0))
    with pytest.raises(JobError) as info:
        b_fail.sample(c, params, 10, key=1)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"config.json", "metrics.csv", "summary.json"} <= {p.name for p in files}
    for p in files:
        assert FAKE_TOKEN.encode() not in p.read_bytes(), p
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    assert caplog.records, "the workflow should have logged job submissions"
    for rec in caplog.records:
        assert FAKE_TOKEN not in rec.getMessage()
    assert FAKE_TOKEN not in str(info.value) and FAKE_TOKEN not in repr(b) and FAKE_TOKEN not in str(vars(b))


@pytest.mark.hardware
def test_real_ibm_hardware_smoke():  # pragma: no cover - needs an account and queue time
    name = os.environ.get("QSIM_IBM_BACKEND")
    if not name:
        pytest.skip("set QSIM_IBM_BACKEND (and QISKIT_IBM_TOKEN or a saved account)")
    b = get_backend(f"qiskit:{name}")
    c = qsim.Circuit(2)
    c.h(0)
    c.cnot(0, 1)
    est = b.estimate(c, None, qsim.Z(0) @ qsim.Z(1), shots=1000)
    assert est.mean > 0.7
