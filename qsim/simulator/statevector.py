"""The JAX statevector simulator: ``simulate / probs / expval / sample``.

All four are pure JAX functions of the parameter vector, so ``jax.jit``, ``jax.grad`` and ``jax.vmap``
compose with them. A circuit is compiled once per (structure, dtype): its ops are fused into blocks
of at most ``default_max_fuse(n)`` wires (consecutive gates that fit are multiplied into one small
matrix), each block is one pass over the state that skips the structural zeros of its matrix, and the
whole program is one jitted ``lax.scan`` over blocks, cached by the circuit's fingerprint. The passes
run in real arithmetic on (real, imaginary) planes, and on a single real plane when every gate is
real (:mod:`qsim.simulator.kernels` holds these kernels).

Precision: float32 parameters give a complex64 state, float64 parameters complex128; ``dtype=``
overrides. Wire 0 is the most significant bit of every basis index.

Pauli-sum expectations never build a matrix: terms are grouped by their X/Y flip pattern; each group
costs one flipped copy of the state and one Walsh-Hadamard pass over the wires it touches.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from qsim.simulator import kernels as _k
from qsim.simulator import fusion as _fusion
from qsim.simulator import native as _native
from qsim.simulator.fusion import _embed
from qsim.circuits.circuit import Circuit, Op
from qsim.circuits.gates import controlled_matrix
from qsim.circuits.operators import PauliSum, _masks

__all__ = ["simulate", "probs", "expval", "sample", "state_probs", "state_expval", "memory_limit_bytes",
           "MAX_FUSE"]

MAX_FUSE = 3
# below this many qubits blocks of at most 2 wires are faster (per-block work, not passes, dominates:
# LiH UCCSD on 6 qubits, energy + gradient, 4.4 ms with 2-wire blocks vs 10.7 ms with 3-wire ones)
FUSE3_MIN_QUBITS = 12


# from this many qubits the GEMM engine (qsim.simulator.fusion) runs wider blocks: through the native kernels
# (qsim.simulator.native) where they build, else as XLA matrix products
GEMM_MIN_QUBITS = int(os.environ.get("QSIM_SV_GEMM_MIN_QUBITS", 16))
GEMM_MAX_FUSE = int(os.environ.get("QSIM_SV_GEMM_FUSE", 4))
# the same engine with the native kernels (qsim.simulator.native, the default where they build): no layout
NATIVE_MAX_FUSE = int(os.environ.get("QSIM_SV_NATIVE_FUSE", 3))
MAX_FUSE_LIMIT = 6


def default_max_fuse(n_wires: int, engine: str | None = None) -> int:
    """The fusion width ``simulate`` uses when ``max_fuse`` is not given."""
    engine = engine or _engine(n_wires)
    if engine == "native":
        return NATIVE_MAX_FUSE
    if engine == "gemm":
        return GEMM_MAX_FUSE
    return MAX_FUSE if n_wires >= FUSE3_MIN_QUBITS else min(MAX_FUSE, 2)


# ---------------------------------------------------------------------------------------------------
# dtypes and validation
# ---------------------------------------------------------------------------------------------------
def memory_limit_bytes() -> int:
    """Bytes a state may take: ``QSIM_MAX_STATE_BYTES`` or half the machine's physical memory."""
    env = os.environ.get("QSIM_MAX_STATE_BYTES")
    if env:
        return int(float(env))
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 * 2**30


def _check_memory(n: int, dtype) -> None:
    need = (2 ** n) * jnp.dtype(dtype).itemsize
    limit = memory_limit_bytes()
    # the simulator holds a few copies of the state while it runs
    if 3 * need > limit:
        raise ValueError(
            f"a {n}-qubit {jnp.dtype(dtype).name} state needs {need / 2**30:.3g} GiB "
            f"(about 3x that while simulating), more than the {limit / 2**30:.3g} GiB allowed here; "
            "use fewer qubits, complex64, or a sharded/hardware backend (QSIM_MAX_STATE_BYTES sets the limit)")


def _complex_dtype(params, dtype):
    if dtype is not None:
        dt = jnp.dtype(dtype)
        if dt not in (jnp.complex64, jnp.complex128):
            raise TypeError(f"dtype must be complex64 or complex128, got {dt}")
        if dt == jnp.complex128 and not jax.config.jax_enable_x64:
            raise ValueError("complex128 needs jax_enable_x64 (jax.config.update('jax_enable_x64', True))")
        return dt
    if params is not None and jnp.issubdtype(jnp.result_type(params), jnp.floating):
        return jnp.complex128 if jnp.result_type(params) == jnp.float64 else jnp.complex64
    return jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64


