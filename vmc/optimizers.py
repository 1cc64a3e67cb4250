"""Optimisers for VMC: optax Adam/LAMB/SGD, stochastic reconfiguration (natural gradient), SINGD.

All share one interface, :class:`~vmc.optimizer_api.VMCOptimizer`, shaped like optax's
``GradientTransformationExtraArgs`` (the walkers are an extra argument; see vmc.optimizer_api, which
also says how an optimiser that is not an optax transformation, such as kfac-jax's, enters)::

    opt = make_optimizer("sr", learning_rate=0.05, ...)
    opt_state = opt.init(params)
    updates, opt_state = opt.update(grads, opt_state, params, walkers=walkers)   # walkers (B, 3N)
    params = optax.apply_updates(params, updates)

Adam, LAMB and SGD are the optax transformations themselves; SR is :func:`sr` and SINGD
``vmc.singd_adapter.make`` (``qsim.optim.singd`` given per-walker statistics), both optax
transformations taking ``walkers=``. ``walkers`` lets natural-gradient methods build the Fisher
matrix from per-walker ∇θ log|psi|.
SR also offers ``update_fr(c, state, params, walkers) -> (updates, state, log|psi| (B,))`` for a
Fisher-Rao gradient given by its coefficients c (B,), g = mean_i c_i ∇θ log|psi(x_i)|
(vmc.objectives.fisher_rao_terms): it forms g from the per-walker Jacobian that SR builds anyway,
so the training step needs no separate backward pass (same update, one backward pass fewer), and
without ``project`` solves in walker space as minSR does (δ = Aᵀ(AAᵀ + λI)⁻¹c/√B, one B x B
solve, no P-sized products besides AAᵀ and Aᵀy); other optimisers have ``update_fr = None``.
The learning rate decays as lr / (1 + t / decay) (the reference code's schedule with decay = T/2).

SR ("sr"): δ = (S + λ I)^{-1} g with S the covariance of ∇θ log|psi| over walkers, applied through
the Woodbury identity (a B x B solve, B = walkers), then scaled so that lr² δᵀSδ <= norm_constraint
(the KFAC-style trust region).

With ``project=True`` the gradient is first projected onto the span of the centred per-walker scores
(g -> Aᵀ(AAᵀ + λI)^{-1} A g): δ = Aᵀ(AAᵀ + λI)^{-1}(AAᵀ + λI)^{-1} A g. A Fisher-Rao gradient
2 E[(Ẽ - mean Ẽ) ∇θ log|psi|] already lies in that span (nothing changes but a λ-shrinkage); the
WQMC gradient E[<g, ∇x∇θ log q>] does not. With fewer walkers than parameters the sample Fisher is
singular, and its out-of-span component would be multiplied by 1/λ and swamp the step (it then
behaves like plain normalised gradient descent). KFAC avoids this with a full-rank Kronecker
approximation; with SR the projection is the finite-sample equivalent (used for wasserstein/joint).
The projected step weights the sample Fisher's eigendirections by σ²/(σ² + λ)², largest at σ² = λ,
where B walkers estimate the Fisher worst: at λ = 1e-3 its true Fisher length was 3x the one the
trust region measures (He, 128 walkers); λ = 0.1 for the WQMC direction removes that (docs/vmc.md).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from vmc import singd_adapter
from vmc.optimizer_api import VMCOptimizer, from_transformation, schedule

__all__ = ["VMCOptimizer", "make_optimizer", "OPTIMIZERS", "schedule", "sr", "SRState", "WQMC_SR_LEARNING_RATE"]

OPTIMIZERS = ("adam", "lamb", "sgd", "sr", "singd")
# SR's default learning rate for the WQMC direction (projected): He runs held the energy minimum at
# 5e-3 and left it at 1.25e-2 (docs/vmc.md); Fisher-Rao keeps the "sr" default below (0.1).
WQMC_SR_LEARNING_RATE = 5e-3
_DEFAULT_LR = {"adam": 1e-3, "lamb": 1e-3, "sgd": 1e-2, "sr": 0.1, "singd": 5e-2}
_OPTAX = {"adam": optax.adam, "lamb": optax.lamb, "sgd": optax.sgd}


class SRState(NamedTuple):
    count: jax.Array


def _kernel(O):
    """K = AAᵀ (B x B, float64) of the centred scores A = (O - mean O)/√B. float64 O: the product
    OOᵀ centred in walker space (K = H OOᵀ H / B, H = I - 11ᵀ/B), since XLA's CPU backend fuses a
    centring of O into the P-long product and then runs it about 2x slower (LiH, 5.3k parameters);
    float32 O is centred first, as centring OOᵀ would cancel float32 digits (its product AAᵀ at HIGHEST
    precision: on GPUs a float32 product is TF32 by default)."""
    B = O.shape[0]
    if O.dtype != jnp.float64:
        A = O - jnp.mean(O, axis=0)
        return jnp.matmul(A, A.T, precision=jax.lax.Precision.HIGHEST).astype(jnp.float64) / B
    G = O @ O.T
    m = jnp.mean(G, axis=1)
    return (G - m[:, None] - m[None, :] + jnp.mean(m)) / B


def _centred(O):
    return (O - jnp.mean(O, axis=0)) / jnp.sqrt(O.shape[0])


def sr(log_psi, learning_rate: float, decay: float | None, damping: float, norm_constraint: float,
       project: bool = False, kernel_dtype=None) -> VMCOptimizer:
    """Stochastic reconfiguration (module docstring) as an optax transformation taking ``walkers=``,
    with its fused Fisher-Rao ``update_fr``; the learning rate (``schedule(learning_rate, decay)``) and
    the trust region are part of the step."""
    lr_fn = schedule(learning_rate, decay)
    highest = jax.lax.Precision.HIGHEST  # on GPUs a float32 product is TF32 by default
    per_walker = jax.vmap(jax.value_and_grad(log_psi), (None, 0))

    def scores(params, walkers):
        """log|psi| (B,) and the per-walker Jacobian O (B, P) of log|psi| (in ``kernel_dtype`` when
        given: the parameters are cast before differentiating), with the unravel of P."""
        p, x = params, walkers
        if kernel_dtype is not None:
            p = jax.tree_util.tree_map(
                lambda a: a.astype(kernel_dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, params)
            x = walkers.astype(kernel_dtype)
        lp, jac = per_walker(p, x)
        O = jax.vmap(lambda t: ravel_pytree(t)[0])(jac)
        return lp, O, ravel_pytree(params)[1]

    def finish(delta, quad, state):
        """The step -scale · δ with lr² δᵀ(S + λ)δ <= norm_constraint (quad = δᵀ(S + λ)δ)."""
        lr = lr_fn(state.count)
        scale = jnp.minimum(lr, jnp.sqrt(norm_constraint / jnp.maximum(quad, 1e-30)))
        return -scale * delta, SRState(state.count + 1)

    def step(g, O, state):
        B = O.shape[0]
        A = _centred(O.astype(jnp.float64))
        Ag = A @ g
        T = _kernel(O) + damping * jnp.eye(B, dtype=jnp.float64)
        if project:
            delta = A.T @ jnp.linalg.solve(T, jnp.linalg.solve(T, Ag))
        else:
            delta = (g - A.T @ jnp.linalg.solve(T, Ag)) / damping
        quad = jnp.sum((A @ delta) ** 2) + damping * jnp.sum(delta**2)
        return finish(delta, quad, state)

    def init(params):
        return SRState(jnp.zeros((), jnp.int32))

    def update(grads, state, params=None, *, walkers=None, **extra):
        if params is None or walkers is None:
            raise ValueError("sr needs params and walkers: opt.update(grads, state, params, walkers=x)")
        _, O, unravel = scores(params, walkers)
        d, state = step(ravel_pytree(grads)[0], O, state)
        return unravel(d), state

    def update_fr(c, state, params, walkers):
        lp, O, unravel = scores(params, walkers)
        B = O.shape[0]
        c = c.astype(jnp.float64)
        if project:
            g = jnp.matmul(c.astype(O.dtype), O, precision=highest).astype(jnp.float64) / B
            d, state = step(g, O, state)  # g = mean_i c_i ∇θ log|psi_i|
        else:
            # minSR: c sums to zero, so g = Aᵀe with e = c / sqrt(B); then (S + λ)⁻¹g = Aᵀy with
            # y = (K + λ)⁻¹e, K = AAᵀ (one B x B solve), and δᵀ(S + λ)δ = yᵀKe; Aᵀy = Oᵀ(y - mean y)/√B
            K = _kernel(O)
            e = c / jnp.sqrt(B)
            y = jnp.linalg.solve(K + damping * jnp.eye(B, dtype=K.dtype), e)
            hy = (y - jnp.mean(y)) / jnp.sqrt(B)
            delta = jnp.matmul(hy.astype(O.dtype), O, precision=highest).astype(jnp.float64)
            d, state = finish(delta, y @ (K @ e), state)
        return unravel(d), state, lp

    return VMCOptimizer(optax.GradientTransformationExtraArgs(init, update), "sr", update_fr)


def make_optimizer(name: str, *, log_psi: Callable | None = None, module=None,
                   learning_rate: float | None = None, decay: float | None = 1000.0,
                   damping: float = 1e-3, norm_constraint: float = 1e-3, singd_options: dict | None = None,
                   project: bool = False, kernel_dtype=None) -> VMCOptimizer:
    """An optimiser by name (see OPTIMIZERS). ``log_psi(params, x)`` is needed by "sr" and "singd"
    (per-walker statistics), ``module`` (the flax module) by "singd"; ``project`` (SR only) projects
    the gradient onto the span of the per-walker scores first (see the module docstring);
    ``kernel_dtype`` (SR only, e.g. float32) is the dtype SR's per-walker Jacobian, its kernel AAᵀ and
    the product Aᵀy are computed in (parameters and walkers cast before differentiating; the B x B
    solve stays float64; default: the parameters' dtype)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    lr = _DEFAULT_LR[name] if learning_rate is None else float(learning_rate)
    if not lr > 0:
        raise ValueError(f"learning rate must be positive, got {learning_rate!r}")
    if name in _OPTAX:
        return from_transformation(_OPTAX[name](schedule(lr, decay)), name)
    if log_psi is None:
        raise ValueError(f"optimizer {name!r} needs log_psi")
    if name == "sr":
        return sr(log_psi, lr, decay, damping, norm_constraint, project=bool(project), kernel_dtype=kernel_dtype)
    return singd_adapter.make(log_psi, module, schedule(lr, decay), damping, singd_options or {})
