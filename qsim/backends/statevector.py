"""The ``statevector`` backend: qsim's JAX simulator behind the backend protocol.

Exact calls (``shots=None``) return JAX values straight from :mod:`qsim.simulator.statevector`, so ``jax.grad``
and ``jax.jit`` flow through ``backend.expval`` / ``backend.probs``. Shot calls simulate once per
parameter row and draw from the exact probabilities with a NumPy generator seeded from ``key``
(measurement-basis changes are applied to the state, so no extra circuit is compiled).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from qsim.backends.base import BaseBackend, Capabilities, _moments, bits_from_indices, group_observable
from qsim.circuits.gates import GATES
from qsim.infra.validation import memory_limit_bytes
from qsim.simulator.inputs import STATE_COPIES, check_params
from qsim.simulator.statevector import expval as sv_expval
from qsim.simulator.statevector import probs as sv_probs
from qsim.simulator.statevector import simulate

__all__ = ["StatevectorBackend"]

_H = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
_ROT = {"X": _H, "Y": _H @ np.diag([1, -1j])}  # measure X: H; measure Y: H Sdg


def _max_qubits(dtype) -> int:
    item = jnp.dtype(dtype).itemsize
    return int(np.floor(np.log2(max(memory_limit_bytes() / (STATE_COPIES * item), 2))))


class StatevectorBackend(BaseBackend):
    """Exact JAX statevector simulation (complex128 with float64 params, complex64 with float32).

    Args:
        seed: seeds the generator used when a shot call gets no ``key``.
        dtype: ``None`` (follow the params) or ``"complex64"``/``"complex128"``.
    """

    def __init__(self, seed: int | None = None, dtype=None):
        super().__init__(seed)
        self.name = "statevector"
        self.dtype = dtype
        self.capabilities = Capabilities(exact=True, shots=True, max_qubits=_max_qubits(dtype or jnp.complex128),
                                         native_gates=frozenset(GATES), differentiable=True, noisy=False)

    # exact paths keep JAX values (differentiable)
    def _jparams(self, circuit, params):
        return check_params(circuit, params, batched=False)

    def probs(self, circuit, params=None, wires=None, shots=None, key=None):
        self._check_circuit(circuit)
        wires = self._check_wires(circuit, wires)
        shots = self._shots(shots)
        if shots is None:
            return sv_probs(circuit, self._jparams(circuit, params), wires, dtype=self.dtype)
        return super().probs(circuit, params, wires, shots, key)

    def expval(self, circuit, params, observable, shots=None, key=None):
        self._check_circuit(circuit)
        self._check_observable(circuit, observable)
        shots = self._shots(shots)
        if shots is None:
            return sv_expval(circuit, self._jparams(circuit, params), observable, dtype=self.dtype)
        return super().expval(circuit, params, observable, shots, key)

    def _exact_expval(self, circuit, params, observable):
        return float(sv_expval(circuit, jnp.asarray(params), observable, dtype=self.dtype))

    def _state(self, circuit, params) -> np.ndarray:
        return np.asarray(simulate(circuit, jnp.asarray(params) if circuit.num_params else None, dtype=self.dtype))

    def _grouped(self, circuit, pb, observable, shots, seed):
        """One simulation per parameter row; each group's basis change is applied to the state in
        NumPy (no extra circuits to compile)."""
        const, groups = group_observable(observable)
        n = circuit.n_wires
        rng = np.random.default_rng(seed)
        means = np.full(len(pb), const, dtype=np.float64)
        var = np.zeros(len(pb), dtype=np.float64)
        for i, p in enumerate(pb):
            if not groups:
                break
            state = self._state(circuit, p).reshape((2,) * n)
            for g in groups:
                t = state
                for w, b in zip(g.wires, g.basis):
                    if b != "Z":
                        t = np.moveaxis(np.tensordot(_ROT[b], t, axes=([1], [w])), 0, w)
                pr = _marginal(np.abs(t) ** 2, g.wires)
                if shots is not None:
                    pr = rng.multinomial(shots, pr / pr.sum()) / shots
                m, v = _moments(pr, g)
                means[i] += m
                var[i] += v
        return means, var

    def _probs_batch(self, items, shots, seed):
        rng = np.random.default_rng(seed)
        out = []
        for c, p, wires in items:
            pr = _marginal(np.abs(self._state(c, p).reshape((2,) * c.n_wires)) ** 2, wires)
            out.append(pr if shots is None else rng.multinomial(shots, pr / pr.sum()) / shots)
        return out

    def _sample(self, circuit, params, wires, shots, seed):
        pr = _marginal(np.abs(self._state(circuit, params).reshape((2,) * circuit.n_wires)) ** 2, wires)
        idx = np.random.default_rng(seed).choice(pr.shape[0], size=shots, p=pr / pr.sum())
        return bits_from_indices(idx, len(wires))


def _marginal(p: np.ndarray, wires) -> np.ndarray:
    """Marginal probabilities ``(2**k,)`` on ``wires`` (in that order) of a ``(2,)*n`` tensor."""
    n = p.ndim
    other = tuple(w for w in range(n) if w not in wires)
    t = p.sum(axis=other) if other else p
    kept = sorted(wires)
    t = np.transpose(t, [kept.index(w) for w in wires])
    return np.asarray(t, dtype=np.float64).reshape(-1)