def _real_dtype(cdtype):
    return jnp.float64 if jnp.dtype(cdtype) == jnp.complex128 else jnp.float32


def _prepare_params(circuit: Circuit, params):
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qsim.Circuit, got {type(circuit).__name__}")
    if params is None:
        if circuit.num_params:
            raise ValueError(f"circuit has {circuit.num_params} trainable parameter(s) but params=None")
        return None
    if not hasattr(params, "shape"):
        params = np.asarray(params, dtype=np.float64 if jax.config.jax_enable_x64 else np.float32)
    if jnp.iscomplexobj(params):
        raise TypeError("params must be real angles, got a complex array")
    if params.ndim == 0 or params.shape[-1] != circuit.num_params:
        raise ValueError(f"params has shape {tuple(params.shape)}; the circuit expects "
                         f"(..., {circuit.num_params}) (num_params={circuit.num_params})")
    return params


# ---------------------------------------------------------------------------------------------------
# compilation: ops -> fused blocks -> one jitted function
# ---------------------------------------------------------------------------------------------------
_EPS = 1e-14
_MAX_BLOCK_GATES = 32
# reverse mode keeps one state per block; above this many bytes it switches to the adjoint method
# (O(1) states, uncomputes the forward pass); ``QSIM_SV_ADJOINT=1/0`` forces it on/off.
ADJOINT_BYTES = 16 * 2**20


class _Gate(NamedTuple):
    wires: tuple[int, ...]            # the op's wires (controls first)
    const: np.ndarray | None          # full complex128 matrix when the op has no trainable slot
    group: tuple | None               # key of the vectorised matrix builder, when it has
    fn: Callable | None               # list of parameter values -> matrix on ``wires``
    refs: tuple                       # the op's ParamRefs
    diagonal: bool
    real: bool                        # the matrix is real for every parameter value


def _op_matrix_fn(op: Op) -> tuple[Callable, bool]:
    """(vals -> full matrix on op.wires, is_constant)."""
    g = op.gate
    if op.name == "Unitary":
        base = lambda vals: op.matrix  # noqa: E731
    elif op.name == "MCX":
        base = lambda vals: np.array([[0, 1], [1, 0]], dtype=complex)  # noqa: E731
    else:
        base = lambda vals: g.matrix(*vals)  # noqa: E731

    n_ctrl = op.n_controls

    def full(vals):
        m = base(vals)
        if op.adjoint:
            m = jnp.conj(jnp.asarray(m)).T
        if n_ctrl:
            m = controlled_matrix(m, n_ctrl)
        return m

    return full, all(p.slot is None for p in op.params)


def _is_diag(m: np.ndarray) -> bool:
    return bool(np.all(np.abs(m - np.diag(np.diag(m))) < _EPS))


def _is_real(m) -> bool:
    return bool(np.all(np.abs(np.imag(m)) < _EPS))


def _is_monomial(m: np.ndarray) -> bool:
    """One non-zero per row and column: a permutation with phases (X, CNOT, SWAP, CZ, Toffoli, ...)."""
    nz = np.abs(m) > _EPS
    return bool(np.all(nz.sum(0) == 1) and np.all(nz.sum(1) == 1))


def _gates_of(circuit: Circuit) -> list[_Gate]:
    gates = []
    for op in circuit.ops:
        if op.name == "I" and not op.n_controls:
            continue
        full, is_const = _op_matrix_fn(op)
        if is_const:
            mat = np.asarray(full([p.value for p in op.params]), dtype=np.complex128)
            gates.append(_Gate(op.wires, mat, None, None, (), _is_diag(mat), _is_real(mat)))
        else:
            key = (op.name, op.n_controls, op.adjoint, len(op.wires))
            # real for all angles iff real at generic angles (the table's matrices are analytic)
            probe = np.random.default_rng(len(op.wires)).uniform(-3, 3, (2, len(op.params)))
            real = all(_is_real(np.asarray(full([float(v) for v in row]))) for row in probe)
            gates.append(_Gate(op.wires, None, key, full, op.params, op.gate.kind == "diagonal", real))
    return gates


