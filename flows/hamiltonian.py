"""The continuity Hamiltonian of a flow on the periodic grid.

A flow moves probability along a velocity field ``v(x, t)``: ``dp/dt = -div(v p)``. For
``psi = sqrt(p)``, ``i dpsi/dt = H psi`` with the symmetric (Hermitian) form

    H = (p.v + v.p) / 2,   p = -i grad,   i.e.  H psi = -i (v.grad psi + (div v) psi / 2).

On the grid, ``p`` is the spectral derivative (FFT, Nyquist mode zeroed), so ``H`` is a purely
imaginary antisymmetric matrix: Hermitian, and ``exp(-i H t)`` is real orthogonal (real states stay
real). If ``v = grad V`` then ``H = i [K, V]`` with ``K = p^2/2``, the form the product formulas
of :mod:`flows.evolve` use.
"""

from __future__ import annotations

import warnings
from typing import Callable, NamedTuple

import numpy as np

import jax
import jax.numpy as jnp

from flows.grid import GRID_HINT, Grid, boundary_mass, coordinates, wavenumbers
from qsim.infra.validation import check_memory

__all__ = ["Flow", "gradient_flow", "velocity_flow", "velocity_on_grid", "potential_on_grid",
           "apply_hamiltonian", "dense_hamiltonian", "derivative_matrix", "kinetic_diagonal",
           "check_velocity", "helmholtz_potential"]


class Flow(NamedTuple):
    """A time-dependent flow on R^d.

    Attributes:
      velocity: ``(x (d,), t ()) -> (d,)`` velocity (length per unit time), JAX-traceable.
      d: number of dimensions.
      potential: optional ``(x (d,), t ()) -> ()`` with ``velocity = grad potential``; the product
        formulas need it (for a field without one, :func:`helmholtz_potential` projects it).
    """

    velocity: Callable
    d: int
    potential: Callable | None = None


def gradient_flow(potential: Callable, d: int) -> Flow:
    """The flow ``v = grad_x potential(x, t)`` (``potential``: ``(x (d,), t) -> ()``)."""

    return Flow(velocity=jax.grad(potential, argnums=0), d=int(d), potential=potential)


def velocity_flow(velocity: Callable, d: int) -> Flow:
    """A flow given by its velocity only (no potential)."""
    return Flow(velocity=velocity, d=int(d), potential=None)


def _flat_points(grid: Grid, dtype):
    return jnp.asarray(coordinates(grid).reshape(-1, grid.d), dtype=dtype)


def velocity_on_grid(flow: Flow, grid: Grid, t, dtype=None):
    """``v`` at every grid point at time ``t``: shape ``grid.shape + (d,)``."""

    if flow.d != grid.d:
        raise ValueError(f"flow dimension d={flow.d} does not match the grid dimension d={grid.d}")
    dtype = dtype or jnp.result_type(float)
    x = _flat_points(grid, dtype)
    t = jnp.asarray(t, dtype)
    v = jax.vmap(lambda xi: flow.velocity(xi, t))(x)
    return jnp.reshape(v, grid.shape + (grid.d,))


def potential_on_grid(flow: Flow, grid: Grid, t, dtype=None):
    """``V`` at every grid point at time ``t``: shape ``grid.shape``."""

    if flow.d != grid.d:
        raise ValueError(f"flow dimension d={flow.d} does not match the grid dimension d={grid.d}")
    if flow.potential is None:
        raise ValueError("this flow has no potential; use helmholtz_potential or the 'split' formula")
    dtype = dtype or jnp.result_type(float)
    x = _flat_points(grid, dtype)
    t = jnp.asarray(t, dtype)
    V = jax.vmap(lambda xi: flow.potential(xi, t))(x)
    return jnp.reshape(V, grid.shape)


