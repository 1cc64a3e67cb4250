"""Native CPU kernels for the statevector simulator, through the XLA FFI.

:func:`apply` applies a dense block on 1 to 5 wires to a state held as real planes ``(P, 2**n)``
(:mod:`qsim.simulator.kernels`' representation) in one pass, whatever wires it acts on; :func:`adjoint` is
one step of the adjoint method (uncompute the state, pull the cotangent back, and the block's matrix
cotangent, in one pass). Both are ``jax.ffi.ffi_call`` s of the C++ in ``qsim/simulator/_native/apply_block.cc``
(vectorised with AVX2/FMA where the CPU has them, threads from XLA's intra-op pool), which is
compiled with the system C++ compiler (``$CXX``, else ``c++``, ``g++``, ``clang++``) on first use (~20 s)
into the per-user cache (``settings.get().cache_dir``: ``$QSIM_CACHE_DIR``, else ``~/.cache/qsim``),
keyed by a hash of the source, compiler, flags, CPU and jax version.

:func:`available` says whether the kernels can be used: CPU backend, ``QSIM_NATIVE`` not ``0``, and a
library that compiled and loaded. When it cannot (no compiler, a compile error), it logs one warning
and the simulator keeps its XLA engine. The outcome is remembered; :func:`reset` forgets it (after
changing the compiler or the cache directory).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qsim.infra import settings

__all__ = ["available", "enabled", "apply", "adjoint", "library_path", "cache_dir", "reset", "MAX_WIRES"]

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_native") / "apply_block.cc"
FLAGS = ("-O3", "-march=native", "-ffp-contract=fast", "-std=c++17", "-shared", "-fPIC")
MAX_WIRES = 5
_REGISTERED: set[str] = set()
_TARGETS = ("qsim_apply_f64", "qsim_apply_f32", "qsim_adjoint_f64", "qsim_adjoint_f32")


def enabled() -> bool:
    """``QSIM_NATIVE`` is not ``0``/``false``/``off``/``no`` and the default backend is the CPU."""
    return settings.get().native and jax.default_backend() == "cpu"


def available() -> bool:
    """The native kernels can be used now (see the module docstring)."""
    return enabled() and _load() is not None


def _compiler() -> str | None:
    for c in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if c and shutil.which(c):
            return shutil.which(c)
    return None


def _cpu_id() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def cache_dir() -> Path:
    """Where the compiled libraries are kept (``settings.get().cache_dir``)."""
    return Path(settings.get().cache_dir)


def library_path(cxx: str) -> Path:
    """Where the library for compiler ``cxx`` is cached."""
    ver = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    h = hashlib.sha256()
    for part in (SOURCE.read_bytes(), ver.encode(), " ".join(FLAGS).encode(), _cpu_id().encode(),
                 jax.__version__.encode(), platform.machine().encode(), sys.version.encode()):
        h.update(part)
        h.update(b"\0")
    return cache_dir() / f"qsim_native_{h.hexdigest()[:16]}.so"


def _build(cxx: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        cmd = [cxx, *FLAGS, "-I", jax.ffi.include_dir(), str(SOURCE), "-o", tmp]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-4000:]}")
        os.replace(tmp, out)        # atomic: a concurrent process sees no half-written library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.lru_cache(maxsize=1)
def _load():
    """The loaded library with its FFI targets registered, or ``None`` (one warning says why)."""
    try:
        cxx = _compiler()
        if cxx is None:
            raise RuntimeError("no C++ compiler found (set CXX)")
        path = library_path(cxx)
        if not path.exists():
            print(f"qsim: compiling the native statevector kernels (once per machine and version, ~20 s) "
                  f"into {path}", file=sys.stderr, flush=True)
            _build(cxx, path)
        lib = ctypes.cdll.LoadLibrary(str(path))
        for name in _TARGETS:
            if name not in _REGISTERED:     # XLA keeps the first registration of a name
                jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
                _REGISTERED.add(name)
        return lib
    except Exception as e:  # noqa: BLE001 - any failure means: keep the XLA engine
        log.warning("qsim native kernels unavailable, using the XLA engine: %s", e)
        return None


def reset() -> None:
    """Forget whether the library loaded: the next :func:`available` tries again (compiler and cache
    directory read anew). FFI targets already registered stay registered."""
    _load.cache_clear()


def _require() -> None:
    if _load() is None:
        raise RuntimeError("qsim native kernels are unavailable (see the warning logged above)")


def _suffix(dtype) -> str:
    dt = jnp.dtype(dtype)
    if dt == jnp.float64:
        return "f64"
    if dt == jnp.float32:
        return "f32"
    raise TypeError(f"native kernels take float32/float64 planes, got {dt}")


def _bits(wires, n: int) -> np.ndarray:
    return np.asarray([n - 1 - int(w) for w in wires], np.int64)


def _as_q(m, dtype):
    """Real ``(D, D)`` or planar ``(2, D, D)`` -> ``(Q, D, D)`` in the state's dtype."""
    m = jnp.asarray(m).astype(dtype)
    return m[None] if m.ndim == 2 else m


def apply(x, m, wires, n: int):
    """Planes ``x`` ``(P, 2**n)`` with the dense block ``m`` (real ``(D, D)`` or planar ``(2, D, D)``)
    applied on ``wires`` (``wires[0]`` is the matrix's most significant bit). Not differentiable by
    itself: :mod:`qsim.simulator.fusion` wraps it in its adjoint ``custom_vjp``."""
    _require()
    mq = _as_q(m, x.dtype)
    call = jax.ffi.ffi_call(f"qsim_apply_{_suffix(x.dtype)}", jax.ShapeDtypeStruct(x.shape, x.dtype),
                            vmap_method="sequential", input_output_aliases={0: 0})
    return call(x, mq, bits=_bits(wires, n))


def adjoint(psi, lam, m, wires, n: int):
    """One adjoint-method step for ``out = apply(psi_in, m, wires, n)``: from ``psi = out`` and the
    output cotangent ``lam``, ``(psi_in, lam_in, gm)`` with ``psi_in = m^dagger psi``,
    ``lam_in = m^dagger lam`` and ``gm`` the cotangent of ``m`` (its shape)."""
    _require()
    mq = _as_q(m, psi.dtype)
    sds = jax.ShapeDtypeStruct
    call = jax.ffi.ffi_call(f"qsim_adjoint_{_suffix(psi.dtype)}",
                            (sds(psi.shape, psi.dtype), sds(lam.shape, lam.dtype), sds(mq.shape, mq.dtype)),
                            vmap_method="sequential", input_output_aliases={0: 0, 1: 1})
    q, k, g = call(psi, lam, mq, bits=_bits(wires, n))
    return q, k, (g[0] if jnp.ndim(m) == 2 else g).astype(jnp.asarray(m).dtype)
