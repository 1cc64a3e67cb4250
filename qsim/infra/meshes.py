"""Running on several devices and hosts with JAX's own machinery (meshes, ``NamedSharding``,
``jax.distributed``).

A run uses a 1-D :class:`jax.sharding.Mesh` of devices (axis ``"batch"``). Batched data (vmc walkers,
batches of circuit parameters, chunks of bitstrings) is sharded along its leading axis over that
mesh; everything else (network parameters, optimiser state) is replicated. Inside ``jax.jit`` the
compiler then propagates the shardings: per-walker work stays on each walker's device and means
over walkers become cross-device reductions, so the same code runs on one CPU, one GPU or many.

The mesh a command runs with is carried by a context (:func:`using`), set once by ``qsim.infra.cli`` from
``--devices N``; library code asks :func:`current_mesh` (``None`` outside the context, where nothing
is sharded and everything runs on JAX's default device). ``jax.set_mesh`` is deliberately not used
for this: under it every new array is replicated on every device of the mesh, which would multiply
the work of code that does not shard.

Several hosts: :func:`initialize` calls :func:`jax.distributed.initialize` from
``--coordinator HOST:PORT --num-processes P --process-id I`` (or the environment variables
``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``). Every process then runs the
same program on its local devices; the mesh spans all processes' devices, and only process 0 writes
the run directory (qsim.infra.runs). Two processes on one machine::

    qsim vmc --system He --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 0 --out runs/he &
    qsim vmc --system He --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 1 --out runs/he

Batched circuits (VQE restarts, parameter scans, flows)::

    mesh = distributed.make_mesh()                  # all devices
    thetas = distributed.shard_batch(thetas, mesh)  # (B, num_params), B divisible by the device count
    energies = jax.jit(jax.vmap(lambda p: qsim.expval(circuit, p, H)))(thetas)
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import os
from typing import Any, Iterator, Sequence

import numpy as np
import jax
from jax.sharding import AxisType, Mesh
from jax.sharding import NamedSharding, PartitionSpec
from jax.experimental import multihost_utils

__all__ = ["add_arguments", "initialize", "make_mesh", "using", "current_mesh", "setup", "shard_batch",
           "replicate", "place", "fetch", "describe", "BATCH_AXIS"]

BATCH_AXIS = "batch"
_MESH: contextvars.ContextVar = contextvars.ContextVar("qsim_mesh", default=None)
_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


# ---------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The device switch and the multi-host flags (every sub-command has them)."""
    g = parser.add_argument_group("devices")
    g.add_argument("--devices", type=int, default=None,
                   help="number of devices to shard over (default: all visible; 1 = no sharding)")
    g.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="multi-host: address of process 0's coordinator (calls jax.distributed.initialize)")
    g.add_argument("--num-processes", type=int, default=None, help="multi-host: number of processes")
    g.add_argument("--process-id", type=int, default=None, help="multi-host: this process's index")


def _parse_coordinator(text: str) -> str:
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"coordinator must be HOST:PORT (e.g. 127.0.0.1:12355), got {text!r}")
    return f"{host}:{int(port)}"


def _distributed_settings(coordinator=None, num_processes=None, process_id=None,
                          environ=None) -> dict | None:
    """The arguments for jax.distributed.initialize, validated, or None for a single process."""
    environ = os.environ if environ is None else environ
    given = (coordinator, num_processes, process_id)
    if all(v is None for v in given):
        if not any(environ.get(k) for k in _ENV):
            return None
        coordinator = environ.get("JAX_COORDINATOR_ADDRESS")
        try:
            num_processes = int(environ["JAX_NUM_PROCESSES"]) if environ.get("JAX_NUM_PROCESSES") else None
            process_id = int(environ["JAX_PROCESS_ID"]) if environ.get("JAX_PROCESS_ID") else None
        except ValueError as e:
            raise ValueError(f"JAX_NUM_PROCESSES / JAX_PROCESS_ID must be integers ({e})") from None
        source = "the environment (" + ", ".join(_ENV) + ")"
    else:
        source = "--coordinator, --num-processes and --process-id"
    if coordinator is None or num_processes is None or process_id is None:
        raise ValueError(f"a multi-host run needs all three of {source}; got coordinator={coordinator!r}, "
                         f"num_processes={num_processes!r}, process_id={process_id!r}")
    for name, v in (("num_processes", num_processes), ("process_id", process_id)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {v!r}")
    if num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in 0..{num_processes - 1}, got {process_id}")
    return {"coordinator_address": _parse_coordinator(coordinator), "num_processes": int(num_processes),
            "process_id": int(process_id)}


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, environ=None) -> bool:
    """Call :func:`jax.distributed.initialize` when a multi-host run is asked for (arguments or the
    ``JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID`` environment); returns whether it
    did. Must run before any JAX computation. Bad values raise ValueError before anything starts."""
    settings = _distributed_settings(coordinator, num_processes, process_id, environ)
    if settings is None:
        return False

    if jax.distributed.is_initialized():
        return True
    jax.distributed.initialize(**settings)
    return True


