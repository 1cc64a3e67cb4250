"""OpenFermion: ``QubitOperator`` <-> :class:`~qsim.circuits.operators.PauliSum` (qubit ``w`` = wire ``w``).

OpenFermion is imported inside :func:`to_openfermion` (it is slow to import and optional).
"""

from __future__ import annotations

from qsim.circuits.operators import PauliSum
from qsim.interop.common import check_sum

__all__ = ["to_openfermion", "from_openfermion"]


def to_openfermion(h: PauliSum):
    """An ``openfermion.QubitOperator`` (needs openfermion installed)."""
    try:
        from openfermion import QubitOperator
    except ImportError:
        raise ImportError("to_openfermion needs openfermion (pip install openfermion)") from None
    h = check_sum(h)
    out = QubitOperator()
    for c, s in h:
        out += QubitOperator(tuple(s), c)
    return out


def from_openfermion(qubit_operator) -> PauliSum:
    """A PauliSum from an ``openfermion.QubitOperator`` (anything with a ``terms`` dict of
    ``((wire, "X"|"Y"|"Z"), ...) -> coefficient``)."""
    terms = getattr(qubit_operator, "terms", None)
    if not isinstance(terms, dict):
        raise TypeError(f"expected an openfermion QubitOperator, got {type(qubit_operator).__name__}")
    out: dict = {}
    for s, c in terms.items():
        key = tuple(sorted((int(w), str(p).upper()) for w, p in s))
        out[key] = out.get(key, 0) + complex(c)
    return PauliSum(out).simplify(0.0)

