"""Time evolution of a qsample under a flow's continuity Hamiltonian, and the classical reference.

Formulas (``formula=``), for a time-dependent velocity ``v(x, t)`` over ``steps`` steps of size
``dt = T / steps``, fields evaluated at each step's midpoint (second order in time):

- ``"exact"``: dense ``expm`` of the symmetric H (eigendecomposition) with the fourth-order
  commutator-free Magnus scheme on each step (exact when H(t) = g(t) H_0). Small grids only.
- ``"4"``: group commutator ``W = e^{i b V} e^{i a K} e^{-i b V} e^{-i a K}``, ``a b = dt``,
  ``K = p^2/2``, ``v = grad V`` (so ``H = i[K, V]``); local error O(dt^{3/2}).
- ``"8"``: the symmetric product ``W(a, b) W(-a, -b)`` with ``a b = dt / 2``; local error O(dt^2).
- ``"split"``: the symmetric H applied matrix-free (any velocity, no potential needed): a Strang
  split over dimensions of ``e^{-i H_a dt}``, each by a Taylor series to machine precision at the
  midpoint time (in 1D, the exponential midpoint rule); second order.

``a = sqrt(c * ratio)``, ``b = sqrt(c / ratio)`` with ``c = a b`` and ``ratio`` = ``alpha_ratio``.
States are complex arrays of shape ``grid.shape``; use complex128 (enable ``jax_enable_x64``) for
the 1e-12 norm guarantees.

The reference: :func:`pushforward_logdensity` integrates the flow ODE backward from query points
with the log-density change ``log p_T(y) = log p_0(x_0) - int_0^T div v(x_t, t) dt`` (RK4).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

import jax
import jax.numpy as jnp
from threadpoolctl import threadpool_limits

from flows.grid import GRID_HINT, Grid, coordinates, wavenumbers
from flows.hamiltonian import (Flow, apply_hamiltonian, dense_hamiltonian, kinetic_diagonal,
                               potential_on_grid, velocity_on_grid)
from qsim.infra.validation import check_memory, positive_float, positive_int

__all__ = ["FORMULAS", "evolve", "pushforward_logdensity", "push_samples",
           "reference_probabilities", "sine_check_flow", "sine_check_density", "step_unitary_ops"]

FORMULAS = ("exact", "4", "8", "split")


def _check_common(psi0, flow: Flow, grid: Grid, T, steps, formula):
    formula = str(formula)
    if formula not in FORMULAS:
        raise ValueError(f"unknown formula {formula!r}; choose one of {FORMULAS}")
    if flow.d != grid.d:
        raise ValueError(f"flow dimension d={flow.d} does not match the grid dimension d={grid.d}")
    if tuple(np.shape(psi0)) != grid.shape:
        raise ValueError(f"state shape {tuple(np.shape(psi0))} does not match the grid shape "
                         f"{grid.shape}")
    positive_int(steps, "steps")
    positive_float(float(T), "evolution time T")
    if not np.all(np.isfinite(np.asarray(psi0))):
        raise ValueError("initial state has non-finite amplitudes")
    if formula in ("4", "8") and flow.potential is None:
        raise ValueError(f"formula {formula!r} needs the flow's potential V (v = grad V); use "
                         "formula='split' or flows.hamiltonian.helmholtz_potential")
    return formula


def _ab(formula: str, dt: float, ratio: float):
    c = dt if formula == "4" else dt / 2.0
    return math.sqrt(c * ratio), math.sqrt(c / ratio)


def step_unitary_ops(formula: str, dt: float, alpha_ratio: float = 1.0) -> list[tuple[str, float]]:
    """The exponentials of one product-formula step in application order (first applied first):
    ``("K", a)`` means ``e^{i a K}`` and ``("V", b)`` means ``e^{i b V}``."""
    a, b = _ab(str(formula), dt, alpha_ratio)
    if str(formula) == "4":
        return [("K", -a), ("V", -b), ("K", a), ("V", b)]
    if str(formula) == "8":
        return [("K", a), ("V", b), ("K", -a), ("V", -b), ("K", -a), ("V", -b), ("K", a), ("V", b)]
    raise ValueError(f"formula {formula!r} is not a product formula ('4' or '8')")


def evolve(psi0, flow: Flow, grid: Grid, T: float, steps: int, formula: str = "8",
           t0: float = 0.0, alpha_ratio: float = 1.0):
    """Evolve ``psi0`` (shape ``grid.shape``) from ``t0`` to ``t0 + T`` under the flow's H.

    Returns the final state (a JAX array for the product formulas and 'split', numpy for 'exact'),
    same shape, dtype complex of ``psi0``'s precision.
    """

    formula = _check_common(psi0, flow, grid, T, steps, formula)
    dt = float(T) / int(steps)
    rdtype = jnp.result_type(float)
    cdtype = jnp.result_type(1j)
    if formula == "exact":
        return _evolve_exact(np.asarray(psi0, np.complex128), flow, grid, float(T), int(steps),
                             float(t0))
    psi0 = jnp.asarray(psi0, cdtype)
    if formula in ("4", "8"):
        ops = step_unitary_ops(formula, dt, alpha_ratio)
        K = jnp.asarray(kinetic_diagonal(grid), rdtype)
        axes = tuple(range(grid.d))

        a_abs = abs(ops[0][1])
        eK = jnp.exp(1j * a_abs * K)                       # e^{+i a K}; e^{-i a K} is its conjugate

        def body(psi, k):
            tm = t0 + (k + 0.5) * dt
            V = potential_on_grid(flow, grid, tm, rdtype)
            eV = jnp.exp(1j * abs(ops[1][1]) * V)
            for kind, c in ops:
                if kind == "K":
                    ph = eK if c > 0 else jnp.conj(eK)
                    psi = jnp.fft.ifftn(ph * jnp.fft.fftn(psi, axes=axes), axes=axes)
                else:
                    psi = (eV if c > 0 else jnp.conj(eV)) * psi
            return psi, None

        run = jax.jit(lambda p: jax.lax.scan(body, p, jnp.arange(int(steps), dtype=rdtype))[0])
        return _finite(run(psi0))
    # 'split'
    vmax = 0.0
    vfun = jax.jit(lambda t: velocity_on_grid(flow, grid, t, rdtype))
    for t in np.linspace(t0, t0 + T, 5):
        vg = np.asarray(vfun(t))
        if not np.all(np.isfinite(vg)):
            raise ValueError(f"velocity field is not finite at t={t}")
        vmax = max(vmax, float(np.max(np.abs(vg))))
    kmax = float(np.max(np.abs(wavenumbers(grid, True))))
    bound = 1.5 * dt * vmax * kmax + 1e-300
    if not math.isfinite(bound) or bound > 2e4:
        raise ValueError(f"velocity field is exploding: max |v| = {vmax:.3g} needs "
                         f"{bound / 0.5:.3g} Taylor substeps per step on this grid; check it with "
                         "flows.hamiltonian.check_velocity or use more steps")
    sub = max(1, int(math.ceil(bound / 0.5)))
    n_terms = 16

    def expm_taylor(psi, v, tau):
        def one(_, p):
            def term_step(m, carry):
                term, acc = carry
                term = (-1j * tau / sub / m) * apply_hamiltonian(term, v, grid)
                return term, acc + term
            return jax.lax.fori_loop(1, n_terms + 1, term_step, (p, p))[1]
        return jax.lax.fori_loop(0, sub, one, psi)

    def body(psi, k):
        tm = t0 + (k + 0.5) * dt
        v = velocity_on_grid(flow, grid, tm, rdtype)
        if grid.d == 1:
            return expm_taylor(psi, v, dt), None
        parts = []
        for a in range(grid.d):
            va = jnp.zeros_like(v).at[..., a].set(v[..., a])
            parts.append(va)
        seq = [(p, dt / 2) for p in parts[:-1]] + [(parts[-1], dt)] + \
              [(p, dt / 2) for p in reversed(parts[:-1])]
        for va, tau in seq:
            psi = expm_taylor(psi, va, tau)
        return psi, None

    run = jax.jit(lambda p: jax.lax.scan(body, p, jnp.arange(int(steps), dtype=rdtype))[0])
    return _finite(run(psi0))


def _finite(psi):
    if not bool(np.all(np.isfinite(np.asarray(psi)))):
        raise ValueError("the evolution produced non-finite amplitudes: the flow's potential or "
                         "velocity is not finite on the grid (an exploding field?); check it with "
                         "flows.hamiltonian.check_velocity")
    return psi


def _evolve_exact(psi, flow: Flow, grid: Grid, T: float, steps: int, t0: float) -> np.ndarray:
    """CF4 Magnus with dense eigendecomposition of the symmetric H (complex128, numpy)."""
    M = grid.size
    check_memory(8 * 16.0 * M * M, f"exact (dense) evolution of {M} grid points", hint=GRID_HINT)
    dt = T / steps
    s3 = math.sqrt(3.0)
    c1, c2 = 0.5 - s3 / 6, 0.5 + s3 / 6
    w1, w2 = (3 - 2 * s3) / 12, (3 + 2 * s3) / 12


    vfun = jax.jit(lambda t: velocity_on_grid(flow, grid, t))

    def H_at(t):
        v = np.asarray(vfun(t), dtype=np.float64)
        return dense_hamiltonian(v, grid)

    def expmv(H, tau, x):
        lam, Q = np.linalg.eigh(H)
        return Q @ (np.exp(-1j * tau * lam) * (Q.conj().T @ x))

    x = psi.reshape(-1)
    v_test = np.asarray(vfun(t0), dtype=np.float64)
    if not np.all(np.isfinite(v_test)):
        raise ValueError(f"velocity field is not finite on the grid at t={t0}")
    try:  # BLAS threads thrash on a loaded machine; one thread is fastest for these sizes
        limit = threadpool_limits(1)
    except ImportError:  # pragma: no cover
        limit = None
    try:
        for k in range(steps):
            t = t0 + k * dt
            H1, H2 = H_at(t + c1 * dt), H_at(t + c2 * dt)
            x = expmv(w2 * H1 + w1 * H2, dt, x)
            x = expmv(w1 * H1 + w2 * H2, dt, x)
    finally:
        if limit is not None:
            limit.restore_original_limits()
    return x.reshape(grid.shape)


def _divergence(velocity: Callable):
    def div(x, t):
        return jnp.trace(jax.jacfwd(velocity, argnums=0)(x, t))
    return div


def pushforward_logdensity(flow: Flow, logp0: Callable, points, T: float, steps: int = 200,
                           t0: float = 0.0, L: float | None = None, chunk: int = 8192):
    """Log density at time ``t0 + T`` of the flow's pushforward of ``p0``, at ``points`` (M, d).

    Integrates ``dx/dt = v`` backward from each point with RK4 (``steps`` steps) while
    accumulating ``int div v dt``; ``log p_T(y) = log p_0(x_0) - int div v``. With ``L`` the
    back-traced point is wrapped into the box [-L, L)^d before ``logp0`` (the torus).
    Returns shape ``(M,)``.
    """

    points = jnp.asarray(points)
    if points.ndim != 2 or points.shape[1] != flow.d:
        raise ValueError(f"points shape {tuple(points.shape)} does not match (M, d={flow.d})")
    div = _divergence(flow.velocity)
    h = -float(T) / int(steps)

    def rhs(x, t):
        return flow.velocity(x, t), div(x, t)

    def one(y):
        def body(k, carry):
            x, acc = carry
            t = t0 + T + k * h
            k1, d1 = rhs(x, t)
            k2, d2 = rhs(x + 0.5 * h * k1, t + 0.5 * h)
            k3, d3 = rhs(x + 0.5 * h * k2, t + 0.5 * h)
            k4, d4 = rhs(x + h * k3, t + h)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            acc = acc + (-h) / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
            return x, acc
        x0, integral = jax.lax.fori_loop(0, int(steps), body, (y, jnp.zeros((), y.dtype)))
        if L is not None:
            x0 = jnp.mod(x0 + L, 2 * L) - L
        return logp0(x0) - integral

    f = jax.jit(jax.vmap(one))
    outs = [f(points[i:i + chunk]) for i in range(0, points.shape[0], chunk)]
    return jnp.concatenate(outs)


def push_samples(flow: Flow, x0, T: float, steps: int = 100, t0: float = 0.0, L: float | None = None):
    """Push samples ``x0`` (M, d) forward along the flow with RK4; wrapped into the box with ``L``."""

    x0 = jnp.asarray(x0)
    h = float(T) / int(steps)
    v = flow.velocity

    def one(x):
        def body(k, x):
            t = t0 + k * h
            k1 = v(x, t)
            k2 = v(x + 0.5 * h * k1, t + 0.5 * h)
            k3 = v(x + 0.5 * h * k2, t + 0.5 * h)
            k4 = v(x + h * k3, t + h)
            return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        x = jax.lax.fori_loop(0, int(steps), body, x)
        return x if L is None else jnp.mod(x + L, 2 * L) - L

    return jax.jit(jax.vmap(one))(x0)


def reference_probabilities(flow: Flow, logp0: Callable, grid: Grid, T: float, steps: int = 200,
                            t0: float = 0.0) -> np.ndarray:
    """The pushforward density at the grid points, normalised to probabilities (``grid.shape``)."""

    pts = jnp.asarray(coordinates(grid).reshape(-1, grid.d))
    lp = np.asarray(pushforward_logdensity(flow, logp0, pts, T, steps, t0, L=grid.L), np.float64)
    if not np.all(np.isfinite(lp)):
        raise ValueError("the pushforward log density is not finite on the grid (an exploding flow?)")
    p = np.exp(lp - lp.max())
    return (p / p.sum()).reshape(grid.shape)


# -- the analytic check of notes.md: 1D, v = A sin(x) (1 + t/2) on [-pi, pi) ----------------------

def sine_check_flow(amplitude: float = 0.8) -> Flow:
    """``v = A sin(x)(1 + t/2)``, ``V = -A cos(x)(1 + t/2)`` on the box [-pi, pi)."""

    def potential(x, t):
        return -amplitude * jnp.cos(x[0]) * (1 + t / 2)

    def velocity(x, t):
        return amplitude * jnp.sin(x) * (1 + t / 2)

    return Flow(velocity=velocity, d=1, potential=potential)


def sine_check_density(y, T: float = 1.0, amplitude: float = 0.8, kappa: float = 1.0):
    """Exact density at time T of ``p_0 ∝ exp(kappa cos x)`` transported by :func:`sine_check_flow`
    (unnormalised), at points ``y`` in [-pi, pi): ``tan(x_T/2) = tan(x_0/2) e^c``,
    ``c = A (T + T^2/4)``."""
    y = np.asarray(y, dtype=np.float64)
    c = amplitude * (T + T * T / 4)
    x0 = 2 * np.arctan2(np.exp(-c) * np.sin(y / 2), np.cos(y / 2))
    jac = np.exp(-c) / (np.cos(y / 2) ** 2 + np.exp(-2 * c) * np.sin(y / 2) ** 2)
    return np.exp(kappa * np.cos(x0)) * jac