# ---------------------------------------------------------------------------------------------------
# meshes
# ---------------------------------------------------------------------------------------------------
def make_mesh(n_devices: int | None = None, axis_name: str = BATCH_AXIS, devices: Sequence | None = None):
    """A 1-D mesh over ``n_devices`` devices (default: all, across every process).

    With several processes the devices are taken evenly from each process (so ``n_devices`` must be
    a multiple of the process count). The axis type is ``Auto``: jit propagates shardings itself.
    """

    pool = list(jax.devices()) if devices is None else list(devices)
    if n_devices is None:
        n_devices = len(pool)
    if isinstance(n_devices, bool) or not isinstance(n_devices, (int, np.integer)):
        raise TypeError(f"devices must be an int, got {n_devices!r}")
    if not 1 <= n_devices <= len(pool):
        raise ValueError(f"devices={n_devices}, but {len(pool)} device(s) are visible "
                         f"({pool[0].platform if pool else 'none'}); choose 1..{len(pool)}")
    n_proc = len({d.process_index for d in pool})
    if n_proc > 1:
        if n_devices % n_proc:
            raise ValueError(f"devices={n_devices} must be a multiple of the {n_proc} processes")
        per = n_devices // n_proc
        chosen = []
        for p in sorted({d.process_index for d in pool}):
            local = [d for d in pool if d.process_index == p]
            chosen += local[:per]
    else:
        chosen = pool[:n_devices]
    return Mesh(np.array(chosen), (axis_name,), axis_types=(AxisType.Auto,))


@contextlib.contextmanager
def using(mesh) -> Iterator[Any]:
    """Within this block :func:`current_mesh` returns ``mesh`` (``None`` turns sharding off)."""
    token = _MESH.set(mesh)
    try:
        yield mesh
    finally:
        _MESH.reset(token)


def current_mesh():
    """The mesh set by :func:`using` (by ``qsim`` from ``--devices``), or ``None``."""
    return _MESH.get()


def setup(args: argparse.Namespace):
    """From parsed command-line arguments: start the multi-host runtime if asked, then return the
    mesh of ``--devices`` devices (default all visible), or ``None`` for a single device."""
    initialize(getattr(args, "coordinator", None), getattr(args, "num_processes", None),
               getattr(args, "process_id", None))

    n = getattr(args, "devices", None)
    if n is None and jax.device_count() == 1:
        return None
    mesh = make_mesh(n)
    return None if mesh.size == 1 and jax.process_count() == 1 else mesh


def describe(mesh=None) -> dict:
    """What a run record says about its devices: the mesh's devices (or the default device)."""

    mesh = current_mesh() if mesh is None else mesh
    if mesh is None:
        used = [jax.devices()[0]]
        axes = {}
    else:
        used = list(mesh.devices.flat)
        axes = dict(zip(mesh.axis_names, mesh.devices.shape))
    return {"devices": [str(d) for d in used], "device_kind": used[0].device_kind,
            "platform": used[0].platform, "n_devices": len(used), "mesh_axes": axes,
            "visible_devices": jax.device_count(), "process_count": jax.process_count(),
            "process_index": jax.process_index()}


# ---------------------------------------------------------------------------------------------------
# placing data
# ---------------------------------------------------------------------------------------------------
def _global(x, sharding):
    """A global array from a host value every process holds in full (works across processes)."""

    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    host = np.asarray(fetch(x))
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def shard_batch(x, mesh=None):
    """Shard ``x`` along its leading (batch) axis over the mesh's first axis; ``x`` unchanged
    without a mesh. The batch size must be a multiple of the device count."""
    mesh = current_mesh() if mesh is None else mesh
    if mesh is None:
        return x

    n = mesh.devices.shape[0]
    shape = np.shape(x)
    if not shape or shape[0] % n:
        raise ValueError(f"a batch of {shape[0] if shape else 'no'} item(s) (shape {shape}) does not split "
                         f"evenly over {n} devices; choose a multiple of {n} or --devices")
    return _global(x, NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])))


def replicate(tree, mesh=None):
    """Copy every array leaf of ``tree`` onto every device of the mesh (unchanged without one)."""
    mesh = current_mesh() if mesh is None else mesh
    if mesh is None:
        return tree

    rep = NamedSharding(mesh, PartitionSpec())
    return jax.tree_util.tree_map(lambda a: _global(a, rep), tree)


def place(state, batch_fields: Sequence[str] = ("walkers",), mesh=None):
    """A NamedTuple state on the mesh: the fields ``batch_fields`` sharded on their leading axis,
    every other leaf replicated. Without a mesh the state is returned as it is."""
    mesh = current_mesh() if mesh is None else mesh
    if mesh is None:
        return state
    missing = [f for f in batch_fields if f not in state._fields]
    if missing:
        raise ValueError(f"{type(state).__name__} has no field(s) {missing}; fields: {state._fields}")
    out = {f: (shard_batch(v, mesh) if f in batch_fields else replicate(v, mesh))
           for f, v in zip(state._fields, state)}
    return type(state)(**out)


def fetch(x) -> np.ndarray:
    """A NumPy copy of ``x`` on this host, gathering the shards of other processes if needed."""

    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
