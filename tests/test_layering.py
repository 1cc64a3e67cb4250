"""The architecture, checked from the source (docs/architecture.md).

The module-level import graph of the four packages is built from the AST (imports inside functions
included; the edges from a package's ``__init__`` to its own submodules excluded) and must respect:

- the rooms of the core import only the rooms below them (:data:`ALLOWED`);
- the core never imports an application (vmc, hypernets, flows, qsim.chem), except the deprecated
  alias table in ``qsim/__init__.py``; no application imports another;
- no cycle;
- size: no module over 450 lines, no function over 80 lines (each ``def`` on its own: nested
  definitions are not counted in their parent);
- imports inside functions only for slow-to-import libraries (:data:`LAZY_OK`).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("qsim", "vmc", "hypernets", "flows")
APPLICATIONS = ("vmc", "hypernets", "flows", "qsim.chem")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
# libraries slow enough to import that a function may import them on first use
LAZY_OK = {"pennylane", "qiskit", "qiskit_aer", "qiskit_ibm_runtime", "pyscf", "netket", "matplotlib", "kfac_jax",
           "openfermion", "cirq", "sklearn", "blackjax", "deepqmc"}

# room -> the rooms it may import (the core's layers; an application may import any core room)
ALLOWED = {
    "qsim.infra": set(),
    "qsim.circuits": {"qsim.infra"},
    "qsim.molecules": {"qsim.infra"},
    "qsim.samplers": {"qsim.infra"},
    "qsim.optim": {"qsim.infra"},
    "qsim.simulator": {"qsim.circuits", "qsim.infra"},
    "qsim.interop": {"qsim.circuits", "qsim.infra"},
    "qsim.backends": {"qsim.circuits", "qsim.simulator", "qsim.interop", "qsim.infra"},
    "qsim.gradients": {"qsim.circuits", "qsim.simulator", "qsim.backends", "qsim.infra"},
}
CORE_ROOMS = set(ALLOWED)


def _modules() -> dict[str, pathlib.Path]:
    mods = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = p
    return mods


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The project modules an import statement reaches (the most specific existing module)."""
    targets = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = importer if _is_package(importer) else importer.rsplit(".", 1)[0]
            for _ in range(node.level - 1):
                pkg = pkg.rsplit(".", 1)[0]
            base = f"{pkg}.{base}" if base else pkg
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name:
            targets.append(name)
    return targets


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for t in _resolve(mod, node):
                    if t == mod:
                        continue
                    if _is_package(mod) and t.startswith(mod + "."):
                        continue  # a package's __init__ re-exporting its own submodules
                    edges[mod].add(t)
    return edges


def room(mod: str) -> str:
    for app in APPLICATIONS:
        if mod == app or mod.startswith(app + "."):
            return app
    parts = mod.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def test_graph_sees_the_packages():
    g = _graph()
    assert "qsim.simulator" in g and "vmc.train" in g and "qsim.infra.cli" in g
    assert any(t.startswith("qsim.") for t in g["vmc.train"])  # the builder finds real edges


def test_core_rooms_import_only_lower_rooms():
    bad = []
    for mod, targets in _graph().items():
        r = room(mod)
        if r not in CORE_ROOMS:
            continue
        for t in targets:
            rt = room(t)
            if rt != r and rt not in ALLOWED[r]:
                bad.append(f"{mod} -> {t}")
    assert not bad, "imports that break the rooms' order:\n" + "\n".join(sorted(bad))


def test_no_application_names_another_or_is_named_by_the_core():
    bad = []
    for mod, targets in _graph().items():
        r = room(mod)
        for t in targets:
            rt = room(t)
            if rt in APPLICATIONS and rt != r and mod != "qsim":
                bad.append(f"{mod} -> {t}")
    assert not bad, "\n".join(sorted(bad))
    # the core names no application even in a string (the CLI finds commands by entry point)
    strings = []
    for mod, path in MODULES.items():
        if room(mod) in APPLICATIONS or mod == "qsim":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for app in ("vmc.", "hypernets.", "flows.", "qsim.chem"):
                    if node.value.startswith(app) and " " not in node.value:
                        strings.append(f"{mod}: {node.value!r}")
    assert not strings, "\n".join(strings)


def test_no_cycles():
    g = _graph()
    colour: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m: str) -> None:
        colour[m] = 1
        stack.append(m)
        for t in sorted(g[m]):
            if colour.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in colour:
                visit(t)
        stack.pop()
        colour[m] = 2

    for m in sorted(g):
        if m not in colour:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _own_lines(node: ast.AST) -> int:
    """Lines of a def, without the lines of the defs and classes nested in it."""
    def nested(n: ast.AST) -> int:
        total = 0
        for child in ast.iter_child_nodes(n):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                total += child.end_lineno - child.lineno + 1
            else:
                total += nested(child)
        return total
    return node.end_lineno - node.lineno + 1 - nested(node)


def test_size_limits():
    too_big = []
    for mod, path in MODULES.items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"{mod}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _own_lines(node) > MAX_FUNCTION_LINES:
                too_big.append(f"{mod}.{node.name}: {_own_lines(node)} lines")
    assert not too_big, "\n".join(too_big)


def test_imports_inside_functions_only_for_slow_libraries():
    bad = []
    for mod, path in MODULES.items():
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                for n in names:
                    if n.split(".")[0] not in LAZY_OK:
                        bad.append(f"{mod}.{fn.name}: import {n}")
    assert not bad, "\n".join(sorted(set(bad)))


@pytest.mark.parametrize("bad_source, rule", [
    ("from vmc import train\n", "application"),
    ("import qsim.chem.vqe\n", "application"),
])
def test_the_checks_can_fail(tmp_path, monkeypatch, bad_source, rule):
    """A core module that imports an application is caught (the test is not vacuous)."""
    fake = ROOT / "qsim" / "infra" / "runs.py"
    tree = ast.parse(bad_source)
    targets = [t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
               for t in _resolve("qsim.infra.runs", node)]
    assert targets and all(room(t) in APPLICATIONS for t in targets), (fake, targets)
