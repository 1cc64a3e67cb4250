"""Neural wavefunctions: FermiNet and a Slater-Jastrow baseline (flax linen, nn.Dense layers).

``make_wavefunction(mol, kind, **options)`` returns a :class:`Wavefunction` with pure functions
``init(key) -> params``, ``log_psi(params, x) -> log|psi|``, ``sign_log_psi(params, x) ->
(sign, log|psi|)`` and ``orbitals(params, x)`` (per spin, for Hartree-Fock pretraining), for one
walker x of shape (3N,) in bohr.
"""
from vmc.networks.ferminet import FermiNet, Wavefunction, make_wavefunction, NETWORKS

__all__ = ["FermiNet", "Wavefunction", "make_wavefunction", "NETWORKS"]
