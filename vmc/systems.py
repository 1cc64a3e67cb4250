"""Molecular systems: nuclei (positions in bohr, charges) and numbers of spin-up/down electrons.

One source of truth: :data:`CATALOG` holds each built-in geometry with its reference energy once.
Build a :class:`Molecule` with :func:`get` (catalog name), :func:`from_xyz` (XYZ text or file,
Ångström converted to bohr) or :func:`from_pyscf` (a PySCF ``Mole``). Atomic units throughout.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from qsim import molecules as _molecules
from qsim.infra.validation import nonnegative_int
import jax
import jax.numpy as jnp

__all__ = ["Molecule", "CATALOG", "ELEMENTS", "ANGSTROM_TO_BOHR", "get", "from_xyz", "from_pyscf",
           "catalog_names"]

ANGSTROM_TO_BOHR = 1.0 / 0.52917721092

ELEMENTS = ("H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S",
            "Cl", "Ar")
_Z = {s: i + 1 for i, s in enumerate(ELEMENTS)}


@dataclass(frozen=True)
class Molecule:
    """Nuclei and electrons of a molecule (atomic units: bohr, Hartree).

    Attributes:
      atoms: element symbols, length M.
      positions: nuclear positions, M tuples of 3 floats (bohr).
      charges: nuclear charges Z, length M (floats).
      n_up, n_down: numbers of spin-up and spin-down electrons (n_up >= n_down).
      name: a label for logs and summaries.
      reference_energy: best known total energy (Hartree) or None.
    Hashable (tuples only), so it can be a static argument of jitted functions.
    """

    atoms: tuple[str, ...]
    positions: tuple[tuple[float, float, float], ...]
    charges: tuple[float, ...]
    n_up: int
    n_down: int
    name: str = "molecule"
    reference_energy: float | None = field(default=None, compare=False)

    def __post_init__(self):
        _validate(self)

    @property
    def n_electrons(self) -> int:
        return self.n_up + self.n_down

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)

    @property
    def spin(self) -> int:
        """n_up - n_down (PySCF's ``spin``)."""
        return self.n_up - self.n_down

    @property
    def charge(self) -> int:
        return int(round(sum(self.charges))) - self.n_electrons

    @property
    def nuclei(self) -> np.ndarray:
        """(M, 3) float64 nuclear positions in bohr."""
        return np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)

    @property
    def charge_array(self) -> np.ndarray:
        return np.asarray(self.charges, dtype=np.float64)

    def nuclear_repulsion(self) -> float:
        """Σ_{I<J} Z_I Z_J / R_IJ in Hartree."""
        R, Z = self.nuclei, self.charge_array
        e = 0.0
        for i in range(len(Z)):
            for j in range(i + 1, len(Z)):
                e += Z[i] * Z[j] / float(np.linalg.norm(R[i] - R[j]))
        return e

    def to_pyscf(self, basis: str = "sto-6g"):
        """A PySCF ``Mole`` (unit bohr) of this molecule."""
        from pyscf import gto

        mol = gto.Mole()
        mol.atom = [(a, tuple(p)) for a, p in zip(self.atoms, self.positions)]
        mol.unit = "Bohr"
        mol.basis = basis
        mol.charge = self.charge
        mol.spin = self.spin
        mol.verbose = 0
        mol.build()
        return mol

    def initial_electrons(self, key, n_walkers: int, noise: float = 1.0):
        """(n_walkers, 3 N) float64 start positions: electrons placed at nuclei (each atom gets about
        its neutral share, up/down alternating) plus N(0, noise^2) per coordinate."""

        centres = self._electron_centres()
        base = jnp.asarray(centres.reshape(-1), dtype=jnp.float64)
        return base[None, :] + noise * jax.random.normal(key, (n_walkers, base.size), jnp.float64)

    def _electron_centres(self) -> np.ndarray:
        """(N, 3): a nucleus for each electron, up electrons first then down."""
        R = self.nuclei
        # distribute electrons to atoms by nuclear charge, alternating spins within each atom
        slots_up, slots_dn = [], []
        for idx, z in enumerate(self.charges):
            nz = int(round(z))
            for k in range(nz):
                (slots_up if k % 2 == 0 else slots_dn).append(idx)
        up = (slots_up + slots_dn + list(range(self.n_atoms)) * self.n_electrons)[: self.n_up]
        rest = slots_dn + slots_up + list(range(self.n_atoms)) * self.n_electrons
        dn = rest[: self.n_down]
        return np.concatenate([R[up], R[dn]], axis=0) if self.n_electrons else np.zeros((0, 3))


