"""Stage 5 of the simulator: :func:`compile` a circuit into a :class:`Program`, cached by structure.

``compile`` runs the stages in order (gate records, fusion, the engine's static program, its jitted
runner) once per (circuit structure, dtype, fusion width, adjoint mode, engine): equal circuits built
separately share one program (:func:`qsim.infra.cache.structural_cache`). ``simulate`` and the other
public functions go through it, so ``compile(circuit)`` is what ``simulate(circuit, params)`` runs.

Engines: ``scan`` (one ``lax.scan`` over fused blocks, :mod:`qsim.simulator.scan`), ``gemm`` (wide blocks
as XLA matrix products on a tracked wire layout) and ``native`` (the same blocks as C++ kernel passes,
:mod:`qsim.simulator.gemm`). By default (``QSIM_SV_ENGINE=auto``) circuits below
``QSIM_SV_GEMM_MIN_QUBITS`` (16) qubits run on ``scan`` and larger ones on ``native`` (``gemm`` where
the native kernels are unavailable). Settings are read per call (:mod:`qsim.infra.settings`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from qsim.circuits.circuit import Circuit
from qsim.infra import settings
from qsim.infra.cache import structural_cache
from qsim.simulator import gemm, native, scan
from qsim.simulator.fusion import fuse
from qsim.simulator.inputs import check_max_fuse, complex_dtype, initial_state, real_dtype
from qsim.simulator.program import build_gemm, build_scan
from qsim.simulator.records import gates_of

__all__ = ["Program", "compile", "select_engine", "default_max_fuse", "cache_info", "ENGINES", "MAX_FUSE",
           "FUSE3_MIN_QUBITS"]

ENGINES = ("scan", "gemm", "native")
MAX_FUSE = 3
# below this many qubits blocks of at most 2 wires are faster (per-block work, not passes, dominates:
# LiH UCCSD on 6 qubits, energy + gradient, 4.4 ms with 2-wire blocks vs 10.7 ms with 3-wire ones)
FUSE3_MIN_QUBITS = 12
_SCAN_MAX_FUSE = 4           # the scan engine's slice kernels stop at 4 wires


class Program(NamedTuple):
    """A circuit compiled for one engine. Inspect it (tests, benchmarks) or run it.

    ``engine``: ``"scan"``, ``"gemm"`` or ``"native"``; ``dtype``: the state's complex dtype name;
    ``max_fuse``: the fusion width; ``adjoint``: reverse mode runs the adjoint method (O(1) states)
    rather than storing a state per block; ``real``: every matrix is real, so a state from ``|0...0>``
    runs on one real plane; ``block_widths``: the wires of each block pass, in order;
    ``n_kernels``: distinct kernels the scan engine switches between (0 on the GEMM and native engines,
    which unroll their passes); ``steps``: the GEMM/native passes (:class:`qsim.simulator.fusion.Step`,
    transposes ``"T"`` included; empty on the scan engine); ``runner``: the jitted
    ``(params or None, initial state or None) -> state``.
    """

    engine: str
    n_wires: int
    dtype: str
    max_fuse: int
    adjoint: bool
    real: bool
    block_widths: tuple
    n_kernels: int
    steps: tuple
    runner: Callable

    @property
    def n_blocks(self) -> int:
        """Passes over the state for fused blocks (transposes not counted)."""
        return len(self.block_widths)

    @property
    def n_transposes(self) -> int:
        """Layout transposes of the GEMM engine."""
        return sum(s.kind == "T" for s in self.steps)

    def run(self, params=None, init_state=None):
        """The final state ``(2**n_wires,)`` for one parameter vector (``jax.vmap`` it for a batch);
        ``init_state`` defaults to ``|0...0>``. Jit, grad and vmap compose."""
        cdtype = jnp.dtype(self.dtype)
        p = None if params is None else jnp.asarray(params, real_dtype(cdtype))
        return self.runner(p, initial_state(self.n_wires, init_state, cdtype))

    state = run


def select_engine(n_wires: int) -> str:
    """``QSIM_SV_ENGINE`` (``scan``, ``gemm``: XLA products, ``native``: C++ kernels) or, with ``auto``,
    ``scan`` below ``QSIM_SV_GEMM_MIN_QUBITS`` and ``native`` from there; ``gemm`` instead of ``native``
    where the native kernels are unavailable (``QSIM_NATIVE=0``, no compiler, not the CPU backend)."""
    s = settings.get()
    v = s.sv_engine
    if v == "auto":
        v = "native" if n_wires >= s.gemm_min_qubits else "scan"
    if v == "native" and not native.available():
        return "gemm"
    return v


def default_max_fuse(n_wires: int, engine: str | None = None) -> int:
    """The fusion width used when ``max_fuse`` is not given (``QSIM_SV_NATIVE_FUSE``,
    ``QSIM_SV_GEMM_FUSE``, or :data:`MAX_FUSE` on the scan engine, 2 below :data:`FUSE3_MIN_QUBITS`)."""
    engine = engine or select_engine(n_wires)
    if engine == "native":
        return settings.get().native_max_fuse
    if engine == "gemm":
        return settings.get().gemm_max_fuse
    return MAX_FUSE if n_wires >= FUSE3_MIN_QUBITS else min(MAX_FUSE, 2)


def _resolve(circuit: Circuit, engine: str | None, max_fuse: int | None) -> tuple[str, int]:
    """(engine, max_fuse) for ``compile``: the default width follows the selected engine; a width over
    4 leaves the scan engine; the native kernels take blocks of at most 5 wires on 3 wires or more."""
    if max_fuse is not None:
        max_fuse = check_max_fuse(max_fuse)
    if engine is None:
        engine = select_engine(circuit.n_wires)
        if max_fuse is None:
            max_fuse = default_max_fuse(circuit.n_wires, engine)
        if engine == "scan" and max_fuse > _SCAN_MAX_FUSE:
            engine = "gemm"
    elif engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {list(ENGINES)}")
    if engine == "native" and (max_fuse is not None and max_fuse > native.MAX_WIRES or circuit.n_wires < 3
                               or any(len(op.wires) > native.MAX_WIRES for op in circuit.ops)):
        engine = "gemm"
    if max_fuse is None:
        max_fuse = default_max_fuse(circuit.n_wires, engine)
    return engine, max_fuse


@structural_cache(maxsize=256)
def _compiled(circuit: Circuit, cdtype_name: str, max_fuse: int, adjoint_mode: str, engine: str) -> Program:
    cdtype = jnp.dtype(cdtype_name)
    n = circuit.n_wires
    with jax.ensure_compile_time_eval():
        gates = gates_of(circuit)
        blocks = fuse(gates, n, max_fuse)
        if engine == "scan":
            prog = build_scan(gates, blocks, n, max_fuse, adjoint_mode, cdtype.itemsize)
        else:
            prog = build_gemm(gates, blocks, n, engine == "native")
    if engine == "scan":
        return Program(engine, n, cdtype_name, max_fuse, prog.adjoint, prog.real, prog.widths,
                       len(prog.kernels), (), scan.make_runner(prog, cdtype))
    return Program(engine, n, cdtype_name, max_fuse, True, prog.real, prog.widths, 0, prog.steps,
                   gemm.make_runner(prog, cdtype))


def compile(circuit: Circuit, *, dtype=None, engine: str | None = None,  # noqa: A001 - the public name
            max_fuse: int | None = None) -> Program:
    """The :class:`Program` that runs ``circuit``: the one ``simulate`` uses under the current settings
    for the same ``dtype`` and ``max_fuse``, from the same cache.

    ``dtype``: complex64 or complex128 (default: complex128 with ``jax_enable_x64``, else complex64).
    ``engine``: ``"scan"``, ``"gemm"`` or ``"native"`` (default: :func:`select_engine`; ``native`` falls
    back to ``gemm`` where it cannot run the circuit). ``max_fuse``: wires per fused block, 1 to 6
    (default: :func:`default_max_fuse`)."""
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qsim.Circuit, got {type(circuit).__name__}")
    cdtype = complex_dtype(None, dtype)
    engine, max_fuse = _resolve(circuit, engine, max_fuse)
    return _compiled(circuit, jnp.dtype(cdtype).name, max_fuse, settings.get().sv_adjoint, engine)


def cache_info():
    """Hits and misses of the program cache (``functools.lru_cache``'s ``CacheInfo``)."""
    return _compiled.cache_info()
