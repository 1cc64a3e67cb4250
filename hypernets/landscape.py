"""Cost landscapes: the cost and accuracy of all 2^N networks of a task.

:func:`compute_landscape` scores every bitstring (index ``i`` = basis state ``i`` of ``qsim.probs``,
wire 0 = most significant bit) with the task's forward pass ``vmap``-ed over a chunk of networks
under ``jit``; chunks bound the memory of the (chunk, n_data) intermediates. Tasks that declare
``permutable_units`` are scored once per permutation orbit (exact: the cost is invariant), then
scattered back. Chunks are split across devices: the chunk's bitstrings are sharded over a 1-D
``jax.sharding.Mesh`` of the given ``devices`` (default: the mesh of ``qsim --devices N``, else one
device), each device scoring its share.
Results are cached on disk as an atomic ``.npz`` keyed by the task's fingerprint.

A :class:`Landscape` holds ``cost (2^N,)`` float64, ``train_accuracy`` and ``test_accuracy``
``(2^N,)`` float32 and gives the optimum, the tied-optimal set (within ``rtol = 1e-9`` relative),
top-k sets and the Born quantities ``expected_cost(p)``, ``mass(p, indices)``.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from qsim.infra import settings
from qsim.infra.driver import Progress
from qsim.infra.meshes import current_mesh, make_mesh
from qsim.infra.runs import atomic_write_bytes

from .layout import bits_from_index
from .tasks import Task, loss_value

__all__ = ["Landscape", "compute_landscape", "evaluate_networks", "resolve_devices", "default_cache_dir", "TIE_RTOL",
           "MAX_LANDSCAPE_BITS"]

TIE_RTOL = 1e-9
MAX_LANDSCAPE_BITS = 30


class Landscape(NamedTuple):
    """Per-network cost and accuracies for all ``2^N`` bitstrings (index order of ``qsim.probs``)."""

    cost: np.ndarray            # (2^N,) float64
    train_accuracy: np.ndarray  # (2^N,) float32, fraction in [0, 1]
    test_accuracy: np.ndarray   # (2^N,) float32

    @property
    def num_bits(self) -> int:
        return int(self.cost.shape[0]).bit_length() - 1

    @property
    def optimum(self) -> float:
        return float(np.min(self.cost))

    def optimal_set(self, rtol: float = TIE_RTOL) -> np.ndarray:
        """Indices of the networks tied at the minimum cost: ``cost <= min + rtol * |min|``."""
        c0 = self.optimum
        return np.flatnonzero(self.cost <= c0 + rtol * max(abs(c0), np.finfo(float).tiny))

    def top_k(self, k: int) -> np.ndarray:
        """Indices of the ``k`` lowest-cost networks (ascending cost; ties broken by index)."""
        k = int(min(max(k, 1), self.cost.size))
        idx = np.argpartition(self.cost, k - 1)[:k]
        return idx[np.lexsort((idx, self.cost[idx]))]

    def expected_cost(self, p) -> float:
        """Born expectation ``sum_b p(b) C(b)`` for probabilities ``p (2^N,)``."""
        return float(np.dot(np.asarray(p, dtype=np.float64), self.cost))

    @staticmethod
    def mass(p, indices) -> float:
        return float(np.sum(np.asarray(p, dtype=np.float64)[np.asarray(indices)]))


def default_cache_dir() -> Path:
    """``hypernets/`` in the qsim cache directory (``$QSIM_CACHE_DIR``, else ``~/.cache/qsim``;
    :mod:`qsim.infra.settings`)."""
    return settings.get().cache_dir / "hypernets"


def _canonical_indices(task: Task, n: int) -> np.ndarray:
    """For each index, the index of its orbit's representative under ``permutable_units``."""
    groups = np.asarray(task.permutable_units)                      # (units, k)
    out = np.empty(2 ** n, dtype=np.int64)
    step = 1 << 18
    for lo in range(0, 2 ** n, step):
        idx = np.arange(lo, min(lo + step, 2 ** n), dtype=np.int64)
        bits = bits_from_index(idx, n)                               # (B, n)
        unit_bits = bits[:, groups]                                  # (B, units, k)
        k = groups.shape[1]
        codes = (unit_bits.astype(np.int64) << np.arange(k - 1, -1, -1)).sum(-1)  # (B, units)
        order = np.argsort(codes, axis=1, kind="stable")
        sorted_bits = np.take_along_axis(unit_bits, order[:, :, None], axis=1)
        bits[:, groups.reshape(-1)] = sorted_bits.reshape(len(idx), -1)
        out[lo:lo + len(idx)] = (bits.astype(np.int64) << np.arange(n - 1, -1, -1)).sum(-1)
    return out


