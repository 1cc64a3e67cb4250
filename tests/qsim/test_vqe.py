"""VQE against PySCF FCI: UCCSD circuits, gradients, QNG, shot backends, CLI run directory."""

import json
import os
import signal

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla

from qsim import Circuit, simulate
from qsim.chem import vqe
from qsim.chem.hamiltonians import molecular_hamiltonian
from qsim.circuits import templates
from qsim.circuits.operators import PauliSum
from qsim.infra.driver import NonFiniteError
from qsim.infra.runs import open_run, read_metrics

CHEMICAL_ACCURACY = 1.6e-3  # Hartree


@pytest.fixture(scope="module")
def h2():
    return molecular_hamiltonian("H2", basis="sto-3g")


@pytest.fixture(scope="module")
def h2_vqe(h2):
    ansatz = vqe.uccsd(h2)
    res = vqe.run_vqe(ansatz.circuit, h2.qubit_hamiltonian, steps=150, learning_rate=0.1)
    return ansatz, res


def _unitary(c: Circuit, params) -> np.ndarray:
    dim = 2 ** c.n_wires
    cols = [np.asarray(simulate(c, params, init_state=jnp.eye(dim, dtype=jnp.complex128)[k])) for k in range(dim)]
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("string,sign", [(((0, "X"), (1, "Y"), (2, "Z")), 1), (((0, "Y"), (2, "X")), -1),
                                         (((1, "Z"), (2, "Z")), -1)])
def test_pauli_rotation_is_the_exponential(string, sign):
    c = Circuit(3)
    vqe.pauli_rotation(c, string, c.new_param(), sign)
    p = PauliSum({string: 1.0}).to_matrix(3).toarray()
    want = sla.expm(-1j * sign * 0.37 / 2 * p)
    np.testing.assert_allclose(_unitary(c, jnp.array([0.37])), want, atol=1e-12)


def test_double_excitation_rotates_hf_into_doubly_excited(h2):
    """exp(theta (T - T^dag)) |1100> = cos(theta) |1100> + sin(theta) |0011> (up to the JW sign)."""
    ansatz = vqe.uccsd(h2, singles=False, form="ladder")
    assert ansatz.labels == ("D(0,1->2,3)",) and ansatz.scales == (4.0,)
    phi = 0.1
    psi = np.asarray(simulate(ansatz.circuit, jnp.array([phi])))
    theta = ansatz.scales[0] * phi
    assert abs(psi[0b1100]) == pytest.approx(np.cos(theta), abs=1e-12)
    assert abs(psi[0b0011]) == pytest.approx(np.sin(theta), abs=1e-12)
    others = np.delete(psi, [0b1100, 0b0011])
    assert np.max(np.abs(others)) < 1e-12


def test_zero_parameters_give_hf_energy(h2):
    ansatz = vqe.uccsd(h2)
    e, g = vqe.energy_and_grad(ansatz.circuit, h2.qubit_hamiltonian)(jnp.zeros(ansatz.num_params))
    assert float(e) == pytest.approx(h2.hf_energy, abs=1e-10)
    assert abs(float(g[1])) < 1e-10 and abs(float(g[2])) < 1e-10     # Brillouin: singles are stationary
    assert abs(float(g[0])) > 1e-2


def test_h2_uccsd_reaches_fci(h2, h2_vqe):
    _, res = h2_vqe
    assert res.energy - h2.fci_energy < 1e-6
    assert res.energy > h2.fci_energy - 1e-10          # variational


def test_metric_tensor_and_qng_step():
    """RY(a) RZ(b) on |0>: Fubini-Study metric diag(1/4, sin(a)^2/4); one QNG step on H2 lowers E."""
    c = Circuit(1)
    c.ry(0)
    c.rz(0)
    a = 0.7
    m = np.asarray(vqe.metric_tensor(c, jnp.array([a, 0.3])))
    np.testing.assert_allclose(m, np.diag([0.25, np.sin(a) ** 2 / 4]), atol=1e-12)


@pytest.mark.slow
def test_h2_uccsd_parity_and_qng():
    mh = molecular_hamiltonian("H2", mapping="parity")
    ansatz = vqe.uccsd(mh, singles=False)
    res = vqe.run_vqe(ansatz.circuit, mh.qubit_hamiltonian, steps=8, optimizer="sgd", learning_rate=0.5,
                      qng=True)
    assert abs(res.energy - mh.fci_energy) < 1e-6       # singles vanish by symmetry for H2