def _fuse(gates: Sequence[_Gate], n: int, max_fuse: int) -> list[list[_Gate]]:
    """Greedy fusion into blocks of at most ``max_fuse`` wires (wider gates stay alone).

    A gate joins the latest block touching its wires when the union stays small (later blocks never
    touch its wires, so it may move back). Earlier blocks on its other wires that nothing later
    touches are pulled forward into the same block (they commute with everything in between):
    ``RY(0) RY(1) CNOT(0,1)`` becomes one 2-wire block.
    """
    blocks: list = []      # [wires(set), gates(list), wide(bool)] or None once merged away
    last = [-1] * n

    def absorb(b: int, ws: set) -> None:
        for w in sorted(ws):
            bp = last[w]
            if bp < 0 or bp == b or blocks[bp][2]:
                continue
            bw = blocks[bp][0]
            if (bw <= blocks[b][0] | ws and all(last[u] == bp for u in bw)
                    and len(blocks[bp][1]) + len(blocks[b][1]) < _MAX_BLOCK_GATES):
                blocks[b][1][:0] = blocks[bp][1]
                blocks[b][0] |= bw
                blocks[bp] = None
                for u in bw:
                    last[u] = b

    for g in gates:
        ws = set(g.wires)
        if len(ws) > max_fuse:
            blocks.append([ws, [g], True])
            for w in ws:
                last[w] = len(blocks) - 1
            continue
        b = max(last[w] for w in ws)
        if b >= 0 and not blocks[b][2] and len(blocks[b][1]) < _MAX_BLOCK_GATES:
            union = blocks[b][0] | ws
            if len(union) <= max_fuse:
                absorb(b, ws - blocks[b][0])
                blocks[b][0] |= ws
                blocks[b][1].append(g)
                for w in ws:
                    last[w] = b
                continue
        blocks.append([set(ws), [], False])
        b = len(blocks) - 1
        absorb(b, ws)
        blocks[b][1].append(g)
        for w in ws:
            last[w] = b
    return [bl[1] for bl in blocks if bl is not None]


def _local_perm(gwires: Sequence[int], lwires: Sequence[int]) -> np.ndarray:
    """sigma: index over ``lwires`` -> index over (gwires, rest of lwires) (kron(g, I) ordering)."""
    k = len(lwires)
    order = list(gwires) + [w for w in lwires if w not in gwires]
    pos = [lwires.index(w) for w in order]
    i = np.arange(2 ** k)
    bits = [(i >> (k - 1 - p)) & 1 for p in pos]
    out = np.zeros_like(i)
    for b in bits:
        out = 2 * out + b
    return out


class _Kernel(NamedTuple):
    fwd: Callable      # (planes, m, params) -> planes
    bwd: Callable      # (planes_out, cotangent_out, m, params) -> (planes_in, cotangent_in, dm, dparams)


def _generic_bwd(fwd, inv):
    def bwd(psi, lam, m, p):
        psi_in = inv(psi, m, p)
        _, vjp = jax.vjp(fwd, psi_in, m, p)
        lam_in, gm, gp = vjp(lam)
        return psi_in, lam_in, gm, gp
    return bwd


def _dense_kernel(n, ws, stride, diagonal):
    def sub(m):
        return m[..., ::stride, ::stride]

    def fwd(x, m, p):
        return _k.apply_matrix(x, n, ws, sub(m), diagonal=diagonal)

    def bwd(psi, lam, m, p):
        # the map on real planes is orthogonal: its transpose (for the cotangent) is its inverse
        adj = _k.dagger(sub(m))
        psi_in = _k.apply_matrix(psi, n, ws, adj, diagonal=diagonal)
        lam_in = _k.apply_matrix(lam, n, ws, adj, diagonal=diagonal)
        gsub = _k.matrix_cotangent(lam, psi_in, n, ws, m.ndim == 3, diagonal)
        gm = jnp.zeros_like(m).at[..., ::stride, ::stride].set(gsub.astype(m.dtype))
        return psi_in, lam_in, gm, jnp.zeros_like(p)
    return _Kernel(fwd, bwd)


def _static_kernel(n, ws, mat):
    """A fixed matrix on sorted wires ``ws``: sliced (diagonal, monomial or k <= 3) or a dot."""
    diag = _is_diag(mat)
    adj = np.conj(mat).T
    if diag or _is_monomial(mat) or len(ws) <= 3:
        def fwd(x, m, p):
            return _k.apply_matrix(x, n, ws, mat, static=True, diagonal=diag)

        def inv(x):
            return _k.apply_matrix(x, n, ws, adj, static=True, diagonal=diag)
    else:
        def fwd(x, m, p):
            return _k.apply_dot(x, n, ws, mat)

        def inv(x):
            return _k.apply_dot(x, n, ws, adj)

    def bwd(psi, lam, m, p):
        return inv(psi), inv(lam), jnp.zeros_like(m), jnp.zeros_like(p)
    return _Kernel(fwd, bwd)