def _validate(m: Molecule) -> None:
    if len(m.atoms) == 0:
        raise ValueError("a molecule needs at least one atom")
    if not (len(m.atoms) == len(m.positions) == len(m.charges)):
        raise ValueError(f"atoms ({len(m.atoms)}), positions ({len(m.positions)}) and charges "
                         f"({len(m.charges)}) differ in length")
    for a in m.atoms:
        if a not in _Z:
            raise ValueError(f"unknown element {a!r}; known: {', '.join(ELEMENTS)}")
    pos = np.asarray(m.positions, dtype=np.float64)
    if pos.shape != (len(m.atoms), 3):
        raise ValueError(f"positions must be {len(m.atoms)} triples, got shape {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise ValueError(f"non-finite nuclear coordinates: {pos.tolist()}")
    if not all(math.isfinite(z) and z > 0 for z in m.charges):
        raise ValueError(f"nuclear charges must be finite and positive, got {m.charges}")
    for i in range(len(pos)):
        for j in range(i + 1, len(pos)):
            if np.linalg.norm(pos[i] - pos[j]) < 1e-6:
                raise ValueError(f"atoms {i} ({m.atoms[i]}) and {j} ({m.atoms[j]}) are at the same "
                                 f"position {pos[i].tolist()}")
    nonnegative_int(m.n_up, "n_up")
    nonnegative_int(m.n_down, "n_down")
    if m.n_up + m.n_down < 1:
        raise ValueError("the molecule has no electrons (charge equals the total nuclear charge)")
    if m.n_down > m.n_up:
        raise ValueError(f"n_down ({m.n_down}) > n_up ({m.n_up}); order spins so that n_up >= n_down")


def _make(atoms, positions, n_elec: int, spin: int, name: str, ref=None, charges=None) -> Molecule:
    for a in atoms:
        if a not in _Z:
            raise ValueError(f"unknown element {a!r}; known: {', '.join(ELEMENTS)}")
    if n_elec < 1:
        raise ValueError(f"charge leaves {n_elec} electrons; need at least one")
    _molecules.check_spin(n_elec, spin)
    charges = tuple(float(_Z[a]) for a in atoms) if charges is None else tuple(charges)
    return Molecule(tuple(atoms), tuple(tuple(float(c) for c in p) for p in positions), charges,
                    (n_elec + spin) // 2, (n_elec - spin) // 2, name=name, reference_energy=ref)


# The catalog lives once in the shared core (qsim.molecules): geometries in bohr, spin, references.
CATALOG = _molecules.CATALOG


def catalog_names() -> list[str]:
    return list(CATALOG)


def get(name: str, charge: int = 0, spin: int | None = None) -> Molecule:
    """A catalog molecule by name (case-insensitive), e.g. ``get("LiH")``.

    ``charge``/``spin`` other than the catalog's drop the reference energy (it would not apply)."""
    if not isinstance(name, str):
        raise TypeError(f"system name must be a string, got {type(name).__name__}")
    lookup = {k.lower(): k for k in CATALOG}
    if name.lower() not in lookup:
        raise ValueError(f"unknown system {name!r}; catalog: {', '.join(CATALOG)} (or pass an XYZ file)")
    key = lookup[name.lower()]
    spec = CATALOG[key]
    atoms, pos, cspin, ref = spec.atoms, spec.positions, spec.spin, spec.reference_energy
    n_elec = sum(_Z[a] for a in atoms) - int(charge)
    if spin is None:
        s = cspin if charge == 0 else n_elec % 2
    else:
        s = int(spin)
    if charge != 0 or s != cspin:
        ref = None
    return _make(atoms, pos, n_elec, s, key, ref)


def from_xyz(text_or_path: str | os.PathLike, charge: int = 0, spin: int | None = None,
             name: str | None = None, unit: str = "angstrom") -> Molecule:
    """A molecule from XYZ text (or a path to an .xyz file). Coordinates in Ångström by default
    (``unit="bohr"`` to skip the conversion). The standard two header lines (count, comment) are
    optional. ``spin`` defaults to the lowest possible (0 or 1)."""
    text = str(text_or_path)
    if os.path.exists(text) and "\n" not in text:
        with open(text) as f:
            text = f.read()
        name = name or os.path.splitext(os.path.basename(str(text_or_path)))[0]
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if lines and lines[0].isdigit():
        count = int(lines[0])
        lines = lines[2:] if len(lines) >= count + 2 else lines[1:]
    if unit.lower() not in ("angstrom", "bohr"):
        raise ValueError(f"unit must be 'angstrom' or 'bohr', got {unit!r}")
    scale = ANGSTROM_TO_BOHR if unit.lower() == "angstrom" else 1.0
    atoms, pos = [], []
    for ln in lines:
        parts = ln.split()
        if len(parts) < 4:
            raise ValueError(f"XYZ line {ln!r} needs an element and three coordinates")
        sym = parts[0].capitalize()
        if sym not in _Z:
            raise ValueError(f"unknown element {parts[0]!r}; known: {', '.join(ELEMENTS)}")
        try:
            xyz = [float(v) * scale for v in parts[1:4]]
        except ValueError:
            raise ValueError(f"XYZ line {ln!r}: coordinates are not numbers") from None
        if not all(math.isfinite(v) for v in xyz):
            raise ValueError(f"non-finite coordinates in XYZ line {ln!r}")
        atoms.append(sym)
        pos.append(xyz)
    if not atoms:
        raise ValueError("XYZ input holds no atoms")
    n_elec = sum(_Z[a] for a in atoms) - int(charge)
    s = (n_elec % 2) if spin is None else int(spin)
    return _make(atoms, pos, n_elec, s, name or "".join(atoms))


def from_pyscf(mol, name: str | None = None) -> Molecule:
    """A molecule from a built PySCF ``Mole`` (its charge and spin are kept)."""
    coords = np.asarray(mol.atom_coords(unit="Bohr"), dtype=np.float64)
    atoms = [mol.atom_pure_symbol(i) for i in range(mol.natm)]
    n_elec = int(mol.nelectron)
    return _make(atoms, coords, n_elec, int(mol.spin), name or "".join(atoms))