def test_lih_active_space_within_chemical_accuracy():
    mh = molecular_hamiltonian("LiH", basis="sto-3g", active=(2, 2))
    ansatz = vqe.uccsd(mh)
    res = vqe.run_vqe(ansatz.circuit, mh.qubit_hamiltonian, steps=120, learning_rate=0.05)
    assert 0 <= res.energy - mh.fci_energy + 1e-10 < CHEMICAL_ACCURACY
    assert res.energy - mh.fci_energy < 1e-6            # in fact it reaches the active-space FCI


def test_gradient_matches_parameter_shift_and_finite_differences(h2):
    """jax.grad of the statevector energy = parameter shift on shared slots = central differences."""
    from qsim.backends import get_backend
    from qsim.gradients import parameter_shift

    ansatz = vqe.uccsd(h2)
    vg = vqe.energy_and_grad(ansatz.circuit, h2.qubit_hamiltonian)
    f = lambda x: vg(x)[0]  # noqa: E731
    p = jnp.array([0.13, -0.21, 0.05])
    g = np.asarray(vg(p)[1])
    ps = parameter_shift(get_backend("pennylane:lightning.qubit"), ansatz.circuit, np.asarray(p),
                         h2.qubit_hamiltonian)
    np.testing.assert_allclose(g, ps, atol=1e-10)
    eps = 1e-5
    fd = [(float(f(p.at[i].add(eps))) - float(f(p.at[i].add(-eps)))) / (2 * eps) for i in range(3)]
    np.testing.assert_allclose(g, fd, atol=1e-7)


@pytest.mark.parametrize("backend", ["qiskit:aer", "pennylane:lightning.qubit"])
def test_shot_energy_within_statistical_error(h2, h2_vqe, backend):
    """The converged UCCSD parameters on a shot backend: |E_shots - E_FCI| < 4 sigma (sigma exact)."""
    ansatz, res = h2_vqe
    shots = 20000
    est = vqe.shot_estimate(backend, ansatz.circuit, res.params, h2.qubit_hamiltonian, shots, key=7)
    sigma = vqe.exact_stderr(ansatz.circuit, res.params, h2.qubit_hamiltonian, shots)
    assert 0.5e-3 < sigma < 3e-3
    assert abs(est.mean - h2.fci_energy) < 4 * sigma
    assert est.stderr == pytest.approx(sigma, rel=0.3)    # the backend's own error bar is consistent


def test_hardware_efficient_ansatz_h2(h2):
    a = vqe.hardware_efficient(4, 2, h2.hf_state)
    assert a.num_params == 16
    init = 0.01 * np.random.default_rng(0).normal(size=a.num_params)
    res = vqe.run_vqe(a.circuit, h2.qubit_hamiltonian, init_params=init, steps=300, learning_rate=0.05)
    assert abs(res.energy - h2.fci_energy) < CHEMICAL_ACCURACY


def test_bad_vqe_input(h2):
    ansatz = vqe.uccsd(h2)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        vqe.run_vqe(ansatz.circuit, h2.qubit_hamiltonian, steps=0)
    with pytest.raises(ValueError, match="unknown optimizer 'newton'"):
        vqe.run_vqe(ansatz.circuit, h2.qubit_hamiltonian, optimizer="newton")
    with pytest.raises(ValueError, match="init_params has shape"):
        vqe.run_vqe(ansatz.circuit, h2.qubit_hamiltonian, init_params=np.zeros(5))
    with pytest.raises(ValueError, match="qng"):
        vqe.run_vqe(ansatz.circuit, h2.qubit_hamiltonian, optimizer="lbfgs", qng=True)
    with pytest.raises(ValueError, match="unknown energy method"):
        vqe.make_energy_fn(ansatz.circuit, h2.qubit_hamiltonian, method="magic")
    with pytest.raises(ValueError, match="outside the 2-wire circuit"):
        vqe.make_energy_fn(Circuit(2), h2.qubit_hamiltonian)
    with pytest.raises(ValueError, match="layers must be a positive int"):
        vqe.hardware_efficient(4, 0)
    with pytest.raises(ValueError, match="shots must be a positive int"):
        vqe.shot_estimate("statevector", ansatz.circuit, np.zeros(3), h2.qubit_hamiltonian, 0)


