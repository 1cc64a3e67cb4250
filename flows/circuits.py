"""One product-formula step of a wavefunction flow as a :class:`qsim.Circuit`.

Registers: dimension ``a`` occupies wires ``a*n .. a*n + n - 1``, the first its most significant
bit (the grid's flat index, see :mod:`flows.grid`).

A step of the 4- or 8-step formula is a sequence of ``e^{i a K}`` and ``e^{i b V}``:

- ``e^{i a K} = QFT D QFT^dag`` per register, ``D = diag(e^{i a k_m^2 / 2})``. The QFT is symmetric,
  so with ``QFT = R Q'`` (``Q'`` the H/controlled-phase network, ``R`` the bit reversal)
  ``e^{i a K} = Q'^T D_rev conj(Q')``: no SWAPs. ``k_m = (pi/L) s(m)`` with ``s`` the
  two's-complement integer of the bits, so ``k^2`` is a quadratic form in the bits and ``D_rev``
  is exactly ``n`` phase gates plus ``n(n-1)/2`` controlled phases. Gates: O(n^2) per register.
- ``e^{i b V}``: a diagonal phase oracle; here the exact diagonal unitary on all ``d n`` wires
  (small registers). On hardware it is a reversible evaluation of V (cost polynomial in ``n``
  for a fixed network) with phase kickback; :func:`step_gate_counts` counts it as oracle calls.

:func:`mottonen_counts` gives generic amplitude loading's cost (2^{q+2} - 5 RZ, 2^{q+2} - 4q - 4
CNOT for q qubits) for comparison. Export with the shared converters (``qsim.interop.to_qiskit``,
``qsim.interop.to_pennylane_ops``) or run on ``qsim.get_backend("qiskit:aer")``.
"""

from __future__ import annotations

import math

import numpy as np

from flows.evolve import step_unitary_ops
from flows.grid import Grid
import qsim

__all__ = ["qft_network", "kinetic_phase", "kinetic_exponential", "potential_oracle", "step_circuit",
           "step_gate_counts", "mottonen_counts"]


def _register(grid: Grid, a: int) -> list[int]:
    return list(range(a * grid.n, (a + 1) * grid.n))


def qft_network(circuit, wires, sign: float = 1.0, reverse: bool = False):
    """Append the QFT's H/controlled-phase network ``Q'`` (no swaps) on ``wires`` (MSB first).

    ``sign=-1`` gives ``conj(Q')``; ``reverse=True`` appends the gates in reverse order (``Q'^T``
    for ``sign=+1``). ``QFT = R Q'`` with ``R`` the bit reversal.
    """
    n = len(wires)
    gates = []
    for i in range(n):
        gates.append(("h", wires[i], None, None))
        for j in range(i + 1, n):
            gates.append(("cphase", wires[j], wires[i], sign * 2 * math.pi / 2 ** (j - i + 1)))
    if reverse:
        gates = gates[::-1]
    for name, w1, w2, angle in gates:
        if name == "h":
            circuit.h(w1)
        else:
            circuit.cphase(w1, w2, value=angle)
    return circuit


def kinetic_phase(circuit, grid: Grid, wires, angle: float):
    """Append ``D_rev = diag(e^{i angle s(rev(m))^2})`` on ``wires``: the bit-reversed phase of
    the two's-complement integer ``s`` squared, as phase and controlled-phase gates."""
    n = len(wires)
    # s = -2^{n-1} b_0 + sum_{i>=1} 2^{n-1-i} b_i, b_i the i-th most significant bit of m;
    # after the bit reversal b_i sits on wires[n-1-i].
    c = [-(2.0 ** (n - 1))] + [2.0 ** (n - 1 - i) for i in range(1, n)]
    wire_of = [wires[n - 1 - i] for i in range(n)]
    for i in range(n):
        phi = math.remainder(angle * c[i] ** 2, 2 * math.pi)
        if phi != 0.0:
            circuit.phaseshift(wire_of[i], value=phi)
    for i in range(n):
        for j in range(i + 1, n):
            phi = math.remainder(2 * angle * c[i] * c[j], 2 * math.pi)
            if phi != 0.0:
                circuit.cphase(wire_of[i], wire_of[j], value=phi)
    return circuit


def kinetic_exponential(circuit, grid: Grid, a: float):
    """Append ``e^{i a K}``, ``K = |k|^2/2`` (full k^2, Nyquist kept), on every register."""
    kappa = math.pi / grid.L
    for dim in range(grid.d):
        w = _register(grid, dim)
        qft_network(circuit, w, sign=-1.0)                 # conj(Q') = (Q'^T)^dag
        kinetic_phase(circuit, grid, w, a * kappa ** 2 / 2)
        qft_network(circuit, w, sign=1.0, reverse=True)    # Q'^T
    return circuit


def potential_oracle(circuit, grid: Grid, V, b: float):
    """Append ``e^{i b V}`` as an exact diagonal unitary on all wires (``V``: grid.shape, real)."""
    V = np.asarray(V, dtype=np.float64)
    if V.shape != grid.shape:
        raise ValueError(f"potential shape {V.shape} does not match the grid shape {grid.shape}")
    if not np.all(np.isfinite(V)):
        raise ValueError("potential has non-finite values")
    if grid.num_qubits > 12:
        raise ValueError(f"an exact diagonal oracle on {grid.num_qubits} qubits (a {2 ** grid.num_qubits}"
                         "-square matrix) is too large; use at most 12 qubits")
    circuit.unitary(np.diag(np.exp(1j * b * V.reshape(-1))), list(range(grid.num_qubits)))
    return circuit


def step_circuit(grid: Grid, V, dt: float, formula: str = "8", alpha_ratio: float = 1.0):
    """A :class:`qsim.Circuit` on ``grid.num_qubits`` wires for one step of ``formula`` ('4' or
    '8') with the potential ``V`` (grid.shape) at the step's midpoint time; it maps the grid
    state (flat, C order) exactly as :func:`flows.evolve.evolve` does for one step."""

    if grid.num_qubits > 24:
        raise ValueError(f"{grid.num_qubits} qubits is too many for a simulated step circuit")
    c = qsim.Circuit(grid.num_qubits)
    for kind, val in step_unitary_ops(str(formula), float(dt), alpha_ratio):
        if kind == "K":
            kinetic_exponential(c, grid, val)
        else:
            potential_oracle(c, grid, V, val)
    return c


def step_gate_counts(n: int, d: int = 1, formula: str = "8") -> dict:
    """Gate counts of one step without the V oracle, from a built circuit on ``n`` qubits per
    dimension: ``{"h", "phase", "cphase", "total", "oracle_calls", "qubits"}``."""

    grid = Grid(int(n), int(d), 1.0)
    c = qsim.Circuit(grid.num_qubits)
    ops = step_unitary_ops(str(formula), 1e-2)
    for kind, val in ops:
        if kind == "K":
            kinetic_exponential(c, grid, val)
    counts = c.count_ops()
    h = counts.get("H", 0)
    ph = counts.get("PhaseShift", 0)
    cp = counts.get("CPhase", 0)
    return {"qubits": grid.num_qubits, "h": h, "phase": ph, "cphase": cp, "total": h + ph + cp,
            "oracle_calls": sum(1 for k, _ in ops if k == "V")}


def mottonen_counts(q: int) -> dict:
    """Generic amplitude loading on ``q`` qubits (Möttönen et al.): RZ and CNOT counts."""
    return {"rz": 2 ** (q + 2) - 5, "cnot": 2 ** (q + 2) - 4 * q - 4}
