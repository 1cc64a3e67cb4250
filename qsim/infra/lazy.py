"""Lazy package exports: a package lists its public names and the modules that define them, and each is
imported on first access (so ``import vmc`` or ``import flows`` loads no JAX until something is used)."""

from __future__ import annotations

import importlib
from typing import Callable, Iterable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, modules: Iterable[str], names: Mapping[str, str]
                 ) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``: ``modules`` are its submodules by short name,
    ``names`` maps a public name to the module that defines it. Resolved values are cached in the
    package's namespace."""
    modules = tuple(modules)
    public = sorted(modules) + sorted(names)

    def getattr_(name: str):
        if name in modules:
            value = importlib.import_module(f"{package}.{name}")
        elif name in names:
            value = getattr(importlib.import_module(names[name]), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(importlib.import_module(package), name, value)
        return value

    def dir_() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(public))

    return public, getattr_, dir_
