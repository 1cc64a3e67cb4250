"""Molecular qubit Hamiltonians: PySCF integrals -> fermionic operator -> qsim.PauliSum.

    from qsim.chem.hamiltonians import molecular_hamiltonian
    mh = molecular_hamiltonian("LiH", basis="sto-3g", active=(2, 2), mapping="jordan_wigner")
    mh.qubit_hamiltonian      # qsim.PauliSum on mh.n_qubits = 2 * n_orbitals wires (Hartree)
    mh.hf_state               # (n_qubits,) bits of the Hartree-Fock determinant in the mapping's basis
    mh.fci_energy             # CASCI (= FCI inside the active space) total energy from PySCF (Hartree)

Pipeline (no hand-rolled integrals): a PySCF ``Mole`` (from the catalog of :mod:`qsim.molecules`, a
``Mole`` you built, or ``atoms`` + ``coords`` in bohr) -> RHF (ROHF for open shells) -> CASCI active
space (``active=(n_electrons, n_orbitals)``; the doubly occupied orbitals below it are frozen into a
core energy and an effective one-body operator by PySCF's ``get_h1eff``/``get_h2eff``) -> PennyLane's
``qchem.fermionic_observable`` (spin orbitals interleaved: qubit 2p is orbital p spin up, 2p+1 spin
down) -> ``qml.jordan_wigner`` or ``qml.parity_transform`` -> :class:`qsim.PauliSum`.

Units: Hartree for every energy, bohr for every coordinate. Wire 0 of the PauliSum is spin orbital 0
(PennyLane's wire 0), the most significant bit of qsim basis indices.

Particle number and S_z are diagonal in the computational basis for both mappings
(:func:`number_operator`, :func:`sz_operator`), so :func:`sector_ground_energy` diagonalises the
Hamiltonian inside a fixed (N, S_z) sector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from qsim.molecules import ATOMIC_NUMBERS, check_spin, get_molecule
from qsim.circuits.operators import PauliSum
from qsim.circuits.operators import I, Z
import scipy.sparse.linalg as sla

__all__ = ["MolecularHamiltonian", "MAPPINGS", "build_mole", "molecular_hamiltonian", "fermion_to_qubit",
           "pauli_sum_from_pennylane", "hf_state", "number_operator", "sz_operator",
           "sector_ground_energy", "excitations"]

MAPPINGS = ("jordan_wigner", "parity")
_MAPPING_ALIASES = {"jordan_wigner": "jordan_wigner", "jw": "jordan_wigner", "jordan-wigner": "jordan_wigner",
                    "parity": "parity"}


@dataclass(frozen=True)
class MolecularHamiltonian:
    """A molecule's qubit Hamiltonian in an active space, with its reference data (Hartree, bohr).

    Attributes:
        name: label (catalog name or a formula).
        basis: Gaussian basis name (PySCF).
        mapping: ``"jordan_wigner"`` or ``"parity"``.
        qubit_hamiltonian: the PauliSum on ``n_qubits`` wires (includes the core energy as identity).
        n_qubits: ``2 * n_orbitals``.
        n_electrons: active electrons; ``n_alpha + n_beta``.
        n_orbitals: active spatial orbitals.
        n_alpha, n_beta: active spin-up / spin-down electrons.
        spin: ``n_alpha - n_beta`` (2S, PySCF's convention).
        n_core: frozen doubly occupied spatial orbitals below the active space.
        total_electrons, charge: of the whole molecule.
        core_energy: nuclear repulsion + frozen-core energy (the identity coefficient's source).
        one_body: ``(n_orbitals, n_orbitals)`` effective one-electron integrals (active MO basis).
        two_body: ``(n_orbitals,)*4`` two-electron integrals in chemists' order ``(pq|rs)``.
        hf_occupations: ``(n_qubits,)`` Hartree-Fock spin-orbital occupations (0/1).
        hf_state: ``(n_qubits,)`` the same determinant's bits in the mapping's qubit basis.
        hf_energy: SCF total energy from PySCF.
        fci_energy: CASCI total energy (exact inside the active space), or None if not computed.
        nuclear_repulsion: nuclear repulsion energy.
    """

    name: str
    basis: str
    mapping: str
    qubit_hamiltonian: PauliSum = field(repr=False)
    n_qubits: int
    n_electrons: int
    n_orbitals: int
    n_alpha: int
    n_beta: int
    spin: int
    n_core: int
    total_electrons: int
    charge: int
    core_energy: float
    one_body: np.ndarray = field(repr=False)
    two_body: np.ndarray = field(repr=False)
    hf_occupations: tuple[int, ...]
    hf_state: tuple[int, ...]
    hf_energy: float
    fci_energy: float | None
    nuclear_repulsion: float

    @property
    def active_space(self) -> tuple[int, int]:
        """``(n_electrons, n_orbitals)`` of the active space."""
        return (self.n_electrons, self.n_orbitals)

    def sector_ground_energy(self) -> float:
        """Lowest eigenvalue of the qubit Hamiltonian with this molecule's N and S_z (Hartree)."""
        return sector_ground_energy(self.qubit_hamiltonian, self.n_qubits, self.n_electrons,
                                    mapping=self.mapping, sz2=self.n_alpha - self.n_beta)


# ---------------------------------------------------------------------------------------------------
# molecules
# ---------------------------------------------------------------------------------------------------
def _normalise_mapping(mapping: str) -> str:
    if not isinstance(mapping, str) or mapping.lower() not in _MAPPING_ALIASES:
        raise ValueError(f"unknown fermion-to-qubit mapping {mapping!r}; choose one of {', '.join(MAPPINGS)}")
    return _MAPPING_ALIASES[mapping.lower()]


def _check_basis(basis: str, atoms: Sequence[str]) -> None:
    """Raise ValueError naming ``basis`` if PySCF does not know it for every element."""
    from pyscf.gto import basis as pyscf_basis

    if not isinstance(basis, str) or not basis.strip():
        raise ValueError(f"basis must be a non-empty string (e.g. 'sto-3g'), got {basis!r}")
    for a in sorted(set(atoms)):
        try:
            data = pyscf_basis.load(basis, a)
        except Exception as e:  # PySCF raises various types (BasisNotFoundError, KeyError, RuntimeError)
            raise ValueError(f"unknown basis {basis!r} for element {a} (PySCF: {type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
        if not data:
            raise ValueError(f"unknown basis {basis!r}: PySCF has no functions for element {a}")


def build_mole(molecule=None, *, atoms: Sequence[str] | None = None, coords=None, basis: str = "sto-3g",
               charge: int | None = None, spin: int | None = None, closed_shell: bool = False):
    """A built PySCF ``Mole`` (unit bohr, verbose 0) and its label.

    Args:
        molecule: a catalog name (:func:`qsim.molecules.get_molecule`), a PySCF ``Mole`` or None.
        atoms, coords: element symbols and ``(M, 3)`` positions in bohr (when ``molecule`` is None).
        basis: PySCF basis name; unknown names raise ``ValueError`` before any integral is computed.
        charge, spin: override the catalog / Mole values (spin = n_up - n_down).
        closed_shell: demand a closed-shell (RHF) reference: spin 0 and an even electron count.

    Returns:
        ``(mole, name)``.
    """
    from pyscf import gto

    if molecule is not None and (atoms is not None or coords is not None):
        raise ValueError("give either a molecule (catalog name or PySCF Mole) or atoms + coords, not both")
    if isinstance(molecule, str):
        spec = get_molecule(molecule)
        name, atoms, coords = spec.name, list(spec.atoms), np.asarray(spec.positions, dtype=np.float64)
        charge = spec.charge if charge is None else charge
        spin = spec.spin if spin is None else spin
    elif isinstance(molecule, gto.Mole):
        if not molecule._built:
            molecule.build()
        atoms = [molecule.atom_pure_symbol(i) for i in range(molecule.natm)]
        coords = np.asarray(molecule.atom_coords(unit="Bohr"), dtype=np.float64)
        name = molecule.formula if hasattr(molecule, "formula") else "".join(atoms)
        charge = molecule.charge if charge is None else charge
        spin = molecule.spin if spin is None else spin
        if basis is None:
            basis = molecule.basis
    elif molecule is None:
        if atoms is None or coords is None:
            raise ValueError("give a molecule (catalog name or PySCF Mole) or both atoms and coords (bohr)")
        atoms = [str(a) for a in atoms]
        coords = np.asarray(coords, dtype=np.float64)
        name = "".join(atoms)
    else:
        raise TypeError(f"molecule must be a catalog name, a PySCF Mole or None, got {type(molecule).__name__}")

    for a in atoms:
        if a not in ATOMIC_NUMBERS:
            raise ValueError(f"unknown element {a!r}; known: {', '.join(ATOMIC_NUMBERS)}")
    if coords.shape != (len(atoms), 3):
        raise ValueError(f"coords must have shape ({len(atoms)}, 3) in bohr, got {coords.shape}")
    if not np.all(np.isfinite(coords)):
        raise ValueError(f"non-finite coordinates {coords.tolist()}")
    charge = 0 if charge is None else charge
    if isinstance(charge, bool) or not isinstance(charge, (int, np.integer)):
        raise TypeError(f"charge must be an int, got {charge!r}")
    n_el = sum(ATOMIC_NUMBERS[a] for a in atoms) - int(charge)
    if spin is None:
        spin = n_el % 2
    if closed_shell:
        if n_el % 2:
            raise ValueError(f"{name} has an odd number of electrons ({n_el}): a closed-shell (RHF) "
                             "reference is impossible; request an open shell (closed_shell=False, spin=1)")
        if spin != 0:
            raise ValueError(f"closed_shell=True needs spin=0, got spin={spin} for {name}")
    check_spin(n_el, spin, name)
    _check_basis(basis, atoms)

    mol = gto.Mole()
    mol.atom = [(a, tuple(float(x) for x in c)) for a, c in zip(atoms, coords)]
    mol.unit = "Bohr"
    mol.basis = basis
    mol.charge = int(charge)
    mol.spin = int(spin)
    mol.verbose = 0
    mol.build()
    return mol, name


# ---------------------------------------------------------------------------------------------------
# fermions -> qubits
# ---------------------------------------------------------------------------------------------------
def pauli_sum_from_pennylane(op, tol: float = 1e-12) -> PauliSum:
    """A PennyLane operator or ``PauliSentence`` -> :class:`PauliSum` (PennyLane wire k -> qsim wire k)."""
    ps = op if hasattr(op, "items") and not hasattr(op, "wires") else op.pauli_rep
    if ps is None:
        raise TypeError(f"cannot read Pauli terms from {type(op).__name__}")
    terms: dict = {}
    for word, coeff in ps.items():
        string = tuple(sorted((int(w), str(p)) for w, p in word.items() if p != "I"))
        terms[string] = terms.get(string, 0) + complex(coeff)
    return PauliSum(terms).simplify(tol)


def fermion_to_qubit(fermi_operator, n_qubits: int, mapping: str = "jordan_wigner",
                     tol: float = 1e-12) -> PauliSum:
    """Map a PennyLane ``FermiSentence``/``FermiWord`` on ``n_qubits`` spin orbitals to a PauliSum."""
    import pennylane as qml

    mapping = _normalise_mapping(mapping)
    if mapping == "jordan_wigner":
        ps = qml.jordan_wigner(fermi_operator, ps=True)
    else:
        ps = qml.parity_transform(fermi_operator, n_qubits, ps=True)
    return pauli_sum_from_pennylane(ps, tol)


def _jw_to_mapping(bits: Sequence[int], mapping: str) -> tuple[int, ...]:
    """Occupation-number bits -> the mapping's computational-basis bits."""
    bits = [int(b) for b in bits]
    if mapping == "jordan_wigner":
        return tuple(bits)
    return tuple(int(v) for v in (np.cumsum(bits) % 2))  # parity: qubit j holds n_0 + ... + n_j mod 2


def hf_state(n_alpha: int, n_beta: int, n_orbitals: int, mapping: str = "jordan_wigner") -> tuple[int, ...]:
    """Hartree-Fock determinant as ``(2 * n_orbitals,)`` bits in the mapping's basis.

    Spin orbitals interleave: bit 2p is orbital p spin up, 2p+1 spin down; the lowest ``n_alpha`` up
    and ``n_beta`` down orbitals are occupied.
    """
    mapping = _normalise_mapping(mapping)
    if not 0 <= n_beta <= n_alpha <= n_orbitals:
        raise ValueError(f"need 0 <= n_beta ({n_beta}) <= n_alpha ({n_alpha}) <= n_orbitals ({n_orbitals})")
    occ = [0] * (2 * n_orbitals)
    for p in range(n_alpha):
        occ[2 * p] = 1
    for p in range(n_beta):
        occ[2 * p + 1] = 1
    return _jw_to_mapping(occ, mapping)


def number_operator(n_qubits: int, mapping: str = "jordan_wigner") -> PauliSum:
    """Total electron number ``sum_j n_j`` as a PauliSum (diagonal in the computational basis)."""
    mapping = _normalise_mapping(mapping)

    if mapping == "jordan_wigner":
        return sum((0.5 * (I() - Z(j)) for j in range(n_qubits)), PauliSum())
    # parity: n_j = (1 - Z_{j-1} Z_j) / 2, n_0 = (1 - Z_0) / 2
    out = 0.5 * (I() - Z(0))
    for j in range(1, n_qubits):
        out = out + 0.5 * (I() - Z(j - 1) @ Z(j))
    return out


def sz_operator(n_qubits: int, mapping: str = "jordan_wigner") -> PauliSum:
    """``2 S_z = N_up - N_down`` as a PauliSum (diagonal in the computational basis)."""
    mapping = _normalise_mapping(mapping)

    def n(j):
        if mapping == "jordan_wigner" or j == 0:
            return 0.5 * (I() - Z(j))
        return 0.5 * (I() - Z(j - 1) @ Z(j))

    out = PauliSum()
    for j in range(n_qubits):
        out = out + (n(j) if j % 2 == 0 else -1.0 * n(j))
    return out


def _diagonal(op: PauliSum, n_qubits: int) -> np.ndarray:
    m = op.to_matrix(n_qubits)
    return np.real(m.diagonal())


def sector_ground_energy(hamiltonian: PauliSum, n_qubits: int, n_electrons: int,
                         mapping: str = "jordan_wigner", sz2: int | None = None, k: int = 1):
    """Lowest eigenvalue(s) of ``hamiltonian`` restricted to N = ``n_electrons`` (and 2 S_z = ``sz2``)."""
    mapping = _normalise_mapping(mapping)
    if n_qubits > 20:
        raise ValueError(f"sector_ground_energy on {n_qubits} qubits is too large for exact diagonalisation")
    mask = np.isclose(_diagonal(number_operator(n_qubits, mapping), n_qubits), n_electrons)
    if sz2 is not None:
        mask &= np.isclose(_diagonal(sz_operator(n_qubits, mapping), n_qubits), sz2)
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        raise ValueError(f"no basis state has N={n_electrons}" + ("" if sz2 is None else f", 2Sz={sz2}")
                         + f" on {n_qubits} qubits")
    sub = hamiltonian.to_matrix(n_qubits)[idx][:, idx]
    if idx.size <= 2000:
        w = np.linalg.eigvalsh(sub.toarray())[:k]
    else:

        w = np.sort(sla.eigsh(sub, k=k, which="SA", return_eigenvectors=False).real)
    return float(w[0]) if k == 1 else w


def excitations(n_alpha: int, n_beta: int, n_orbitals: int):
    """Spin-conserving singles ``[(i, a)]`` and doubles ``[(i, j, a, b)]`` out of the HF determinant.

    Spin-orbital indices (interleaved: even = up, odd = down); occupied ``i < j``, virtual ``a < b``;
    S_z is conserved.
    """
    occ = [2 * p for p in range(n_alpha)] + [2 * p + 1 for p in range(n_beta)]
    occ = sorted(occ)
    virt = [q for q in range(2 * n_orbitals) if q not in occ]
    singles = [(i, a) for i in occ for a in virt if i % 2 == a % 2]
    doubles = []
    for x, i in enumerate(occ):
        for j in occ[x + 1:]:
            for y, a in enumerate(virt):
                for b in virt[y + 1:]:
                    if (i % 2) + (j % 2) == (a % 2) + (b % 2):
                        doubles.append((i, j, a, b))
    return singles, doubles


def _active_space(mol, name: str, basis: str, active) -> tuple[int, int, int, int, int]:
    """``(n_electrons, n_orbitals, n_core, n_alpha, n_beta)`` of the active space, checked against the
    molecule and its basis (``active=None``: every electron in every orbital)."""
    n_total = int(mol.nelectron)
    n_alpha_tot, n_beta_tot = (n_total + mol.spin) // 2, (n_total - mol.spin) // 2
    nao = int(mol.nao_nr())
    if active is None:
        active = (n_total, nao)
    try:
        n_act_el, n_act_orb = (int(v) for v in active)
    except (TypeError, ValueError):
        raise ValueError(f"active must be a pair (n_electrons, n_orbitals), got {active!r}") from None
    if n_act_orb < 1 or n_act_el < 1:
        raise ValueError(f"active space {active!r} needs at least one electron and one orbital")
    if n_act_orb > nao:
        raise ValueError(f"active space of {n_act_orb} orbitals is larger than the {basis!r} basis of {name} "
                         f"({nao} orbitals)")
    if n_act_el > n_total:
        raise ValueError(f"active space with {n_act_el} electrons, but {name} has only {n_total}")
    if (n_total - n_act_el) % 2:
        raise ValueError(f"active space with {n_act_el} of {name}'s {n_total} electrons leaves an odd number "
                         f"({n_total - n_act_el}) for the doubly occupied core")
    n_core = (n_total - n_act_el) // 2
    n_alpha, n_beta = n_alpha_tot - n_core, n_beta_tot - n_core
    if n_beta < 0:
        raise ValueError(f"active space {active!r} holds fewer electrons than {name}'s unpaired spin {mol.spin}")
    if n_core + n_act_orb > nao:
        raise ValueError(f"active space {active!r} above {n_core} frozen core orbital(s) needs {n_core + n_act_orb} "
                         f"orbitals; the {basis!r} basis of {name} has {nao}")
    if n_alpha > n_act_orb:
        raise ValueError(f"active space {active!r}: {n_alpha} spin-up electrons do not fit in {n_act_orb} orbitals")
    if 2 * n_act_orb > 24:
        raise ValueError(f"active space of {n_act_orb} orbitals needs {2 * n_act_orb} qubits; the limit here is 24")
    return n_act_el, n_act_orb, n_core, n_alpha, n_beta


def _casci_integrals(mol, n_act_orb: int, n_alpha: int, n_beta: int, fci: bool):
    """PySCF RHF/ROHF and the CASCI active space: ``(hf_energy, h1eff, h2eff (chemists', 4-index),
    core energy, CASCI energy or None)``."""
    from pyscf import ao2mo, mcscf, scf

    mf = scf.RHF(mol) if mol.spin == 0 else scf.ROHF(mol)
    mf.verbose = 0
    hf_energy = float(mf.kernel())
    if not mf.converged:
        mf = mf.newton()
        hf_energy = float(mf.kernel())
    mc = mcscf.CASCI(mf, n_act_orb, (n_alpha, n_beta))
    mc.verbose = 0
    h1, ecore = mc.get_h1eff()
    h2 = ao2mo.restore(1, mc.get_h2eff(), n_act_orb)
    fci_energy = None
    if fci:
        mc.fcisolver.nroots = 1
        fci_energy = float(mc.kernel()[0])
    return hf_energy, h1, h2, ecore, fci_energy


# ---------------------------------------------------------------------------------------------------
# the whole pipeline
# ---------------------------------------------------------------------------------------------------
def molecular_hamiltonian(molecule=None, *, atoms: Sequence[str] | None = None, coords=None,
                          basis: str = "sto-3g", active: tuple[int, int] | None = None,
                          mapping: str = "jordan_wigner", charge: int | None = None, spin: int | None = None,
                          closed_shell: bool = False, fci: bool = True,
                          cutoff: float = 1e-12) -> MolecularHamiltonian:
    """Build a molecule's qubit Hamiltonian (Hartree) in an active space.

    Args:
        molecule: catalog name (see :mod:`qsim.molecules`), a PySCF ``Mole``, or None with ``atoms`` +
            ``coords`` (bohr).
        basis: PySCF basis name (``"sto-3g"``, ``"6-31g"``, ``"cc-pvdz"``, ...).
        active: ``(n_electrons, n_orbitals)``; None means every electron in every orbital. The
            ``(total - n_electrons) / 2`` lowest orbitals are frozen (doubly occupied core).
        mapping: ``"jordan_wigner"`` or ``"parity"``.
        charge, spin: override the molecule's (spin = n_up - n_down).
        closed_shell: demand an RHF (closed-shell) reference; odd electron counts raise ValueError.
        fci: also run PySCF's CASCI (FCI inside the active space) for the reference energy.
        cutoff: integrals below this magnitude are dropped.

    Raises:
        ValueError: unknown molecule / element / basis / mapping, impossible spin or charge, an active
            space larger than the basis or holding more electrons than it can, odd core electrons.
    """
    mapping = _normalise_mapping(mapping)
    mol, name = build_mole(molecule, atoms=atoms, coords=coords, basis=basis, charge=charge, spin=spin,
                           closed_shell=closed_shell)
    n_total = int(mol.nelectron)
    n_act_el, n_act_orb, n_core, n_alpha, n_beta = _active_space(mol, name, basis, active)
    hf_energy, h1, h2, ecore, fci_energy = _casci_integrals(mol, n_act_orb, n_alpha, n_beta, fci)

    import pennylane as qml

    one = np.asarray(h1, dtype=np.float64)
    two_chem = np.asarray(h2, dtype=np.float64)
    # PennyLane: H = sum one[p,q] a+_p a_q + 1/2 sum two[p,q,r,s] a+_p a+_q a_r a_s with p,s sharing
    # electron 1: two[p,q,r,s] = (ps|qr) in chemists' notation.
    two_pl = np.transpose(two_chem, (0, 2, 3, 1))
    fermi = qml.qchem.fermionic_observable(np.array([float(ecore)]), one, two_pl, cutoff=cutoff)
    n_qubits = 2 * n_act_orb
    qubit_h = fermion_to_qubit(fermi, n_qubits, mapping, tol=cutoff).simplify(cutoff)
    # identity term may vanish only if ecore is exactly cancelled; keep the operator real
    qubit_h = PauliSum({s: complex(c.real) for s, c in qubit_h.terms.items()})
    occ = hf_state(n_alpha, n_beta, n_act_orb, "jordan_wigner")
    return MolecularHamiltonian(
        name=name, basis=str(basis), mapping=mapping, qubit_hamiltonian=qubit_h, n_qubits=n_qubits,
        n_electrons=n_act_el, n_orbitals=n_act_orb, n_alpha=n_alpha, n_beta=n_beta, spin=int(mol.spin),
        n_core=n_core, total_electrons=n_total, charge=int(mol.charge), core_energy=float(ecore),
        one_body=one, two_body=two_chem, hf_occupations=occ, hf_state=_jw_to_mapping(occ, mapping),
        hf_energy=hf_energy, fci_energy=fci_energy, nuclear_repulsion=float(mol.energy_nuc()))
