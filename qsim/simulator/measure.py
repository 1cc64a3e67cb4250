"""Measurements of a state vector ``(2**n,)`` (wire 0 the most significant bit): marginal
probabilities and Pauli-sum expectations. Pure JAX; they work on any state, from any engine.

Pauli-sum expectations never build a matrix: terms are grouped by their X/Y flip pattern; each group
costs one flipped copy of the state and one Walsh-Hadamard pass over the wires it touches.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax.numpy as jnp
from jax import lax

from qsim.circuits.operators import PauliSum, pauli_masks
from qsim.infra import validation

__all__ = ["state_probs", "state_expval"]


def state_probs(state, wires: Sequence[int] | None = None, n_wires: int | None = None):
    """Probabilities of a state ``(2**n,)``, marginalised onto ``wires`` (in the order given)."""
    p = jnp.abs(state) ** 2
    if wires is None:
        return p
    n = int(round(math.log2(state.shape[-1]))) if n_wires is None else n_wires
    wires = validation.wires(wires, n, "state_probs")
    t = p.reshape(p.shape[:-1] + (2,) * n)
    lead = p.ndim - 1
    other = tuple(lead + w for w in range(n) if w not in wires)
    t = jnp.sum(t, axis=other)  # remaining axes in increasing wire order
    perm = [sorted(wires).index(w) for w in wires]
    t = jnp.transpose(t, tuple(range(lead)) + tuple(lead + i for i in perm))
    return t.reshape(p.shape[:-1] + (2 ** len(wires),))


def _wht_axes(t, axes):
    """Unnormalised Walsh-Hadamard transform along the given size-2 axes."""
    for ax in axes:
        a = jnp.take(t, 0, axis=ax)
        b = jnp.take(t, 1, axis=ax)
        t = jnp.stack([a + b, a - b], axis=ax)
    return t


def state_expval(state, observable: PauliSum, n_wires: int | None = None):
    """``<psi|H|psi>`` for a PauliSum without building a matrix (real for Hermitian ``H``)."""
    if not isinstance(observable, PauliSum):
        raise TypeError(f"observable must be a qsim PauliSum, got {type(observable).__name__}")
    n = int(round(math.log2(state.shape[-1]))) if n_wires is None else n_wires
    if observable.wires and max(observable.wires) >= n:
        raise ValueError(f"observable acts on wire {max(observable.wires)}, outside a {n}-wire state")
    psi = state.reshape((2,) * n)
    groups: dict[int, list] = {}
    for c, s in observable:
        x, z, ny = pauli_masks(s, n)
        groups.setdefault(x, []).append((c * (1j ** ny), z))
    total = 0.0
    for x, terms in groups.items():
        flip_axes = [w for w in range(n) if (x >> (n - 1 - w)) & 1]
        # w = conj(psi) * flip(psi) in real arithmetic (XLA's complex multiply is scalar code on CPU)
        pr, pi = jnp.real(psi), jnp.imag(psi)
        if flip_axes:
            fr, fi = jnp.flip(pr, axis=flip_axes), jnp.flip(pi, axis=flip_axes)
            wr, wi = pr * fr + pi * fi, pr * fi - pi * fr
        else:
            wr, wi = pr * pr + pi * pi, None
        zaxes = sorted({a for _, z in terms for a in range(n) if (z >> (n - 1 - a)) & 1})
        if len(zaxes) > 6 and len(terms) <= 4 * n:
            # many wires, few terms (e.g. sum_i Z_i): one fused pass, sum(w * diagonal) with the
            # diagonal a sum of broadcast +-1 factors (a Walsh-Hadamard over every wire would cost
            # one pass per wire)
            sgn = [jnp.asarray([1.0, -1.0], wr.dtype).reshape([2 if b == a else 1 for b in range(n)])
                   for a in range(n)]
            dr, di = 0.0, 0.0
            for c, z in terms:
                f = complex(c * (-1) ** bin(x & z).count("1"))
                fac = None
                for a in range(n):
                    if (z >> (n - 1 - a)) & 1:
                        fac = sgn[a] if fac is None else fac * sgn[a]
                fac = 1.0 if fac is None else fac
                if f.real:
                    dr = dr + f.real * fac
                if f.imag:
                    di = di + f.imag * fac
            def dot(a, d):
                return 0.0 if a is None or isinstance(d, float) else jnp.sum(a * d)
            total = total + (dot(wr, dr) - dot(wi, di)) + 1j * (dot(wr, di) + dot(wi, dr))
            continue
        w = wr if wi is None else lax.complex(wr, wi)
        other = tuple(a for a in range(n) if a not in zaxes)
        marg = jnp.sum(w, axis=other) if other else w
        if zaxes:
            marg = _wht_axes(marg, list(range(len(zaxes))))
            flat = marg.reshape(-1)
            for c, z in terms:
                idx = 0
                for a in zaxes:
                    idx = 2 * idx + ((z >> (n - 1 - a)) & 1)
                # (-1)^{popcount((i^x) & z)}: the x-part is a constant sign
                sign = (-1) ** bin(x & z).count("1")
                total = total + c * sign * flat[idx]
        else:
            for c, z in terms:
                total = total + c * marg
    if observable.is_hermitian():
        return jnp.real(total)
    return total
