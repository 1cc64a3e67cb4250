"""NetKet neural quantum states on the qubit Hamiltonians: operator conversion, H2 energy, run directory."""

import json

import numpy as np
import pytest

from qsim.chem.hamiltonians import molecular_hamiltonian
from qsim.circuits.operators import PauliSum

pytest.importorskip("netket")


@pytest.fixture(scope="module")
def h2():
    return molecular_hamiltonian("H2", basis="sto-3g")


def test_netket_operator_equals_qsim_matrix(h2):
    from qsim.chem.nqs import to_netket_operator

    hilbert, op = to_netket_operator(h2.qubit_hamiltonian, h2.n_qubits)
    assert hilbert.size == 4
    np.testing.assert_allclose(np.asarray(op.to_dense()), h2.qubit_hamiltonian.to_matrix(4).toarray(), atol=1e-12)
    with pytest.raises(ValueError, match="Hermitian"):
        to_netket_operator(PauliSum({((0, "X"),): 1j}), 1)
    with pytest.raises(TypeError, match="PauliSum"):
        to_netket_operator("H2")


def test_h2_rbm_within_one_millihartree(h2):
    """Complex RBM, NetKet VMC + SR with exact sums; the exact variational energy is within 1 mHa."""
    from qsim.chem.nqs import run_nqs

    res = run_nqs(h2.qubit_hamiltonian, h2.n_qubits, steps=150, sampler="full", seed=0)
    assert res.exact_energy > h2.fci_energy - 1e-9      # variational
    assert res.exact_energy - h2.fci_energy < 1e-3
    assert abs(res.energy - res.exact_energy) < 1e-5     # full sums: exact energy of the last-but-one step


def test_cli_nqs_run_directory(tmp_path):
    """Monte Carlo MCState (exact sampler) through `qsim vqe --ansatz nqs`: the run-directory contract."""
    from qsim.infra.cli import main

    out = tmp_path / "nqs"
    rc = main(["vqe", "--system", "H2", "--ansatz", "nqs", "--steps", "20", "--out", str(out), "--no-progress",
               "nqs.n_restarts=1", "nqs.n_samples=256"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "completed" and s["steps"] == 20 and s["ansatz"] == "nqs"
    for k in ("system", "basis", "active_space", "energy", "fci_energy", "error_mha", "energy_stderr"):
        assert k in s
    assert s["energy"] >= s["fci_energy"] - 1e-9          # exact variational energy of the final state
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert header == "step,energy,energy_error,variance,exact_energy,error_mha,step_time_s"
    assert list((out / "checkpoints").glob("step_*.npz"))


def test_nqs_library_call_runs_through_the_driver_loop(h2, tmp_path):
    """Without a run directory the result has the same shape; a callback returning False stops the run
    (and with a run directory the state is checkpointed there)."""
    from qsim.chem.nqs import NQSResult, run_nqs
    from qsim.infra.runs import open_run

    kw = dict(steps=6, sampler="full", n_restarts=1, seed=1)
    bare = run_nqs(h2.qubit_hamiltonian, h2.n_qubits, callback=lambda k, e, err: k < 2, **kw)
    assert isinstance(bare, NQSResult) and bare.steps == 3 and bare.energies.shape == (3,)
    with open_run(tmp_path / "n", "nqs-test", {}) as run:
        kept = run_nqs(h2.qubit_hamiltonian, h2.n_qubits, run=run, callback=lambda k, e, err: k < 2, **kw)
    np.testing.assert_allclose(kept.energies, bare.energies, atol=1e-12)
    assert [p.name for p in (tmp_path / "n" / "checkpoints").glob("*.npz")] == ["step_00000002.npz"]


def test_bad_nqs_input(h2):
    from qsim.chem.nqs import run_nqs

    with pytest.raises(ValueError, match="steps must be a positive int"):
        run_nqs(h2.qubit_hamiltonian, 4, steps=0)
    with pytest.raises(ValueError, match="learning_rate"):
        run_nqs(h2.qubit_hamiltonian, 4, learning_rate=-1.0)
