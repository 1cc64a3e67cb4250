"""The one structural cache: compiled programs keyed on the *structure* of their inputs.

A circuit, an observable or any object with a ``key()`` method (a hashable fingerprint of its
structure) is a cache key by that fingerprint, not by identity: two equal circuits built separately
share one compiled program. The objects themselves travel into the cached function unhashed.

    @structural_cache(maxsize=64)
    def compiled(circuit, hamiltonian, method):   # circuit and hamiltonian are keyed by .key()
        ...
"""

from __future__ import annotations

import functools
from typing import Any, Callable

__all__ = ["structural_cache", "Keyed"]


class Keyed:
    """``obj`` carried into a cache key by its structural fingerprint ``key``."""

    __slots__ = ("obj", "key")

    def __init__(self, obj: Any, key: Any = None):
        self.obj = obj
        self.key = obj.key() if key is None else key

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, Keyed) and self.key == other.key


def _wrap(a: Any) -> Any:
    key = getattr(a, "key", None)
    return Keyed(a) if callable(key) and not isinstance(a, type) else a


def _unwrap(a: Any) -> Any:
    return a.obj if isinstance(a, Keyed) else a


def structural_cache(maxsize: int = 64) -> Callable[[Callable], Callable]:
    """An ``lru_cache`` whose positional and keyword arguments with a ``key()`` method are keyed by it."""

    def deco(fn: Callable) -> Callable:
        @functools.lru_cache(maxsize=maxsize)
        def cached(*args, **kwargs):
            return fn(*map(_unwrap, args), **{k: _unwrap(v) for k, v in kwargs.items()})

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return cached(*map(_wrap, args), **{k: _wrap(v) for k, v in kwargs.items()})

        wrapper.cache_clear = cached.cache_clear
        wrapper.cache_info = cached.cache_info
        return wrapper

    return deco
