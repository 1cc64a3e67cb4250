"""A statevector sharded over 2^k devices: k more qubits than fit on one device.

The ``2**n`` amplitudes are split on the ``k`` leading (most significant) qubits: device
``d = (b_0 ... b_{k-1})`` in binary holds the ``2**(n-k)`` amplitudes whose first ``k`` bits are
``b_0 ... b_{k-1}``, so each device stores ``1/2^k`` of the state and a 2^k-device run reaches
``k`` qubits more than one device of the same memory.

- Gates on the ``n - k`` *local* qubits act inside each device's block: runs of such gates become
  one sub-circuit on ``n - k`` wires, applied by the ordinary single-device simulator
  (:func:`qsim.simulator.statevector.simulate`, with its gate fusion) under :func:`jax.shard_map`.
- A gate whose only sharded qubits are controls needs no communication: every device knows its own
  bits, and the gate (with its remaining controls) acts on the devices where those bits are 1
  (``lax.cond`` inside the shard). CNOT, CZ, CRX..., Toffoli, CSWAP, MCX and ``Circuit.ctrl`` gates
  count as controlled; CZ and CPhase may use either wire as the control.
- Any other gate touching a *sharded* (global) qubit first swaps that qubit with a local one. A swap of
  global qubit ``g`` with local qubit ``l`` is one ``all_to_all`` over mesh axis ``q<g>`` (the mesh is
  reshaped to ``(2,) * k``, one axis per global qubit): each device keeps the half of its block
  with ``l = b_g`` and exchanges the other half with its partner, moving ``1/2`` of the local state,
  as the multi-GPU simulators (qHiPSTER, cuStateVec's distributed index bit swap) do. The swap is
  kept, not undone: a permutation (logical qubit -> physical position) is tracked through the
  circuit, the local qubit evicted is the one used furthest in the future, and at the end the
  permutation is undone so the result has the plain layout.
- Expectations of Pauli sums never gather the state: ``<psi|P|psi> = sum_i conj(psi_{i^x}) c(i) psi_i``
  with X flips on global qubits done by a ``ppermute`` to the partner device and the rest local,
  then one ``psum``.

Usage::

    mesh = jax.make_mesh((4,), ("d",))            # any mesh of 2^k devices
    psi = qsim.simulator.sharded.simulate(circuit, params, mesh=mesh)   # (2**n,), sharded on wires 0, 1
    e = qsim.simulator.sharded.expval(circuit, params, H, mesh=mesh)

Everything is a pure JAX function of ``params`` (jit, grad and vmap compose). With one device it
is :func:`qsim.simulator.statevector.simulate`.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import AxisType, Mesh
from jax.sharding import PartitionSpec as P

from qsim.circuits.circuit import Circuit, Op
from qsim.circuits.operators import PauliSum, pauli_masks
from qsim.infra.cache import structural_cache
from qsim.simulator.inputs import check_params, check_state_memory, complex_dtype
from qsim.simulator.measure import state_expval
from qsim.simulator.statevector import simulate as simulate_local

__all__ = ["qubit_mesh", "plan", "simulate", "probs", "expval", "Plan"]


# ---------------------------------------------------------------------------------------------------
# meshes
# ---------------------------------------------------------------------------------------------------
def qubit_mesh(mesh=None, n_devices: int | None = None):
    """A ``(2,) * k`` mesh with axes ``q0 .. q{k-1}`` (axis ``q<g>`` indexes global qubit ``g``) from
    any mesh of ``2**k`` devices, or from the first ``n_devices`` devices (default all)."""

    if mesh is not None:
        devs = list(mesh.devices.flat)
    else:
        pool = jax.devices()
        n_devices = len(pool) if n_devices is None else n_devices
        if not 1 <= n_devices <= len(pool):
            raise ValueError(f"n_devices={n_devices}, but {len(pool)} device(s) are visible")
        devs = pool[:n_devices]
    k = int(round(math.log2(len(devs)))) if devs else -1
    if len(devs) < 1 or 2 ** k != len(devs):
        raise ValueError(f"a sharded statevector needs a power-of-two number of devices, got {len(devs)}")
    if k == 0:
        return Mesh(np.array(devs), ("q0",), axis_types=(AxisType.Auto,))
    return Mesh(np.array(devs).reshape((2,) * k), tuple(f"q{g}" for g in range(k)),
                axis_types=(AxisType.Auto,) * k)


def _n_global(qmesh) -> int:
    return 0 if qmesh.devices.size == 1 else qmesh.devices.ndim


# ---------------------------------------------------------------------------------------------------
# the plan: local segments and swaps (static Python, one per circuit and k)
# ---------------------------------------------------------------------------------------------------
# table gates that are controlled versions of another table gate: name -> (target gate, n controls)
_CONTROLLED = {"CNOT": ("X", 1), "CY": ("Y", 1), "CZ": ("Z", 1), "CRX": ("RX", 1), "CRY": ("RY", 1),
               "CRZ": ("RZ", 1), "CPhase": ("PhaseShift", 1), "Toffoli": ("X", 2), "CSWAP": ("SWAP", 1)}
_SYMMETRIC = ("Z", "PhaseShift")  # controlled phases: symmetric in control and target


def _controls(op: Op) -> tuple[str, list[int], list[int]]:
    """(target gate, control wires, target wires) of an op; no controls for an uncontrolled gate."""
    if op.name == "MCX":
        return "X", list(op.wires[:-1]), [op.wires[-1]]
    if op.n_controls:
        return op.name, list(op.controls), list(op.targets)
    if op.name in _CONTROLLED:
        base, nc = _CONTROLLED[op.name]
        return base, list(op.wires[:nc]), list(op.wires[nc:])
    return op.name, [], list(op.wires)


class Plan(NamedTuple):
    """``steps``: ("local", ops on local wires 0..n-k-1), ("swap", global g, local l) or
    ("controlled", global positions, op on local wires): the op applies where those bits are all 1;
    ``local_order``: logical qubit held by each local position at the end (before the final
    transpose); ``n_swaps``: number of all-to-all exchanges."""

    n_wires: int
    n_global: int
    steps: tuple
    local_order: tuple
    n_swaps: int


def plan(circuit: Circuit, n_global: int) -> Plan:
    """Split ``circuit`` into local segments and qubit swaps for a state sharded on ``n_global``
    leading qubits (see the module docstring)."""
    n, k = circuit.n_wires, n_global
    m = n - k
    width = max((len(op.wires) for op in circuit.ops), default=1)
    if m < width:
        raise ValueError(f"{n} qubits over 2^{k} devices leave {m} local qubit(s); the circuit has a "
                         f"{width}-qubit gate: use fewer devices or more qubits")
    phys = list(range(n))            # logical qubit -> physical position (< k: global)
    at = list(range(n))              # physical position -> logical qubit
    uses: list[list[int]] = [[] for _ in range(n)]
    for i, op in enumerate(circuit.ops):
        for w in op.wires:
            uses[w].append(i)
    steps: list = []
    segment: list[Op] = []
    n_swaps = 0

    def next_use(q: int, i: int) -> int:
        for j in uses[q]:
            if j > i:
                return j
        return len(circuit.ops) + n  # never again: the best victim

    def swap(g: int, p: int) -> None:
        nonlocal n_swaps
        if segment:
            steps.append(("local", tuple(segment)))
            segment.clear()
        steps.append(("swap", g, p - k))
        qa, qb = at[g], at[p]
        at[g], at[p] = qb, qa
        phys[qa], phys[qb] = p, g
        n_swaps += 1

    for i, op in enumerate(circuit.ops):
        base, ctrls, tgts = _controls(op)
        if base in _SYMMETRIC and phys[tgts[0]] < k <= phys[ctrls[0]]:
            ctrls, tgts = tgts, ctrls      # CZ / CPhase: either wire may act as the control
        on_global = [w for w in ctrls if phys[w] < k]
        for w in op.wires:
            if phys[w] < k and w not in on_global:
                busy = {phys[x] for x in op.wires}
                victim = max((p for p in range(k, n) if p not in busy), key=lambda p: next_use(at[p], i))
                swap(phys[w], victim)
        if not on_global:
            segment.append(Op(op.name, tuple(phys[w] - k for w in op.wires), op.params, op.n_controls,
                              op.adjoint, op.matrix))
            continue
        # controls on sharded qubits: each device knows their values (its index); the gate acts, with
        # the remaining controls, only on the devices where they are all 1 -- no communication
        if segment:
            steps.append(("local", tuple(segment)))
            segment.clear()
        local_ctrls = [w for w in ctrls if w not in on_global]
        wires = tuple(phys[w] - k for w in local_ctrls + list(tgts))
        if base == "X" and local_ctrls:
            sub = Op("MCX", wires, (), len(local_ctrls))
        else:
            sub = Op(base, wires, op.params, len(local_ctrls), op.adjoint, op.matrix)
        steps.append(("controlled", tuple(phys[w] for w in on_global), sub))
    # undo the permutation on the global positions (the local order is fixed by one transpose)
    for g in range(k):
        if at[g] == g:
            continue
        if phys[g] < k:  # logical g sits on another global position: bring it through a local one
            swap(phys[g], k + m - 1 if phys[g] != k + m - 1 else k)
        swap(g, phys[g])
    if segment:
        steps.append(("local", tuple(segment)))
    return Plan(n, k, tuple(steps), tuple(at[k:]), n_swaps)


# ---------------------------------------------------------------------------------------------------
# execution under shard_map
# ---------------------------------------------------------------------------------------------------
def _local_circuit(m: int, num_params: int, ops: Sequence[Op]) -> Circuit:
    c = Circuit(m)
    c.ops = list(ops)
    c.num_params = num_params
    return c


def _swap_local(x, g: int, j: int, m: int):
    """Exchange global qubit ``g`` with local qubit ``j`` (0 = most significant local bit)."""
    y = x.reshape(2 ** j, 2, 2 ** (m - j - 1))
    y = jax.lax.all_to_all(y, f"q{g}", split_axis=1, concat_axis=1, tiled=True)
    return y.reshape(-1)


def _spec(k: int):

    return P(tuple(f"q{g}" for g in range(k)))


@structural_cache(maxsize=64)
def _runner(circuit: Circuit, qmesh, cdtype_name: str):
    """A jitted params -> sharded state for one (circuit structure, mesh, dtype)."""
    k = _n_global(qmesh)
    n = circuit.n_wires
    m = n - k
    pl = plan(circuit, k)
    cdtype = jnp.dtype(cdtype_name)
    axes = tuple(f"q{g}" for g in range(k))
    # the final transpose: new local axis i takes the old axis holding logical qubit k + i
    order = tuple(pl.local_order.index(k + i) for i in range(m))

    def body(params):
        def apply(sub, y):
            return simulate_local(sub, params if circuit.num_params else None, init_state=y, dtype=cdtype)

        origin = sum(jax.lax.axis_index(a) for a in axes) == 0
        x = jnp.zeros(2 ** m, cdtype).at[0].set(jnp.where(origin, 1, 0).astype(cdtype))
        for step in pl.steps:
            if step[0] == "local":
                x = apply(_local_circuit(m, circuit.num_params, step[1]), x)
            elif step[0] == "controlled":
                on = functools.reduce(jnp.logical_and, [jax.lax.axis_index(f"q{g}") == 1 for g in step[1]])
                sub = _local_circuit(m, circuit.num_params, (step[2],))
                x = jax.lax.cond(on, lambda y: apply(sub, y), lambda y: y, x)
            else:
                x = _swap_local(x, step[1], step[2], m)
        if order != tuple(range(m)):
            x = x.reshape((2,) * m).transpose(order).reshape(-1)
        return x

    fn = jax.shard_map(body, mesh=qmesh, in_specs=(P(),), out_specs=_spec(k), check_vma=False)
    return jax.jit(fn), pl


def _setup(circuit, params, mesh, n_devices, dtype):
    params = check_params(circuit, params, batched=False)
    qmesh = qubit_mesh(mesh, n_devices)
    k = _n_global(qmesh)
    if k and circuit.n_wires - k < 1:
        raise ValueError(f"{circuit.n_wires} qubit(s) cannot be sharded over {2 ** k} devices")
    cdtype = complex_dtype(params, dtype)
    check_state_memory(circuit.n_wires - k, cdtype)  # what one device holds
    return qmesh, k, params, cdtype


def simulate(circuit: Circuit, params=None, *, mesh=None, n_devices: int | None = None, dtype=None):
    """The final state ``(2**n,)`` sharded over ``mesh`` (any mesh of ``2**k`` devices; default the
    first ``n_devices``, all visible) on wires ``0 .. k-1``. Equal to
    :func:`qsim.simulator.statevector.simulate` up to rounding."""
    qmesh, k, params, cdtype = _setup(circuit, params, mesh, n_devices, dtype)
    if k == 0:
        return simulate_local(circuit, params, dtype=cdtype)
    fn, _ = _runner(circuit, qmesh, jnp.dtype(cdtype).name)
    return fn(jnp.zeros(0) if params is None else params)


def probs(circuit: Circuit, params=None, *, mesh=None, n_devices: int | None = None, dtype=None):
    """Basis-state probabilities ``(2**n,)``, sharded like :func:`simulate`."""
    psi = simulate(circuit, params, mesh=mesh, n_devices=n_devices, dtype=dtype)
    return jnp.real(psi) ** 2 + jnp.imag(psi) ** 2


@functools.lru_cache(maxsize=64)
def _expval_fn(terms: tuple, n: int, qmesh):
    """A jitted sharded state -> <P> for Pauli terms ((coeff, x, z, ny), ...) grouped by x-mask."""

    k = _n_global(qmesh)
    m = n - k
    groups: dict[int, list] = {}
    for c, x, z, ny in terms:
        groups.setdefault(x, []).append((c, z, ny))

    def body(x_local):
        idx = jnp.arange(2 ** m, dtype=jnp.uint32 if m < 32 else jnp.uint64)
        gbits = [jax.lax.axis_index(f"q{g}") for g in range(k)]
        total = jnp.zeros((), jnp.result_type(x_local.dtype, jnp.complex64))
        for xmask, items in groups.items():
            flipped = x_local
            for g in range(k):              # global flips: the partner device's block
                if xmask >> (n - 1 - g) & 1:
                    flipped = jax.lax.ppermute(flipped, f"q{g}", perm=[(0, 1), (1, 0)])
            local_x = xmask & (2 ** m - 1)
            if local_x:
                flip_axes = tuple(j for j in range(m) if local_x >> (m - 1 - j) & 1)
                flipped = jnp.flip(flipped.reshape((2,) * m), axis=flip_axes).reshape(-1)
            overlap = jnp.conj(flipped) * x_local
            for c, zmask, ny in items:
                gsign = 1
                for g in range(k):
                    if zmask >> (n - 1 - g) & 1:
                        gsign = gsign * (1 - 2 * gbits[g])
                local_z = zmask & (2 ** m - 1)
                if local_z:
                    parity = jax.lax.population_count(idx & local_z) & 1
                    val = jnp.sum(jnp.where(parity == 1, -overlap, overlap))
                else:
                    val = jnp.sum(overlap)
                total = total + c * (1j ** ny) * gsign * val
        return jax.lax.psum(total, tuple(f"q{g}" for g in range(k)))

    fn = jax.shard_map(body, mesh=qmesh, in_specs=(_spec(k),), out_specs=P(), check_vma=False)
    return jax.jit(lambda s: jnp.real(fn(s)))


def expval(circuit: Circuit, params, observable: PauliSum, *, mesh=None, n_devices: int | None = None,
           dtype=None):
    """``<psi(params)| observable |psi(params)>`` (real) with the state sharded as in
    :func:`simulate`; the state is never gathered onto one device."""
    if not isinstance(observable, PauliSum):
        raise TypeError(f"observable must be a qsim.PauliSum, got {type(observable).__name__}")
    n = circuit.n_wires
    for s in observable.terms:
        for w, _ in s:
            if not 0 <= w < n:
                raise ValueError(f"observable acts on wire {w}, outside the {n}-wire circuit")
    psi = simulate(circuit, params, mesh=mesh, n_devices=n_devices, dtype=dtype)
    qmesh = qubit_mesh(mesh, n_devices)
    if _n_global(qmesh) == 0:
        return state_expval(psi, observable)
    terms = tuple((complex(c), *pauli_masks(s, n)) for c, s in observable)
    return _expval_fn(terms, n, qmesh)(psi)
