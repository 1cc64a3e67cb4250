import jax.numpy as jnp
import numpy as np
import pytest

import qsim
from flows.circuits import (kinetic_exponential, mottonen_counts, qft_network, step_circuit,
                            step_gate_counts)
from flows.evolve import evolve
from flows.grid import Grid, coordinates, make_grid, state_from_density
from flows.hamiltonian import gradient_flow, kinetic_diagonal, potential_on_grid
from flows.metrics import infidelity


@pytest.fixture(scope="module")
def step_case():
    """2 dimensions x 3 qubits, a time-dependent non-separable potential, one step at t0 = 0.3."""
    g = make_grid(3, 2, 2.0)

    def V(x, t):
        return 0.6 * jnp.cos(np.pi / 2 * x[0] - t) * (1 + 0.5 * jnp.sin(np.pi / 2 * x[1]))
    flow = gradient_flow(V, 2)
    x = coordinates(g)
    psi0 = state_from_density(np.exp(-(x[..., 0] ** 2 + 0.5 * x[..., 1] ** 2) + 0.3 * x[..., 0]))
    return g, flow, psi0, 0.3, 0.05


def test_qft_network_is_bit_reversed_qft():
    n = 3
    c = qft_network(qsim.Circuit(n), [0, 1, 2])
    U = np.stack([np.asarray(qsim.simulate(c, jnp.zeros(0), init_state=jnp.eye(8)[j] + 0j))
                  for j in range(8)], axis=1)
    F = np.sqrt(8) * np.fft.ifft(np.eye(8), axis=0)          # QFT|j> = sum_m e^{2 pi i jm/N}|m>/sqrt N
    rev = [int(f"{m:03b}"[::-1], 2) for m in range(8)]
    np.testing.assert_allclose(U, F[rev], atol=1e-12)


def test_kinetic_exponential_matches_fft():
    g = Grid(4, 1, 1.7)
    c = kinetic_exponential(qsim.Circuit(4), g, 0.37)
    rng = np.random.default_rng(0)
    psi = rng.normal(size=16) + 1j * rng.normal(size=16)
    psi /= np.linalg.norm(psi)
    out = np.asarray(qsim.simulate(c, jnp.zeros(0), init_state=jnp.asarray(psi)))
    ref = np.fft.ifft(np.exp(0.37j * kinetic_diagonal(g)) * np.fft.fft(psi))
    np.testing.assert_allclose(out, ref, atol=1e-12)


@pytest.mark.parametrize("formula", ["4", "8"])
def test_step_circuit_reproduces_classical_step(step_case, formula):
    g, flow, psi0, t0, dt = step_case
    classical = np.asarray(evolve(psi0, flow, g, dt, 1, formula, t0=t0)).ravel()
    V = np.asarray(potential_on_grid(flow, g, t0 + dt / 2))
    c = step_circuit(g, V, dt, formula)
    out = np.asarray(qsim.simulate(c, jnp.zeros(0), init_state=jnp.asarray(psi0.ravel() + 0j)))
    assert np.max(np.abs(out - classical)) < 1e-6
    assert infidelity(out, psi0.ravel()) > 1e-6             # the step moved the state


def test_step_circuit_runs_on_aer_and_exports(step_case):
    """The step (after an exact state preparation of psi0) on qsim's qiskit:aer backend and through
    the shared qiskit converter."""
    pytest.importorskip("qiskit_aer")
    from qiskit.quantum_info import Statevector

    from flows.estimate import state_preparation_unitary
    from qsim.interop import to_qiskit

    g, flow, psi0, t0, dt = step_case
    V = np.asarray(potential_on_grid(flow, g, t0 + dt / 2))
    full = qsim.Circuit(g.num_qubits)
    full.unitary(state_preparation_unitary(psi0), list(range(g.num_qubits)))
    full.append(step_circuit(g, V, dt, "8"))
    classical = np.asarray(evolve(psi0, flow, g, dt, 1, "8", t0=t0)).ravel()
    p = np.asarray(qsim.get_backend("qiskit:aer").probs(full))
    assert np.max(np.abs(p - np.abs(classical) ** 2)) < 1e-6
    # amplitudes: the converter puts qsim wire w on qiskit qubit w, so qiskit's little-endian
    # index is the bit reversal of the qsim index
    sv = Statevector(to_qiskit(full)).data
    n = g.num_qubits
    rev = np.array([int(f"{i:0{n}b}"[::-1], 2) for i in range(2 ** n)])
    assert np.max(np.abs(sv[rev] - classical)) < 1e-6


def test_gate_counts_polynomial_vs_mottonen():
    counts = [step_gate_counts(n, 1, "8")["total"] for n in range(2, 11)]
    ns = np.arange(2, 11)
    # per step: 4 kinetic exponentials x (2 n H + 2 n(n-1)/2 CPhase + n phase + n(n-1)/2 CPhase)
    assert counts == [4 * (2 * n + n * (n - 1) + n + n * (n - 1) // 2) for n in ns]
    assert mottonen_counts(3) == {"rz": 27, "cnot": 16}
    # polynomial (~n^2) per step against 2^n for amplitude loading
    assert counts[-1] / counts[3] < (10 / 5) ** 2.2
    assert mottonen_counts(10)["cnot"] / mottonen_counts(5)["cnot"] > 2 ** 4.5
    assert mottonen_counts(12)["cnot"] > 10 * step_gate_counts(12, 1, "8")["total"]
    assert step_gate_counts(6, 2, "4")["oracle_calls"] == 2
