"""Inputs of the simulator, checked before any work: parameters, dtypes, memory, initial state, fusion width.

Every entry point (``simulate``, ``compile``, the sharded state, the ``statevector`` backend) goes
through these, so a bad input fails the same way everywhere, before anything is allocated.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qsim.circuits.circuit import Circuit
from qsim.infra import validation

__all__ = ["check_params", "complex_dtype", "real_dtype", "check_state_memory", "initial_state",
           "check_max_fuse", "MAX_FUSE_LIMIT", "STATE_COPIES"]

MAX_FUSE_LIMIT = 6
STATE_COPIES = 3         # the simulator holds a few copies of the state while it runs


def check_params(circuit: Circuit, params, *, batched: bool = True):
    """``params`` for ``circuit`` as an array: ``(num_params,)`` or (``batched``) ``(..., num_params)``,
    real; ``None`` for a circuit without parameters. Lists become float64 arrays (float32 without
    ``jax_enable_x64``). The checks are :func:`qsim.infra.validation.circuit_params`."""
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qsim.Circuit, got {type(circuit).__name__}")
    if params is not None and not hasattr(params, "shape"):
        params = np.asarray(params, dtype=np.float64 if jax.config.jax_enable_x64 else np.float32)
    return validation.circuit_params(circuit, params, batched=batched)


def complex_dtype(params, dtype=None):
    """The state's dtype: ``dtype`` (complex64 or complex128), else complex128 for float64 ``params``
    and complex64 for float32, else the default of ``jax_enable_x64``."""
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


def real_dtype(cdtype):
    """float64 for complex128, float32 for complex64."""
    return jnp.float64 if jnp.dtype(cdtype) == jnp.complex128 else jnp.float32


def check_state_memory(n: int, cdtype) -> None:
    """``ValueError`` before any allocation when an ``n``-qubit state would not fit
    (:func:`qsim.infra.validation.check_memory`, :data:`STATE_COPIES` copies)."""
    dt = jnp.dtype(cdtype)
    validation.check_memory((2 ** n) * dt.itemsize, f"a {n}-qubit {dt.name} state", copies=STATE_COPIES,
                            hint="use fewer qubits, complex64, or a sharded/hardware backend")


def initial_state(n: int, init_state, cdtype):
    """``init_state`` checked and cast, or ``None`` (the engines build ``|0...0>`` themselves, as one
    real plane when they can)."""
    if init_state is None:
        return None
    s = jnp.asarray(init_state)
    if s.shape != (2 ** n,):
        raise ValueError(f"init_state has shape {tuple(s.shape)}; a {n}-wire circuit needs ({2**n},)")
    return s.astype(cdtype)


def check_max_fuse(max_fuse) -> int:
    """``max_fuse`` as an int from 1 to :data:`MAX_FUSE_LIMIT`."""
    if (isinstance(max_fuse, bool) or not isinstance(max_fuse, (int, np.integer))
            or not 1 <= max_fuse <= MAX_FUSE_LIMIT):
        raise ValueError(f"max_fuse must be an int from 1 to {MAX_FUSE_LIMIT}, got {max_fuse!r}")
    return int(max_fuse)
