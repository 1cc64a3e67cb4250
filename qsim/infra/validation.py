"""The one set of input checks: each raises ``ValueError``/``TypeError`` naming the bad value, before
any heavy work or allocation. Every package uses these instead of its own idioms.
"""

from __future__ import annotations

import copy
import math
import numbers
from typing import Any, Sequence

import numpy as np

from qsim.infra import settings

__all__ = ["positive_int", "nonnegative_int", "positive_float", "finite_float", "probability", "one_of",
           "wires", "finite_array", "circuit_params", "memory_limit_bytes", "check_memory", "indices_to_bits", "merge"]


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def positive_int(v: Any, name: str) -> int:
    """``v`` as an int >= 1, else ``ValueError``/``TypeError`` naming ``name``."""
    if not _is_int(v):
        raise TypeError(f"{name} must be a positive int, got {v!r}")
    if v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


def nonnegative_int(v: Any, name: str) -> int:
    if not _is_int(v):
        raise TypeError(f"{name} must be a non-negative int, got {v!r}")
    if v < 0:
        raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    return int(v)


def finite_float(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a finite number, got {v!r}")
    if not math.isfinite(float(v)):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    return float(v)


def positive_float(v: Any, name: str) -> float:
    x = finite_float(v, name)
    if x <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return x


def probability(v: Any, name: str) -> float:
    x = finite_float(v, name)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {v!r}")
    return x


def one_of(v: Any, name: str, allowed: Sequence[Any]) -> Any:
    if v not in allowed:
        raise ValueError(f"unknown {name} {v!r}; choose one of {list(allowed)}")
    return v


def wires(ws: Any, n_wires: int, what: str = "wires", distinct: bool = True) -> tuple[int, ...]:
    """``ws`` (an int or a sequence of ints) as a tuple of wires in ``0 .. n_wires - 1``."""
    seq = (ws,) if _is_int(ws) else tuple(ws)
    for w in seq:
        if not _is_int(w):
            raise TypeError(f"{what}: wire {w!r} is not an int")
        if not 0 <= w < n_wires:
            raise ValueError(f"{what}: wire {w} out of range for {n_wires} wires (0..{n_wires - 1})")
    if distinct and len(set(seq)) != len(seq):
        raise ValueError(f"{what}: wire repeated in {tuple(int(w) for w in seq)}")
    return tuple(int(w) for w in seq)


def finite_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a NumPy array with only finite entries (host values only; not for traced arrays)."""
    a = np.asarray(x)
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries (NaN or inf)")
    return a


def circuit_params(circuit: Any, params: Any, *, batched: bool = False, allow_none: bool = False) -> Any:
    """``params`` checked for ``circuit`` (a qsim ``Circuit``: anything with an int ``num_params`` and
    ``ops``): real, of shape ``(num_params,)`` (``(..., num_params)`` with ``batched``). ``None`` passes
    for a circuit without parameters, or always with ``allow_none``. Array-likes without a ``shape``
    come back as NumPy arrays; arrays (JAX tracers included) come back unchanged."""
    n = getattr(circuit, "num_params", None)
    if not _is_int(n) or not hasattr(circuit, "ops"):
        raise TypeError(f"expected a qsim.Circuit, got {type(circuit).__name__}")
    if params is None:
        if n and not allow_none:
            raise ValueError(f"circuit has {n} trainable parameter(s) but params=None")
        return None
    if not hasattr(params, "shape"):
        params = np.asarray(params)
    if np.iscomplexobj(params):
        raise TypeError("params must be real angles, got a complex array")
    shape = tuple(params.shape)
    if not shape or shape[-1] != n or (len(shape) != 1 and not batched):
        want = f"(..., {n})" if batched else f"({n},)"
        raise ValueError(f"params has shape {shape}; the circuit expects {want} (num_params={n})")
    return params


def memory_limit_bytes() -> int:
    """Bytes one array (a state, a grid) may take: ``QSIM_MAX_STATE_BYTES`` or half the physical memory."""
    return settings.get().max_state_bytes


def check_memory(nbytes: float, what: str, copies: int = 1, hint: str = "") -> None:
    """``ValueError`` if ``copies`` arrays of ``nbytes`` would exceed :func:`memory_limit_bytes`,
    raised before anything is allocated."""
    limit = memory_limit_bytes()
    if copies * nbytes > limit:
        extra = f" (about {copies}x that while it runs)" if copies > 1 else ""
        raise ValueError(f"{what} needs {nbytes / 2**30:.3g} GiB{extra}, more than the {limit / 2**30:.3g} GiB "
                         f"allowed here{'; ' + hint if hint else ''} (QSIM_MAX_STATE_BYTES sets the limit)")


def indices_to_bits(idx: Any, k: int) -> np.ndarray:
    """Basis-state indices ``(...,)`` as bits ``(..., k)``, most significant (wire 0) first."""
    idx = np.asarray(idx, dtype=np.int64)
    shifts = np.arange(k - 1, -1, -1, dtype=np.int64)
    return ((idx[..., None] >> shifts) & 1).astype(np.int8)


def merge(defaults: dict, overrides: dict | None, *, strict: bool = True, where: str = "") -> dict:
    """A deep copy of ``defaults`` with the nested dict ``overrides`` merged in. With ``strict``, a key
    that ``defaults`` does not have is a ``ValueError`` naming its dotted path (and ``where`` it came from)."""
    out = copy.deepcopy(defaults)

    def walk(dst: dict, src: dict, prefix: str) -> None:
        for k, v in src.items():
            if strict and k not in dst:
                raise ValueError(f"unknown configuration key {prefix + k!r}{' in ' + where if where else ''}; "
                                 f"known: {sorted(dst)}")
            if isinstance(v, dict) and isinstance(dst.get(k), dict):
                walk(dst[k], v, prefix + k + ".")
            else:
                dst[k] = copy.deepcopy(v)

    walk(out, overrides or {}, "")
    return out
