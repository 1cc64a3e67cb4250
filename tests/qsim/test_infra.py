"""qsim.infra's one-of-each modules: settings, validation, the structural cache, lazy exports."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import qsim
from qsim.infra import cache, lazy, settings, validation


# -- settings ----------------------------------------------------------------------------------------
def test_settings_defaults_and_every_variable():
    s = settings.Settings.from_env({"HOME": "/h"})
    assert (s.native, s.sv_engine, s.sv_adjoint) == (True, "auto", "auto")
    assert (s.gemm_min_qubits, s.gemm_max_fuse, s.native_max_fuse) == (16, 4, 3)
    assert s.max_state_bytes > 0
    env = {"QSIM_MAX_STATE_BYTES": "1e6", "QSIM_CACHE_DIR": "/c", "QSIM_NATIVE": "off", "QSIM_SV_ENGINE": "GEMM",
           "QSIM_SV_ADJOINT": "yes", "QSIM_SV_GEMM_MIN_QUBITS": "12", "QSIM_SV_GEMM_FUSE": "5",
           "QSIM_SV_NATIVE_FUSE": "2"}
    s = settings.Settings.from_env(env)
    assert s == settings.Settings(1_000_000, Path("/c"), False, "gemm", "1", 12, 5, 2)


def test_settings_cache_dir_precedence():
    assert settings.Settings.from_env({"QSIM_CACHE": "/old"}).cache_dir == Path("/old")
    assert settings.Settings.from_env({"QSIM_CACHE": "/old", "QSIM_CACHE_DIR": "/new"}).cache_dir == Path("/new")
    assert settings.Settings.from_env({"XDG_CACHE_HOME": "/x"}).cache_dir == Path("/x/qsim")


@pytest.mark.parametrize("var, value, match", [
    ("QSIM_SV_ENGINE", "fast", "QSIM_SV_ENGINE='fast' is not one of"),
    ("QSIM_SV_ADJOINT", "maybe", "QSIM_SV_ADJOINT='maybe'"),
    ("QSIM_SV_GEMM_FUSE", "four", "QSIM_SV_GEMM_FUSE='four' is not a number"),
    ("QSIM_SV_NATIVE_FUSE", "0", "QSIM_SV_NATIVE_FUSE='0' must be >= 1"),
    ("QSIM_MAX_STATE_BYTES", "-5", "QSIM_MAX_STATE_BYTES='-5'"),
])
def test_settings_bad_values_name_the_variable(var, value, match):
    with pytest.raises(ValueError, match=match):
        settings.Settings.from_env({var: value})


def test_settings_are_read_once_then_refreshed_or_overridden(monkeypatch):
    monkeypatch.setenv("QSIM_SV_GEMM_FUSE", "5")
    assert settings.refresh().gemm_max_fuse == 5
    monkeypatch.setenv("QSIM_SV_GEMM_FUSE", "2")
    assert settings.get().gemm_max_fuse == 5          # read once
    with settings.override(gemm_max_fuse=6) as s:
        assert s.gemm_max_fuse == 6 and settings.get().gemm_max_fuse == 6
    assert settings.get().gemm_max_fuse == 5
    monkeypatch.delenv("QSIM_SV_GEMM_FUSE")
    assert settings.refresh().gemm_max_fuse == 4


# -- validation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("check, value, exc", [
    (validation.positive_int, 0, ValueError), (validation.positive_int, 2.0, TypeError),
    (validation.positive_int, True, TypeError), (validation.nonnegative_int, -1, ValueError),
    (validation.positive_float, 0.0, ValueError), (validation.positive_float, math.inf, ValueError),
    (validation.finite_float, math.nan, ValueError), (validation.finite_float, "1", TypeError),
    (validation.probability, 1.5, ValueError),
])
def test_scalar_checks_name_the_value(check, value, exc):
    with pytest.raises(exc, match="steps"):
        check(value, "steps")


def test_scalar_checks_pass_good_values():
    assert validation.positive_int(np.int64(3), "n") == 3 and validation.nonnegative_int(0, "n") == 0
    assert validation.positive_float(2, "lr") == 2.0 and validation.probability(1, "p") == 1.0
    assert validation.one_of("a", "mode", ("a", "b")) == "a"
    with pytest.raises(ValueError, match="unknown mode 'c'"):
        validation.one_of("c", "mode", ("a", "b"))


def test_wires():
    assert validation.wires(2, 3) == (2,) and validation.wires([0, 2], 3) == (0, 2)
    with pytest.raises(ValueError, match="wire 3 out of range for 3 wires"):
        validation.wires([0, 3], 3)
    with pytest.raises(ValueError, match="repeated"):
        validation.wires([1, 1], 3)
    with pytest.raises(TypeError, match="not an int"):
        validation.wires([0.5], 3)


def test_circuit_params_and_finite_array():
    c = qsim.Circuit(2)
    c.ry(0)
    c.rz(1)
    assert validation.circuit_params(c, [0.1, 0.2]).shape == (2,)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        validation.circuit_params(c, np.zeros(3))
    with pytest.raises(ValueError, match="params=None"):
        validation.circuit_params(c, None)
    with pytest.raises(TypeError, match="real angles"):
        validation.circuit_params(c, np.zeros(2, complex))
    with pytest.raises(ValueError, match="x has non-finite"):
        validation.finite_array([1.0, np.nan], "x")


def test_memory_check_uses_the_one_limit():
    with settings.override(max_state_bytes=1000):
        assert validation.memory_limit_bytes() == 1000
        validation.check_memory(500, "a grid", copies=2)
        with pytest.raises(ValueError, match="a grid needs .* more than .*QSIM_MAX_STATE_BYTES"):
            validation.check_memory(600, "a grid", copies=2)


def test_indices_to_bits_wire0_most_significant():
    bits = validation.indices_to_bits([0, 1, 6], 3)
    np.testing.assert_array_equal(bits, [[0, 0, 0], [0, 0, 1], [1, 1, 0]])
    idx = np.arange(16)
    np.testing.assert_array_equal(validation.indices_to_bits(idx, 4) @ (2 ** np.arange(3, -1, -1)), idx)


def test_merge_is_deep_strict_and_copies():
    defaults = {"a": 1, "b": {"c": 2, "d": [1]}}
    out = validation.merge(defaults, {"b": {"c": 3}})
    assert out == {"a": 1, "b": {"c": 3, "d": [1]}} and defaults["b"]["c"] == 2
    out["b"]["d"].append(2)
    assert defaults["b"]["d"] == [1]
    with pytest.raises(ValueError, match="unknown configuration key 'b.x' in cfg.toml"):
        validation.merge(defaults, {"b": {"x": 1}}, where="cfg.toml")
    assert validation.merge(defaults, {"z": 1}, strict=False)["z"] == 1


# -- structural cache ----------------------------------------------------------------------------------
def test_structural_cache_keys_circuits_by_structure():
    calls = []

    @cache.structural_cache(maxsize=8)
    def compiled(circuit, scale):
        calls.append(circuit)
        return circuit.num_params * scale

    def build(angle):
        c = qsim.Circuit(2)
        c.ry(0)
        c.rz(1, value=angle)
        return c

    a, b, other = build(0.5), build(0.5), build(0.25)
    assert compiled(a, 2) == 2 and compiled(b, 2) == 2
    assert len(calls) == 1 and calls[0] is a          # an equal circuit built separately hits the cache
    compiled(other, 2)
    compiled(a, 3)
    assert len(calls) == 3                            # another structure or argument misses it
    assert compiled.cache_info().hits == 1
    compiled.cache_clear()
    assert compiled.cache_info().currsize == 0


# -- lazy exports --------------------------------------------------------------------------------------
def test_lazy_exports_load_on_first_use(monkeypatch):
    pkg = types.ModuleType("fakepkg")
    monkeypatch.setitem(sys.modules, "fakepkg", pkg)
    monkeypatch.setitem(sys.modules, "fakepkg.mod", types.SimpleNamespace(thing=42))
    pkg.__all__, pkg.__getattr__, pkg.__dir__ = lazy.lazy_exports("fakepkg", (), {"thing": "fakepkg.mod"})
    assert pkg.__all__ == ["thing"] and "thing" not in vars(pkg)
    assert pkg.__getattr__("thing") == 42 and vars(pkg)["thing"] == 42   # cached in the namespace
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pkg.__getattr__("nope")


def test_deprecated_paths_resolve_with_a_warning():
    with pytest.warns(DeprecationWarning, match="qsim.statevector is deprecated; use qsim.simulator.statevector"):
        old = qsim.statevector
    from qsim.simulator import statevector

    assert old is statevector and old.simulate is qsim.simulate
    assert old.__spec__.name == "qsim.simulator.statevector"


def test_import_of_an_old_module_path_loads_the_new_module():
    import subprocess

    code = ("import warnings; warnings.simplefilter('error')\n"
            "try:\n    import qsim.chemistry\nexcept DeprecationWarning as w:\n    print('warned', w)\n"
            "warnings.simplefilter('ignore')\n"
            "import qsim.chemistry as old, qsim.chem.hamiltonians as new\n"
            "from qsim.sharded import simulate\n"
            "print(old is new, new.__spec__.name, simulate.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "warned qsim.chemistry is deprecated; use qsim.chem.hamiltonians" in out
    assert "True qsim.chem.hamiltonians qsim.simulator.sharded" in out


def test_cli_without_commands_says_to_reinstall(monkeypatch, capsys):
    from qsim.infra import cli

    monkeypatch.setattr(cli.metadata, "entry_points", lambda group: [])
    assert cli.main(["--help"]) == 2
    assert "reinstall the package" in capsys.readouterr().err


def test_cli_finds_every_command_through_entry_points():
    from qsim.infra import cli

    commands = set(cli.build_parser()._subparsers._group_actions[0].choices)
    assert commands == {"vmc", "vqe", "hypernet", "flow", "plot"}
