"""qsim: neural quantum Monte Carlo, quantum machine learning and quantum simulation on one JAX core.

    import qsim
    c = qsim.Circuit(2); c.h(0); c.cnot(0, 1); c.ry(1)
    qsim.expval(c, jnp.array([0.3]), qsim.Z(0) @ qsim.Z(1))

The core lives in rooms (docs/architecture.md): ``qsim.circuits`` (circuit, gate table, Pauli
operators, templates), ``qsim.simulator`` (simulate/probs/expval/sample, compile, engines, the sharded
state), ``qsim.interop`` (Qiskit, PennyLane, OpenFermion, NetKet), ``qsim.backends``,
``qsim.gradients``, ``qsim.samplers``, ``qsim.optim``, ``qsim.infra`` (settings, validation, runs,
driver loop, meshes, plots, CLI) and the chemistry application ``qsim.chem``. Sub-packages are imported
on first use, so ``import qsim`` stays light and never switches on float64.

Old module paths (``qsim.statevector``, ``qsim.chemistry``, ...) still resolve, with a
``DeprecationWarning``, through :data:`_DEPRECATED` below for one release.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

from qsim.circuits.circuit import Circuit, Op, ParamRef
from qsim.circuits.gates import GATES, get_gate
from qsim.circuits.operators import I, PauliSum, X, Y, Z
from qsim.simulator import compile, expval, probs, sample, simulate
from qsim.backends import get_backend as _get

__version__ = "0.1.0"

__all__ = ["Circuit", "Op", "ParamRef", "GATES", "get_gate", "PauliSum", "X", "Y", "Z", "I", "simulate",
           "probs", "expval", "sample", "compile", "get_backend", "samplers", "optim", "backends", "gradients",
           "circuits", "simulator", "interop", "infra", "chem", "molecules", "__version__"]

_LAZY = ("samplers", "optim", "backends", "gradients", "molecules", "circuits", "simulator", "interop", "infra",
         "chem")

# The one table of deprecated module paths (old -> new), kept for one release. The layering test exempts
# this file's references to qsim.chem.
_DEPRECATED = {
    "statevector": "qsim.simulator.statevector",
    "sharded": "qsim.simulator.sharded",
    "convert": "qsim.interop",
    "chemistry": "qsim.chem.hamiltonians",
    "vqe": "qsim.chem.vqe",
    "nqs": "qsim.chem.nqs",
    "distributed": "qsim.infra.meshes",
    "runs": "qsim.infra.runs",
    "circuit": "qsim.circuits.circuit",
    "gates": "qsim.circuits.gates",
    "operators": "qsim.circuits.operators",
}


def get_backend(name: str, **options):
    """Resolve a backend by name ("statevector", "pennylane:<device>", "qiskit:<name>", plugins)."""

    return _get(name, **options)


def _resolve_deprecated(name: str):
    new = _DEPRECATED[name]
    warnings.warn(f"qsim.{name} is deprecated; use {new}", DeprecationWarning, stacklevel=3)
    return importlib.import_module(new)


class _DeprecatedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import qsim.<old>`` and ``from qsim.<old> import x`` load the module's new home."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, leaf = fullname.partition(".")
        if prefix == "qsim" and leaf in _DEPRECATED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = _resolve_deprecated(spec.name.split(".", 1)[1])
        self._own_spec = module.__spec__  # the import system overwrites it with the alias's spec
        return module

    def exec_module(self, module):
        module.__spec__ = self._own_spec


if not any(isinstance(f, _DeprecatedFinder) for f in sys.meta_path):
    sys.meta_path.append(_DeprecatedFinder())


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"qsim.{name}")
    if name in _DEPRECATED:
        return _resolve_deprecated(name)
    raise AttributeError(f"module 'qsim' has no attribute {name!r}")
