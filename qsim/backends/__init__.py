"""Backends: one circuit on the JAX simulator, any PennyLane device, Aer, fake IBM devices and IBM hardware.

    backend = qsim.get_backend("qiskit:aer")
    backend.probs(circuit, params, wires=None, shots=None, key=None)       # (2**k,) float
    backend.sample(circuit, params, shots, key=None, wires=None)           # (shots, k) int8 bits, wire 0 first
    backend.expval(circuit, params, observable, shots=None, key=None)      # float
    backend.expval_batch(circuit, params_batch, observable, shots=None, key=None)   # (B,)
    backend.estimate(circuit, params, observable, shots, key=None)         # Estimate(mean, stderr)
    backend.capabilities   # Capabilities(exact, shots, max_qubits, native_gates, differentiable, noisy)

``shots=None`` is exact where the backend can be (``capabilities.exact``), a ``ValueError`` where it
cannot. ``key`` is a ``jax.random`` key or an int seed. Built-in names: ``statevector``,
``pennylane:<device>``, ``qiskit:aer``, ``qiskit:fake_<device>``, ``qiskit:generic``,
``qiskit:<ibm backend>``; plugins register under the entry-point group ``qsim.backends``
(see :mod:`qsim.backends.registry`). Gradients for shot-based backends: :mod:`qsim.gradients`.
"""

from qsim.backends.base import Backend, BaseBackend, Capabilities, Estimate, group_observable
from qsim.backends.registry import ENTRY_POINT_GROUP, available_backends, get_backend, register_backend
from qsim.backends.retry import JobError, RetryPolicy, run_job

__all__ = ["Backend", "BaseBackend", "Capabilities", "Estimate", "group_observable", "get_backend",
           "register_backend", "available_backends", "ENTRY_POINT_GROUP", "JobError", "RetryPolicy", "run_job"]