def test_cli_run_directory(tmp_path):
    from qsim.infra.cli import main

    out = tmp_path / "lih"
    rc = main(["vqe", "--system", "LiH", "--basis", "sto-3g", "--active", "2,2", "--backend", "statevector",
               "--out", str(out), "--steps", "60", "--learning-rate", "0.05", "--no-progress"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "completed" and s["command"] == "vqe"
    for k in ("system", "basis", "active_space", "energy", "fci_energy", "error_mha", "steps", "wall_time_s"):
        assert k in s
    assert s["system"] == "LiH" and s["active_space"] == [2, 2]
    assert 0 <= s["error_mha"] < 1.6
    assert (out / "metrics.csv").read_text().startswith("step,energy,grad_norm,error_mha,step_time_s")
    # resume: same run, more steps, continues from the checkpoint
    rc = main(["vqe", "--system", "LiH", "--basis", "sto-3g", "--active", "2,2", "--out", str(out),
               "--steps", "70", "--learning-rate", "0.05", "--no-progress"])
    s2 = json.loads((out / "summary.json").read_text())
    assert rc == 0 and s2["steps"] == 70
    straight = tmp_path / "straight"
    main(["vqe", "--system", "LiH", "--basis", "sto-3g", "--active", "2,2", "--out", str(straight),
          "--steps", "70", "--learning-rate", "0.05", "--no-progress"])
    s3 = json.loads((straight / "summary.json").read_text())
    assert s2["energy"] == pytest.approx(s3["energy"], abs=1e-9)     # resumed == uninterrupted (fresh Adam: ~1e-3 off)
    assert main(["vqe", "--system", "H3O", "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert main(["vqe", "--system", "H2", "--active", "2,3", "--out", str(tmp_path / "bad2"),
                 "--no-progress"]) == 2


def _old_hardware_efficient(n_qubits, layers, hf_bits=None):
    """The builder qsim/vqe.py had before the shared template (kept here as the reference)."""
    c = Circuit(n_qubits)
    if hf_bits is not None:
        for w, b in enumerate(hf_bits):
            if int(b):
                c.x(w)
    labels = []
    for layer in range(layers):
        for w in range(n_qubits):
            c.ry(w)
            labels.append(f"L{layer}.RY{w}")
        for w in range(n_qubits):
            c.rz(w)
            labels.append(f"L{layer}.RZ{w}")
        for w in range(n_qubits - 1):
            c.cnot(w, w + 1)
    return c, tuple(labels)


@pytest.mark.parametrize("n, layers, bits", [(1, 1, None), (2, 3, (1, 0)), (4, 2, (1, 1, 0, 0)), (5, 1, None),
                                             (6, 2, (0, 1, 1, 0, 1, 0))])
def test_hardware_efficient_is_the_old_gate_sequence(n, layers, bits):
    """vqe.hardware_efficient now builds through qsim.circuits.templates: the same ops, slots and labels."""
    old, labels = _old_hardware_efficient(n, layers, bits)
    new = vqe.hardware_efficient(n, layers, bits)
    assert new.circuit.key() == old.key()
    assert [op.name for op in new.circuit.ops] == [op.name for op in old.ops]
    assert new.labels == labels and new.num_params == 2 * n * layers
    assert templates.hardware_efficient(n, layers, init_bits=bits).key() == old.key()
    with pytest.raises(ValueError, match="4 entries for 3 wires"):
        templates.hardware_efficient(3, 1, init_bits=(1, 0, 0, 0))


def _h2_run(h2, **kw):
    ansatz = vqe.uccsd(h2)
    return vqe.run_vqe(ansatz.circuit, h2.qubit_hamiltonian, learning_rate=0.1, **kw)


def test_run_vqe_same_result_with_and_without_a_run_directory(h2, tmp_path):
    bare = _h2_run(h2, steps=12)
    with open_run(tmp_path / "r", "vqe-test", {"steps": 12}) as run:
        kept = _h2_run(h2, steps=12, run=run, checkpoint_every=5, reference_energy=h2.fci_energy)
    assert type(bare) is type(kept) is vqe.VQEResult
    np.testing.assert_array_equal(bare.energies, kept.energies)
    assert bare.energy == kept.energy and bare.steps == kept.steps == 12
    m = read_metrics(tmp_path / "r")
    np.testing.assert_allclose(m["energy"], bare.energies)
    np.testing.assert_allclose(m["error_mha"], 1000 * (bare.energies - h2.fci_energy))
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("*.npz")) == \
        ["step_00000009.npz", "step_00000011.npz"]
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_vqe_resumes_to_the_uninterrupted_numbers(h2, tmp_path, signum):
    """A signal during step 6 ends the run as "interrupted" (SIGTERM like Ctrl-C); resuming from the
    step-4 checkpoint (Adam state included) reaches the straight run's numbers."""
    straight = _h2_run(h2, steps=10)

    def stop(step, e, gn, state):
        if step == 6:
            os.kill(os.getpid(), signum)

    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        with open_run(out, "vqe-test", {"steps": 10}) as run:
            _h2_run(h2, steps=10, run=run, checkpoint_every=5, callback=stop)
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "interrupted" and s["interrupted_at_step"] == 6
    with open_run(out, "vqe-test", {"steps": 10}) as run:
        resumed = _h2_run(h2, steps=10, run=run, checkpoint_every=5)
    assert resumed.steps == 5                                   # steps 5..9
    np.testing.assert_allclose(resumed.energies, straight.energies[5:], rtol=0, atol=1e-12)
    assert resumed.energy == pytest.approx(straight.energy, abs=1e-12)


def test_non_finite_energy_stops_with_a_clear_message(tmp_path):
    c = Circuit(2)
    c.ry(0)
    h = PauliSum({((0, "Z"),): 1.0})
    with pytest.raises(NonFiniteError, match=r"non-finite values \(step 0\).*learning rate"):
        with open_run(tmp_path / "nan", "vqe-test", {}) as run:
            vqe.run_vqe(c, h, steps=5, run=run, init_params=[float("nan")])
    assert json.loads((tmp_path / "nan" / "summary.json").read_text())["status"] == "failed"


def test_tol_and_callback_stop_the_run_early(h2):
    assert _h2_run(h2, steps=50, tol=1e9).steps == 11           # moved less than 1e9 over 10 steps
    res = _h2_run(h2, steps=50, callback=lambda step, e, gn, state: step < 3)
    assert res.steps == 4 and len(res.grad_norms) == 4


def test_compiled_programs_are_shared_by_structure_not_identity():
    """Two separately built equal circuits share one compiled program; two Hamiltonians on one circuit
    with the 'pauli' method get their own (keyed by the PauliSum's key())."""
    from qsim.chem import energies

    def circuit():
        c = Circuit(2)
        c.ry(0)
        c.cnot(0, 1)
        c.rx(1)
        return c

    h = PauliSum({((0, "Z"),): 1.0, ((1, "Z"),): 0.5})
    a, b = circuit(), circuit()
    vqe.energy_and_grad(a, h, method="pauli")
    hits = energies._compiled_value_and_grad.cache_info().hits
    vqe.energy_and_grad(b, h, method="pauli")
    assert energies._compiled_value_and_grad.cache_info().hits == hits + 1
    p = jnp.array([0.3, -0.4])
    e1 = float(vqe.energy_and_grad(a, h, method="pauli")(p)[0])
    e2 = float(vqe.energy_and_grad(a, PauliSum({((0, "Z"),): 1.0}), method="pauli")(p)[0])
    assert e1 == pytest.approx(np.cos(0.3) * (1 + 0.5 * np.cos(0.4)), abs=1e-10)
    assert e2 == pytest.approx(np.cos(0.3), abs=1e-10)


def test_shot_vqe_resumes_with_its_random_stream(h2, tmp_path):
    """The shot run checkpoints parameters, optimiser state and PRNG key: a resumed run draws the same
    shots as the uninterrupted one."""
    ansatz = vqe.uccsd(h2)
    kw = dict(shots=200, steps=4, final_shots=200, learning_rate=0.05)
    straight = vqe.run_vqe_shots(ansatz.circuit, h2.qubit_hamiltonian, "statevector", **kw)
    with open_run(tmp_path / "s", "vqe-test", {}) as run:
        first = vqe.run_vqe_shots(ansatz.circuit, h2.qubit_hamiltonian, "statevector", run=run,
                                  checkpoint_every=1, callback=lambda step, e, gn, p: step < 1, **kw)
    assert first.steps == 2
    with open_run(tmp_path / "s", "vqe-test", {}) as run:
        rest = vqe.run_vqe_shots(ansatz.circuit, h2.qubit_hamiltonian, "statevector", run=run, **kw)
    np.testing.assert_allclose(np.concatenate([first.energies, rest.energies]), straight.energies, atol=1e-12)
    assert rest.energy == pytest.approx(straight.energy, abs=1e-12)


def test_cli_without_out_writes_nothing_and_prints_the_energy(tmp_path, monkeypatch, capsys):
    from qsim.infra.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["vqe", "--system", "H2", "--steps", "3", "--no-progress"]) == 0
    assert "vqe H2 uccsd: E = -1.1" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
