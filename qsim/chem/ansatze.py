"""Ansätze for VQE as ``qsim.Circuit`` objects: fermionic UCCSD (excitations as Pauli rotations) and
the hardware-efficient ansatz.

UCCSD: every spin-conserving single and double excitation out of the Hartree-Fock determinant is
``exp(theta (T - T^dag))`` with ``T = a+_a a_i`` (or ``a+_a a+_b a_j a_i``). The Hermitian generator
``i (T - T^dag)`` is mapped to qubits with the Hamiltonian's own mapping (Jordan-Wigner Z strings or
parity strings included: this is the fermionic UCCSD, not the Givens-rotation approximation); its Pauli
terms commute and have equal magnitude ``c`` (1/2 for singles, 1/8 for doubles), so the excitation is
exactly a product of Pauli rotations ``exp(-i s_k phi / 2 P_k)`` with one shared trainable slot ``phi``
(``phi = 2 c theta``). Each Pauli rotation is a basis change (RY/RX by +-pi/2, fixed angles), a CNOT
ladder, one ``RZ`` reading the shared slot, and the ladder undone: only table gates, so the circuit
exports to PennyLane and Qiskit unchanged (``form="compact"`` merges the fixed gates into ``unitary``
ops instead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qsim.chem.hamiltonians import _normalise_mapping, excitations, fermion_to_qubit, hf_state
from qsim.circuits import templates
from qsim.circuits.circuit import Circuit
from qsim.circuits.gates import GATES
from qsim.circuits.operators import PauliSum

__all__ = ["Ansatz", "uccsd", "hardware_efficient", "pauli_rotation", "excitation_generator", "COMPACT_MAX_WIRES"]


@dataclass(frozen=True)
class Ansatz:
    """A parametrised circuit with a description of its slots.

    Attributes:
        circuit: the qsim.Circuit (HF preparation included).
        labels: one label per trainable slot (e.g. ``"D(0,1->2,3)"``).
        scales: per slot, ``theta / phi``: the fermionic amplitude per unit of slot value.
    """

    circuit: Circuit
    labels: tuple[str, ...]
    scales: tuple[float, ...]

    @property
    def num_params(self) -> int:
        return self.circuit.num_params


def _basis_change(circuit: Circuit, wire: int, letter: str, sign: int, undo: bool) -> None:
    """Rotate ``letter`` on ``wire`` to ``sign * Z`` (or back when ``undo``)."""
    s = -1.0 if undo else 1.0
    if letter == "X":   # RY(-pi/2) X RY(pi/2) = Z ; RY(+pi/2) gives -Z
        circuit.ry(wire, value=s * (-sign) * math.pi / 2)
    elif letter == "Y":  # RX(pi/2) Y RX(-pi/2) = Z ; RX(-pi/2) gives -Z
        circuit.rx(wire, value=s * sign * math.pi / 2)


def pauli_rotation(circuit: Circuit, string: Sequence[tuple[int, str]], slot: int, sign: int = 1) -> Circuit:
    """Append ``exp(-i sign * phi / 2 * P)`` for Pauli string ``P`` with ``phi`` read from ``slot``.

    ``string`` is a sorted tuple of ``(wire, "X"|"Y"|"Z")``; ``sign`` is +1 or -1. The sign goes into
    the basis change of the first X/Y letter (fixed angles), so every rotation reads the slot as is.
    """
    string = tuple(string)
    if not string:
        raise ValueError("pauli_rotation of the identity string is a global phase; nothing to append")
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign!r}")
    first_xy = next((k for k, (_, p) in enumerate(string) if p in "XY"), None)
    flip_with_x = first_xy is None and sign == -1
    signs = [sign if k == first_xy else 1 for k in range(len(string))]
    for (w, p), sg in zip(string, signs):
        _basis_change(circuit, w, p, sg, undo=False)
    wires = [w for w, _ in string]
    for a, b in zip(wires[:-1], wires[1:]):
        circuit.cnot(a, b)
    if flip_with_x:
        circuit.x(wires[-1])
    circuit.rz(wires[-1], param=slot)
    if flip_with_x:
        circuit.x(wires[-1])
    for a, b in reversed(list(zip(wires[:-1], wires[1:]))):
        circuit.cnot(a, b)
    for (w, p), sg in zip(string, signs):
        _basis_change(circuit, w, p, sg, undo=True)
    return circuit


def excitation_generator(indices: Sequence[int], n_qubits: int, mapping: str = "jordan_wigner") -> PauliSum:
    """Hermitian ``G = i (T - T^dag)`` of a single ``(i, a)`` or double ``(i, j, a, b)`` excitation as a
    PauliSum (``T = a+_a a_i`` or ``a+_a a+_b a_j a_i``), mapped like the Hamiltonian."""
    import pennylane as qml


    idx = tuple(int(k) for k in indices)
    if any(not 0 <= k < n_qubits for k in idx) or len(set(idx)) != len(idx):
        raise ValueError(f"excitation {idx} invalid on {n_qubits} spin orbitals")
    if len(idx) == 2:
        i, a = idx
        t = qml.FermiWord({(0, a): "+", (1, i): "-"})
        td = qml.FermiWord({(0, i): "+", (1, a): "-"})
    elif len(idx) == 4:
        i, j, a, b = idx
        t = qml.FermiWord({(0, a): "+", (1, b): "+", (2, j): "-", (3, i): "-"})
        td = qml.FermiWord({(0, i): "+", (1, j): "+", (2, b): "-", (3, a): "-"})
    else:
        raise ValueError(f"an excitation has 2 or 4 indices, got {idx}")
    gen = qml.FermiSentence({t: 1j, td: -1j})
    g = fermion_to_qubit(gen, n_qubits, mapping)
    if not g.is_hermitian(1e-10):
        raise RuntimeError(f"generator of excitation {idx} is not Hermitian: {g}")  # pragma: no cover
    return PauliSum({s: complex(c.real) for s, c in g.terms.items()})


def _commute(a, b) -> bool:
    da = dict(a)
    anti = sum(1 for w, p in b if w in da and da[w] != p)
    return anti % 2 == 0


COMPACT_MAX_WIRES = 4


def _ops_matrix(ops, support: Sequence[int]) -> np.ndarray:
    """The unitary of a list of fixed-angle ops, on the wires ``support`` (first = most significant)."""

    k = len(support)
    t = np.eye(2 ** k, dtype=np.complex128).reshape((2,) * k + (2 ** k,))
    for op in ops:
        m = np.asarray(GATES[op.name].matrix(*[p.value for p in op.params]), dtype=np.complex128)
        loc = [support.index(w) for w in op.wires]
        g = m.reshape((2,) * (2 * len(loc)))
        t = np.tensordot(g, t, axes=(list(range(len(loc), 2 * len(loc))), loc))
        t = np.moveaxis(t, list(range(len(loc))), loc)
    return t.reshape(2 ** k, 2 ** k)


def _append_compact(circuit: Circuit, terms, slot: int) -> None:
    """exp(-i phi/2 sum_k s_k P_k) as U(V_1) RZ U(V_2 V_1^dag) RZ ... U(V_m^dag): the constant basis
    changes and CNOT ladders between consecutive rotations are merged into one ``unitary`` each."""
    support = sorted({w for _, s in terms for w, _ in s})
    prev = None
    for coeff, s in terms:
        scratch = Circuit(circuit.n_wires)
        pauli_rotation(scratch, s, scratch.new_param(), sign=1 if coeff > 0 else -1)
        k = next(i for i, op in enumerate(scratch.ops) if op.params and op.params[0].slot is not None)
        v = _ops_matrix(scratch.ops[:k], support)
        circuit.unitary(np.ascontiguousarray(v if prev is None else v @ prev.conj().T), support)
        circuit.rz(scratch.ops[k].wires[0], param=slot)
        prev = v
    circuit.unitary(np.ascontiguousarray(prev.conj().T), support)


def _append_excitation(circuit: Circuit, gen: PauliSum, form: str = "compact") -> float:
    """Append exp(-i theta G) as Pauli rotations sharing one new slot; return theta/phi."""
    terms = [(c.real, s) for c, s in gen if s]
    mags = {round(abs(c), 12) for c, _ in terms}
    if len(mags) != 1:
        raise ValueError(f"generator terms have unequal magnitudes {sorted(mags)}; cannot share one slot")
    strings = [s for _, s in terms]
    for x, a in enumerate(strings):
        for b in strings[x + 1:]:
            if not _commute(a, b):
                raise ValueError("generator terms do not commute; the product formula would not be exact")
    c = mags.pop()
    slot = circuit.new_param()
    support = {w for s in strings for w, _ in s}
    if form == "compact" and len(support) <= COMPACT_MAX_WIRES:
        _append_compact(circuit, terms, slot)
    else:
        for coeff, s in terms:
            pauli_rotation(circuit, s, slot, sign=1 if coeff > 0 else -1)
    return 1.0 / (2.0 * c)


def uccsd(mh=None, *, n_qubits: int | None = None, n_alpha: int | None = None, n_beta: int | None = None,
          mapping: str | None = None, hf_bits: Sequence[int] | None = None, singles: bool = True,
          doubles: bool = True, form: str = "ladder") -> Ansatz:
    """The UCCSD ansatz (doubles first, then singles) on the HF determinant of ``mh``.

    Args:
        mh: a :class:`qsim.chem.hamiltonians.MolecularHamiltonian` (or give ``n_qubits``, ``n_alpha``,
            ``n_beta``, ``mapping`` and ``hf_bits`` explicitly).
        singles, doubles: which excitations to include.
        form: ``"ladder"`` (default) uses only RX/RY/CNOT/RZ (native gates for every backend and
            transpiler); ``"compact"`` merges the fixed basis changes and CNOT ladders between the
            shared-slot RZ's of one excitation into ``unitary`` ops when the excitation spans at most
            ``COMPACT_MAX_WIRES`` wires. Measured here (benchmarks/vqe.py): compact with
            ``max_fuse=4`` compiles about as fast as ladder with the simulator's default fusion on H2,
            and much slower on 6 qubits, so ladder is the default.

    Returns:
        an :class:`Ansatz`; all-zero parameters give the HF state.
    """

    if mh is not None:
        n_qubits, n_alpha, n_beta, mapping = mh.n_qubits, mh.n_alpha, mh.n_beta, mh.mapping
        hf_bits = mh.hf_state
    if n_qubits is None or n_alpha is None or n_beta is None:
        raise ValueError("uccsd needs a MolecularHamiltonian or n_qubits, n_alpha and n_beta")
    if n_qubits % 2:
        raise ValueError(f"n_qubits must be even (two spin orbitals per spatial orbital), got {n_qubits}")
    mapping = _normalise_mapping(mapping or "jordan_wigner")
    if hf_bits is None:
        hf_bits = hf_state(n_alpha, n_beta, n_qubits // 2, mapping)
    if len(hf_bits) != n_qubits:
        raise ValueError(f"hf_bits has {len(hf_bits)} entries for {n_qubits} qubits")
    if form not in ("compact", "ladder"):
        raise ValueError(f"unknown UCCSD form {form!r}; choose 'compact' or 'ladder'")
    s, d = excitations(n_alpha, n_beta, n_qubits // 2)
    circuit = templates.prepare_basis_state(Circuit(n_qubits), hf_bits)
    labels, scales = [], []
    for ex in (d if doubles else []):
        scales.append(_append_excitation(circuit, excitation_generator(ex, n_qubits, mapping), form))
        labels.append(f"D({ex[0]},{ex[1]}->{ex[2]},{ex[3]})")
    for ex in (s if singles else []):
        scales.append(_append_excitation(circuit, excitation_generator(ex, n_qubits, mapping), form))
        labels.append(f"S({ex[0]}->{ex[1]})")
    if not labels:
        raise ValueError("the UCCSD ansatz is empty: no excitations out of this determinant")
    return Ansatz(circuit, tuple(labels), tuple(scales))


def hardware_efficient(n_qubits: int, layers: int = 2, hf_bits: Sequence[int] | None = None) -> Ansatz:
    """Hardware-efficient ansatz: HF bits, then ``layers`` x (RY and RZ on every wire, CNOT chain);
    the circuit of :func:`qsim.circuits.templates.hardware_efficient` (shared with ``hypernets``).

    It does not conserve particle number: on an active space the optimum can leave the N-electron
    sector. ``2 * n_qubits * layers`` slots. All-zero parameters do not give the HF state (the CNOT
    chain maps it to another determinant); start from small random angles. A CZ entangler keeps HF at
    zero angles but, measured on H2, leaves the optimiser stuck at the HF energy (HF is stationary for
    it); the CNOT chain with 2 layers reaches FCI.
    """
    c = templates.hardware_efficient(n_qubits, layers, init_bits=hf_bits)
    return Ansatz(c, templates.hardware_efficient_labels(n_qubits, layers), (1.0,) * c.num_params)