def _make_chunk_fn(task: Task, dtype):
    n = task.num_bits
    d = task.data
    xtr, ytr = jnp.asarray(d.x_train, dtype), jnp.asarray(d.y_train, dtype)
    xte, yte = jnp.asarray(d.x_test, dtype), jnp.asarray(d.y_test, dtype)
    same = d.x_test is d.x_train

    def one(params):
        z = task.forward(params, xtr)
        cost = loss_value(task.loss, z, ytr)
        acc = jnp.mean(((z > 0) == (ytr > 0.5)).astype(jnp.float32))
        if same:
            acc_te = acc
        else:
            zt = task.forward(params, xte)
            acc_te = jnp.mean(((zt > 0) == (yte > 0.5)).astype(jnp.float32))
        return cost, acc, acc_te

    @jax.jit
    def chunk(idx):
        bits = bits_from_index(idx, n, jnp)
        params = task.layout.decode(bits, dtype)
        return jax.vmap(one)(params)

    return chunk


def resolve_devices(devices=None) -> list:
    """The devices a landscape is computed on: ``None`` = the devices of the mesh set by ``qsim``'s
    ``--devices`` (:func:`qsim.infra.meshes.current_mesh`), or JAX's default device when none is set;
    an int = the first ``n`` visible devices; or a sequence of ``jax.Device`` objects."""

    avail = jax.devices()
    if devices is None:

        mesh = current_mesh()
        return list(mesh.devices.flat) if mesh is not None else [avail[0]]
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= int(devices) <= len(avail):
            raise ValueError(f"devices must be between 1 and the {len(avail)} visible, got {devices}")
        return list(avail[: int(devices)])
    devs = list(devices)
    if not devs or not all(isinstance(d, jax.Device) for d in devs):
        raise TypeError(f"devices must be None, an int or a non-empty sequence of jax.Device, got {devices!r}")
    return devs


def _sharding(devs):
    """Split the leading (network) axis over a 1-D mesh of ``devs``."""
    if len(devs) == 1:
        return jax.sharding.SingleDeviceSharding(devs[0])
    return NamedSharding(make_mesh(devices=devs, axis_name="networks"), PartitionSpec("networks"))


def evaluate_networks(task: Task, indices, dtype: str = "float64"):
    """Cost, train accuracy and test accuracy ``(B,)`` each of the networks with basis indices
    ``indices (B,)``, through the same jitted path as :func:`compute_landscape`."""

    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= 2 ** task.num_bits):
        raise ValueError(f"network indices must be in [0, 2^{task.num_bits}), got {idx.min()}..{idx.max()}")
    with _x64(dtype):
        fn = _make_chunk_fn(task, jnp.dtype(dtype))
        c, a, at = jax.device_get(fn(jnp.asarray(idx if dtype == "float64" else idx.astype(np.int32))))
    return np.asarray(c, np.float64), np.asarray(a), np.asarray(at)


def _cache_path(task: Task, cache_dir, dtype_name: str) -> Path:
    return Path(cache_dir) / f"{task.name}-{task.num_bits}b-{dtype_name}-{task.fingerprint()}.npz"


def _x64(dtype: str):
    return jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()


def _check_size(task: Task, max_bytes: int, dtype: str) -> None:
    n = task.num_bits
    if n > MAX_LANDSCAPE_BITS:
        raise ValueError(f"task {task.name!r} has {n} bits: 2^{n} networks is beyond exhaustive "
                         f"enumeration (at most {MAX_LANDSCAPE_BITS} bits)")
    need = 2 ** n * 16
    if need > max_bytes:
        raise ValueError(f"the landscape of {task.name!r} (2^{n} networks) needs {need / 2**30:.2f} GiB "
                         f"for its results, more than max_bytes={max_bytes / 2**30:.2f} GiB")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")


def _load_cached(path: Path, total: int) -> Landscape | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            land = Landscape(z["cost"], z["train_accuracy"], z["test_accuracy"])
        return land if land.cost.shape == (total,) else None
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache file is recomputed


