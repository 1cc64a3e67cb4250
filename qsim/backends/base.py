"""The backend protocol, its capability record, and the shared shot-based machinery.

Every backend offers (shapes unbatched; ``k = len(wires)``, wire order as given, first wire the most
significant bit of an index, like ``qsim.probs``)::

    backend.probs(circuit, params=None, wires=None, shots=None, key=None)   -> (2**k,) float
    backend.sample(circuit, params, shots, key=None, wires=None)            -> (shots, k) int8 bits
    backend.expval(circuit, params, observable, shots=None, key=None)       -> float
    backend.expval_batch(circuit, params_batch, observable, shots=None, key=None) -> (B,) float
    backend.estimate(circuit, params, observable, shots, key=None)          -> Estimate(mean, stderr)
    backend.capabilities                                                    -> Capabilities

``shots=None`` means exact where the backend can (``capabilities.exact``) and raises a ``ValueError``
where it cannot (hardware). ``key`` is a ``jax.random`` key or an int seed; with ``key=None`` a
shot-based call draws from the backend's own generator (seeded by its ``seed=`` option), so a
sequence of calls is reproducible but calls differ from each other.

Shot-based expectation values of a :class:`~qsim.circuits.operators.PauliSum` are estimated the same way on
every backend: the terms are split into qubit-wise commuting groups (greedy, in term order); each
group is measured with ``shots`` shots after rotating X -> Z (H) and Y -> Z (Sdg, H); the estimate
is the sum of the group means plus the identity coefficient. Its variance is
``sum_g Var_g(sum_t c_t P_t) / shots`` (:meth:`BaseBackend.shot_stderr` computes it from exact
probabilities, :meth:`BaseBackend.estimate` from the samples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

import jax

from qsim.circuits.circuit import Circuit
from qsim.circuits.operators import PauliSum
from qsim.infra import validation
from qsim.infra.validation import indices_to_bits as bits_from_indices  # re-export (public name)

__all__ = ["Capabilities", "Backend", "BaseBackend", "Estimate", "MeasurementGroup", "group_observable",
           "rotated_circuit", "seed_from_key", "check_shots", "bits_from_indices"]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do.

    Attributes:
        exact: ``shots=None`` gives exact probabilities / expectation values.
        shots: finite-shot sampling is available.
        max_qubits: largest circuit it accepts (``None``: limited by memory only).
        native_gates: gate names it runs without translation (qsim names for simulators, the
            device's basis for transpiled backends), or ``None`` when it decomposes anything.
        differentiable: ``jax.grad`` flows through ``expval(shots=None)`` (else use
            :mod:`qsim.gradients`).
        noisy: results include a noise model (so they differ from the ideal statevector).
    """

    exact: bool
    shots: bool
    max_qubits: int | None
    native_gates: frozenset | None
    differentiable: bool
    noisy: bool = False


class Estimate(NamedTuple):
    """A shot-based expectation value and its standard error (from the samples)."""

    mean: float
    stderr: float


@runtime_checkable
class Backend(Protocol):
    """What every qsim backend provides (see the module docstring for shapes and conventions)."""

    name: str
    capabilities: Capabilities

    def probs(self, circuit: Circuit, params=None, wires=None, shots=None, key=None): ...

    def sample(self, circuit: Circuit, params, shots: int, key=None, wires=None): ...

    def expval(self, circuit: Circuit, params, observable: PauliSum, shots=None, key=None): ...


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def check_shots(shots, allow_none: bool = True):
    """``None`` (where allowed) or a positive int (:func:`qsim.infra.validation.positive_int`)."""
    if shots is None and allow_none:
        return None
    return validation.positive_int(shots, "shots")


def seed_from_key(key) -> int | None:
    """An int seed in ``[0, 2**31 - 1)`` from a ``jax.random`` key or an int (``None`` stays ``None``)."""
    if key is None:
        return None
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return validation.nonnegative_int(key, "seed") % (2**31 - 1)

    try:
        if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.wrap_key_data(key)
        return int(jax.random.randint(key, (), 0, 2**31 - 1))
    except (AttributeError, TypeError, ValueError):
        raise TypeError(f"key must be a jax.random key or an int seed, got {type(key).__name__}") from None


class MeasurementGroup(NamedTuple):
    """Qubit-wise commuting terms measured together: ``basis`` wire -> "X"|"Y"|"Z" (sorted wires)."""

    wires: tuple[int, ...]
    basis: tuple[str, ...]
    coeffs: tuple[float, ...]
    masks: tuple[int, ...]          # per term: bit mask over the group's wires (wires[0] most significant)


