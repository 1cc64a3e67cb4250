"""Every ``QSIM_*`` environment variable, read in one place.

:func:`get` reads the environment once and returns a frozen :class:`Settings`; :func:`refresh`
re-reads it (tests that change a variable call it, or use :func:`override`). Modules never read
``os.environ`` for ``QSIM_*`` themselves.

========================== ================ =========================================================
variable                   field            meaning
========================== ================ =========================================================
QSIM_MAX_STATE_BYTES       max_state_bytes  bytes one state/grid array may take (default: half of RAM)
QSIM_CACHE_DIR             cache_dir        per-user cache: native kernels, JAX compilation cache,
                                            landscapes (default $XDG_CACHE_HOME/qsim, else
                                            ~/.cache/qsim; ``QSIM_CACHE`` is the old name)
QSIM_NATIVE                native           ``0`` switches the C++ statevector kernels off
QSIM_SV_ENGINE             sv_engine        ``auto`` | ``scan`` | ``gemm`` | ``native``
QSIM_SV_ADJOINT            sv_adjoint       ``auto`` | ``1`` | ``0``: adjoint-mode gradients
QSIM_SV_GEMM_MIN_QUBITS    gemm_min_qubits  width from which ``auto`` leaves the scan engine (16)
QSIM_SV_GEMM_FUSE          gemm_max_fuse    wires per fused block, GEMM engine (4)
QSIM_SV_NATIVE_FUSE        native_max_fuse  wires per fused block, native engine (3)
========================== ================ =========================================================
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Iterator, Mapping

__all__ = ["Settings", "get", "refresh", "override"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _physical_half() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    v = env.get(name, default).strip().lower() or default
    if v not in allowed:
        raise ValueError(f"{name}={v!r} is not one of {list(allowed)}")
    return v


def _int(env: Mapping[str, str], name: str, default: int, low: int = 1) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        v = int(float(raw))
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if v < low:
        raise ValueError(f"{name}={raw!r} must be >= {low}")
    return v


def _switch(env: Mapping[str, str], name: str, default: str) -> str:
    v = env.get(name, default).strip().lower() or default
    if v in _TRUE:
        return "1"
    if v in _FALSE:
        return "0"
    if v == "auto":
        return "auto"
    raise ValueError(f"{name}={v!r} is not one of auto, 1, 0")


@dataclasses.dataclass(frozen=True)
class Settings:
    max_state_bytes: int
    cache_dir: Path
    native: bool
    sv_engine: str
    sv_adjoint: str
    gemm_min_qubits: int
    gemm_max_fuse: int
    native_max_fuse: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        cache = env.get("QSIM_CACHE_DIR") or env.get("QSIM_CACHE") or os.path.join(
            env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "qsim")
        return cls(
            max_state_bytes=_int(env, "QSIM_MAX_STATE_BYTES", _physical_half()),
            cache_dir=Path(cache),
            native=env.get("QSIM_NATIVE", "1").strip().lower() not in _FALSE,
            sv_engine=_choice(env, "QSIM_SV_ENGINE", "auto", ("auto", "scan", "gemm", "native")),
            sv_adjoint=_switch(env, "QSIM_SV_ADJOINT", "auto"),
            gemm_min_qubits=_int(env, "QSIM_SV_GEMM_MIN_QUBITS", 16),
            gemm_max_fuse=_int(env, "QSIM_SV_GEMM_FUSE", 4),
            native_max_fuse=_int(env, "QSIM_SV_NATIVE_FUSE", 3),
        )


_current: Settings | None = None


def get() -> Settings:
    """The settings, read from the environment on first use."""
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def refresh() -> Settings:
    """Re-read the environment (after a test or a user changed a ``QSIM_*`` variable)."""
    global _current
    _current = Settings.from_env()
    return _current


@contextlib.contextmanager
def override(**changes) -> Iterator[Settings]:
    """Within the block, :func:`get` returns the settings with ``changes`` (field names) applied."""
    global _current
    old = get()
    _current = dataclasses.replace(old, **changes)
    try:
        yield _current
    finally:
        _current = old