def _wide_kernel(n, gate: _Gate, rdtype, real: bool):
    """A trainable gate wider than the fused blocks, alone: its matrix is built inside the kernel."""
    ws = tuple(gate.wires)

    def matrix(p, dagger=False):
        vals = [p[r.slot] if r.slot is not None else jnp.asarray(r.value, rdtype) for r in gate.refs]
        m = jnp.asarray(gate.fn(vals))
        if dagger:
            m = jnp.conj(m).T
        return jnp.real(m).astype(rdtype) if real else jnp.stack([jnp.real(m), jnp.imag(m)]).astype(rdtype)

    def fwd(x, m, p):
        return _k.apply_dot(x, n, ws, matrix(p))

    def inv(x, m, p):
        return _k.apply_dot(x, n, ws, matrix(p, dagger=True))
    return _Kernel(fwd, _generic_bwd(fwd, inv))


class _Program(NamedTuple):
    """A compiled circuit: block matrices from params, then kernels in block order."""

    n: int
    kernels: tuple[_Kernel, ...]
    kidx: np.ndarray                  # (B,) int32 kernel of each block
    dim: int                          # D: block matrices are (D, D)
    table_const: np.ndarray           # (1 + Nc, D, D) identity then embedded fixed gates
    groups: tuple                     # trainable-gate builders (see _build)
    gidx: np.ndarray                  # (B, K) rows of the gate table multiplied into each block
    adjoint: bool                     # gradient by the adjoint method (custom VJP) instead of autodiff
    real: bool                        # every matrix is real: a real initial state stays one plane