def _chunk_size(task: Task, count: int, chunk_size: int | None, chunk_bytes: int, n_devices: int) -> int:
    """Networks per jitted chunk: a power of two fitting ``chunk_bytes`` (unless given), at most the
    next power of two above ``count``, rounded up to equal shares per device."""
    d = task.data
    n_data = len(d.x_train) + (0 if d.x_test is d.x_train else len(d.x_test))
    if chunk_size is None:
        chunk_size = max(1, chunk_bytes // (64 * max(n_data, 1)))
        chunk_size = 1 << (int(chunk_size).bit_length() - 1)    # a power of two
    chunk_size = int(min(chunk_size, 1 << (int(count - 1).bit_length())))
    return -(-chunk_size // n_devices) * n_devices


def _score(task: Task, todo, count: int, chunk_size: int, devs, dtype: str, progress: bool):
    """Cost, train and test accuracy of the ``count`` networks ``todo`` (None: all, in index order)."""
    total = 2 ** task.num_bits
    sharding = _sharding(devs)
    cost = np.empty(count, np.float64)
    acc = np.empty(count, np.float32)
    acc_te = np.empty(count, np.float32)
    bar = Progress(count, desc=f"landscape {task.name}", enabled=progress)
    with _x64(dtype):
        fn = _make_chunk_fn(task, jnp.dtype(dtype))
        idx_dtype = np.int64 if dtype == "float64" else np.int32
        for lo in range(0, count, chunk_size):
            hi = min(lo + chunk_size, count)
            idx = np.arange(lo, lo + chunk_size, dtype=idx_dtype) if todo is None else \
                np.resize(todo[lo:hi], chunk_size).astype(idx_dtype)
            if todo is None and hi < lo + chunk_size:
                idx = np.minimum(idx, total - 1)
            c, a, at = jax.device_get(fn(jax.device_put(idx, sharding)))
            cost[lo:hi], acc[lo:hi], acc_te[lo:hi] = c[: hi - lo], a[: hi - lo], at[: hi - lo]
            bar.update(hi - lo)
    bar.close()
    if not np.all(np.isfinite(cost)):
        bad = np.flatnonzero(~np.isfinite(cost))[:5]
        raise ValueError(f"task {task.name!r}: non-finite cost for networks {bad.tolist()} (check its forward/loss)")
    return cost, acc, acc_te


def compute_landscape(task: Task, *, chunk_size: int | None = None, chunk_bytes: int = 256 * 2 ** 20,
                      max_bytes: int = 4 * 2 ** 30, dtype: str = "float64", cache: bool = True,
                      cache_dir=None, progress: bool = False, devices=None) -> Landscape:
    """Score all ``2^N`` networks of ``task`` (see module docstring).

    chunk_size: networks per jitted chunk (default: as many as fit ``chunk_bytes`` of intermediates,
    estimated as ``8 * n_data * 8`` bytes per network). max_bytes: refuse (ValueError, before any
    allocation) landscapes whose result arrays (16 bytes per network) would exceed it.
    dtype: "float64" (exact ties; default) or "float32" (faster). Caches under ``cache_dir``
    (default :func:`default_cache_dir`) unless ``cache=False``. devices: where chunks are scored
    (:func:`resolve_devices`; each chunk's networks are split evenly over them)."""
    _check_size(task, max_bytes, dtype)
    n, total = task.num_bits, 2 ** task.num_bits
    devs = resolve_devices(devices)
    path = _cache_path(task, cache_dir or default_cache_dir(), dtype) if cache else None
    if path is not None and (land := _load_cached(path, total)) is not None:
        return land
    if task.permutable_units is not None:
        todo, inverse = np.unique(_canonical_indices(task, n), return_inverse=True)
    else:
        todo, inverse = None, None
    count = total if todo is None else len(todo)
    size = _chunk_size(task, count, chunk_size, chunk_bytes, len(devs))
    t0 = time.perf_counter()
    cost, acc, acc_te = _score(task, todo, count, size, devs, dtype, progress)
    if inverse is not None:
        cost, acc, acc_te = cost[inverse], acc[inverse], acc_te[inverse]
    if path is not None:
        buf = io.BytesIO()
        np.savez(buf, cost=cost, train_accuracy=acc, test_accuracy=acc_te,
                 seconds=np.asarray(time.perf_counter() - t0))
        atomic_write_bytes(path, buf.getvalue())
    return Landscape(cost, acc, acc_te)
