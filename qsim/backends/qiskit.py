"""``qiskit:<name>``: Aer, the fake IBM backends, GenericBackendV2 and real IBM hardware.

    qsim.get_backend("qiskit:aer")                          # ideal; exact (statevector) or shots
    qsim.get_backend("qiskit:aer", noise_model=nm)          # noisy; exact = density matrix + readout
    qsim.get_backend("qiskit:fake_manila")                  # a fake IBM device (qiskit-ibm-runtime):
                                                            # transpiled to its basis and coupling map,
                                                            # simulated with its noise model
    qsim.get_backend("qiskit:fake_manila", engine="runtime")  # same, through SamplerV2 (local mode)
    qsim.get_backend("qiskit:generic", num_qubits=5)        # GenericBackendV2 (no ibm extra needed)
    qsim.get_backend("qiskit:ibm_kyiv")                     # real hardware via QiskitRuntimeService
    qsim.get_backend("qiskit:x", backend=my_backend_v2)     # any BackendV2 object (backend.run)

Every circuit is converted with :func:`qsim.interop.to_qiskit` (qubit w = wire w), measured into one
classical register in wire order and transpiled *once* per structure (cached on the circuit's
fingerprint; parameters stay symbolic and are bound per call), so parameter-shift batches cost one
transpilation. All circuits of a call go out as one job through :func:`qsim.backends.retry.run_job`
(retries with back-off; a failed job is resubmitted whole; then a :class:`JobError` naming the
backend and job ids). Counts are converted from Qiskit's little-endian strings to qsim's order.

Exact mode (``shots=None``) exists for simulators: ideal circuits use Aer's statevector method, noisy
ones Aer's density-matrix method with the noise model, followed by the model's readout confusion
matrices, so it equals the infinite-shot limit of the noisy sampler. Noisy shot simulation of
circuits up to 8 wires also uses the density-matrix method (then samples), which is much faster
than per-shot noise trajectories. Seeds go to ``seed_simulator``.

Credentials for hardware come only from the environment (``QISKIT_IBM_TOKEN``, and optionally
``QISKIT_IBM_CHANNEL``, ``QISKIT_IBM_INSTANCE``) or from the account saved with
``QiskitRuntimeService.save_account``; they are handed to the service and never stored on the backend,
logged, or included in messages (:func:`qsim.backends.retry.scrub`).
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np

from qsim.backends.base import BaseBackend, Capabilities
from qsim.backends.retry import RetryPolicy, run_job, scrub
from qsim.interop.qiskit import to_qiskit, to_sparse_pauli_op
from qsim.infra import validation

__all__ = ["QiskitBackend", "fake_backend"]

log = logging.getLogger("qsim.backends")

_CRED_OPTIONS = ("token", "api_key", "password", "credentials")
_DENSITY_MATRIX_MAX_WIRES = 8   # noisy shot simulation switches to the density-matrix method up to here


def fake_backend(name: str):
    """Instantiate the fake IBM backend ``fake_<device>`` (``FakeManilaV2`` for ``fake_manila``)."""
    try:
        import qiskit_ibm_runtime.fake_provider as fp
    except ImportError:
        raise ImportError(f"qiskit:{name} needs qiskit-ibm-runtime (the 'ibm' extra: pip install "
                          "qiskit-ibm-runtime); qiskit:generic is a built-in noisy stand-in") from None
    stem = name[len("fake_"):].replace("_", "").lower()
    classes = {n.lower(): n for n in dir(fp) if n.startswith("Fake")}
    for cand in (f"fake{stem}v2", f"fake{stem}"):
        if cand in classes:
            return getattr(fp, classes[cand])()
    known = sorted(n[4:].lower().removesuffix("v2") for n in classes.values()
                   if n not in ("FakeProviderForBackendV2", "FakeFractionalBackend"))
    raise ValueError(f"unknown fake backend {name!r}; known: {', '.join('fake_' + k for k in known)}")


def _aer_max_qubits(noisy: bool) -> int:
    item = 16 * (2 if noisy else 1)
    return int(math.floor(math.log2(max(validation.memory_limit_bytes() / item, 2)) / (2 if noisy else 1)))


def _readout_matrices(noise_model) -> dict:
    """Physical qubit -> 2x2 readout matrix ``M[true, measured]`` from an Aer NoiseModel."""
    if noise_model is None:
        return {}
    out = {}
    local = getattr(noise_model, "_local_readout_errors", {}) or {}
    for qubits, err in local.items():
        if len(qubits) == 1:
            out[int(qubits[0])] = np.asarray(err.probabilities, dtype=np.float64)
    default = getattr(noise_model, "_default_readout_error", None)
    if default is not None:
        out["default"] = np.asarray(default.probabilities, dtype=np.float64)
    return out


def _apply_readout(p: np.ndarray, phys: list[int], mats: dict) -> np.ndarray:
    if not mats:
        return p
    k = len(phys)
    t = p.reshape((2,) * k)
    for j, q in enumerate(phys):
        m = mats.get(q, mats.get("default"))
        if m is None:
            continue
        t = np.moveaxis(np.tensordot(m, t, axes=([0], [j])), 0, j)
    return t.reshape(-1)


def _counts_to_probs(counts: dict, k: int, shots: int) -> np.ndarray:
    p = np.zeros(2 ** k)
    for key, v in counts.items():
        s = key.replace(" ", "")
        p[int(s[::-1], 2)] += v
    return p / shots


def _memory_to_bits(memory, k: int) -> np.ndarray:
    idx = np.array([int(s.replace(" ", "")[::-1], 2) for s in memory], dtype=np.int64)
    return validation.indices_to_bits(idx, k)


class QiskitBackend(BaseBackend):
    """A Qiskit target behind the qsim backend protocol (see the module docstring).

    Args:
        name: ``"aer"``, ``"fake_<device>"``, ``"generic"``, or an IBM backend name (``"ibm_..."``).
        seed: seeds shot calls without a ``key`` and the transpiler.
        noise_model: an Aer ``NoiseModel`` (``aer`` only).
        backend: use this ``BackendV2`` object instead of resolving ``name``.
        engine: ``"aer"`` (simulate locally; default for simulators and fakes), ``"run"``
            (``backend.run``) or ``"runtime"`` (SamplerV2/EstimatorV2; default for hardware).
        estimator: on the runtime engine, estimate ``expval`` with EstimatorV2 (precision
            ``1/sqrt(shots)``) instead of the grouped SamplerV2 estimator.
        optimization_level: transpiler level (default 1; Aer without a device uses 0).
        retry: a :class:`~qsim.backends.retry.RetryPolicy`.
        service: a ``QiskitRuntimeService`` (or a callable building one from credential keywords).
        mode: a runtime ``Session``/``Batch`` to run primitives in (default: the backend).
        num_qubits: size of ``generic``.
        simulator_options: extra ``AerSimulator`` options (e.g. ``{"max_parallel_threads": 1}``).
        max_qubits: refuse larger circuits (default: the device size or what memory allows).
    """

    def __init__(self, name: str, *, seed: int | None = None, noise_model=None, backend=None, engine=None,
                 estimator: bool = False, optimization_level: int = 1, retry: RetryPolicy | None = None,
                 service=None, mode=None, num_qubits: int = 5, max_qubits: int | None = None,
                 simulator_options: dict | None = None, **unknown):
        for k in unknown:
            if k.lower() in _CRED_OPTIONS:
                raise TypeError(f"qiskit backend: do not pass {k!r} as an option; credentials come from the "
                                "environment (QISKIT_IBM_TOKEN) or QiskitRuntimeService.save_account")
        if unknown:
            raise TypeError(f"qiskit backend: unknown option(s) {sorted(unknown)}")
        super().__init__(seed)
        if not isinstance(name, str) or not name:
            raise ValueError(f"qiskit backend needs a name, got {name!r}")
        if engine not in (None, "aer", "run", "runtime"):
            raise ValueError(f"engine must be 'aer', 'run' or 'runtime', got {engine!r}")
        validation.one_of(optimization_level, "optimization_level", (0, 1, 2, 3))
        self.name = f"qiskit:{name}"
        self.retry = retry if retry is not None else RetryPolicy()
        if not isinstance(self.retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(self.retry).__name__}")
        self._seed_transpiler = 0 if seed is None else int(seed)
        self._opt = optimization_level
        self._estimator = bool(estimator)
        self._mode = mode
        self._cache: dict = {}
        self._noise = noise_model
        self._sim_opts = dict(simulator_options or {})
        self._device = None  # the BackendV2 circuits are transpiled for (None: plain Aer)
        if noise_model is not None and (name != "aer" or backend is not None):
            raise ValueError(f"noise_model applies to qiskit:aer only (a fake device brings its own), got it "
                             f"for qiskit:{name}")

        if backend is not None:
            self._kind = "custom"
            self._device = backend
            engine = engine or "run"
        elif name == "aer":
            self._kind = "aer"
            engine = engine or "aer"
            if engine != "aer":
                raise ValueError("qiskit:aer runs on the 'aer' engine")
        elif name.startswith("fake_"):
            self._kind = "fake"
            self._device = fake_backend(name)
            engine = engine or "aer"
        elif name == "generic":
            from qiskit.providers.fake_provider import GenericBackendV2

            self._kind = "fake"
            self._device = GenericBackendV2(num_qubits=int(num_qubits), seed=self._seed_transpiler, noise_info=True)
            engine = engine or "aer"
        else:
            self._kind = "hardware"
            self._device = self._hardware_backend(name, service)
            engine = engine or "runtime"
            if engine == "aer":
                raise ValueError(f"{self.name} is hardware: use engine='runtime'")
        self.engine = engine

        if self._kind == "fake" and engine == "aer":
            from qiskit_aer.noise import NoiseModel

            self._noise = NoiseModel.from_backend(self._device)
        self._build_simulators()
        noisy = self._noise is not None or self._kind in ("fake", "hardware") or (
            self._kind == "custom" and engine != "aer")
        exact = self._sim_exact is not None
        dev_q = getattr(self._device, "num_qubits", None) if self._device is not None else None
        if dev_q is not None:
            dev_q = int(dev_q)
            mq = dev_q if max_qubits is None else min(int(max_qubits), dev_q)
        else:
            mq = _aer_max_qubits(False) if max_qubits is None else int(max_qubits)
        native = frozenset(self._device.operation_names) if self._device is not None else None
        self.capabilities = Capabilities(exact=exact, shots=True, max_qubits=mq, native_gates=native,
                                         differentiable=False, noisy=bool(noisy))

    # ------------------------------------------------------------------ set-up
    def _hardware_backend(self, name, service):
        kwargs = {}
        for env, kw in (("QISKIT_IBM_TOKEN", "token"), ("QISKIT_IBM_CHANNEL", "channel"),
                        ("QISKIT_IBM_INSTANCE", "instance")):
            if os.environ.get(env):
                kwargs[kw] = os.environ[env]
        failure = None
        try:
            if service is None:
                from qiskit_ibm_runtime import QiskitRuntimeService

                service = QiskitRuntimeService(**kwargs)
            elif isinstance(service, type) or (callable(service) and not hasattr(service, "backend")):
                service = service(**kwargs)
            return service.backend(name)
        except ImportError:
            failure = "import"
        except Exception as exc:  # noqa: BLE001
            failure = f"{type(exc).__name__}: {scrub(exc)}"
        finally:
            kwargs.clear()
        # raised outside the except block, so the original exception (which may quote credentials)
        # is neither the cause nor the context of ours
        if failure == "import":
            raise ImportError(f"{self.name} needs qiskit-ibm-runtime (the 'ibm' extra)")
        raise RuntimeError(f"{self.name}: could not reach the IBM backend ({failure}); set QISKIT_IBM_TOKEN "
                           "or save an account with QiskitRuntimeService.save_account")

    def _build_simulators(self):
        self._sim_shots = self._sim_exact = None
        self._readout = {}
        if self.engine != "aer":
            return
        from qiskit_aer import AerSimulator

        o = self._sim_opts
        if self._kind == "fake":
            self._sim_shots = AerSimulator.from_backend(self._device, **o)
        else:
            self._sim_shots = AerSimulator(noise_model=self._noise, **o)
        # simulator_options={"method": ...} picks the shot simulator's method (e.g. "matrix_product_state"
        # for wide, shallow noisy circuits); the density-matrix / exact simulators keep their own
        o = {k: v for k, v in o.items() if k != "method"}
        # noisy shots on few qubits: one density matrix, then sampling (no per-shot trajectories)
        self._sim_shots_small = None
        if self._noise is not None:
            if self._kind == "fake":
                self._sim_shots_small = AerSimulator.from_backend(self._device, method="density_matrix", **o)
            else:
                self._sim_shots_small = AerSimulator(method="density_matrix", noise_model=self._noise, **o)
        method = "statevector" if self._noise is None else "density_matrix"
        self._sim_exact = AerSimulator(method=method, noise_model=self._noise, **o)
        self._readout = _readout_matrices(self._noise)

    def _transpile(self, qc):
        from qiskit import transpile

        if self._device is None:
            # noisy circuits that fit a density matrix use its (smaller) gate set; wider ones the
            # statevector simulator's target (shots by noise trajectories)
            small = self._noise is not None and qc.num_qubits <= _aer_max_qubits(True)
            target = self._sim_exact if small else self._sim_shots
            return transpile(qc, target, optimization_level=0, seed_transpiler=self._seed_transpiler)
        from qiskit.transpiler import generate_preset_pass_manager

        pm = generate_preset_pass_manager(backend=self._device, optimization_level=self._opt,
                                          seed_transpiler=self._seed_transpiler)
        return pm.run(qc)

    def _compiled(self, circuit, wires, exact: bool):
        """(transpiled parametric circuit, physical qubit of each measured wire); cached."""
        from qiskit import ClassicalRegister

        key = (circuit.key(), wires, exact)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        qc = to_qiskit(circuit)
        if not exact:
            creg = ClassicalRegister(len(wires), "c")
            qc.add_register(creg)
            for j, w in enumerate(wires):
                qc.measure(w, creg[j])
        tc = self._transpile(qc)
        if tc.layout is not None:
            layout = tc.layout.final_index_layout()
            phys = [int(layout[w]) for w in wires]
        else:
            phys = list(wires)
        if exact:
            tc.save_probabilities(phys)
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[key] = (tc, phys)
        return tc, phys

    @staticmethod
    def _bind(tc, params):
        if not tc.parameters:
            return tc
        return tc.assign_parameters({p: float(params[p.index]) for p in tc.parameters})

    # ------------------------------------------------------------------ execution
    def _execute(self, circs, shots, seed, memory: bool = False, n_wires: int | None = None):
        """Run bound circuits as one job; a list of counts dicts (or memory lists)."""
        n = len(circs)

        if self.engine == "runtime":
            sampler = self._sampler(seed)

            def submit():
                return sampler.run([(c,) for c in circs], shots=shots)

            def check(result):
                if len(result) != n:
                    raise RuntimeError(f"incomplete result: {len(result)} of {n} circuits")
                out = []
                for r in result:
                    data = r.data.c
                    if data.num_shots != shots:
                        raise RuntimeError(f"incomplete result: {data.num_shots} of {shots} shots")
                    out.append(data.get_bitstrings() if memory else data.get_counts())
                return out
        else:
            target = self._sim_shots if self.engine == "aer" else self._device
            if self.engine == "aer" and self._sim_shots_small is not None and n_wires is not None \
                    and n_wires <= _DENSITY_MATRIX_MAX_WIRES:
                target = self._sim_shots_small
            kwargs = {"shots": shots, "memory": memory}
            if seed is not None:
                kwargs["seed_simulator"] = seed

            def submit():
                return target.run(circs, **kwargs)

            def check(result):
                if not getattr(result, "success", True):
                    raise RuntimeError(f"job reported failure: {getattr(result, 'status', '')}")
                if len(result.results) != n:
                    raise RuntimeError(f"incomplete result: {len(result.results)} of {n} circuits")
                out = []
                for i in range(n):
                    if memory:
                        out.append(result.get_memory(i))
                    else:
                        counts = result.get_counts(i)
                        if sum(counts.values()) != shots:
                            raise RuntimeError(f"incomplete result: {sum(counts.values())} of {shots} shots")
                        out.append(counts)
                return out

        return run_job(submit, self.name, self.retry, check)

    def _local_sim(self) -> bool:
        mod = type(self._device).__module__
        return "fake_provider" in mod or "qiskit_aer" in mod

    def _sampler(self, seed):
        from qiskit_ibm_runtime import SamplerV2

        options = {}
        if seed is not None and self._local_sim():
            options["simulator"] = {"seed_simulator": int(seed)}
        return SamplerV2(mode=self._mode if self._mode is not None else self._device, options=options)

    def _probs_batch(self, items, shots, seed):
        exact = shots is None
        if exact and self._noise is not None:
            widest = max(c.n_wires for c, _, _ in items)
            limit = _aer_max_qubits(True)
            if widest > limit:
                raise ValueError(f"{self.name}: exact noisy results use a density matrix, at most {limit} qubits "
                                 f"here (circuit has {widest}); give shots= for trajectory sampling")
        compiled = [self._compiled(c, tuple(w), exact) for c, _, w in items]
        circs = [self._bind(tc, p) for (tc, _), (_, p, _) in zip(compiled, items)]
        if exact:
            result = run_job(lambda: self._sim_exact.run(circs), self.name, self.retry)
            out = []
            for i, ((_, phys), (_, _, w)) in enumerate(zip(compiled, items)):
                p = np.asarray(result.data(i)["probabilities"], dtype=np.float64)
                p = np.asarray(p).reshape((2,) * len(w)).transpose(tuple(range(len(w) - 1, -1, -1))).reshape(-1)
                out.append(_apply_readout(p, phys, self._readout))
            return out
        counts = self._execute(circs, shots, seed, n_wires=max(c.n_wires for c, _, _ in items))
        return [_counts_to_probs(cn, len(w), shots) for cn, (_, _, w) in zip(counts, items)]

    def _sample(self, circuit, params, wires, shots, seed):
        tc, _ = self._compiled(circuit, tuple(wires), False)
        mem = self._execute([self._bind(tc, params)], shots, seed, memory=True, n_wires=circuit.n_wires)[0]
        return _memory_to_bits(mem, len(wires))

    def expval_batch(self, circuit, params_batch, observable, shots=None, key=None):
        if not (self._estimator and self.engine == "runtime"):
            return super().expval_batch(circuit, params_batch, observable, shots, key)
        self._check_circuit(circuit)
        pb = self._check_params(circuit, params_batch, batched=True)
        pb = np.zeros((1, 0)) if pb is None else pb
        self._check_observable(circuit, observable)
        shots = self._shots(shots)
        return self._estimate_runtime(circuit, pb, observable, shots, self._seed(key, shots))

    def _estimate_runtime(self, circuit, pb, observable, shots, seed):
        from qiskit_ibm_runtime import EstimatorV2

        key = (circuit.key(), "estimator")
        if key not in self._cache:
            self._cache[key] = (self._transpile(to_qiskit(circuit)), None)
        tc, _ = self._cache[key]
        obs = to_sparse_pauli_op(observable, circuit.n_wires).apply_layout(tc.layout)
        options = {}
        if seed is not None and self._local_sim():
            options["simulator"] = {"seed_simulator": int(seed)}
        est = EstimatorV2(mode=self._mode if self._mode is not None else self._device, options=options)
        names = sorted(tc.parameters, key=lambda p: p.index)
        values = pb[:, [p.index for p in names]] if names else None
        pub = (tc, obs, values) if names else (tc, obs)
        precision = 1.0 / math.sqrt(shots)

        def check(result):
            evs = np.asarray(result[0].data.evs, dtype=np.float64).reshape(-1)
            if evs.shape[0] != (len(pb) if names else 1):
                raise RuntimeError(f"incomplete result: {evs.shape[0]} of {len(pb)} values")
            return evs if names else np.repeat(evs, len(pb))

        return run_job(lambda: est.run([pub], precision=precision), self.name, self.retry, check)
