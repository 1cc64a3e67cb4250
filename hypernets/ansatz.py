"""Hypernetwork circuits as ``qsim.Circuit`` objects.

``depth`` always counts **layer steps** (not pairs of them). One layer step ``d`` (d = 0, 1, ...) of the
brickwork ansatz (the quantum-hypernetwork paper's circuit):

1. CNOT(j, j+1) for j = d mod 2, d mod 2 + 2, ... (< n - 1): a brickwork that alternates between
   even and odd pairs from one step to the next;
2. RY(theta) on every qubit;
3. PhaseShift(phi) on every qubit.

So a depth-D brickwork circuit on n qubits has ``2 n D`` trainable angles (17 qubits, 4 steps: 136),
slot order: step by step, the n RY angles then the n phase angles. It starts in |0...0>; the first
step's CNOTs act on |0...0> and do nothing, as in the reference. Initial angles are uniform in
[0, 2 pi) (:func:`init_params`).

``hardware_efficient``: per layer step, RY and RZ on every qubit, then a CNOT ladder (0,1), (1,2), ...
(linear connectivity, as on most devices); also ``2 n D`` angles.
"""

from __future__ import annotations

import math

__all__ = ["brickwork", "hardware_efficient", "make_ansatz", "init_params", "ANSATZE"]


def _check(n_qubits, depth):
    for name, v in (("n_qubits", n_qubits), ("depth", depth)):
        if isinstance(v, bool) or not isinstance(v, int) and not hasattr(v, "__index__"):
            raise TypeError(f"{name} must be an int, got {v!r}")
    if n_qubits < 1:
        raise ValueError(f"n_qubits must be >= 1, got {n_qubits}")
    if depth < 1:
        raise ValueError(f"depth (layer steps) must be >= 1, got {depth}")


def brickwork(n_qubits: int, depth: int):
    """The paper's ansatz (module docstring): ``depth`` layer steps, ``2 * n_qubits * depth`` angles."""
    import qsim

    _check(n_qubits, depth)
    c = qsim.Circuit(int(n_qubits))
    for d in range(int(depth)):
        for j in range(d % 2, n_qubits - 1, 2):
            c.cnot(j, j + 1)
        for j in range(n_qubits):
            c.ry(j)
        for j in range(n_qubits):
            c.phaseshift(j)
    return c


def hardware_efficient(n_qubits: int, depth: int):
    """RY + RZ on every qubit then a CNOT ladder, per layer step; ``2 * n_qubits * depth`` angles."""
    import qsim

    _check(n_qubits, depth)
    c = qsim.Circuit(int(n_qubits))
    for _ in range(int(depth)):
        for j in range(n_qubits):
            c.ry(j)
        for j in range(n_qubits):
            c.rz(j)
        for j in range(n_qubits - 1):
            c.cnot(j, j + 1)
    return c


ANSATZE = {"brickwork": brickwork, "hardware_efficient": hardware_efficient}


def make_ansatz(name: str, n_qubits: int, depth: int, layout=None):
    """An ansatz by name; with ``layout`` given, checks that it has one bit per qubit."""
    if name not in ANSATZE:
        raise ValueError(f"unknown ansatz {name!r}; known: {sorted(ANSATZE)}")
    if layout is not None:
        layout.check_num_qubits(n_qubits)
    return ANSATZE[name](n_qubits, depth)


def init_params(key, circuit, dtype=None):
    """Angles uniform in [0, 2 pi): ``(circuit.num_params,)`` (float32 unless x64 / ``dtype``)."""
    import jax
    import jax.numpy as jnp

    dtype = jnp.dtype(dtype or (jnp.float64 if jax.config.jax_enable_x64 else jnp.float32))
    with jax.enable_x64(bool(jax.config.jax_enable_x64) or dtype == jnp.float64):
        return jax.random.uniform(key, (circuit.num_params,), dtype=dtype, minval=0.0, maxval=2 * math.pi)


# -- a specialised simulator for these two layered ansatze ---------------------------------------
# The state is kept as two real planes (re, im) of shape (2, 2^n). One layer step is
# (CNOTs) -> (per qubit: RY then a phase gate) -> (CNOTs); every gate is a reshape-and-slice update that
# XLA fuses into a few passes, and the gradient is the adjoint method written out by hand (undo each gate
# on the state and on the cotangent, reading off dL/dangle = <v| G |x> on the way back), which avoids the
# slow transposes of slicing/stacking that jax.grad would produce. It computes exactly
# qsim.probs(make_ansatz(name, n, depth), params) and its gradient (the tests check both).
def _cnot_adjacent(r, n: int, c: int):
    """CNOT(c, c+1) on real planes ``r (2, 2^n)``."""
    import jax.numpy as jnp

    t = r.reshape(2, 2 ** c, 2, 2, 2 ** (n - 2 - c))
    return jnp.stack([t[:, :, 0], t[:, :, 1, ::-1]], axis=2).reshape(2, -1)


def _rot(re, im, cos, sin):
    """(re + i im) * (cos + i sin)."""
    return re * cos - im * sin, re * sin + im * cos


