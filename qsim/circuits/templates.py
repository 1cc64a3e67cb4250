"""Shared circuit templates: layered ansätze that several applications build.

    from qsim.circuits.templates import hardware_efficient
    c = hardware_efficient(4, layers=2, init_bits=(1, 1, 0, 0))   # X on wires 0, 1, then 2 layers

The hardware-efficient ansatz (one builder for the chemistry VQE and the hypernetwork circuits): per
layer, RY on every wire, then RZ on every wire, then a CNOT ladder (0, 1), (1, 2), ..., (n - 2, n - 1)
(linear connectivity, as on most devices). ``2 * n_qubits * layers`` trainable slots, in that order:
layer by layer, the ``n`` RY angles then the ``n`` RZ angles. ``init_bits`` first prepares a basis state
(an X on every wire whose bit is 1), e.g. the Hartree-Fock determinant; it uses no slot.
"""

from __future__ import annotations

from typing import Sequence

from qsim.circuits.circuit import Circuit
from qsim.infra.validation import positive_int

__all__ = ["hardware_efficient", "hardware_efficient_labels", "prepare_basis_state"]


def prepare_basis_state(circuit: Circuit, bits: Sequence[int]) -> Circuit:
    """Append an X on every wire ``w`` with ``bits[w] == 1`` (|0...0> -> |bits>); one bit per wire."""
    if len(bits) != circuit.n_wires:
        raise ValueError(f"basis-state bits have {len(bits)} entries for {circuit.n_wires} wires")
    for w, b in enumerate(bits):
        if int(b):
            circuit.x(w)
    return circuit


def hardware_efficient(n_qubits: int, layers: int, *, init_bits: Sequence[int] | None = None) -> Circuit:
    """The hardware-efficient ansatz of the module docstring on ``n_qubits`` wires with ``layers`` layers."""
    n = positive_int(n_qubits, "n_qubits")
    layers = positive_int(layers, "layers")
    c = Circuit(n)
    if init_bits is not None:
        prepare_basis_state(c, init_bits)
    for _ in range(layers):
        for w in range(n):
            c.ry(w)
        for w in range(n):
            c.rz(w)
        for w in range(n - 1):
            c.cnot(w, w + 1)
    return c


def hardware_efficient_labels(n_qubits: int, layers: int) -> tuple[str, ...]:
    """One label per slot of :func:`hardware_efficient`, in slot order: ``"L<layer>.RY<wire>"``, ``...RZ...``."""
    return tuple(f"L{layer}.{g}{w}" for layer in range(int(layers)) for g in ("RY", "RZ")
                 for w in range(int(n_qubits)))