def _build_program(circuit: Circuit, max_fuse: int, rdtype, adjoint_mode: str, itemsize: int) -> _Program:
    n = circuit.n_wires
    gates = _gates_of(circuit)
    real = all(g.real for g in gates)
    fused = _fuse(gates, n, max_fuse)
    small = [bg for bg in fused if len({w for g in bg for w in g.wires}) <= max_fuse]
    kmax = max([len({w for g in bg for w in g.wires}) for bg in small] + [1])
    dim = 2 ** kmax
    const_rows = [np.eye(dim, dtype=np.complex128)]
    group_rows: dict[tuple, list] = {}      # key -> list of (gate, sigma)
    kernels: dict[tuple, int] = {}
    kernel_list: list[_Kernel] = []
    kidx, gidx = [], []

    def kernel(key, make):
        if key not in kernels:
            kernels[key] = len(kernel_list)
            kernel_list.append(make())
        return kernels[key]

    for bg in fused:
        ws = tuple(sorted({w for g in bg for w in g.wires}))
        kb = len(ws)
        row: list = []
        if kb > max_fuse:                                    # a wide gate, alone
            g = bg[0]
            if g.const is not None:
                mat = np.asarray(_embed(g.const, g.wires, ws))
                kidx.append(kernel(("static", ws, mat.tobytes()), lambda: _static_kernel(n, ws, mat)))
            else:
                kidx.append(kernel(("wide", len(kidx)), lambda: _wide_kernel(n, g, rdtype, real)))
            gidx.append(row)
            continue
        lw = list(ws) + [n + j for j in range(kmax - kb)]    # dummy wires pad to kmax
        if all(g.const is not None for g in bg):
            mat = np.eye(2 ** kb, dtype=np.complex128)
            for g in bg:
                mat = np.asarray(_embed(g.const, g.wires, ws)) @ mat
            if _is_monomial(mat) and not _is_diag(mat):
                kidx.append(kernel(("static", ws, mat.tobytes()), lambda: _static_kernel(n, ws, mat)))
                gidx.append(row)
                continue
        diagonal = all(g.diagonal for g in bg)
        kind = "diag" if diagonal else "dense"
        kidx.append(kernel((kind, ws), lambda: _dense_kernel(n, ws, 2 ** (kmax - kb), diagonal)))
        for g in bg:
            sigma = _local_perm(list(g.wires), lw)
            if g.const is not None:
                kg = g.const.shape[0]
                full = np.kron(g.const, np.eye(dim // kg))
                const_rows.append(full[np.ix_(sigma, sigma)])
                row.append(("c", len(const_rows) - 1))
            else:
                lst = group_rows.setdefault(g.group, [])
                lst.append((g, sigma))
                row.append(("g", g.group, len(lst) - 1))
        gidx.append(row)

    # the gate table: [identity, fixed gates..., group 1 gates..., group 2 gates...]
    offsets, off = {}, len(const_rows)
    groups = []
    for key, lst in group_rows.items():
        offsets[key] = off
        off += len(lst)
        g0 = lst[0][0]
        npar = len(g0.refs)
        slots = np.array([[r.slot if r.slot is not None else 0 for r in g.refs] for g, _ in lst], np.int32)
        is_slot = np.array([[r.slot is not None for r in g.refs] for g, _ in lst], bool).reshape(-1, npar)
        fixed = np.array([[r.value if r.value is not None else 0.0 for r in g.refs] for g, _ in lst],
                         np.float64).reshape(-1, npar)
        sig = np.stack([s for _, s in lst]).astype(np.int32)
        groups.append((g0.fn, slots.reshape(-1, npar), is_slot, fixed, sig, 2 ** len(g0.wires)))
    K = max([len(r) for r in gidx] + [1])
    gmat = np.zeros((len(gidx), K), np.int32)
    for b, row in enumerate(gidx):
        for j, e in enumerate(row):
            gmat[b, j] = e[1] if e[0] == "c" else offsets[e[1]] + e[2]
    state_bytes = (2 ** n) * itemsize
    if adjoint_mode == "auto":
        adjoint = len(kidx) * state_bytes > ADJOINT_BYTES
    else:
        adjoint = adjoint_mode == "1"
    return _Program(n, tuple(kernel_list), np.asarray(kidx, np.int32), dim, np.stack(const_rows),
                    tuple(groups), gmat, adjoint, real)


def _block_matrices(prog: _Program, p, cdtype):
    """Block matrices from the gate table: real ``(B, D, D)`` for a real program, else planar
    ``(B, 2, D, D)`` (tiny batched matmuls, once per call)."""
    parts = [jnp.asarray(prog.table_const, cdtype)]
    dim = prog.dim
    for fn, slots, is_slot, fixed, sig, d in prog.groups:
        vals = jnp.where(is_slot, p[slots], jnp.asarray(fixed, p.dtype))
        g = jax.vmap(lambda v, fn=fn: jnp.asarray(fn([v[i] for i in range(v.shape[0])])))(vals)
        g = g.astype(cdtype)
        full = jnp.einsum("gab,cd->gacbd", g, jnp.eye(dim // d, dtype=cdtype),
                          precision=lax.Precision.HIGHEST).reshape(-1, dim, dim)
        rows = np.arange(len(sig))[:, None, None]
        parts.append(full[rows, sig[:, :, None], sig[:, None, :]])
    table = jnp.concatenate(parts) if len(parts) > 1 else parts[0]
    m = table[prog.gidx[:, 0]]
    for j in range(1, prog.gidx.shape[1]):
        m = jnp.matmul(table[prog.gidx[:, j]], m, precision=lax.Precision.HIGHEST)   # not TF32 on GPUs
    if prog.real:
        return jnp.real(m)
    return jnp.stack([jnp.real(m), jnp.imag(m)], axis=1)


def _forward(prog: _Program, mats, p, x, checkpoint: bool):
    fwds = [k.fwd for k in prog.kernels]
    if checkpoint:
        fwds = [jax.checkpoint(f) for f in fwds]
    def body(s, xs):
        k, m = xs
        if len(fwds) == 1:
            return fwds[0](s, m, p), None
        return lax.switch(k, fwds, s, m, p), None
    return lax.scan(body, x, (jnp.asarray(prog.kidx), mats))[0]


def _backward(prog: _Program, mats, p, out, lam):
    """Adjoint sweep: uncompute the state block by block while pulling the cotangent back."""
    bwds = [functools.partial(k.bwd, p=p) for k in prog.kernels]
    def body(c, xs):
        psi, lam, gp = c
        k, m = xs
        if len(bwds) == 1:
            psi, lam, gm, dp = bwds[0](psi, lam, m)
        else:
            psi, lam, gm, dp = lax.switch(k, bwds, psi, lam, m)
        return (psi, lam, gp + dp), gm
    (_, lam0, gp), gms = lax.scan(body, (out, lam, jnp.zeros_like(p)),
                                  (jnp.asarray(prog.kidx), mats), reverse=True)
    return gms, gp, lam0


def _make_runner(prog: _Program, cdtype):
    """(params, initial state or None) -> final complex state, one jitted function."""
    rdtype = _real_dtype(cdtype)

    if prog.adjoint:
        @jax.custom_vjp
        def apply(mats, p, x):
            return _forward(prog, mats, p, x, False)

        def apply_fwd(mats, p, x):
            out = _forward(prog, mats, p, x, False)
            return out, (mats, p, out)

        def apply_bwd(res, lam):
            mats, p, out = res
            return _backward(prog, mats, p, out, lam)

        apply.defvjp(apply_fwd, apply_bwd)
    else:
        def apply(mats, p, x):
            return _forward(prog, mats, p, x, True)

    def run(params, state):
        p, x = _run_inputs(prog, params, state, rdtype)
        if len(prog.kidx):
            x = apply(_block_matrices(prog, p, cdtype), p, x)
        return _k.from_planes(x, cdtype)

    return jax.jit(run)


def _run_inputs(prog, params, state, rdtype):
    """A runner's parameters (``(1,)`` zeros for a circuit without any) and initial planes: ``|0...0>``
    is real, so a real program carries one plane."""
    p = jnp.zeros((1,), rdtype) if params is None else params.astype(rdtype)
    if state is None:
        return p, jnp.zeros((1 if prog.real else 2, 2 ** prog.n), rdtype).at[0, 0].set(1)
    return p, _k.to_planes(state, rdtype)


class _GemmProgram(NamedTuple):
    """A circuit compiled for the GEMM engine (:mod:`qsim.simulator.fusion`)."""

    n: int
    steps: tuple                      # fusion.Step passes, transposes included
    mats: tuple                       # (gates, wire order) of each traced block matrix
    kidx: np.ndarray                  # (B,) one entry per block pass (transposes not counted)
    real: bool
    adjoint: bool = True


def _build_gemm_program(circuit: Circuit, max_fuse: int, native: bool = False) -> _GemmProgram:
    n = circuit.n_wires
    gates = _gates_of(circuit)
    steps, mats = _fusion.plan(_fuse(gates, n, max_fuse), n, _is_diag, _is_monomial, native)
    nblocks = sum(s.kind != "T" for s in steps)
    return _GemmProgram(n, tuple(steps), tuple(mats), np.zeros(nblocks, np.int32), all(g.real for g in gates))


def _make_gemm_runner(prog: _GemmProgram, cdtype):
    rdtype = _real_dtype(cdtype)
    apply = _fusion.make_runner(prog.steps, prog.n)

    def run(params, state):
        p, x = _run_inputs(prog, params, state, rdtype)
        x = apply(_fusion.block_matrices(prog.mats, p, cdtype, prog.real), x)
        return _k.from_planes(x, cdtype)

    return jax.jit(run)


@functools.lru_cache(maxsize=256)
def _compiled(key: tuple, circuit_ref: "_CircuitRef", cdtype_name: str, max_fuse: int, adjoint_mode: str,
              engine: str = "scan"):
    cdtype = jnp.dtype(cdtype_name)
    if engine in ("gemm", "native"):
        with jax.ensure_compile_time_eval():
            prog = _build_gemm_program(circuit_ref.circuit, max_fuse, engine == "native")
        return _make_gemm_runner(prog, cdtype), prog
    with jax.ensure_compile_time_eval():
        prog = _build_program(circuit_ref.circuit, max_fuse, _real_dtype(cdtype), adjoint_mode,
                              cdtype.itemsize)
    return _make_runner(prog, cdtype), prog


def _engine(n_wires: int) -> str:
    """``QSIM_SV_ENGINE`` (``scan``, ``gemm``: XLA products, ``native``: C++ kernels) or, by default,
    ``scan`` below ``GEMM_MIN_QUBITS`` and ``native`` from there (``gemm`` where the native kernels
    are unavailable: ``QSIM_NATIVE=0``, no compiler, not the CPU backend)."""
    v = os.environ.get("QSIM_SV_ENGINE", "auto").strip().lower()
    if v not in ("gemm", "scan", "native"):
        v = "native" if n_wires >= GEMM_MIN_QUBITS else "scan"
    if v == "native" and not _native.available():
        return "gemm"
    return v


def _runner_and_program(circuit: Circuit, cdtype_name: str = "complex128", max_fuse: int | None = None,
                        engine: str | None = None):
    """The cached (jitted runner, program) that ``simulate`` uses under the current settings."""
    if engine is None:      # the scan engine's slice kernels stop at 4 wires
        engine = _engine(circuit.n_wires)
        if engine == "scan" and max_fuse is not None and max_fuse > 4:
            engine = "gemm"
    if engine == "native" and (max_fuse is not None and max_fuse > _native.MAX_WIRES or circuit.n_wires < 3
                               or any(len(op.wires) > _native.MAX_WIRES for op in circuit.ops)):
        engine = "gemm"     # the native kernels take blocks of at most 5 wires, on 3 wires or more
    return _compiled(circuit.key(), _CircuitRef(circuit), cdtype_name,
                     default_max_fuse(circuit.n_wires, engine) if max_fuse is None else int(max_fuse),
                     _adjoint_mode(), engine)


def _adjoint_mode() -> str:
    v = os.environ.get("QSIM_SV_ADJOINT", "auto").strip().lower()
    if v in ("1", "true", "yes", "on"):
        return "1"
    if v in ("0", "false", "no", "off"):
        return "0"
    return "auto"


class _CircuitRef:
    """Carries the circuit into the lru_cache without making it part of the key."""

    __slots__ = ("circuit",)

    def __init__(self, circuit):
        self.circuit = circuit

    def __hash__(self):
        return 0

    def __eq__(self, other):
        return isinstance(other, _CircuitRef)


# ---------------------------------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------------------------------
def _initial_state(n: int, init_state, cdtype):
    if init_state is None:
        return None          # the runner builds |0...0> itself (as one real plane when it can)
    s = jnp.asarray(init_state)
    if s.shape != (2 ** n,):
        raise ValueError(f"init_state has shape {tuple(s.shape)}; a {n}-wire circuit needs ({2**n},)")
    return s.astype(cdtype)


def simulate(circuit: Circuit, params=None, *, init_state=None, dtype=None, max_fuse: int | None = None):
    """The final state ``(2**n,)`` (complex64 for float32 params, complex128 for float64).

    ``params`` is ``(num_params,)`` or batched ``(..., num_params)`` (then the result is batched too).
    ``init_state`` (default ``|0...0>``) is a normalised ``(2**n,)`` vector.
    """
    params = _prepare_params(circuit, params)
    cdtype = _complex_dtype(params, dtype)
    _check_memory(circuit.n_wires, cdtype)
    if max_fuse is None:
        max_fuse = default_max_fuse(circuit.n_wires)
    if (isinstance(max_fuse, bool) or not isinstance(max_fuse, (int, np.integer))
            or not 1 <= max_fuse <= MAX_FUSE_LIMIT):
        raise ValueError(f"max_fuse must be an int from 1 to {MAX_FUSE_LIMIT}, got {max_fuse!r}")
    fn = _runner_and_program(circuit, jnp.dtype(cdtype).name, max_fuse)[0]
    state0 = _initial_state(circuit.n_wires, init_state, cdtype)
    if params is not None and params.ndim > 1:
        f = lambda p: fn(p, state0)  # noqa: E731
        for _ in range(params.ndim - 1):
            f = jax.vmap(f)
        return f(params)
    return fn(params, state0)


def state_probs(state, wires: Sequence[int] | None = None, n_wires: int | None = None):
    """Probabilities of a state ``(2**n,)``, marginalised onto ``wires`` (in the order given)."""
    p = jnp.abs(state) ** 2
    if wires is None:
        return p
    n = int(round(math.log2(state.shape[-1]))) if n_wires is None else n_wires
    wires = tuple(int(w) for w in wires)
    if any(not 0 <= w < n for w in wires) or len(set(wires)) != len(wires):
        raise ValueError(f"wires {wires} invalid for a {n}-wire state")
    t = p.reshape(p.shape[:-1] + (2,) * n)
    lead = p.ndim - 1
    other = tuple(lead + w for w in range(n) if w not in wires)
    t = jnp.sum(t, axis=other)  # remaining axes in increasing wire order
    perm = [sorted(wires).index(w) for w in wires]
    t = jnp.transpose(t, tuple(range(lead)) + tuple(lead + i for i in perm))
    return t.reshape(p.shape[:-1] + (2 ** len(wires),))


def probs(circuit: Circuit, params=None, wires: Sequence[int] | None = None, *, init_state=None,
          dtype=None):
    """Basis-state probabilities ``(2**k,)`` on ``wires`` (default all, wire 0 most significant)."""
    if wires is not None:
        wires = tuple(wires)
        for w in wires:
            if not isinstance(w, (int, np.integer)) or not 0 <= w < circuit.n_wires:
                raise ValueError(f"probs: wire {w!r} out of range for a {circuit.n_wires}-wire circuit")
    state = simulate(circuit, params, init_state=init_state, dtype=dtype)
    return state_probs(state, wires, circuit.n_wires)


def _wht_axes(t, axes):
    """Unnormalised Walsh-Hadamard transform along the given size-2 axes."""
    for ax in axes:
        a = jnp.take(t, 0, axis=ax)
        b = jnp.take(t, 1, axis=ax)
        t = jnp.stack([a + b, a - b], axis=ax)
    return t


def state_expval(state, observable: PauliSum, n_wires: int | None = None):
    """``<psi|H|psi>`` for a PauliSum without building a matrix (real for Hermitian ``H``)."""
    if not isinstance(observable, PauliSum):
        raise TypeError(f"observable must be a qsim PauliSum, got {type(observable).__name__}")
    n = int(round(math.log2(state.shape[-1]))) if n_wires is None else n_wires
    if observable.wires and max(observable.wires) >= n:
        raise ValueError(f"observable acts on wire {max(observable.wires)}, outside a {n}-wire state")
    psi = state.reshape((2,) * n)
    groups: dict[int, list] = {}
    for c, s in observable:
        x, z, ny = _masks(s, n)
        groups.setdefault(x, []).append((c * (1j ** ny), z))
    total = 0.0
    for x, terms in groups.items():
        flip_axes = [w for w in range(n) if (x >> (n - 1 - w)) & 1]
        # w = conj(psi) * flip(psi) in real arithmetic (XLA's complex multiply is scalar code on CPU)
        pr, pi = jnp.real(psi), jnp.imag(psi)
        if flip_axes:
            fr, fi = jnp.flip(pr, axis=flip_axes), jnp.flip(pi, axis=flip_axes)
            wr, wi = pr * fr + pi * fi, pr * fi - pi * fr
        else:
            wr, wi = pr * pr + pi * pi, None
        zaxes = sorted({a for _, z in terms for a in range(n) if (z >> (n - 1 - a)) & 1})
        if len(zaxes) > 6 and len(terms) <= 4 * n:
            # many wires, few terms (e.g. sum_i Z_i): one fused pass, sum(w * diagonal) with the
            # diagonal a sum of broadcast +-1 factors (a Walsh-Hadamard over every wire would cost
            # one pass per wire)
            sgn = [jnp.asarray([1.0, -1.0], wr.dtype).reshape([2 if b == a else 1 for b in range(n)])
                   for a in range(n)]
            dr, di = 0.0, 0.0
            for c, z in terms:
                f = complex(c * (-1) ** bin(x & z).count("1"))
                fac = None
                for a in range(n):
                    if (z >> (n - 1 - a)) & 1:
                        fac = sgn[a] if fac is None else fac * sgn[a]
                fac = 1.0 if fac is None else fac
                if f.real:
                    dr = dr + f.real * fac
                if f.imag:
                    di = di + f.imag * fac
            def dot(a, d):
                return 0.0 if a is None or isinstance(d, float) else jnp.sum(a * d)
            total = total + (dot(wr, dr) - dot(wi, di)) + 1j * (dot(wr, di) + dot(wi, dr))
            continue
        w = wr if wi is None else lax.complex(wr, wi)
        other = tuple(a for a in range(n) if a not in zaxes)
        marg = jnp.sum(w, axis=other) if other else w
        if zaxes:
            marg = _wht_axes(marg, list(range(len(zaxes))))
            flat = marg.reshape(-1)
            for c, z in terms:
                idx = 0
                for a in zaxes:
                    idx = 2 * idx + ((z >> (n - 1 - a)) & 1)
                # (-1)^{popcount((i^x) & z)}: the x-part is a constant sign
                sign = (-1) ** bin(x & z).count("1")
                total = total + c * sign * flat[idx]
        else:
            for c, z in terms:
                total = total + c * marg
    if observable.is_hermitian():
        return jnp.real(total)
    return total


def expval(circuit: Circuit, params, observable: PauliSum, *, init_state=None, dtype=None):
    """``<psi(params)|H|psi(params)>`` for a :class:`~qsim.circuits.operators.PauliSum` ``H``."""
    if not isinstance(observable, PauliSum):
        raise TypeError(f"observable must be a qsim PauliSum, got {type(observable).__name__}")
    if observable.wires and max(observable.wires) >= circuit.n_wires:
        raise ValueError(f"observable acts on wire {max(observable.wires)}, outside the circuit's "
                         f"{circuit.n_wires} wires")
    state = simulate(circuit, params, init_state=init_state, dtype=dtype)
    if state.ndim > 1:
        f = lambda s: state_expval(s, observable, circuit.n_wires)  # noqa: E731
        for _ in range(state.ndim - 1):
            f = jax.vmap(f)
        return f(state)
    return state_expval(state, observable, circuit.n_wires)


def sample(circuit: Circuit, params=None, shots: int = 1000, key=None, wires: Sequence[int] | None = None,
           *, init_state=None, dtype=None):
    """``shots`` measured bitstrings ``(shots, k)`` of int8 bits on ``wires`` (default all)."""
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise ValueError(f"shots must be a positive int, got {shots!r}")
    if key is None:
        raise ValueError("sample needs a PRNG key (key=jax.random.key(seed))")
    p = probs(circuit, params, wires, init_state=init_state, dtype=dtype)
    k = circuit.n_wires if wires is None else len(tuple(wires))
    idx = jax.random.categorical(key, jnp.log(p), shape=(int(shots),))
    bits = (idx[:, None] >> jnp.arange(k - 1, -1, -1)) & 1
    return bits.astype(jnp.int8)
