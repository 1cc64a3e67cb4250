"""The SINGD benchmark's two networks and their data and losses, in one place.

Imported by ``benchmarks/singd.py`` (SINGD vs AdamW, project venv) and by
``benchmarks/singd_kfac_peer.py`` (kfac-jax's KFAC, run in a separate jax 0.8.3 venv because kfac-jax 0.0.8
fails on jax >= 0.9.2), so both measure exactly the same networks. Imports only jax, flax, optax and numpy
(no qsim), so it loads in either venv.

* ``MLP``: 128 -> 256 -> 256 -> 256 -> 10, tanh, per-example softmax cross-entropy.
* ``FermiNetLike``: FermiNet-sized (one-electron stream width 256, two-electron stream width 32, 4 layers,
  16 determinants, isotropic envelopes, LiH-like 4 electrons); the VMC-style loss is mean log|psi| over
  walkers.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        for _ in range(3):
            x = nn.tanh(nn.Dense(256)(x))
        return nn.Dense(10)(x)


class FermiNetLike(nn.Module):
    """FermiNet-sized: streams of width 256 / 32, 4 layers, 16 determinants, isotropic envelopes."""

    n_up: int = 2
    n_down: int = 2
    width1: int = 256
    width2: int = 32
    layers: int = 4
    n_det: int = 16

    @nn.compact
    def __call__(self, r):                       # r (3 n,) bohr -> log|psi|
        n = self.n_up + self.n_down
        e = r.reshape(n, 3)
        atom = jnp.zeros(3)
        d1 = e - atom
        h1 = jnp.concatenate([d1, jnp.linalg.norm(d1, axis=-1, keepdims=True)], -1)            # (n, 4)
        d2 = e[:, None] - e[None]
        h2 = jnp.concatenate([d2, jnp.sqrt(jnp.sum(d2 ** 2, -1, keepdims=True) + 1e-12)], -1)  # (n, n, 4)
        for _ in range(self.layers):
            up, dn = h1[: self.n_up].mean(0), h1[self.n_up:].mean(0)
            g2u, g2d = h2[:, : self.n_up].mean(1), h2[:, self.n_up:].mean(1)
            f = jnp.concatenate([h1, jnp.broadcast_to(up, h1.shape), jnp.broadcast_to(dn, h1.shape), g2u, g2d], -1)
            new1 = jnp.tanh(nn.Dense(self.width1)(f))
            new2 = jnp.tanh(nn.Dense(self.width2)(h2))
            h1 = new1 + h1 if new1.shape == h1.shape else new1
            h2 = new2 + h2 if new2.shape == h2.shape else new2
        env = jnp.exp(-jnp.linalg.norm(d1, axis=-1))                                           # (n,)
        logdets, signs = [], []
        for lo, hi in ((0, self.n_up), (self.n_up, n)):
            k = hi - lo
            orb = nn.Dense(k * self.n_det)(h1[lo:hi]).reshape(k, self.n_det, k) * env[lo:hi, None, None]
            s, ld = jnp.linalg.slogdet(jnp.transpose(orb, (1, 0, 2)))                           # (n_det,)
            logdets.append(ld)
            signs.append(s)
        ld = logdets[0] + logdets[1]
        return jax.nn.logsumexp(ld, b=signs[0] * signs[1], return_sign=True)[0]


MODELS = {"mlp": MLP, "ferminet": FermiNetLike}
NETWORKS = tuple(MODELS)


def make_problem(name, walkers=128, steps=10):
    """``(params, per_example, mean_loss, data)`` for network ``name`` (``"mlp"`` or ``"ferminet"``).

    ``walkers``: the batch (examples for the MLP, walkers for the FermiNet-sized network); ``data`` holds
    ``steps`` batches along a leading axis (one per step of a run). ``per_example(params, *example)`` is the
    per-example loss (cross-entropy) or log|psi| of one walker; ``mean_loss(params, *batch)`` its batch mean.
    Seeded: the same call gives the same parameters and data."""
    if name not in NETWORKS:
        raise ValueError(f"network {name!r} is not one of {NETWORKS}")
    rng = np.random.default_rng(0)
    if name == "mlp":
        model, batch = MODELS[name](), walkers
        x = jnp.asarray(rng.normal(size=(steps, batch, 128)), jnp.float32)
        y = jnp.asarray(rng.integers(0, 10, size=(steps, batch)), jnp.int32)
        params = model.init(jax.random.key(0), x[0])["params"]
        per_example = lambda p, xi, yi: optax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
            model.apply({"params": p}, xi), yi)
        mean_loss = lambda p, xb, yb: jnp.mean(jax.vmap(lambda a, b: per_example(p, a, b))(xb, yb))  # noqa: E731
        data = (x, y)
    else:
        model = MODELS[name]()
        r = jnp.asarray(rng.normal(size=(steps, walkers, 12)), jnp.float32)
        params = model.init(jax.random.key(0), r[0, 0])["params"]
        per_example = lambda p, ri: model.apply({"params": p}, ri)  # noqa: E731
        mean_loss = lambda p, rb: jnp.mean(jax.vmap(lambda a: per_example(p, a))(rb))  # noqa: E731
        data = (r,)
    return params, per_example, mean_loss, data


def n_params(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