def apply_hamiltonian(psi, v_grid, grid: Grid):
    """``H psi`` matrix-free: ``-i/2 sum_a [D_a (v_a psi) + v_a D_a psi]``.

    Args:
      psi: state, shape ``grid.shape`` (complex).
      v_grid: velocity on the grid, shape ``grid.shape + (d,)`` (real).
    Returns: shape ``grid.shape``.
    """

    if psi.shape != grid.shape:
        raise ValueError(f"state shape {psi.shape} does not match the grid shape {grid.shape}")
    if v_grid.shape != grid.shape + (grid.d,):
        raise ValueError(f"velocity shape {v_grid.shape} does not match {grid.shape + (grid.d,)}")
    k = jnp.asarray(wavenumbers(grid, True))
    out = jnp.zeros_like(psi)
    for a in range(grid.d):
        shape = [1] * grid.d
        shape[a] = grid.N
        ik = (1j * k).reshape(shape)

        def D(f, a=a, ik=ik):
            return jnp.fft.ifft(ik * jnp.fft.fft(f, axis=a), axis=a)

        va = v_grid[..., a]
        out = out + D(va * psi) + va * D(psi)
    return -0.5j * out


def derivative_matrix(grid: Grid) -> np.ndarray:
    """The 1D spectral derivative matrix (real antisymmetric), shape ``(N, N)``."""
    N = grid.N
    k = wavenumbers(grid, True)
    D = np.fft.ifft(1j * k[:, None] * np.fft.fft(np.eye(N), axis=0), axis=0)
    return np.real(D)


def dense_hamiltonian(v_grid, grid: Grid) -> np.ndarray:
    """The dense ``(N^d, N^d)`` complex matrix of H (small grids only; checked against the memory limit)."""
    M = grid.size
    check_memory(4 * 16.0 * M * M, f"the dense Hamiltonian of {M} grid points", hint=GRID_HINT)
    v_grid = np.asarray(v_grid, dtype=np.float64)
    if v_grid.shape != grid.shape + (grid.d,):
        raise ValueError(f"velocity shape {v_grid.shape} does not match {grid.shape + (grid.d,)}")
    D1 = derivative_matrix(grid)
    H = np.zeros((M, M), dtype=np.complex128)
    for a in range(grid.d):
        mats = [np.eye(grid.N)] * grid.d
        mats[a] = D1
        Da = mats[0]
        for m in mats[1:]:
            Da = np.kron(Da, m)
        va = v_grid[..., a].reshape(-1)
        H += Da * va[None, :] + va[:, None] * Da
    return -0.5j * H


def kinetic_diagonal(grid: Grid, nyquist_zero: bool = False) -> np.ndarray:
    """``K = |k|^2 / 2`` in the FFT basis, shape ``grid.shape``.

    By default the Nyquist wavenumber is kept (``k = -pi/dx``): ``K`` is then still real symmetric
    in position space and a quadratic form in the momentum bits, which a circuit implements exactly
    with single-qubit and controlled phases.
    """
    k2 = wavenumbers(grid, nyquist_zero) ** 2
    K = np.zeros(grid.shape)
    for a in range(grid.d):
        shape = [1] * grid.d
        shape[a] = grid.N
        K = K + 0.5 * k2.reshape(shape)
    return K


