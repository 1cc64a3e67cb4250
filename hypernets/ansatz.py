"""Hypernetwork circuits as ``qsim.Circuit`` objects.

``depth`` always counts **layer steps** (not pairs of them). One layer step ``d`` (d = 0, 1, ...) of the
brickwork ansatz (the quantum-hypernetwork paper's circuit):

1. CNOT(j, j+1) for j = d mod 2, d mod 2 + 2, ... (< n - 1): a brickwork that alternates between
   even and odd pairs from one step to the next;
2. RY(theta) on every qubit;
3. PhaseShift(phi) on every qubit.

So a depth-D brickwork circuit on n qubits has ``2 n D`` trainable angles (17 qubits, 4 steps: 136),
slot order: step by step, the n RY angles then the n phase angles. It starts in |0...0>; the first
step's CNOTs act on |0...0> and do nothing, as in the reference. Initial angles are uniform in
[0, 2 pi) (:func:`init_params`).

``hardware_efficient``: per layer step, RY and RZ on every qubit, then a CNOT ladder (0,1), (1,2), ...
(linear connectivity, as on most devices); also ``2 n D`` angles.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from qsim.circuits.circuit import Circuit
from qsim.circuits import templates
from qsim.infra.validation import positive_int

__all__ = ["brickwork", "hardware_efficient", "make_ansatz", "init_params", "ANSATZE"]


def _check(n_qubits, depth) -> tuple[int, int]:
    return positive_int(n_qubits, "n_qubits"), positive_int(depth, "depth (layer steps)")


def brickwork(n_qubits: int, depth: int):
    """The paper's ansatz (module docstring): ``depth`` layer steps, ``2 * n_qubits * depth`` angles."""

    n_qubits, depth = _check(n_qubits, depth)
    c = Circuit(n_qubits)
    for d in range(depth):
        for j in range(d % 2, n_qubits - 1, 2):
            c.cnot(j, j + 1)
        for j in range(n_qubits):
            c.ry(j)
        for j in range(n_qubits):
            c.phaseshift(j)
    return c


def hardware_efficient(n_qubits: int, depth: int):
    """RY + RZ on every qubit then a CNOT ladder, per layer step; ``2 * n_qubits * depth`` angles
    (:func:`qsim.circuits.templates.hardware_efficient`, the builder the chemistry VQE uses too)."""
    n_qubits, depth = _check(n_qubits, depth)
    return templates.hardware_efficient(n_qubits, depth)


ANSATZE = {"brickwork": brickwork, "hardware_efficient": hardware_efficient}


def make_ansatz(name: str, n_qubits: int, depth: int, layout=None):
    """An ansatz by name; with ``layout`` given, checks that it has one bit per qubit."""
    if name not in ANSATZE:
        raise ValueError(f"unknown ansatz {name!r}; known: {sorted(ANSATZE)}")
    if layout is not None:
        layout.check_num_qubits(n_qubits)
    return ANSATZE[name](n_qubits, depth)


def init_params(key, circuit, dtype=None):
    """Angles uniform in [0, 2 pi): ``(circuit.num_params,)`` (float32 unless x64 / ``dtype``)."""

    dtype = jnp.dtype(dtype or (jnp.float64 if jax.config.jax_enable_x64 else jnp.float32))
    with jax.enable_x64(bool(jax.config.jax_enable_x64) or dtype == jnp.float64):
        return jax.random.uniform(key, (circuit.num_params,), dtype=dtype, minval=0.0, maxval=2 * math.pi)


# -- a specialised simulator for these two layered ansatze ---------------------------------------
# Every layer step is (a CNOT pattern) x (a product of one-qubit gates on all wires). The product
# factorises over contiguous groups of <= GROUP_WIRES wires; when a group contains whole CNOT pairs of
# the brickwork step, that step's CNOTs are folded into the group's 2^k x 2^k matrix as a column
# permutation. Each group is then one small complex matrix product on the state viewed as
# (2^k, rest), written back transposed to (rest, 2^k): after all groups of a step the wire order is back
# where it started. The first step acts on |0...0> and is a product state (built directly), and the
# hardware-efficient CNOT ladder (which crosses groups) is one static permutation of the amplitudes.
# jax.grad differentiates the matrix products (two products per group on the way back). A few dozen
# large ops per circuit instead of one per gate: 17 qubits compile in ~10-45 s here (the gate-by-gate
# version it replaced: 1.5-3 min) and run 2.4-3x faster (benchmarks/results/hypernets_engine_old_vs_new.json).
GROUP_WIRES = 4
CHECKPOINT_WIRES = 20   # from this width on, the backward pass recomputes each step (memory ~ depth states)


def _groups(n: int, pairs) -> list[tuple[int, int]]:
    """Contiguous wire groups ``[(start, stop)]`` of at most ``GROUP_WIRES`` wires that never split a pair
    ``(j, j + 1)`` of ``pairs``."""
    split = {j + 1 for j in pairs}
    out, s = [], 0
    while s < n:
        e = min(s + GROUP_WIRES, n)
        while e < n and e in split:
            e -= 1
        out.append((s, e))
        s = e
    return out


