"""The molecule catalog: geometries (bohr), charge, spin and exact non-relativistic reference energies.

Plain data plus one lookup, so that every package (qsim.chem.hamiltonians here; vmc later) reads the same
numbers. Positions are in bohr; energies in Hartree; ``spin`` is ``n_up - n_down`` (PySCF's
``Mole.spin``); ``reference_energy`` is the exact non-relativistic, clamped-nuclei total energy from
shared/references/notes.md (None where none is known).

    >>> from qsim.molecules import get_molecule
    >>> m = get_molecule("LiH")
    >>> m.atoms, m.positions, m.spin, m.reference_energy
    (('Li', 'H'), ((0.0, 0.0, 0.0), (3.015, 0.0, 0.0)), 0, -8.070548)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MoleculeSpec", "CATALOG", "ATOMIC_NUMBERS", "get_molecule", "catalog_names", "check_spin"]

ATOMIC_NUMBERS: dict[str, int] = {s: i + 1 for i, s in enumerate(
    ("H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar"))}


@dataclass(frozen=True)
class MoleculeSpec:
    """One catalog entry (atomic units).

    Attributes:
        name: catalog name, e.g. ``"LiH"``.
        atoms: element symbols, length M.
        positions: M triples (x, y, z) in bohr.
        charge: total charge (0 for neutral).
        spin: ``n_up - n_down`` (2S).
        reference_energy: exact non-relativistic total energy in Hartree, or None.
    """

    name: str
    atoms: tuple[str, ...]
    positions: tuple[tuple[float, float, float], ...]
    charge: int = 0
    spin: int = 0
    reference_energy: float | None = None

    @property
    def n_electrons(self) -> int:
        return sum(ATOMIC_NUMBERS[a] for a in self.atoms) - self.charge


def _atom(sym: str, spin: int, ref: float) -> MoleculeSpec:
    return MoleculeSpec(sym, (sym,), ((0.0, 0.0, 0.0),), 0, spin, ref)


def _dimer(name: str, a: str, b: str, r_bohr: float, ref: float) -> MoleculeSpec:
    return MoleculeSpec(name, (a, b), ((0.0, 0.0, 0.0), (r_bohr, 0.0, 0.0)), 0, 0, ref)


CATALOG: dict[str, MoleculeSpec] = {m.name: m for m in (
    _atom("H", 1, -0.5),
    _atom("He", 0, -2.903724),
    _atom("Li", 1, -7.47806032),
    _atom("Be", 0, -14.66736),
    _atom("B", 1, -24.65391),
    _atom("C", 2, -37.8450),
    _atom("N", 3, -54.5892),
    _dimer("H2", "H", "H", 1.4, -1.1744757),
    _dimer("LiH", "Li", "H", 3.015, -8.070548),
    _dimer("Li2", "Li", "Li", 5.051, -14.9954),
    MoleculeSpec("H4", ("H",) * 4, tuple((1.8 * i, 0.0, 0.0) for i in range(4)), 0, 0, None),
)}


def catalog_names() -> list[str]:
    """The catalog's names, in catalog order."""
    return list(CATALOG)


def get_molecule(name: str) -> MoleculeSpec:
    """The catalog entry ``name`` (case-insensitive); ``ValueError`` listing the catalog otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"molecule name must be a string, got {type(name).__name__}")
    lookup = {k.lower(): k for k in CATALOG}
    key = lookup.get(name.strip().lower())
    if key is None:
        raise ValueError(f"unknown molecule {name!r}; the catalog has: {', '.join(CATALOG)}")
    return CATALOG[key]


def check_spin(n_electrons: int, spin: int, what: str = "") -> None:
    """Raise a clear error unless ``spin = n_up - n_down`` is possible for ``n_electrons`` electrons."""
    where = f" in {what}" if what else ""
    if isinstance(spin, bool) or not isinstance(spin, int) and not hasattr(spin, "__index__"):
        raise TypeError(f"spin must be an int (n_up - n_down), got {spin!r}")
    if n_electrons < 1:
        raise ValueError(f"{what or 'the system'} has {n_electrons} electrons; need at least one")
    if spin < 0 or spin > n_electrons or (n_electrons - spin) % 2:
        raise ValueError(f"spin={spin} (n_up - n_down) is impossible for {n_electrons} electrons{where}: "
                         f"it must lie in 0..{n_electrons} and have the parity of {n_electrons}")
