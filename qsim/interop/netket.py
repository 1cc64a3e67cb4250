"""NetKet: :class:`~qsim.circuits.operators.PauliSum` -> ``netket.operator.PauliStrings`` (site ``i`` = wire ``i``).

NetKet is imported inside :func:`to_netket`: ``import netket`` switches on float64 for the whole
process, so it is never imported at module level.
"""

from __future__ import annotations

import numpy as np

from qsim.circuits.operators import PauliSum
from qsim.interop.common import check_sum

__all__ = ["to_netket"]


def to_netket(h: PauliSum, hilbert=None, n_wires: int | None = None):
    """A ``netket.operator.PauliStrings`` on ``hilbert`` (default ``netket.hilbert.Qubit(n_wires)``).

    Site ``i`` of the NetKet Hilbert space is qsim wire ``i``. Imports NetKet lazily (which turns on
    ``jax_enable_x64`` for the process).
    """
    h = check_sum(h)
    import netket as nk  # noqa: PLC0415 - lazy on purpose

    n = (h.n_wires if n_wires is None else int(n_wires)) if hilbert is None else hilbert.size
    if h.wires and max(h.wires) >= n:
        raise ValueError(f"operator acts on wire {max(h.wires)}, outside {n} sites")
    if hilbert is None:
        hilbert = nk.hilbert.Qubit(N=n)
    strings, weights = [], []
    for c, s in h:
        chars = ["I"] * n
        for w, p in s:
            chars[w] = p
        strings.append("".join(chars))
        weights.append(c)
    if not strings:
        strings, weights = ["I" * n], [0.0]
    w = np.asarray(weights)
    if np.all(w.imag == 0):
        w = w.real
    return nk.operator.PauliStrings(hilbert, strings, w)
