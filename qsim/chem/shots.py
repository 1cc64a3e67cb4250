"""Shot-based VQE energies on any backend (``qsim.get_backend(name)``): one estimate of ``<H>`` with
its standard error, and the exact standard error of that estimator for comparison.

Backends measure the qubit-wise commuting groups of :func:`qsim.backends.group_observable` with
``shots`` shots each. The training loop with shot energies and parameter-shift or SPSA gradients is
:func:`qsim.chem.vqe.run_vqe_shots`.
"""

from __future__ import annotations

import numpy as np

from qsim.backends import get_backend
from qsim.circuits.circuit import Circuit
from qsim.circuits.operators import PauliSum
from qsim.infra.validation import positive_int

__all__ = ["resolve_backend", "shot_estimate", "exact_stderr"]


def resolve_backend(backend):
    """A backend object for a name (``"qiskit:aer"``, ...) or the object itself."""
    return get_backend(backend) if isinstance(backend, str) else backend


def shot_estimate(backend, circuit: Circuit, params, hamiltonian: PauliSum, shots: int, key=None):
    """``Estimate(mean, stderr)`` of ``<H>`` from ``shots`` shots per measurement group on ``backend``.

    ``stderr`` is the backend's own estimate from the sampled frequencies.
    """
    shots = positive_int(shots, "shots")
    return resolve_backend(backend).estimate(circuit, np.asarray(params, np.float64), hamiltonian, shots, key=key)


def exact_stderr(circuit: Circuit, params, hamiltonian: PauliSum, shots: int) -> float:
    """The exact standard error of the grouped ``shots``-shot estimator at ``params`` (from the
    statevector backend: every qsim backend uses the same grouping)."""
    return float(get_backend("statevector").shot_stderr(circuit, np.asarray(params, np.float64), hamiltonian,
                                                        positive_int(shots, "shots")))