def make_probs_fn(name: str, n_qubits: int, depth: int):
    """A pure function ``params (2 n depth,) -> probs (2^n,)`` for ansatz ``name``, jit-able, with an
    adjoint-method gradient (``jax.grad`` works through it). float32 params compute in float32,
    float64 in float64. Same slot order as the ``qsim`` circuit from :func:`make_ansatz`."""
    import jax
    import jax.numpy as jnp

    _check(n_qubits, depth)
    if name not in ANSATZE:
        raise ValueError(f"unknown ansatz {name!r}; known: {sorted(ANSATZE)}")
    n, D = int(n_qubits), int(depth)
    brick = name == "brickwork"

    def cnots_before(r, d):
        if brick:
            for j in range(d % 2, n - 1, 2):   # disjoint pairs: order irrelevant, self-inverse
                r = _cnot_adjacent(r, n, j)
        return r

    def cnots_after(r, inverse=False):
        if not brick:
            order = range(n - 2, -1, -1) if inverse else range(n - 1)
            for j in order:
                r = _cnot_adjacent(r, n, j)
        return r

    def halves(r, j):
        t = r.reshape(2, 2 ** j, 2, 2 ** (n - 1 - j))
        return t[:, :, 0], t[:, :, 1]          # (2, A, B) each: planes x halves

    def join(a, b):
        return jnp.stack([a, b], axis=2).reshape(2, -1)

    def qubit_fwd(r, j, c, s, cp, sp, ca, sa):
        a, b = halves(r, j)
        a1, b1 = c * a - s * b, s * a + c * b                 # RY
        if brick:
            b2 = jnp.stack(_rot(b1[0], b1[1], cp, sp))       # phase shift on |1>
            return join(a1, b2)
        a2 = jnp.stack(_rot(a1[0], a1[1], ca, -sa))          # RZ: e^{-i phi/2} on |0>, e^{+i phi/2} on |1>
        b2 = jnp.stack(_rot(b1[0], b1[1], ca, sa))
        return join(a2, b2)

    def trig(lp):
        th, ph = lp[0], lp[1]
        return (jnp.cos(th / 2), jnp.sin(th / 2), jnp.cos(ph), jnp.sin(ph), jnp.cos(ph / 2), jnp.sin(ph / 2))

    def forward_state(params):
        r = jnp.zeros((2, 2 ** n), params.dtype).at[0, 0].set(1)
        lp = params.reshape(D, 2, n)
        for d in range(D):
            r = cnots_before(r, d)
            c, s, cp, sp, ca, sa = trig(lp[d])
            for j in range(n):
                r = qubit_fwd(r, j, c[j], s[j], cp[j], sp[j], ca[j], sa[j])
            r = cnots_after(r)
        return r

    def check(params):
        if params.shape != (2 * n * D,):
            raise ValueError(f"{name} with {n} qubits and depth {D} takes {2 * n * D} params, got shape "
                             f"{params.shape}")

    @jax.custom_vjp
    def probs(params):
        check(params)
        r = forward_state(params)
        return (r * r).sum(0)

    def fwd(params):
        check(params)
        r = forward_state(params)
        return (r * r).sum(0), (params, r)

    def bwd(res, g):
        params, x = res
        v = 2 * g[None, :] * x                                # dL/d(re, im)
        lp = params.reshape(D, 2, n)
        grads = []
        for d in range(D - 1, -1, -1):
            x, v = cnots_after(x, inverse=True), cnots_after(v, inverse=True)
            c, s, cp, sp, ca, sa = trig(lp[d])
            gth, gph = [None] * n, [None] * n
            for j in range(n - 1, -1, -1):
                xa, xb = halves(x, j)
                va, vb = halves(v, j)
                if brick:
                    # d/dphi of the phase on |1>: i * b
                    gph[j] = jnp.sum(vb[1] * xb[0] - vb[0] * xb[1])
                    xb = jnp.stack(_rot(xb[0], xb[1], cp[j], -sp[j]))
                    vb = jnp.stack(_rot(vb[0], vb[1], cp[j], -sp[j]))
                else:
                    gph[j] = 0.5 * (jnp.sum(vb[1] * xb[0] - vb[0] * xb[1]) - jnp.sum(va[1] * xa[0] - va[0] * xa[1]))
                    xa = jnp.stack(_rot(xa[0], xa[1], ca[j], sa[j]))
                    va = jnp.stack(_rot(va[0], va[1], ca[j], sa[j]))
                    xb = jnp.stack(_rot(xb[0], xb[1], ca[j], -sa[j]))
                    vb = jnp.stack(_rot(vb[0], vb[1], ca[j], -sa[j]))
                # d/dtheta of RY: (1/2) (-b, a)
                gth[j] = 0.5 * (jnp.sum(vb * xa) - jnp.sum(va * xb))
                cj, sj = c[j], s[j]
                x = join(cj * xa + sj * xb, -sj * xa + cj * xb)
                v = join(cj * va + sj * vb, -sj * va + cj * vb)
            x, v = cnots_before(x, d), cnots_before(v, d)
            grads.append(jnp.stack([jnp.stack(gth), jnp.stack(gph)]))
        return (jnp.stack(grads[::-1]).reshape(-1).astype(params.dtype),)

    probs.defvjp(fwd, bwd)
    return probs
