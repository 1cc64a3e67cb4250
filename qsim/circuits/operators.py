"""Pauli operators: ``X, Y, Z, I``, products with ``@``, sums, scalar multiples.

    H = 0.5 * Z(0) @ Z(1) - X(0) + 0.2 * I()
    H.to_matrix(n_wires=2)          # scipy.sparse CSR, wire 0 the most significant bit
    H.ground_energy(n_wires=2)      # lowest eigenvalue (sparse eigensolver)

A :class:`PauliSum` is an immutable map from Pauli strings to complex coefficients. A Pauli string is
a sorted tuple of ``(wire, "X"|"Y"|"Z")`` pairs (identities omitted; the empty tuple is the identity).
Products multiply strings with their phases (``X @ Y = iZ``); sums collect equal strings;
:meth:`PauliSum.simplify` drops coefficients below a tolerance.
"""

from __future__ import annotations

import numbers
from typing import Iterator

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from qsim.infra import validation

__all__ = ["PauliSum", "X", "Y", "Z", "I", "pauli_string", "pauli_masks"]

PauliString = tuple[tuple[int, str], ...]

# single-qubit products: (a, b) -> (phase, c) with a·b = phase·c
_MUL = {
    ("X", "X"): (1, ""), ("Y", "Y"): (1, ""), ("Z", "Z"): (1, ""),
    ("X", "Y"): (1j, "Z"), ("Y", "X"): (-1j, "Z"),
    ("Y", "Z"): (1j, "X"), ("Z", "Y"): (-1j, "X"),
    ("Z", "X"): (1j, "Y"), ("X", "Z"): (-1j, "Y"),
}


def _mul_strings(a: PauliString, b: PauliString) -> tuple[complex, PauliString]:
    d = dict(a)
    phase: complex = 1
    for w, p in b:
        if w in d:
            ph, r = _MUL[(d[w], p)]
            phase *= ph
            if r:
                d[w] = r
            else:
                del d[w]
        else:
            d[w] = p
    return phase, tuple(sorted(d.items()))


