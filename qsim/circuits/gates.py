"""THE gate table: name -> wires, parameters, matrix, structure, parameter-shift rule, exporter names.

Every other module reads gates from here: the simulator (matrices and structure), parameter shift
(``shift_rules``), and the converters (``qiskit`` / ``pennylane`` names). Matrices are written in the
PennyLane convention: for a gate on wires ``(a, b)`` the basis is ``|q_a q_b>`` with ``a`` the most
significant bit.

``matrix(*params)`` works on Python floats, NumPy and JAX (traced) values and returns a
``(2**k, 2**k)`` complex array; the caller casts to the state's dtype.

``kind`` tells the simulator what it may exploit: ``"diagonal"`` (phases only), ``"permutation"``
(a permutation matrix, possibly with phases: X, CNOT, SWAP, ...), or ``"general"``.

``shift_rules[i]`` is the parameter-shift recipe for parameter ``i``: pairs ``(coefficient, shift)``
such that ``d f/d theta = sum_k c_k f(theta + s_k)`` for any expectation ``f`` of the gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp
import numpy as np

__all__ = ["GateDef", "GATES", "get_gate", "TWO_TERM", "FOUR_TERM", "controlled_matrix", "op_shift_rule"]

_S2 = math.sqrt(2.0)
TWO_TERM = ((0.5, math.pi / 2), (-0.5, -math.pi / 2))
_C1 = (_S2 + 1) / (4 * _S2)
_C2 = (_S2 - 1) / (4 * _S2)
FOUR_TERM = ((_C1, math.pi / 2), (-_C1, -math.pi / 2), (-_C2, 3 * math.pi / 2), (_C2, -3 * math.pi / 2))


@dataclass(frozen=True)
class GateDef:
    """One row of the gate table."""

    name: str
    num_wires: int | None          # None: any number (unitary, mcx)
    num_params: int
    matrix: Callable[..., object]  # (*params) -> (2**k, 2**k) complex
    kind: str = "general"          # "diagonal" | "permutation" | "general"
    shift_rules: tuple = ()        # one rule per parameter
    qiskit: str | None = None      # qiskit.circuit.library gate / QuantumCircuit method name
    pennylane: str | None = None   # pennylane.ops class name
    self_inverse: bool = False
    hermitian_generator: np.ndarray | None = None  # G with U(t) = exp(-i t G) for 1-parameter gates
    phase_params: tuple[int, ...] = ()  # parameters whose generator already has a zero eigenvalue


def _const(m) -> Callable[..., np.ndarray]:
    arr = np.asarray(m, dtype=np.complex128)
    arr.setflags(write=False)
    return lambda: arr


def _xp(*xs):
    """NumPy for concrete NumPy/Python values (no JAX dispatch at compile time), jax.numpy otherwise."""
    return np if all(isinstance(x, (float, int, complex, np.ndarray, np.generic)) for x in xs) else jnp


def _mat2(xp, a, b, c, d):
    return xp.stack([xp.stack([a, b]), xp.stack([c, d])])


def _rx(t):
    xp = _xp(t)
    c, s = xp.cos(t / 2) + 0j, -1j * xp.sin(t / 2)
    return _mat2(xp, c, s, s, c)


def _ry(t):
    xp = _xp(t)
    c, s = xp.cos(t / 2) + 0j, xp.sin(t / 2) + 0j
    return _mat2(xp, c, -s, s, c)


def _rz(t):
    xp = _xp(t)
    e = xp.exp(-0.5j * t)
    z = xp.zeros_like(e)
    return _mat2(xp, e, z, z, xp.conj(e))


def _phase(t):
    xp = _xp(t)
    e = xp.exp(1j * t)
    return _mat2(xp, xp.ones_like(e), xp.zeros_like(e), xp.zeros_like(e), e)


def _u3(theta, phi, lam):
    xp = _xp(theta, phi, lam)
    c, s = xp.cos(theta / 2) + 0j, xp.sin(theta / 2) + 0j
    return _mat2(xp, c, -xp.exp(1j * lam) * s, xp.exp(1j * phi) * s, xp.exp(1j * (phi + lam)) * c)


def controlled_matrix(u, n_controls: int = 1):
    """Block-diagonal matrix ``diag(I, ..., I, u)`` controlled on ``n_controls`` leading wires."""
    xp = _xp(u)
    u = xp.asarray(u)
    d = u.shape[0]
    full = 2 ** n_controls * d
    dt = xp.result_type(u.dtype, xp.complex64)
    top = xp.concatenate([xp.eye(full - d, dtype=dt), xp.zeros((full - d, d), dtype=dt)], axis=1)
    bottom = xp.concatenate([xp.zeros((d, full - d), dtype=dt), u.astype(dt)], axis=1)
    return xp.concatenate([top, bottom], axis=0)


def _pp(pauli: np.ndarray):
    """exp(-i t/2 P⊗P) for a Pauli P."""
    pp = np.kron(pauli, pauli)

    def f(t):
        xp = _xp(t)
        return xp.cos(t / 2) * xp.eye(4) - 1j * xp.sin(t / 2) * pp
    return f


_I2 = np.eye(2)
_X = np.array([[0, 1], [1, 0]])
_Y = np.array([[0, -1j], [1j, 0]])
_Z = np.diag([1.0, -1.0])
_H = np.array([[1, 1], [1, -1]]) / _S2
_SWAP = np.eye(4)[[0, 2, 1, 3]]


def _gates() -> dict[str, GateDef]:
    g = [
        GateDef("I", 1, 0, _const(_I2), "diagonal", qiskit="id", pennylane="Identity", self_inverse=True),
        GateDef("X", 1, 0, _const(_X), "permutation", qiskit="x", pennylane="PauliX", self_inverse=True),
        GateDef("Y", 1, 0, _const(_Y), "permutation", qiskit="y", pennylane="PauliY", self_inverse=True),
        GateDef("Z", 1, 0, _const(_Z), "diagonal", qiskit="z", pennylane="PauliZ", self_inverse=True),
        GateDef("H", 1, 0, _const(_H), "general", qiskit="h", pennylane="Hadamard", self_inverse=True),
        GateDef("S", 1, 0, _const(np.diag([1, 1j])), "diagonal", qiskit="s", pennylane="S"),
        GateDef("Sdg", 1, 0, _const(np.diag([1, -1j])), "diagonal", qiskit="sdg", pennylane=None),
        GateDef("T", 1, 0, _const(np.diag([1, np.exp(1j * np.pi / 4)])), "diagonal", qiskit="t",
                pennylane="T"),
        GateDef("Tdg", 1, 0, _const(np.diag([1, np.exp(-1j * np.pi / 4)])), "diagonal", qiskit="tdg",
                pennylane=None),
        GateDef("SX", 1, 0, _const(0.5 * np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]])), "general",
                qiskit="sx", pennylane="SX"),
        GateDef("RX", 1, 1, _rx, "general", (TWO_TERM,), "rx", "RX", hermitian_generator=_X / 2),
        GateDef("RY", 1, 1, _ry, "general", (TWO_TERM,), "ry", "RY", hermitian_generator=_Y / 2),
        GateDef("RZ", 1, 1, _rz, "diagonal", (TWO_TERM,), "rz", "RZ", hermitian_generator=_Z / 2),
        GateDef("PhaseShift", 1, 1, _phase, "diagonal", (TWO_TERM,), "p", "PhaseShift",
                hermitian_generator=np.diag([0.0, -1.0]), phase_params=(0,)),
        GateDef("U3", 1, 3, _u3, "general", (TWO_TERM,) * 3, "u", "U3", phase_params=(1, 2)),
        GateDef("CNOT", 2, 0, _const(np.eye(4)[[0, 1, 3, 2]]), "permutation", qiskit="cx",
                pennylane="CNOT", self_inverse=True),
        GateDef("CZ", 2, 0, _const(np.diag([1, 1, 1, -1])), "diagonal", qiskit="cz", pennylane="CZ",
                self_inverse=True),
        GateDef("CY", 2, 0, _const(np.block([[np.eye(2), np.zeros((2, 2))], [np.zeros((2, 2)), _Y]])),
                "permutation", qiskit="cy", pennylane="CY", self_inverse=True),
        GateDef("SWAP", 2, 0, _const(_SWAP), "permutation", qiskit="swap", pennylane="SWAP",
                self_inverse=True),
        GateDef("ISWAP", 2, 0, _const(np.array([[1, 0, 0, 0], [0, 0, 1j, 0], [0, 1j, 0, 0], [0, 0, 0, 1]])),
                "permutation", qiskit="iswap", pennylane="ISWAP"),
        GateDef("CRX", 2, 1, lambda t: controlled_matrix(_rx(t)), "general", (FOUR_TERM,), "crx", "CRX"),
        GateDef("CRY", 2, 1, lambda t: controlled_matrix(_ry(t)), "general", (FOUR_TERM,), "cry", "CRY"),
        GateDef("CRZ", 2, 1, lambda t: controlled_matrix(_rz(t)), "diagonal", (FOUR_TERM,), "crz", "CRZ"),
        GateDef("CPhase", 2, 1, lambda t: controlled_matrix(_phase(t)), "diagonal", (TWO_TERM,), "cp",
                "ControlledPhaseShift", phase_params=(0,)),
        GateDef("RXX", 2, 1, _pp(_X), "general", (TWO_TERM,), "rxx", "IsingXX",
                hermitian_generator=np.kron(_X, _X) / 2),
        GateDef("RYY", 2, 1, _pp(_Y), "general", (TWO_TERM,), "ryy", "IsingYY",
                hermitian_generator=np.kron(_Y, _Y) / 2),
        GateDef("RZZ", 2, 1, _pp(_Z), "diagonal", (TWO_TERM,), "rzz", "IsingZZ",
                hermitian_generator=np.kron(_Z, _Z) / 2),
        GateDef("Toffoli", 3, 0, _const(np.eye(8)[[0, 1, 2, 3, 4, 5, 7, 6]]), "permutation", qiskit="ccx",
                pennylane="Toffoli", self_inverse=True),
        GateDef("CSWAP", 3, 0, _const(np.eye(8)[[0, 1, 2, 3, 4, 6, 5, 7]]), "permutation", qiskit="cswap",
                pennylane="CSWAP", self_inverse=True),
        # Variable-width gates: matrices are supplied per operation (see Circuit.mcx / Circuit.unitary).
        GateDef("MCX", None, 0, lambda: None, "permutation", qiskit="mcx", pennylane="MultiControlledX",
                self_inverse=True),
        GateDef("Unitary", None, 0, lambda: None, "general", qiskit="unitary", pennylane="QubitUnitary"),
    ]
    return {d.name: d for d in g}


GATES: dict[str, GateDef] = _gates()
_ALIASES = {name.lower(): name for name in GATES}
_ALIASES.update({"cx": "CNOT", "ccx": "Toffoli", "fredkin": "CSWAP", "p": "PhaseShift", "phase": "PhaseShift",
                 "cp": "CPhase", "controlledphaseshift": "CPhase", "id": "I", "identity": "I",
                 "paulix": "X", "pauliy": "Y", "pauliz": "Z", "hadamard": "H", "u": "U3",
                 "isingxx": "RXX", "isingyy": "RYY", "isingzz": "RZZ", "qubitunitary": "Unitary",
                 "multicontrolledx": "MCX"})


def op_shift_rule(gate: GateDef, param_index: int, n_controls: int = 0) -> tuple:
    """The parameter-shift rule ``((coefficient, shift), ...)`` of one parameter of ``gate`` with
    ``n_controls`` extra controls: THE source of shift rules (:mod:`qsim.gradients` reads it).

    Controlling a gate whose generator has eigenvalues +-1/2 adds a zero eigenvalue, so its
    frequencies become {1/2, 1} and the four-term rule applies; phase-type parameters (generator
    eigenvalues {0, 1}, :attr:`GateDef.phase_params`) keep the two-term rule, and a four-term rule
    (frequencies {1/2, 1}, which already include the zero eigenvalue) stays as it is. The adjoint of a
    gate has the same frequencies, so the same rule (every rule here is antisymmetric in the shift).
    """
    if not 0 <= param_index < gate.num_params:
        raise ValueError(f"gate {gate.name} has no parameter {param_index}")
    if not gate.shift_rules:
        raise NotImplementedError(f"gate {gate.name} has no parameter-shift rule in the gate table")
    rule = gate.shift_rules[param_index]
    if n_controls and rule == TWO_TERM and param_index not in gate.phase_params:
        return FOUR_TERM
    return rule


def get_gate(name: str) -> GateDef:
    """Look a gate up by its table name or a common alias (case-insensitive)."""
    if not isinstance(name, str):
        raise TypeError(f"gate name must be a string, got {type(name).__name__}")
    key = _ALIASES.get(name.lower())
    if key is None:
        raise ValueError(f"unknown gate {name!r}; known gates: {', '.join(sorted(GATES))}")
    return GATES[key]