def _cnot_columns(start: int, stop: int, pairs) -> np.ndarray:
    """Column order folding CNOT(j, j + 1), j in ``pairs`` (disjoint), into a group's matrix."""
    k = stop - start
    shifts = k - 1 - np.arange(k)
    bits = (np.arange(2 ** k)[:, None] >> shifts[None, :]) & 1        # local wire i = wire start + i
    out = bits.copy()
    for j in pairs:
        if start <= j and j + 1 < stop:
            out[:, j + 1 - start] ^= bits[:, j - start]
    return (out << shifts[None, :]).sum(1)


def _ladder_perm(n: int) -> np.ndarray:
    """``perm`` with ``(ladder psi)[i] = psi[perm[i]]`` for CNOT(0,1) CNOT(1,2) ... CNOT(n-2,n-1)."""
    shifts = n - 1 - np.arange(n)
    y = (np.arange(2 ** n)[:, None] >> shifts[None, :]) & 1           # output bits
    x = y.copy()
    x[:, 1:] ^= y[:, :-1]                                             # x_j = y_j xor y_{j-1}
    return (x << shifts[None, :]).sum(1)


def _permute(psi, perm: np.ndarray, inverse: np.ndarray):
    """``psi[perm]`` whose gradient is a gather with the inverse permutation (not a scatter-add)."""

    @jax.custom_vjp
    def f(x):
        return x[perm]

    f.defvjp(lambda x: (x[perm], None), lambda _, g: (g[inverse],))
    return f(psi)


def make_probs_fn(name: str, n_qubits: int, depth: int):
    """A pure function ``params (2 n depth,) -> probs (2^n,)`` for ansatz ``name`` (jit-, grad- and
    vmap-able); float32 params compute in complex64, float64 in complex128. Same slot order and
    distribution as ``qsim.probs(make_ansatz(name, n, depth), params)`` (the tests check both and the
    gradient)."""

    n, D = _check(n_qubits, depth)
    if name not in ANSATZE:
        raise ValueError(f"unknown ansatz {name!r}; known: {sorted(ANSATZE)}")
    brick = name == "brickwork"
    plan = []                                        # per step: [(start, stop, column order or None)]
    for d in range(D):
        pairs = list(range(d % 2, n - 1, 2)) if brick and d > 0 else []
        plan.append([(a, b, _cnot_columns(a, b, pairs) if pairs else None) for a, b in _groups(n, pairs)])
    ladder = None
    if not brick and n > 1:
        ladder = _ladder_perm(n)
        ladder = (ladder, np.argsort(ladder))

    def gates(params, cdtype):
        """(D, n, 2, 2): per step and wire, the phase (brickwork) or RZ (hardware-efficient) times RY."""
        lp = params.reshape(D, 2, n)
        c, s = jnp.cos(lp[:, 0] / 2).astype(cdtype), jnp.sin(lp[:, 0] / 2).astype(cdtype)
        if brick:                                    # PhaseShift(phi) RY(theta)
            e = jnp.exp(1j * lp[:, 1].astype(cdtype))
            rows = (jnp.stack([c, -s], -1), jnp.stack([e * s, e * c], -1))
        else:                                        # RZ(phi) RY(theta)
            e = jnp.exp(0.5j * lp[:, 1].astype(cdtype))
            ec = jnp.conj(e)
            rows = (jnp.stack([ec * c, -ec * s], -1), jnp.stack([e * s, e * c], -1))
        return jnp.stack(rows, -2)

    def step(psi, g, groups):
        for a, b, cols in groups:
            m = g[a]
            for j in range(a + 1, b):
                m = jnp.kron(m, g[j])
            if cols is not None:
                m = m[:, np.asarray(cols)]
            psi = jnp.matmul(m, psi.reshape(2 ** (b - a), -1), precision=jax.lax.Precision.HIGHEST).T.reshape(-1)  # not TF32
        return _permute(psi, *ladder) if ladder is not None else psi

    # large states: keep only each step's input for the backward pass (recompute the groups)
    run_step = jax.checkpoint(step, static_argnums=(2,)) if n >= CHECKPOINT_WIRES else step

    def probs(params):
        if params.shape != (2 * n * D,):
            raise ValueError(f"{name} with {n} qubits and depth {D} takes {2 * n * D} params, got shape "
                             f"{params.shape}")
        cdtype = jnp.complex128 if params.dtype == jnp.float64 else jnp.complex64
        g = gates(params, cdtype)
        psi = g[0, 0, :, 0]                          # step 0 on |0...0>: a product state
        for j in range(1, n):
            psi = (psi[:, None] * g[0, j, :, 0][None, :]).reshape(-1)
        if ladder is not None:
            psi = _permute(psi, *ladder)
        for d in range(1, D):
            psi = run_step(psi, g[d], tuple((a, b, None if c is None else tuple(c)) for a, b, c in plan[d]))
        return (psi.real ** 2 + psi.imag ** 2).astype(params.dtype)

    return probs