def group_observable(observable: PauliSum) -> tuple[float, list[MeasurementGroup]]:
    """(identity coefficient, qubit-wise commuting groups) of a Hermitian PauliSum."""
    if not isinstance(observable, PauliSum):
        raise TypeError(f"observable must be a qsim PauliSum, got {type(observable).__name__}")
    obs = observable.simplify(0.0)
    if not obs.is_hermitian(1e-12):
        raise ValueError("expval needs a Hermitian observable (real coefficients)")
    const = 0.0
    raw: list[tuple[dict, list]] = []
    for c, s in obs:
        if not s:
            const += c.real
            continue
        for basis, terms in raw:
            if all(basis.get(w, p) == p for w, p in s):
                basis.update(dict(s))
                terms.append((c.real, s))
                break
        else:
            raw.append((dict(s), [(c.real, s)]))
    groups = []
    for basis, terms in raw:
        wires = tuple(sorted(basis))
        k = len(wires)
        masks = tuple(sum(1 << (k - 1 - wires.index(w)) for w, _ in s) for _, s in terms)
        groups.append(MeasurementGroup(wires, tuple(basis[w] for w in wires),
                                       tuple(c for c, _ in terms), masks))
    return const, groups


def rotated_circuit(circuit: Circuit, group: MeasurementGroup) -> Circuit:
    """``circuit`` followed by the rotations that map the group's X/Y measurements onto Z."""
    c = circuit.copy()
    for w, p in zip(group.wires, group.basis):
        if p == "X":
            c.h(w)
        elif p == "Y":
            c.sdg(w)
            c.h(w)
    return c


def _parity_values(group: MeasurementGroup) -> np.ndarray:
    """Eigenvalue of the group's operator on each basis state of its wires: ``(2**k,)``."""
    k = len(group.wires)
    idx = np.arange(2 ** k)
    v = np.zeros(2 ** k)
    for c, m in zip(group.coeffs, group.masks):
        par = np.array([bin(i & m).count("1") & 1 for i in idx])
        v += c * (1 - 2 * par)
    return v


def _moments(p, group: MeasurementGroup) -> tuple[float, float]:
    v = _parity_values(group)
    p = np.asarray(p, dtype=np.float64)
    mean = float(p @ v)
    return mean, float(max(p @ (v * v) - mean * mean, 0.0))


