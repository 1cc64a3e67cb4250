"""Molecular qubit Hamiltonians against PySCF: FCI, HF energies, sectors, bad input."""

import numpy as np
import pytest

from qsim.chem.hamiltonians import (MolecularHamiltonian, build_mole, excitations, hf_state, molecular_hamiltonian,
                            number_operator, sector_ground_energy, sz_operator)
from qsim.molecules import CATALOG, get_molecule
from qsim.circuits.operators import PauliSum


@pytest.fixture(scope="module", params=["jordan_wigner", "parity"])
def h2(request):
    return molecular_hamiltonian("H2", basis="sto-3g", mapping=request.param)


def _hf_energy(mh: MolecularHamiltonian) -> float:
    idx = int("".join(map(str, mh.hf_state)), 2)
    return float(mh.qubit_hamiltonian.to_matrix(mh.n_qubits)[idx, idx].real)


def test_catalog_data():
    assert get_molecule("lih").positions == ((0.0, 0.0, 0.0), (3.015, 0.0, 0.0))
    assert get_molecule("H2").reference_energy == -1.1744757
    assert get_molecule("Li").spin == 1 and get_molecule("N").spin == 3
    assert get_molecule("Li2").n_electrons == 6
    assert set(CATALOG) >= {"H", "He", "H2", "LiH", "Li", "Be", "B", "C", "N", "Li2"}
    with pytest.raises(ValueError, match="unknown molecule 'H3O'"):
        get_molecule("H3O")


def test_h2_lowest_eigenvalue_equals_fci(h2):
    """The 4-qubit Hamiltonian's lowest eigenvalue is PySCF's FCI energy (both mappings)."""
    assert h2.n_qubits == 4 and h2.n_electrons == 2 and h2.spin == 0
    assert h2.fci_energy == pytest.approx(-1.1372759436, abs=1e-8)  # FCI/STO-3G at R = 1.4 bohr
    dense = np.linalg.eigvalsh(h2.qubit_hamiltonian.to_matrix(4).toarray())
    assert abs(dense[0] - h2.fci_energy) < 1e-8
    assert abs(h2.sector_ground_energy() - h2.fci_energy) < 1e-8
    assert h2.qubit_hamiltonian.is_hermitian()
    assert len(h2.qubit_hamiltonian) == 15


def test_h2_hf_state_energy_is_scf_energy(h2):
    assert abs(_hf_energy(h2) - h2.hf_energy) < 1e-10
    want = (1, 1, 0, 0) if h2.mapping == "jordan_wigner" else (1, 0, 0, 0)
    assert h2.hf_state == want


def test_mappings_are_isospectral(h2):
    other = molecular_hamiltonian("H2", mapping="parity" if h2.mapping == "jordan_wigner" else "jordan_wigner",
                                  fci=False)
    a = np.linalg.eigvalsh(h2.qubit_hamiltonian.to_matrix(4).toarray())
    b = np.linalg.eigvalsh(other.qubit_hamiltonian.to_matrix(4).toarray())
    np.testing.assert_allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("mapping", ["jordan_wigner", "parity"])
def test_lih_active_space_matches_casci(mapping):
    mh = molecular_hamiltonian("LiH", basis="sto-3g", active=(2, 3), mapping=mapping)
    assert (mh.n_qubits, mh.n_core, mh.n_alpha, mh.n_beta) == (6, 1, 1, 1)
    assert abs(mh.sector_ground_energy() - mh.fci_energy) < 1e-8
    assert abs(_hf_energy(mh) - mh.hf_energy) < 1e-8     # frozen core + active HF = SCF energy
    assert mh.fci_energy < mh.hf_energy


def test_open_shell_atom_and_sectors():
    mh = molecular_hamiltonian("Li", basis="sto-3g", active=(1, 2))     # ROHF core 1s^2, 2s/2p active
    assert (mh.n_alpha, mh.n_beta, mh.spin) == (1, 0, 1)
    assert mh.hf_occupations == (1, 0, 0, 0)
    assert abs(mh.sector_ground_energy() - mh.fci_energy) < 1e-8


def test_number_and_sz_operators_are_diagonal():
    for mapping in ("jordan_wigner", "parity"):
        n = number_operator(4, mapping).to_matrix(4)
        sz = sz_operator(4, mapping).to_matrix(4)
        assert abs(n - n.multiply(np.eye(16))).max() < 1e-12
        bits = hf_state(2, 1, 2, mapping)
        idx = int("".join(map(str, bits)), 2)
        assert n[idx, idx].real == pytest.approx(3) and sz[idx, idx].real == pytest.approx(1)


def test_sector_ground_energy_of_a_toy():
    # H = -n_0 - n_1 (JW): the 2-electron ground energy on 2 qubits is -2, the 1-electron one -1
    h = PauliSum.from_list([(-1.0, "II"), (0.5, "ZI"), (0.5, "IZ")])
    assert sector_ground_energy(h, 2, 2) == pytest.approx(-2.0)
    assert sector_ground_energy(h, 2, 1) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="no basis state"):
        sector_ground_energy(h, 2, 3)


def test_excitations_counts():
    s, d = excitations(1, 1, 2)
    assert s == [(0, 2), (1, 3)] and d == [(0, 1, 2, 3)]
    s, d = excitations(2, 2, 6)  # 4 electrons in 12 spin orbitals, S_z conserved
    assert len(s) == 16 and len(d) == 76


def test_from_atoms_and_pyscf_mole_agree():
    a = molecular_hamiltonian(atoms=["H", "H"], coords=[[0, 0, 0], [0, 0, 1.4]], fci=True)
    mol, _ = build_mole("H2")
    b = molecular_hamiltonian(mol, basis="sto-3g")
    assert a.fci_energy == pytest.approx(b.fci_energy, abs=1e-9)


# ------------------------------------------------------------------ bad input: clear errors, early
def test_active_space_larger_than_basis():
    with pytest.raises(ValueError, match="larger than the 'sto-3g' basis"):
        molecular_hamiltonian("H2", active=(2, 3))
    with pytest.raises(ValueError, match="needs 7 orbitals"):
        molecular_hamiltonian("LiH", active=(2, 6))   # 1 core + 6 > 6 orbitals
    with pytest.raises(ValueError, match="only 2"):
        molecular_hamiltonian("H2", active=(4, 2))


def test_odd_electrons_with_closed_shell_request():
    with pytest.raises(ValueError, match="odd number of electrons"):
        molecular_hamiltonian("Li", closed_shell=True)
    with pytest.raises(ValueError, match="spin=0 .* impossible for 3 electrons"):
        molecular_hamiltonian("Li", spin=0)
    with pytest.raises(ValueError, match="odd number"):
        molecular_hamiltonian("LiH", active=(3, 3))    # leaves 1 electron for the core


def test_unknown_basis_mapping_element():
    with pytest.raises(ValueError, match="unknown basis 'sto-42g'"):
        molecular_hamiltonian("H2", basis="sto-42g")
    with pytest.raises(ValueError, match="unknown fermion-to-qubit mapping 'bravyi'"):
        molecular_hamiltonian("H2", mapping="bravyi")
    with pytest.raises(ValueError, match="unknown element 'Xx'"):
        molecular_hamiltonian(atoms=["Xx"], coords=[[0, 0, 0]])
    with pytest.raises(ValueError, match="unknown molecule"):
        molecular_hamiltonian("water")
    with pytest.raises(ValueError, match="coords must have shape"):
        molecular_hamiltonian(atoms=["H", "H"], coords=[[0, 0, 0]])
