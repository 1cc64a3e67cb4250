"""The periodic qubit grid: the box [-L, L)^d with N = 2**n points per dimension.

A grid point has index ``j = (j_0, ..., j_{d-1})`` and position ``x_a = -L + j_a * dx``,
``dx = 2L / N``. A state on the grid is an array of shape ``(N,) * d`` (C order), so its flat
index is ``j_0 N^{d-1} + ... + j_{d-1}``: on qubits, dimension 0 occupies wires ``0..n-1`` with
wire 0 its most significant bit (the qsim convention), dimension 1 the next ``n`` wires, and so on.

Momentum is taken by the FFT (the QFT on hardware): wavenumbers ``k_m = 2 pi fftfreq(N, dx)``,
with the Nyquist mode ``m = N/2`` set to zero in the first derivative so that the discrete
``p = -i d/dx`` is Hermitian and maps real states to imaginary ones.
"""

from __future__ import annotations

import dataclasses
import warnings

import jax.numpy as jnp
import numpy as np

from qsim.infra.validation import check_memory, positive_float, positive_int

__all__ = ["Grid", "make_grid", "wavenumbers", "coordinates", "axis_points", "spectral_derivative",
           "state_from_density", "boundary_mass", "warn_boundary", "GRID_HINT"]

# what to change when a grid array does not fit (qsim.infra.validation.check_memory's hint)
GRID_HINT = "use fewer qubits per dimension or fewer dimensions"


@dataclasses.dataclass(frozen=True)
class Grid:
    """A periodic grid (static, hashable).

    Attributes:
      n: qubits per dimension (``N = 2**n`` points per dimension).
      d: number of dimensions.
      L: half-width of the box [-L, L) (same length unit as the samples).
    """

    n: int
    d: int
    L: float

    @property
    def N(self) -> int:
        return 2 ** self.n

    @property
    def dx(self) -> float:
        return 2.0 * self.L / self.N

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.N,) * self.d

    @property
    def size(self) -> int:
        return self.N ** self.d

    @property
    def num_qubits(self) -> int:
        return self.n * self.d

    @property
    def cell_volume(self) -> float:
        return self.dx ** self.d


def make_grid(n: int, d: int, L: float) -> Grid:
    """Build a :class:`Grid` after checking its inputs.

    Raises ``ValueError``/``TypeError`` for a non-positive or non-integer ``n``/``d``, a non-positive
    or non-finite ``L``, and ``ValueError`` for a grid whose complex128 state (times a small working
    factor of 8 arrays) exceeds the memory limit (:func:`qsim.infra.validation.memory_limit_bytes`,
    ``QSIM_MAX_STATE_BYTES``).
    """
    n = positive_int(n, "qubits per dimension n")
    d = positive_int(d, "dimension d")
    L = positive_float(L, "box half-width L")
    if n * d > 60:
        raise ValueError(f"grid of {n} qubits x {d} dimensions = 2**{n * d} points is far too large "
                         "for memory")
    check_memory(8 * 16 * 2.0 ** (n * d), f"a grid of 2**{n * d} points ({n} qubits x {d} dims)", hint=GRID_HINT)
    return Grid(n, d, L)


def axis_points(grid: Grid) -> np.ndarray:
    """Positions along one axis, shape ``(N,)``: ``-L + j dx``."""
    return -grid.L + grid.dx * np.arange(grid.N, dtype=np.float64)


def coordinates(grid: Grid) -> np.ndarray:
    """All grid positions, shape ``(N,)*d + (d,)`` (float64, C order as the state)."""
    ax = axis_points(grid)
    mesh = np.meshgrid(*([ax] * grid.d), indexing="ij")
    return np.stack(mesh, axis=-1)


def wavenumbers(grid: Grid, nyquist_zero: bool = True) -> np.ndarray:
    """FFT wavenumbers along one axis, shape ``(N,)`` (inverse length units).

    With ``nyquist_zero`` the Nyquist entry ``m = N/2`` is 0 (use this for first derivatives).
    Without it, it is ``-pi/dx`` (its square is what the kinetic term uses on hardware).
    """
    k = 2.0 * np.pi * np.fft.fftfreq(grid.N, d=grid.dx)
    if nyquist_zero:
        k[grid.N // 2] = 0.0
    return k


def spectral_derivative(psi, grid: Grid, axis: int):
    """d psi / d x_axis by FFT with the Nyquist mode zeroed; ``psi`` shape ``grid.shape``."""

    k = jnp.asarray(wavenumbers(grid, True))
    shape = [1] * grid.d
    shape[axis] = grid.N
    return jnp.fft.ifft(1j * k.reshape(shape) * jnp.fft.fft(psi, axis=axis), axis=axis)


def state_from_density(p, grid: Grid | None = None):
    """The qsample amplitudes ``sqrt(p_j) / sqrt(sum p)`` of grid values ``p`` (any shape).

    Raises ``ValueError`` for NaN/inf or negative values (tiny negatives from round-off, above
    -1e-12 of the maximum, are clipped), for an all-zero density, and for a shape that does not
    match ``grid.shape`` when a grid is given.
    """
    p = np.asarray(p, dtype=np.float64)
    if grid is not None and p.shape != grid.shape:
        raise ValueError(f"density shape {p.shape} does not match the grid shape {grid.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"density has {int(np.sum(~np.isfinite(p)))} non-finite (NaN/inf) values")
    pmax = float(np.max(np.abs(p))) if p.size else 0.0
    if np.any(p < -1e-12 * max(pmax, 1e-300)):
        raise ValueError(f"density has negative values (min {float(np.min(p)):.3g})")
    p = np.clip(p, 0.0, None)
    total = float(p.sum())
    if total <= 0:
        raise ValueError("density is zero everywhere on the grid")
    return np.sqrt(p / total)


def boundary_mass(prob, grid: Grid, width: int | None = None) -> float:
    """Probability within ``width`` grid cells of the box edge (any dimension), ``prob`` of shape
    ``grid.shape`` summing to one. Default width: ``max(1, N // 16)`` cells."""
    prob = np.asarray(prob, dtype=np.float64)
    w = max(1, grid.N // 16) if width is None else int(width)
    mask = np.zeros(grid.shape, dtype=bool)
    for a in range(grid.d):
        idx = [slice(None)] * grid.d
        idx[a] = np.r_[0:w, grid.N - w:grid.N]
        mask[tuple(idx)] = True
    return float(prob[mask].sum() / max(prob.sum(), 1e-300))


def warn_boundary(prob, grid: Grid, tol: float = 1e-6, what: str = "density") -> float:
    """Warn (UserWarning) when more than ``tol`` of the probability lies at the box edge."""
    m = boundary_mass(prob, grid)
    if m > tol:
        warnings.warn(f"{what} has mass {m:.3g} within {max(1, grid.N // 16)} cells of the box edge "
                      f"(L={grid.L}); the periodic box is too small for it", UserWarning, stacklevel=2)
    return m