# ---------------------------------------------------------------------------------------------------
# the base class
# ---------------------------------------------------------------------------------------------------
class BaseBackend:
    """Shared validation and the grouped shot estimator; subclasses implement two primitives.

    ``_probs_batch(items, shots, seed) -> list of (2**k,) arrays`` where ``items`` is a list of
    ``(circuit, params, wires)``: exact probabilities when ``shots is None``, else empirical
    frequencies of ``shots`` shots per item (all items in one job where the backend has jobs).
    ``_sample(circuit, params, wires, shots, seed) -> (shots, k) int8``.
    """

    name: str = "base"
    capabilities: Capabilities

    def __init__(self, seed: int | None = None):
        self._rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return f"<qsim backend {self.name!r}>"

    # -- validation -------------------------------------------------------------------------------
    def _check_circuit(self, circuit: Circuit) -> Circuit:
        if not isinstance(circuit, Circuit):
            raise TypeError(f"expected a qsim.Circuit, got {type(circuit).__name__}")
        mq = self.capabilities.max_qubits
        if mq is not None and circuit.n_wires > mq:
            raise ValueError(f"circuit has {circuit.n_wires} qubits; backend {self.name!r} allows at most {mq}")
        return circuit

    def _check_params(self, circuit: Circuit, params, batched: bool = False):
        """Host float64 ``(num_params,)`` (``(B, num_params)`` with ``batched``; ``None`` stays ``None``
        there) through :func:`qsim.infra.validation.circuit_params`, finite."""
        params = validation.circuit_params(circuit, params, batched=batched)
        if params is None:
            return None if batched else np.zeros((0,))
        arr = validation.finite_array(np.asarray(params, dtype=np.float64), "params")
        if batched and arr.ndim != 2:
            raise ValueError(f"params has shape {arr.shape}; expected (B, {circuit.num_params})")
        return arr

    def _check_wires(self, circuit: Circuit, wires) -> tuple[int, ...]:
        """All wires for ``None``, else :func:`qsim.infra.validation.wires`."""
        return tuple(range(circuit.n_wires)) if wires is None else validation.wires(wires, circuit.n_wires)

    def _check_observable(self, circuit: Circuit, observable) -> PauliSum:
        if not isinstance(observable, PauliSum):
            raise TypeError(f"observable must be a qsim PauliSum, got {type(observable).__name__}")
        if observable.wires and max(observable.wires) >= circuit.n_wires:
            raise ValueError(f"observable acts on wire {max(observable.wires)}, outside the circuit's "
                             f"{circuit.n_wires} wires")
        return observable

    def _shots(self, shots):
        shots = check_shots(shots)
        if shots is None and not self.capabilities.exact:
            raise ValueError(f"backend {self.name!r} is shot-based: give shots=<int>")
        if shots is not None and not self.capabilities.shots:
            raise ValueError(f"backend {self.name!r} has no shot mode")
        return shots

    def _seed(self, key, shots) -> int | None:
        if shots is None:
            return None
        seed = seed_from_key(key)
        return int(self._rng.integers(0, 2**31 - 1)) if seed is None else seed

    # -- primitives (subclasses) -------------------------------------------------------------------
    def _probs_batch(self, items, shots, seed):  # pragma: no cover - abstract
        raise NotImplementedError

    def _sample(self, circuit, params, wires, shots, seed):  # pragma: no cover - abstract
        raise NotImplementedError

    def _exact_expval(self, circuit, params, observable):
        """Exact expectation (default: exact rotated probabilities)."""
        return None

    # -- protocol ------------------------------------------------------------------------------------
    def probs(self, circuit: Circuit, params=None, wires=None, shots=None, key=None):
        """Probabilities ``(2**k,)`` on ``wires`` (exact for ``shots=None``, else frequencies)."""
        self._check_circuit(circuit)
        p = self._check_params(circuit, params)
        wires = self._check_wires(circuit, wires)
        shots = self._shots(shots)
        return self._probs_batch([(circuit, p, wires)], shots, self._seed(key, shots))[0]

    def sample(self, circuit: Circuit, params, shots: int, key=None, wires=None):
        """``shots`` measured bitstrings ``(shots, k)`` int8 (column j is ``wires[j]``)."""
        self._check_circuit(circuit)
        p = self._check_params(circuit, params)
        wires = self._check_wires(circuit, wires)
        shots = check_shots(shots, allow_none=False)
        if not self.capabilities.shots:
            raise ValueError(f"backend {self.name!r} has no shot mode")
        return self._sample(circuit, p, wires, shots, self._seed(key, shots))

    def expval(self, circuit: Circuit, params, observable: PauliSum, shots=None, key=None):
        """``<H>`` (exact for ``shots=None``; else the grouped estimator, ``shots`` per group)."""
        return float(self.expval_batch(circuit, None if params is None else np.asarray(params)[None],
                                       observable, shots, key)[0])

    def expval_batch(self, circuit: Circuit, params_batch, observable: PauliSum, shots=None, key=None):
        """``<H>`` for each row of ``params_batch`` ``(B, num_params)`` -> ``(B,)``, one job on job-based
        backends (each row and group gets ``shots`` shots)."""
        self._check_circuit(circuit)
        pb = self._check_params(circuit, params_batch, batched=True)
        if pb is None:
            pb = np.zeros((1, 0))
        self._check_observable(circuit, observable)
        shots = self._shots(shots)
        if shots is None:
            exact = [self._exact_expval(circuit, p, observable) for p in pb]
            if all(e is not None for e in exact):
                return np.asarray(exact, dtype=np.float64)
        means, _ = self._grouped(circuit, pb, observable, shots, self._seed(key, shots))
        return means

    def estimate(self, circuit: Circuit, params, observable: PauliSum, shots: int, key=None) -> Estimate:
        """Shot estimate of ``<H>`` with its standard error from the sampled frequencies."""
        self._check_circuit(circuit)
        p = self._check_params(circuit, params)
        self._check_observable(circuit, observable)
        shots = check_shots(shots, allow_none=False)
        means, var = self._grouped(circuit, p[None], observable, shots, self._seed(key, shots))
        return Estimate(float(means[0]), float(math.sqrt(var[0] / shots)))

    def shot_stderr(self, circuit: Circuit, params, observable: PauliSum, shots: int) -> float:
        """The exact standard error of the ``shots``-shot estimator (needs ``capabilities.exact``)."""
        self._check_circuit(circuit)
        p = self._check_params(circuit, params)
        self._check_observable(circuit, observable)
        shots = check_shots(shots, allow_none=False)
        if not self.capabilities.exact:
            raise ValueError(f"backend {self.name!r} has no exact mode to compute the standard error")
        _, var = self._grouped(circuit, p[None], observable, None, None)
        return float(math.sqrt(var[0] / shots))

    def _grouped(self, circuit, pb, observable, shots, seed):
        const, groups = group_observable(observable)
        items = [(rotated_circuit(circuit, g), p, g.wires) for p in pb for g in groups]
        probs = self._probs_batch(items, shots, seed) if items else []
        means = np.full(len(pb), const, dtype=np.float64)
        var = np.zeros(len(pb), dtype=np.float64)
        for i in range(len(pb)):
            for j, g in enumerate(groups):
                m, v = _moments(probs[i * len(groups) + j], g)
                means[i] += m
                var[i] += v
        return means, var
