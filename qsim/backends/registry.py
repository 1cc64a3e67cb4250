"""The backend registry: built-in prefixes plus plugins from the entry-point group ``qsim.backends``.

    get_backend("statevector")                 # qsim's JAX simulator
    get_backend("pennylane:lightning.qubit")   # any PennyLane device
    get_backend("qiskit:aer") / ("qiskit:fake_manila") / ("qiskit:ibm_kyiv")
    get_backend("myplugin:thing", **options)   # a third-party plugin

A plugin is a distribution that declares, in its ``pyproject.toml``::

    [project.entry-points."qsim.backends"]
    myplugin = "my_package.qsim_backend:make_backend"

``make_backend(spec, **options)`` receives the text after ``"myplugin:"`` (``None`` when the name has
no colon) and returns an object following :class:`qsim.backends.base.Backend`. Entry points are read
once, on the first lookup of a name that is not built in; :func:`register_backend` adds factories at
run time (tests, notebooks).
"""

from __future__ import annotations

from importlib import metadata
from typing import Callable
from qsim.backends.statevector import StatevectorBackend
from qsim.backends.pennylane import PennyLaneBackend
from qsim.backends.qiskit import QiskitBackend

__all__ = ["get_backend", "register_backend", "available_backends", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "qsim.backends"
_RUNTIME: dict[str, Callable] = {}
_PLUGINS: dict[str, object] | None = None  # lazily loaded entry points: name -> EntryPoint


def _statevector(spec, **options):

    if spec:
        raise ValueError(f"'statevector' takes no sub-name, got 'statevector:{spec}'")
    return StatevectorBackend(**options)


def _pennylane(spec, **options):

    if not spec:
        raise ValueError("name a PennyLane device: 'pennylane:default.qubit', 'pennylane:lightning.qubit', ...")
    return PennyLaneBackend(spec, **options)


def _qiskit(spec, **options):

    if not spec:
        raise ValueError("name a Qiskit backend: 'qiskit:aer', 'qiskit:fake_manila', 'qiskit:ibm_<device>', ...")
    return QiskitBackend(spec, **options)


_BUILTIN: dict[str, Callable] = {"statevector": _statevector, "pennylane": _pennylane, "qiskit": _qiskit}


def _plugins() -> dict[str, object]:
    global _PLUGINS
    if _PLUGINS is None:
        _PLUGINS = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return _PLUGINS


def register_backend(prefix: str, factory: Callable, overwrite: bool = False) -> None:
    """Register ``factory(spec, **options)`` under ``prefix`` for this process."""
    if not isinstance(prefix, str) or not prefix or ":" in prefix:
        raise ValueError(f"backend prefix must be a non-empty string without ':', got {prefix!r}")
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}")
    if not overwrite and (prefix in _BUILTIN or prefix in _RUNTIME):
        raise ValueError(f"backend prefix {prefix!r} is already registered (overwrite=True replaces it)")
    _RUNTIME[prefix] = factory


def _reset_plugins() -> None:
    """Forget cached entry points (after installing a plugin in a running process)."""
    global _PLUGINS
    _PLUGINS = None


def available_backends() -> list[str]:
    """Prefixes that :func:`get_backend` resolves (built-ins, runtime registrations, plugins)."""
    return sorted(set(_BUILTIN) | set(_RUNTIME) | set(_plugins()))


def get_backend(name: str, **options):
    """Resolve ``"prefix"`` or ``"prefix:spec"`` to a backend instance.

    Raises:
        ValueError: unknown prefix (the message lists the known ones).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"backend name must be a non-empty string, got {name!r}")
    prefix, _, spec = name.partition(":")
    spec = spec or None
    if prefix in _RUNTIME:
        return _RUNTIME[prefix](spec, **options)
    if prefix in _BUILTIN:
        return _BUILTIN[prefix](spec, **options)
    ep = _plugins().get(prefix)
    if ep is None:
        raise ValueError(f"unknown backend {name!r}; known prefixes: {', '.join(available_backends())} "
                         f"(plugins register under the entry-point group {ENTRY_POINT_GROUP!r})")
    factory = ep.load()
    return factory(spec, **options)
