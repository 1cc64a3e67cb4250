"""The JAX statevector simulator: ``simulate / probs / expval / sample``.

All four are pure JAX functions of the parameter vector, so ``jax.jit``, ``jax.grad`` and ``jax.vmap``
compose with them. A circuit is compiled once per (structure, dtype): its ops are fused into blocks
of at most ``MAX_FUSE`` wires (consecutive gates that fit are multiplied into one small matrix), each
block is applied as a small contraction on the ``(2,) * n`` state that skips the structural zeros of
its matrix (diagonal and permutation gates cost one pass with no multiplications to speak of), and
the whole program is one jitted function cached by the circuit's fingerprint.

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

from qsim.circuit import Circuit, Op
from qsim.gates import controlled_matrix
from qsim.operators import PauliSum, _masks

__all__ = ["simulate", "probs", "expval", "sample", "state_probs", "state_expval", "memory_limit_bytes",
           "MAX_FUSE"]

MAX_FUSE = 2
_DENSE_SLICE_LIMIT = 3  # blocks wider than this use tensordot instead of sliced products


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
class _Gate(NamedTuple):
    wires: tuple[int, ...]
    const: np.ndarray | None          # full matrix when it has no trainable parameter
    fn: Callable | None               # params -> matrix, when it has
    diagonal: bool


class _Block(NamedTuple):
    wires: tuple[int, ...]
    gates: tuple[_Gate, ...]
    const: np.ndarray | None           # fused matrix when every gate is constant
    pattern: tuple[tuple[int, ...], ...]  # structural non-zero columns of each row
    diagonal: bool


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


def _embed(m, gwires: Sequence[int], bwires: Sequence[int]):
    """Embed matrix ``m`` on ``gwires`` into the space of ``bwires`` (a superset), as jnp."""
    k, kb = len(gwires), len(bwires)
    if tuple(gwires) == tuple(bwires):
        return jnp.asarray(m)
    rest = [w for w in bwires if w not in gwires]
    # operator on (gwires + rest) ordering, then permute to bwires ordering
    full = jnp.kron(jnp.asarray(m), jnp.eye(2 ** len(rest), dtype=jnp.asarray(m).dtype))
    order = list(gwires) + rest
    perm = [order.index(w) for w in bwires]
    t = full.reshape((2,) * (2 * kb))
    t = jnp.transpose(t, perm + [kb + p for p in perm])
    del k
    return t.reshape(2 ** kb, 2 ** kb)


def _fuse(gates: list[_Gate], n: int, max_fuse: int) -> list[list[_Gate]]:
    """Greedy fusion: a gate joins the latest block touching its wires if the union stays small."""
    blocks: list[list] = []      # [wires(set), gates(list)]
    last = [-1] * n               # index of the latest block touching each wire
    for g in gates:
        b = max(last[w] for w in g.wires)
        if b >= 0:
            union = blocks[b][0] | set(g.wires)
            # blocks after b never touch g's wires, so g may move back into block b
            if len(union) <= max_fuse or union == blocks[b][0] or union == set(g.wires):
                blocks[b][0] = union
                blocks[b][1].append(g)
                for w in g.wires:
                    last[w] = b
                continue
        blocks.append([set(g.wires), [g]])
        for w in g.wires:
            last[w] = len(blocks) - 1
    return [bg for _, bg in blocks]


def _block_matrix(block_gates: Sequence[_Gate], bwires, params=None):
    m = None
    for g in block_gates:
        gm = g.const if g.fn is None else g.fn(params)
        e = _embed(gm, g.wires, bwires)
        m = e if m is None else e @ m
    return m


def _pattern(mat: np.ndarray) -> tuple[tuple[int, ...], ...]:
    nz = np.abs(mat) > 1e-14
    return tuple(tuple(int(j) for j in np.nonzero(row)[0]) for row in nz)


@functools.lru_cache(maxsize=256)
def _compiled(key: tuple, circuit_ref: "_CircuitRef", cdtype_name: str, max_fuse: int):
    # matrices of fixed gates and structure probes are computed eagerly, even inside a caller's jit
    with jax.ensure_compile_time_eval():
        return _build(circuit_ref.circuit, cdtype_name, max_fuse)


def _build(circuit: Circuit, cdtype_name: str, max_fuse: int):
    n = circuit.n_wires
    cdtype = jnp.dtype(cdtype_name)
    rdtype = _real_dtype(cdtype)
    gates: list[_Gate] = []
    for op in circuit.ops:
        if op.name == "I" and not op.n_controls:
            continue
        full, is_const = _op_matrix_fn(op)
        if is_const:
            mat = np.asarray(full([p.value for p in op.params]), dtype=np.complex128)
            gates.append(_Gate(op.wires, mat, None, _is_diag(mat)))
        else:
            refs = op.params

            def fn(params, full=full, refs=refs):
                vals = [params[r.slot] if r.slot is not None else jnp.asarray(r.value, params.dtype)
                        for r in refs]
                return full(vals)
            probe = np.asarray(fn(np.random.default_rng(len(gates)).uniform(0.1, 3.0, circuit.num_params)))
            gates.append(_Gate(op.wires, None, fn, op.gate.kind == "diagonal" and _is_diag(probe)))
    blocks: list[_Block] = []
    rng = np.random.default_rng(1234)
    probe_params = rng.uniform(0.1, 3.0, max(circuit.num_params, 1))
    for bg in _fuse(gates, n, max_fuse):
        bwires = tuple(sorted({w for g in bg for w in g.wires}))
        if len(bg) == 1:
            bwires = bg[0].wires
        const = None
        if all(g.fn is None for g in bg):
            const = np.asarray(_block_matrix(bg, bwires))
            probe = const
        else:
            probe = np.asarray(_block_matrix(bg, bwires, probe_params))
        blocks.append(_Block(bwires, tuple(bg), const, _pattern(probe), all(g.diagonal for g in bg)))

    def run(params, state):
        state = state.reshape((2,) * n)
        p = None if params is None else params.astype(rdtype)
        for b in blocks:
            m = b.const if b.const is not None else jnp.asarray(_block_matrix(b.gates, b.wires, p), cdtype)
            state = _apply_block(state, m, b)
        return state.reshape(-1)

    return jax.jit(run)


class _CircuitRef:
    """Carries the circuit into the lru_cache without making it part of the key."""

    __slots__ = ("circuit",)

    def __init__(self, circuit):
        self.circuit = circuit

    def __hash__(self):
        return 0

    def __eq__(self, other):
        return isinstance(other, _CircuitRef)


def _is_diag(m: np.ndarray) -> bool:
    return bool(np.all(np.abs(m - np.diag(np.diag(m))) < 1e-14))


def _apply_block(state, m, b: _Block):
    wires = b.wires
    k = len(wires)
    n = state.ndim
    if b.diagonal:
        d = jnp.asarray(np.diagonal(m) if isinstance(m, np.ndarray) else jnp.diagonal(m), state.dtype)
        d = d.reshape((2,) * k)
        order = np.argsort(wires)
        d = jnp.transpose(d, order)
        shape = [1] * n
        for w in wires:
            shape[w] = 2
        return state * d.reshape(shape)
    if k > _DENSE_SLICE_LIMIT:
        t = jnp.asarray(m, state.dtype).reshape((2,) * (2 * k))
        out = jnp.tensordot(t, state, axes=(list(range(k, 2 * k)), list(wires)))
        return jnp.moveaxis(out, list(range(k)), list(wires))

    def sl(col: int):
        idx = [slice(None)] * n
        for j, w in enumerate(wires):
            idx[w] = (col >> (k - 1 - j)) & 1
        return state[tuple(idx)]

    const = isinstance(m, np.ndarray)
    cache: dict[int, object] = {}
    outs = []
    for a, cols in enumerate(b.pattern):
        acc = None
        for c in cols:
            if c not in cache:
                cache[c] = sl(c)
            coef = complex(m[a, c]) if const else m[a, c]
            if const and coef == 1:
                term = cache[c]
            elif const and coef == -1:
                term = -cache[c]
            else:
                term = coef * cache[c]
            acc = term if acc is None else acc + term
        outs.append(acc)
    out = jnp.stack(outs).reshape((2,) * k + outs[0].shape)
    return jnp.moveaxis(out, list(range(k)), list(wires))


# ---------------------------------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------------------------------
def _initial_state(n: int, init_state, cdtype):
    if init_state is None:
        return jnp.zeros(2 ** n, dtype=cdtype).at[0].set(1)
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
    fn = _compiled(circuit.key(), _CircuitRef(circuit), jnp.dtype(cdtype).name,
                   MAX_FUSE if max_fuse is None else int(max_fuse))
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
        flipped = jnp.flip(psi, axis=flip_axes) if flip_axes else psi
        w = jnp.conj(psi) * flipped
        zaxes = sorted({a for _, z in terms for a in range(n) if (z >> (n - 1 - a)) & 1})
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
    """``<psi(params)|H|psi(params)>`` for a :class:`~qsim.operators.PauliSum` ``H``."""
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