class PauliSum:
    """A linear combination of Pauli strings (immutable)."""

    __slots__ = ("_terms",)
    __array_priority__ = 100  # numpy scalars defer to our __rmul__

    def __init__(self, terms: dict[PauliString, complex] | None = None):
        clean: dict[PauliString, complex] = {}
        for s, c in (terms or {}).items():
            s = tuple(sorted((int(w), str(p)) for w, p in s))
            if not np.isfinite(c):
                raise ValueError(f"non-finite coefficient {c!r} for Pauli string {s}")
            clean[s] = clean.get(s, 0) + complex(c)
        self._terms = clean

    # -- construction helpers ----------------------------------------------------------
    @classmethod
    def from_list(cls, items) -> "PauliSum":
        """From ``[(coeff, "XZI..."), ...]`` (character k acts on wire k) or ``[(coeff, ((w, "X"), ...)), ...]``."""
        terms: dict[PauliString, complex] = {}
        for c, s in items:
            ps = pauli_string(s) if isinstance(s, str) else tuple(s)
            terms[ps] = terms.get(ps, 0) + c
        return cls(terms)

    # -- views -------------------------------------------------------------------------
    @property
    def terms(self) -> dict[PauliString, complex]:
        return dict(self._terms)

    def __iter__(self) -> Iterator[tuple[complex, PauliString]]:
        return ((c, s) for s, c in self._terms.items())

    def __len__(self) -> int:
        return len(self._terms)

    @property
    def wires(self) -> tuple[int, ...]:
        return tuple(sorted({w for s in self._terms for w, _ in s}))

    @property
    def n_wires(self) -> int:
        """Smallest register holding every wire used (at least 1)."""
        ws = self.wires
        return (max(ws) + 1) if ws else 1

    def is_hermitian(self, tol: float = 1e-12) -> bool:
        return all(abs(c.imag) <= tol for c in self._terms.values())

    def key(self) -> tuple:
        return tuple(sorted((s, c.real, c.imag) for s, c in self._terms.items()))

    def __repr__(self) -> str:
        if not self._terms:
            return "PauliSum(0)"
        parts = []
        for s, c in self._terms.items():
            cs = f"{c.real:+.6g}" if c.imag == 0 else f"+({c:.6g})"
            parts.append(cs + " " + (" ".join(f"{p}{w}" for w, p in s) or "I"))
        return "PauliSum(" + " ".join(parts) + ")"

    # -- algebra -----------------------------------------------------------------------
    def __add__(self, other) -> "PauliSum":
        other = _as_sum(other)
        if other is NotImplemented:
            return NotImplemented
        t = dict(self._terms)
        for s, c in other._terms.items():
            t[s] = t.get(s, 0) + c
        return PauliSum(t)

    __radd__ = __add__

    def __neg__(self) -> "PauliSum":
        return PauliSum({s: -c for s, c in self._terms.items()})

    def __sub__(self, other) -> "PauliSum":
        other = _as_sum(other)
        if other is NotImplemented:
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other) -> "PauliSum":
        return (-self) + other

    def __mul__(self, other) -> "PauliSum":
        if isinstance(other, PauliSum):
            return self @ other
        if isinstance(other, numbers.Number) or np.ndim(other) == 0 and np.isscalar(np.asarray(other).item()):
            c = complex(other)
            return PauliSum({s: c * v for s, v in self._terms.items()})
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, other) -> "PauliSum":
        return self * (1.0 / complex(other))

    def __matmul__(self, other) -> "PauliSum":
        if not isinstance(other, PauliSum):
            return NotImplemented
        t: dict[PauliString, complex] = {}
        for sa, ca in self._terms.items():
            for sb, cb in other._terms.items():
                ph, s = _mul_strings(sa, sb)
                t[s] = t.get(s, 0) + ph * ca * cb
        return PauliSum(t)

    def __eq__(self, other) -> bool:
        other = _as_sum(other)
        if other is NotImplemented:
            return False
        diff = (self - other).simplify()
        return len(diff) == 0

    __hash__ = None  # mutable-looking value semantics; use key() for caching

    def simplify(self, tol: float = 1e-12) -> "PauliSum":
        """Drop terms with ``|coeff| <= tol``; real-ify coefficients whose imaginary part is below ``tol``."""
        t = {}
        for s, c in self._terms.items():
            if abs(c) > tol:
                t[s] = complex(c.real, 0.0) if abs(c.imag) <= tol else c
        return PauliSum(t)

    def adjoint(self) -> "PauliSum":
        return PauliSum({s: np.conj(c) for s, c in self._terms.items()})

    # -- linear algebra ----------------------------------------------------------------
    def to_matrix(self, n_wires: int | None = None, max_qubits: int = 24):
        """The operator as a ``scipy.sparse.csr_matrix`` of shape ``(2**n, 2**n)`` (wire 0 most significant)."""

        n = self.n_wires if n_wires is None else int(n_wires)
        if self.wires and max(self.wires) >= n:
            raise ValueError(f"operator acts on wire {max(self.wires)}, outside a {n}-wire register")
        if n > max_qubits:
            raise ValueError(f"to_matrix on {n} qubits would build a {2**n}x{2**n} matrix; the limit is "
                             f"max_qubits={max_qubits}")
        dim = 2 ** n
        idx = np.arange(dim, dtype=np.int64)
        rows, cols, vals = [], [], []
        for s, c in self._terms.items():
            xmask, zmask, ny = pauli_masks(s, n)
            col = idx ^ xmask
            # (P)_{row, col}: P|col> = i^ny (-1)^{popcount(col & z)} |col ^ x>
            sign = 1 - 2 * (_popcount(col & zmask) & 1)
            rows.append(col ^ xmask)
            cols.append(col)
            vals.append(c * (1j ** ny) * sign)
        if not rows:
            return sp.csr_matrix((dim, dim), dtype=complex)
        m = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(dim, dim)).tocsr()
        m.sum_duplicates()
        return m

    def ground_energy(self, n_wires: int | None = None, k: int = 1) -> float | np.ndarray:
        """Lowest eigenvalue(s) of a Hermitian sum (sparse Lanczos; dense below 7 qubits)."""
        if not self.simplify().is_hermitian(1e-10):
            raise ValueError("ground_energy needs a Hermitian operator (real coefficients)")
        m = self.to_matrix(n_wires)
        if m.shape[0] <= 64:
            w = np.linalg.eigvalsh(m.toarray())[:k]
        else:

            w = np.sort(sla.eigsh(m, k=k, which="SA", return_eigenvectors=False).real)
        return float(w[0]) if k == 1 else w


def _popcount(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.uint64)
    c = np.zeros(a.shape, dtype=np.int64)
    while np.any(a):
        c += (a & np.uint64(1)).astype(np.int64)
        a >>= np.uint64(1)
    return c


def pauli_masks(s: PauliString, n: int) -> tuple[int, int, int]:
    """x-mask, z-mask (as integers over the basis index, wire 0 = bit n-1) and the number of Y's."""
    x = z = ny = 0
    for w, p in s:
        bit = 1 << (n - 1 - w)
        if p in ("X", "Y"):
            x |= bit
        if p in ("Z", "Y"):
            z |= bit
        ny += p == "Y"
    return x, z, ny


def _as_sum(x):
    if isinstance(x, PauliSum):
        return x
    if isinstance(x, numbers.Number):
        return PauliSum({(): complex(x)})
    return NotImplemented


def pauli_string(s: str) -> PauliString:
    """``"XIZ"`` -> ``((0, "X"), (2, "Z"))`` (character k acts on wire k)."""
    out = []
    for w, ch in enumerate(s.upper()):
        if ch not in "IXYZ":
            raise ValueError(f"unknown Pauli letter {ch!r} in {s!r}")
        if ch != "I":
            out.append((w, ch))
    return tuple(out)


def _single(p: str, wire) -> PauliSum:
    return PauliSum({((validation.nonnegative_int(wire, f"{p}(wire): wire"), p),): 1.0})


def X(wire: int) -> PauliSum:
    """Pauli X on ``wire``."""
    return _single("X", wire)


def Y(wire: int) -> PauliSum:
    """Pauli Y on ``wire``."""
    return _single("Y", wire)


def Z(wire: int) -> PauliSum:
    """Pauli Z on ``wire``."""
    return _single("Z", wire)


def I(wire: int | None = None) -> PauliSum:  # noqa: E743 - the conventional name
    """The identity (the wire is accepted for symmetry and ignored)."""
    return PauliSum({(): 1.0})
