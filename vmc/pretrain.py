"""Pretraining: fit the network's orbitals to Hartree-Fock orbitals from PySCF.

The loss is Σ_spin mean_walkers Σ_det ||Φ_net(x) - Φ_HF(x)||² over the orbital matrices
(electron i, orbital k) of each spin block, as in FermiNet. Walkers follow the network's own |psi|²
by a few random-walk Metropolis steps (qsim.samplers) between Adam updates, so pretraining also
equilibrates the walkers for VMC. Hartree-Fock is restricted for closed shells and unrestricted
otherwise, in a small basis (STO-6G by default).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from qsim import samplers
from qsim.infra.validation import nonnegative_int
from vmc.systems import Molecule

__all__ = ["HartreeFock", "hartree_fock", "pretrain", "PretrainResult"]


class HartreeFock(NamedTuple):
    """``energy`` (Hartree); ``coeffs``: occupied MO coefficients per spin, (nao, n_sigma);
    ``pyscf_mol`` the PySCF Mole."""

    energy: float
    coeffs: tuple
    pyscf_mol: object

    def orbitals(self, x) -> list[np.ndarray]:
        """HF orbital matrices for walkers x (B, 3N): per spin (B, n_sigma electrons, n_sigma orbitals)."""
        x = np.asarray(x, dtype=np.float64)
        B = x.shape[0]
        n_up = self.coeffs[0].shape[1]
        r = x.reshape(B, -1, 3)
        out = []
        for spin, (lo, hi) in enumerate(((0, n_up), (n_up, r.shape[1]))):
            if hi == lo:
                continue
            ao = self.pyscf_mol.eval_gto("GTOval_sph", r[:, lo:hi].reshape(-1, 3))
            mo = ao @ self.coeffs[spin]
            out.append(mo.reshape(B, hi - lo, hi - lo))
        return out


def hartree_fock(mol: Molecule, basis: str = "sto-6g") -> HartreeFock:
    """Run PySCF HF (RHF if closed shell, else UHF) and keep the occupied orbitals."""
    from pyscf import scf

    pm = mol.to_pyscf(basis)
    if mol.spin == 0:
        mf = scf.RHF(pm)
        mf.kernel()
        c = np.asarray(mf.mo_coeff)
        coeffs = (c[:, : mol.n_up], c[:, : mol.n_down])
    else:
        mf = scf.UHF(pm)
        mf.kernel()
        ca, cb = np.asarray(mf.mo_coeff[0]), np.asarray(mf.mo_coeff[1])
        oa = np.argsort(mf.mo_energy[0])[: mol.n_up]
        ob = np.argsort(mf.mo_energy[1])[: mol.n_down]
        coeffs = (ca[:, oa], cb[:, ob])
    return HartreeFock(float(mf.e_tot), coeffs, pm)


class PretrainResult(NamedTuple):
    params: object
    walkers: jax.Array
    step_size: jax.Array
    losses: np.ndarray
    hf_energy: float


def pretrain(wf, mol: Molecule, params, walkers, key, steps: int = 200, learning_rate: float = 3e-3,
             basis: str = "sto-6g", mcmc_steps: int = 5, step_size: float = 0.2,
             hf: HartreeFock | None = None, mcmc=None) -> PretrainResult:
    """Fit ``wf``'s orbitals to HF orbitals for ``steps`` Adam steps; returns new params, walkers
    (B, 3N) and the adapted MCMC step size. ``mcmc(params, walkers, width, key) -> (walkers, width,
    acceptance)`` moves the walkers between updates (default: ``mcmc_steps`` random-walk steps)."""
    nonnegative_int(steps, "pretraining steps")
    hf = hf or hartree_fock(mol, basis)
    if steps == 0:
        return PretrainResult(params, walkers, jnp.asarray(step_size), np.zeros(0), hf.energy)
    tx = optax.adam(learning_rate)
    opt_state = tx.init(params)
    kernel = samplers.rwm()
    adapt = samplers.acceptance_targeting((0.5, 0.55))

    def loss_fn(p, x, targets):
        orbs = jax.vmap(wf.orbitals, (None, 0))(p, x)   # per spin (B, K, n, n)
        return sum(jnp.mean(jnp.sum((o - t[:, None]) ** 2, axis=(1, 2, 3))) for o, t in zip(orbs, targets))

    @jax.jit
    def update(p, s, x, targets):
        loss, g = jax.value_and_grad(loss_fn)(p, x, targets)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    @jax.jit
    def move(p, x, width, k):
        logp = lambda y: 2.0 * wf.log_psi(p, y)
        st = kernel.init(x, logp)
        st, info = samplers.run(kernel, k, st, logp, {"step_size": width}, n_steps=mcmc_steps, adapt=adapt)
        return st.position, info.params["step_size"], jnp.mean(info.acceptance)

    move = mcmc or move

    width = jnp.asarray(step_size, jnp.float64)
    losses = []
    for t in range(steps):
        targets = [jnp.asarray(o) for o in hf.orbitals(np.asarray(walkers))]
        params, opt_state, loss = update(params, opt_state, walkers, targets)
        walkers, width, _ = move(params, walkers, width, jax.random.fold_in(key, t))
        losses.append(float(loss))
    return PretrainResult(params, walkers, width, np.asarray(losses), hf.energy)
