"""``pennylane:<device>``: any installed PennyLane device behind the backend protocol.

    backend = qsim.get_backend("pennylane:lightning.qubit", seed=1)
    backend.expval(circuit, params, H)              # analytic on simulators
    backend.expval(circuit, params, H, shots=1000)  # grouped shot estimator (same as every backend)

The device is created with ``wires=circuit.n_wires`` plus the ``device_options`` given to
``get_backend`` (e.g. ``pennylane:qiskit.remote`` with ``backend=...`` when pennylane-qiskit is
installed); shot calls pass ``seed=`` to devices that accept one, so they are reproducible.
"""

from __future__ import annotations

import numpy as np

from qsim.backends.base import BaseBackend, Capabilities
from qsim.interop.pennylane import to_pennylane_hamiltonian, to_pennylane_ops
from qsim.circuits.gates import GATES

__all__ = ["PennyLaneBackend"]

_EXACT_DEVICES_NO = ("qiskit.remote", "braket", "ionq", "quantinuum")


class PennyLaneBackend(BaseBackend):
    """Runs qsim circuits on the PennyLane device ``device``.

    Args:
        device: a PennyLane device name (``"default.qubit"``, ``"lightning.qubit"``, ...).
        seed: seeds the generator used for shot calls without a ``key``.
        max_qubits: refuse larger circuits before running (default: unlimited for simulators).
        **device_options: passed to ``qml.device``.
    """

    def __init__(self, device: str, seed: int | None = None, max_qubits: int | None = None, **device_options):
        import pennylane as qml

        super().__init__(seed)
        if not isinstance(device, str) or not device:
            raise ValueError(f"pennylane backend needs a device name, got {device!r}")
        self.device_name = device
        self.name = f"pennylane:{device}"
        self._options = dict(device_options)
        try:  # fail now, with PennyLane's message, if the device is unknown
            self._device(1, None)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"PennyLane device {device!r} is not available: {exc}") from None
        self._qml = qml
        exact = not any(device.startswith(p) for p in _EXACT_DEVICES_NO)
        self.capabilities = Capabilities(exact=exact, shots=True, max_qubits=max_qubits,
                                         native_gates=frozenset(GATES), differentiable=False,
                                         noisy="mixed" in device and bool(device_options))
        self._cache: dict = {}

    def _device(self, n: int, seed):
        import pennylane as qml

        key = (n, seed)
        cache = getattr(self, "_cache", None)
        if cache is not None and key in cache:
            return cache[key]
        opts = dict(self._options)
        if seed is not None:
            opts["seed"] = seed
        try:
            dev = qml.device(self.device_name, wires=n, **opts)
        except TypeError:
            opts.pop("seed", None)
            dev = qml.device(self.device_name, wires=n, **opts)
        if cache is not None and seed is None:
            cache[key] = dev
        return dev

    def _run(self, circuit, params, measure, shots, seed):
        qml = self._qml
        dev = self._device(circuit.n_wires, seed)

        def body():
            to_pennylane_ops(circuit, params if circuit.num_params else None)
            return measure()

        qnode = qml.QNode(body, dev, interface=None)
        if shots is not None:
            qnode = qml.set_shots(qnode, shots=shots)
        return qnode()

    def _exact_expval(self, circuit, params, observable):
        h = to_pennylane_hamiltonian(observable)
        return float(np.real(self._run(circuit, params, lambda: self._qml.expval(h), None, None)))

    def _probs_batch(self, items, shots, seed):
        out = []
        for i, (c, p, wires) in enumerate(items):
            s = None if seed is None else (seed + i) % (2**31 - 1)
            pr = self._run(c, p, lambda w=wires: self._qml.probs(wires=list(w)), shots, s)
            out.append(np.asarray(pr, dtype=np.float64).reshape(-1))
        return out

    def _sample(self, circuit, params, wires, shots, seed):
        s = self._run(circuit, params, lambda: self._qml.sample(wires=list(wires)), shots, seed)
        return np.asarray(s, dtype=np.int8).reshape(shots, len(wires))
