"""Coulomb Hamiltonian of a molecule: potential energy and local energy (Hartree, bohr).

Electron positions are one flat vector ``x`` of shape (3 N,) (electron i at ``x[3i:3i+3]``, up
electrons first); vmap over walkers. For a wavefunction given as ``log|psi|``,

    E_loc(x) = V(x) - 1/2 (Δ log|psi| + |∇ log|psi||^2).

The Laplacian comes from folx's forward Laplacian (default) or from a loop of jvp's over the 3N
coordinates (``method="jvp"``). Everything is pure JAX: jit-, vmap- and grad-able (the WQMC
objective differentiates the local energy with respect to ``x``). Use float64 inputs.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import folx
import numpy as np

from qsim.infra.validation import one_of
from vmc.systems import Molecule

__all__ = ["potential_energy", "make_potential", "laplacian_and_gradient", "make_local_energy",
           "make_local_energy_gradient", "kinetic_energy", "LAPLACIAN_METHODS"]

LogPsi = Callable  # (params, x) -> log|psi| (scalar)
LAPLACIAN_METHODS = ("folx", "jvp", "hessian")  # "hessian": the full Hessian's trace, a reference for tests


def make_potential(mol: Molecule) -> Callable[[jax.Array], jax.Array]:
    """V(x) for flat positions x (3N,): e-e repulsion, e-n attraction and the constant n-n term."""
    R = jnp.asarray(mol.nuclei)
    Z = jnp.asarray(mol.charge_array)
    e_nn = float(mol.nuclear_repulsion())
    n = mol.n_electrons
    iu, ju = np.triu_indices(n, k=1)

    def potential(x: jax.Array) -> jax.Array:
        r = x.reshape(n, 3)
        d_en = jnp.linalg.norm(r[:, None, :] - R[None, :, :], axis=-1)  # (N, M)
        v = -jnp.sum(Z[None, :] / d_en)
        if n > 1:
            d_ee = jnp.linalg.norm(r[iu] - r[ju], axis=-1)
            v = v + jnp.sum(1.0 / d_ee)
        return v + e_nn

    return potential


def potential_energy(mol: Molecule, x: jax.Array) -> jax.Array:
    """V(x) in Hartree for flat electron positions x (3N,) in bohr."""
    return make_potential(mol)(x)


def laplacian_and_gradient(f: Callable[[jax.Array], jax.Array], x: jax.Array,
                           method: str = "folx") -> tuple[jax.Array, jax.Array]:
    """(Δf(x), ∇f(x)) for a scalar function f of a flat vector x (D,).

    ``method="folx"``: forward Laplacian (one forward pass carrying value, gradient, Laplacian).
    ``method="jvp"``: the Hessian diagonal by a jvp of the gradient along each unit vector.
    ``method="hessian"``: trace of the full Hessian (reference for tests)."""
    if method == "folx":

        out = folx.forward_laplacian(f, sparsity_threshold=0)(x)
        grad = out.jacobian.dense_array.reshape(-1)
        return out.laplacian, grad
    if method == "jvp":
        grad_f = jax.grad(f)
        eye = jnp.eye(x.shape[0], dtype=x.dtype)

        def body(carry, e):
            g, hv = jax.jvp(grad_f, (x,), (e,))
            return carry + jnp.dot(hv, e), None

        lap, _ = jax.lax.scan(body, jnp.zeros((), x.dtype), eye)
        return lap, grad_f(x)
    one_of(method, "Laplacian method", LAPLACIAN_METHODS)
    return jnp.trace(jax.hessian(f)(x)), jax.grad(f)(x)


def kinetic_energy(f: Callable[[jax.Array], jax.Array], x: jax.Array, method: str = "folx") -> jax.Array:
    """-1/2 (Δ f + |∇f|^2) with f = log|psi| (Hartree)."""
    lap, grad = laplacian_and_gradient(f, x, method)
    return -0.5 * (lap + jnp.sum(grad**2))


def make_local_energy(log_psi: LogPsi, mol: Molecule, method: str = "folx"
                      ) -> Callable[[object, jax.Array], jax.Array]:
    """E_loc(params, x) for one walker x (3N,): a scalar in Hartree. vmap over walkers.

    ``log_psi(params, x)`` returns log|psi| (scalar)."""
    one_of(method, "Laplacian method", LAPLACIAN_METHODS)
    potential = make_potential(mol)

    def local_energy(params, x):
        t = kinetic_energy(lambda y: log_psi(params, y), x, method)
        return t + potential(x)

    return local_energy


def make_local_energy_gradient(log_psi: LogPsi, mol: Molecule, method: str = "folx"):
    """(params, x) -> (E_loc, ∇x E_loc) for one walker; ∇x E_loc has shape (3N,).

    Reverse-mode through the Laplacian (third derivatives of the network). folx's forward
    Laplacian is differentiated like any JAX function."""
    e_loc = make_local_energy(log_psi, mol, method)
    return jax.value_and_grad(e_loc, argnums=1)
