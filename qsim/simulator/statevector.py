"""The JAX statevector simulator: ``simulate / probs / expval / sample``.

All four are pure JAX functions of the parameter vector, so ``jax.jit``, ``jax.grad`` and ``jax.vmap``
compose with them. A circuit is compiled once per structure (:func:`qsim.simulator.compile`): its ops
become gate records, are fused into blocks of a few wires (consecutive gates that fit are multiplied
into one small matrix), and the blocks run as one jitted pass each over the state, held as real
(real, imaginary) planes, or one real plane when every gate is real. The stages, each using only
the ones before it: :mod:`~qsim.simulator.records` -> :mod:`~qsim.simulator.fusion` ->
:mod:`~qsim.simulator.program` -> the engines :mod:`~qsim.simulator.scan` / :mod:`~qsim.simulator.gemm`
(on :mod:`~qsim.simulator.kernels` and :mod:`~qsim.simulator.native`) -> :mod:`~qsim.simulator.compiler`.

Precision: float32 parameters give a complex64 state, float64 parameters complex128; ``dtype=``
overrides. Wire 0 is the most significant bit of every basis index.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from qsim.circuits.circuit import Circuit
from qsim.circuits.operators import PauliSum
from qsim.infra import validation
from qsim.infra.validation import memory_limit_bytes
from qsim.simulator.compiler import MAX_FUSE, Program, compile
from qsim.simulator.inputs import check_params, check_state_memory, complex_dtype, initial_state
from qsim.simulator.measure import state_expval, state_probs

__all__ = ["simulate", "probs", "expval", "sample", "state_probs", "state_expval", "compile", "Program",
           "check_params", "memory_limit_bytes", "MAX_FUSE"]


def _batched(f, params_or_state, extra_dims: int):
    for _ in range(extra_dims):
        f = jax.vmap(f)
    return f(params_or_state)


def simulate(circuit: Circuit, params=None, *, init_state=None, dtype=None, max_fuse: int | None = None):
    """The final state ``(2**n,)`` (complex64 for float32 params, complex128 for float64).

    ``params`` is ``(num_params,)`` or batched ``(..., num_params)`` (then the result is batched too).
    ``init_state`` (default ``|0...0>``) is a normalised ``(2**n,)`` vector. ``max_fuse``: wires per
    fused block (default: the engine's, see :func:`qsim.simulator.compiler.default_max_fuse`).
    """
    params = check_params(circuit, params)
    cdtype = complex_dtype(params, dtype)
    check_state_memory(circuit.n_wires, cdtype)
    fn = compile(circuit, dtype=cdtype, max_fuse=max_fuse).runner
    state0 = initial_state(circuit.n_wires, init_state, cdtype)
    if params is not None and params.ndim > 1:
        return _batched(lambda p: fn(p, state0), params, params.ndim - 1)
    return fn(params, state0)


def probs(circuit: Circuit, params=None, wires: Sequence[int] | None = None, *, init_state=None,
          dtype=None):
    """Basis-state probabilities ``(2**k,)`` on ``wires`` (default all, wire 0 most significant)."""
    if wires is not None:
        wires = validation.wires(wires, circuit.n_wires, "probs")
    state = simulate(circuit, params, init_state=init_state, dtype=dtype)
    return state_probs(state, wires, circuit.n_wires)


def expval(circuit: Circuit, params, observable: PauliSum, *, init_state=None, dtype=None):
    """``<psi(params)|H|psi(params)>`` for a :class:`~qsim.circuits.operators.PauliSum` ``H``."""
    if not isinstance(observable, PauliSum):
        raise TypeError(f"observable must be a qsim PauliSum, got {type(observable).__name__}")
    if observable.wires and max(observable.wires) >= circuit.n_wires:
        raise ValueError(f"observable acts on wire {max(observable.wires)}, outside the circuit's "
                         f"{circuit.n_wires} wires")
    state = simulate(circuit, params, init_state=init_state, dtype=dtype)
    if state.ndim > 1:
        return _batched(lambda s: state_expval(s, observable, circuit.n_wires), state, state.ndim - 1)
    return state_expval(state, observable, circuit.n_wires)


def sample(circuit: Circuit, params=None, shots: int = 1000, key=None, wires: Sequence[int] | None = None,
           *, init_state=None, dtype=None):
    """``shots`` measured bitstrings ``(shots, k)`` of int8 bits on ``wires`` (default all)."""
    shots = validation.positive_int(shots, "shots")
    if key is None:
        raise ValueError("sample needs a PRNG key (key=jax.random.key(seed))")
    p = probs(circuit, params, wires, init_state=init_state, dtype=dtype)
    k = circuit.n_wires if wires is None else len(tuple(wires))
    idx = jax.random.categorical(key, jnp.log(p), shape=(shots,))
    bits = (idx[:, None] >> jnp.arange(k - 1, -1, -1)) & 1
    return bits.astype(jnp.int8)