def check_velocity(flow: Flow, grid: Grid, times=(0.0, 0.5, 1.0), prob=None,
                   max_speed: float | None = None, periodic_tol: float = 1e-6,
                   mass_tol: float = 1e-4) -> dict:
    """Check that ``flow`` is finite, bounded and periodic on the box before simulating it.

    Evaluates ``v`` on the grid and on the box faces ``x_a = -L`` and ``x_a = +L`` at ``times``.
    Raises ``ValueError`` for non-finite values, for a speed above ``max_speed`` (default
    ``1000 * L`` per unit time: an exploding field) and for a non-periodic field (face jump above
    ``periodic_tol`` relative) when the probability ``prob`` (shape ``grid.shape``) puts more than
    ``mass_tol`` near the box edge; a non-periodic field with less boundary mass only warns.
    Returns ``{"max_speed", "periodic_jump", "boundary_mass"}``.
    """

    if flow.d != grid.d:
        raise ValueError(f"flow dimension d={flow.d} does not match the grid dimension d={grid.d}")
    max_speed = 1000.0 * grid.L if max_speed is None else float(max_speed)
    bmass = None if prob is None else boundary_mass(prob, grid)
    pts = coordinates(grid).reshape(-1, grid.d)
    vmax, jump = 0.0, 0.0
    fv = jax.jit(jax.vmap(flow.velocity, in_axes=(0, None)))
    for t in times:
        v = np.asarray(fv(jnp.asarray(pts), jnp.asarray(float(t))))
        if not np.all(np.isfinite(v)):
            raise ValueError(f"velocity field is not finite at t={t} ({int(np.sum(~np.isfinite(v)))} "
                             "NaN/inf values on the grid)")
        vmax = max(vmax, float(np.max(np.abs(v))))
        for a in range(grid.d):
            lo = pts[pts[:, a] == pts[0, a]].copy()
            hi = lo.copy()
            lo[:, a] = -grid.L
            hi[:, a] = grid.L
            vl = np.asarray(fv(jnp.asarray(lo), jnp.asarray(float(t))))
            vh = np.asarray(fv(jnp.asarray(hi), jnp.asarray(float(t))))
            if not (np.all(np.isfinite(vl)) and np.all(np.isfinite(vh))):
                raise ValueError(f"velocity field is not finite on the box face x_{a} = +-L at t={t}")
            jump = max(jump, float(np.max(np.abs(vh - vl))))
    if vmax > max_speed:
        raise ValueError(f"velocity field is exploding: max |v| = {vmax:.3g} > max_speed = "
                         f"{max_speed:.3g} on the box [-{grid.L}, {grid.L})^{grid.d}")
    rel_jump = jump / max(vmax, 1e-300) if vmax > 0 else 0.0
    if rel_jump > periodic_tol:
        msg = (f"velocity field is not periodic on the box: it jumps by {jump:.3g} (relative "
               f"{rel_jump:.3g}) across the faces x = +-L={grid.L}")
        if bmass is not None and bmass > mass_tol:
            raise ValueError(msg + f", and the density has mass {bmass:.3g} near the edge "
                             f"(tolerance {mass_tol:.3g}); use a periodic field or a larger box")
        warnings.warn(msg + (f"; boundary mass {bmass:.3g}" if bmass is not None else
                             "; boundary mass unknown") + " (the simulation wraps it around)",
                      UserWarning, stacklevel=2)
    return {"max_speed": vmax, "periodic_jump": jump, "boundary_mass": bmass}


def helmholtz_potential(v_grid, grid: Grid):
    """Project a grid velocity onto gradients: ``V = lap^{-1} div v`` (FFT, periodic).

    Returns ``(V (grid.shape), curl_fraction)`` where ``curl_fraction`` is the relative norm of
    the dropped divergence-free part ``||v - grad V|| / ||v||``.
    """

    k = jnp.asarray(wavenumbers(grid, True))
    ks = []
    for a in range(grid.d):
        shape = [1] * grid.d
        shape[a] = grid.N
        ks.append(k.reshape(shape))
    vh = [jnp.fft.fftn(v_grid[..., a]) for a in range(grid.d)]
    k2 = sum(ka ** 2 for ka in ks)
    div_h = sum(1j * ks[a] * vh[a] for a in range(grid.d))
    Vh = jnp.where(k2 > 0, -div_h / jnp.where(k2 > 0, k2, 1.0), 0.0)
    V = jnp.real(jnp.fft.ifftn(Vh))
    g = jnp.stack([jnp.real(jnp.fft.ifftn(1j * ks[a] * Vh)) for a in range(grid.d)], axis=-1)
    frac = jnp.linalg.norm(v_grid - jnp.mean(v_grid, axis=tuple(range(grid.d))) - g) / \
        jnp.maximum(jnp.linalg.norm(v_grid), 1e-300)
    return V, float(frac)
