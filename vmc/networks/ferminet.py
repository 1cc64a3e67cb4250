"""FermiNet (Pfau et al. 2020) and a Slater-Jastrow baseline, in flax linen with nn.Dense layers.

Input: one walker, flat electron positions x (3N,) in bohr, up electrons first. Output: (sign,
log|psi|). Structure:

- features: electron-nucleus vectors and distances, electron-electron vectors and distances,
  rescaled by log(1 + r)/r so they grow logarithmically;
- ``interaction=True`` (FermiNet): L layers of a one-electron stream (width ``hidden[l][0]``) fed
  with spin-wise means of the one- and two-electron streams, and a two-electron stream (width
  ``hidden[l][1]``); residual connections where widths match;
- ``interaction=False`` (Slater-Jastrow): each orbital sees only its own electron (an MLP of the
  electron-nucleus features), so the determinants are plain Slater determinants;
- orbitals: a Dense layer per spin giving ``n_det * n_spin`` orbitals, times isotropic envelopes
  Σ_I π_kI exp(-|σ_kI| r_iI); one determinant per spin block, summed over ``n_det`` determinants;
- Jastrow (``jastrow=True``): Σ_{i<j} -c α²/(α + r_ij) with the exact electron-electron cusp c
  (1/2 antiparallel, 1/4 parallel), α learned.

Antisymmetric under exchange of two same-spin electrons (each determinant changes sign; the
Jastrow and the spin-wise means are symmetric).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from qsim.infra.validation import nonnegative_int, one_of, positive_int
from vmc.systems import Molecule

__all__ = ["FermiNet", "Wavefunction", "make_wavefunction", "NETWORKS"]

_F64 = jnp.float64


def _rescale(vec, r):
    """Vectors scaled to length log(1+r) (r > 0 assumed where used)."""
    return vec * (jnp.log1p(r) / r)[..., None]


def _logdet(m):
    """(sign, log|det|) of the trailing square matrices; closed form for 1x1 and 2x2 (no LAPACK
    call per walker and spin: on CPU those batched LUs and, in the forward Laplacian, their
    triangular solves cost ~8% of a LiH local energy). The 2x2 form works on m / s with s the
    largest |entry| (log|det m| = 2 log s + log|det(m/s)|, so a product of two small entries cannot
    underflow in float32); s is a constant to every derivative, which the identity makes exact."""
    if m.shape[-1] == 1:
        v = m[..., 0, 0]
        return jnp.sign(v), jnp.log(jnp.abs(v))
    if m.shape[-1] == 2:
        s = jax.lax.stop_gradient(jnp.max(jnp.abs(m), axis=(-2, -1)))
        s = jnp.where(s > 0, s, 1.0)
        a = m / s[..., None, None]
        d = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
        return jnp.sign(d), jnp.log(jnp.abs(d)) + 2.0 * jnp.log(s)
    return jnp.linalg.slogdet(m)


class FermiNet(nn.Module):
    """See module docstring. ``nuclei``/``charges`` as tuples, ``hidden`` as ((w1, w2), ...)."""

    nuclei: tuple
    charges: tuple
    n_up: int
    n_down: int
    hidden: tuple = ((32, 8), (32, 8))
    n_det: int = 4
    interaction: bool = True
    jastrow: bool = True

    @nn.compact
    def __call__(self, x, return_orbitals: bool = False):
        n_up, n_dn = self.n_up, self.n_down
        n = n_up + n_dn
        R = jnp.asarray(self.nuclei, dtype=x.dtype).reshape(-1, 3)
        M = R.shape[0]
        r = x.reshape(n, 3)
        ae = r[:, None, :] - R[None, :, :]                       # (N, M, 3)
        r_ae = jnp.linalg.norm(ae, axis=-1)                      # (N, M)
        eye = jnp.eye(n, dtype=x.dtype)
        ee = r[:, None, :] - r[None, :, :]                       # (N, N, 3)
        r_ee = jnp.sqrt(jnp.sum(ee**2, axis=-1) + eye) * (1.0 - eye)  # safe on the diagonal
        r_ee_safe = r_ee + eye
        h = jnp.concatenate([_rescale(ae, r_ae), jnp.log1p(r_ae)[..., None]], axis=-1).reshape(n, 4 * M)
        g = jnp.concatenate([_rescale(ee, r_ee_safe), jnp.log1p(r_ee)[..., None]], axis=-1)  # (N,N,4)

        def dense(w, name):   # HIGHEST: float32 evaluations (vmc's mixed/float32 modes) stay float32 on GPUs, not TF32
            return nn.Dense(w, param_dtype=_F64, precision=jax.lax.Precision.HIGHEST, name=name)

        n_layers = len(self.hidden)
        for layer, (w1, w2) in enumerate(self.hidden):
            if self.interaction:
                parts = [h]
                for lo, hi in ((0, n_up), (n_up, n)):
                    if hi > lo:
                        parts.append(jnp.broadcast_to(jnp.mean(h[lo:hi], axis=0), (n, h.shape[-1])))
                        parts.append(jnp.mean(g[:, lo:hi], axis=1))
                f = jnp.concatenate(parts, axis=-1)
            else:
                f = h
            h_new = jnp.tanh(dense(w1, f"one_{layer}")(f))
            h = h_new + h if h_new.shape == h.shape else h_new
            if self.interaction and layer < n_layers - 1:
                g_new = jnp.tanh(dense(w2, f"two_{layer}")(g))
                g = g_new + g if g_new.shape == g.shape else g_new

        K = self.n_det
        orbitals = []
        for spin, (lo, hi) in enumerate(((0, n_up), (n_up, n))):
            ns = hi - lo
            if ns == 0:
                continue
            phi = dense(K * ns, f"orbital_{spin}")(h[lo:hi])            # (ns, K*ns)
            pi = self.param(f"env_pi_{spin}", nn.initializers.ones, (M, K * ns), _F64)
            sigma = self.param(f"env_sigma_{spin}", nn.initializers.ones, (M, K * ns), _F64)
            env = jnp.sum(pi[None] * jnp.exp(-r_ae[lo:hi, :, None] * jnp.abs(sigma)[None]), axis=1)
            mat = (phi * env).reshape(ns, K, ns).transpose(1, 0, 2)        # (K, electron, orbital)
            orbitals.append(mat)
        if return_orbitals:
            return orbitals

        sign = jnp.ones((K,), x.dtype)
        logd = jnp.zeros((K,), x.dtype)
        for mat in orbitals:
            s, ld = _logdet(mat)
            sign, logd = sign * s, logd + ld
        mx = jax.lax.stop_gradient(jnp.max(logd))
        tot = jnp.sum(sign * jnp.exp(logd - mx))
        log_abs = jnp.log(jnp.abs(tot)) + mx
        sgn = jnp.sign(tot)

        if self.jastrow and n > 1:
            a_par = self.param("jastrow_par", nn.initializers.ones, (), _F64)
            a_anti = self.param("jastrow_anti", nn.initializers.ones, (), _F64)
            iu, ju = np.triu_indices(n, k=1)
            same = np.array([(i < n_up) == (j < n_up) for i, j in zip(iu, ju)])
            rij = r_ee[iu, ju]
            a = jnp.where(same, jnp.abs(a_par), jnp.abs(a_anti))
            c = jnp.where(same, 0.25, 0.5)
            log_abs = log_abs + jnp.sum(-c * a**2 / (a + rij))
        return sgn, log_abs


class Wavefunction(NamedTuple):
    """Pure functions of one network; x is one walker (3N,) in bohr.

    init(key) -> params; log_psi(params, x) -> log|psi|; sign_log_psi(params, x) -> (sign,
    log|psi|); orbitals(params, x) -> list over spins of (n_det, n_sigma, n_sigma); module: the
    flax module (for layer-statistics capture)."""

    init: Callable[[jax.Array], Any]
    log_psi: Callable[[Any, jax.Array], jax.Array]
    sign_log_psi: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]
    orbitals: Callable[[Any, jax.Array], list]
    module: nn.Module
    n_det: int


_DEFAULTS = {
    "ferminet": dict(hidden=((32, 8), (32, 8)), n_det=4, interaction=True, jastrow=True),
    "slater_jastrow": dict(hidden=((32, 0),), n_det=1, interaction=False, jastrow=True),
}
NETWORKS = tuple(_DEFAULTS)


def make_wavefunction(mol: Molecule, kind: str = "ferminet", hidden: Sequence | None = None,
                      n_det: int | None = None, jastrow: bool | None = None) -> Wavefunction:
    """A :class:`Wavefunction` for ``mol``. ``kind``: "ferminet" or "slater_jastrow".

    ``hidden``: per layer (one-electron width, two-electron width), e.g. ((32, 8), (32, 8));
    ``n_det``: number of determinants."""
    cfg = dict(_DEFAULTS[one_of(kind, "network", NETWORKS)])
    if hidden is not None:
        pairs = [tuple(h) if isinstance(h, (tuple, list)) else (h, h) for h in hidden]
        cfg["hidden"] = tuple((positive_int(w1, f"hidden[{i}][0] (one-electron width)"),
                               nonnegative_int(w2, f"hidden[{i}][1] (two-electron width)"))
                              for i, (w1, w2) in enumerate(pairs))
    if n_det is not None:
        cfg["n_det"] = positive_int(n_det, "n_det")
    if jastrow is not None:
        cfg["jastrow"] = bool(jastrow)
    module = FermiNet(nuclei=tuple(map(tuple, mol.positions)), charges=tuple(mol.charges),
                      n_up=mol.n_up, n_down=mol.n_down, **cfg)
    n3 = 3 * mol.n_electrons

    @jax.jit
    def init(key):  # jitted: eager flax init compiles every primitive separately (tens of seconds)
        k1, k2 = jax.random.split(key)
        x0 = jax.random.normal(k1, (n3,), _F64)
        return module.init(k2, x0)

    def sign_log_psi(params, x):
        return module.apply(params, x)

    def log_psi(params, x):
        return module.apply(params, x)[1]

    def orbitals(params, x):
        return module.apply(params, x, return_orbitals=True)

    return Wavefunction(init, log_psi, sign_log_psi, orbitals, module, cfg["n_det"])
