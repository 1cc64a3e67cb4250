"""Capture of per-example layer inputs and output gradients of Flax linen ``nn.Dense`` layers.

SINGD needs, for every dense layer, the inputs ``a`` and the gradients ``g`` of a per-example scalar
w.r.t. the layer's outputs. They are captured without changing the model: a Flax method interceptor
(``nn.intercept_methods``) records each ``nn.Dense.__call__`` input and adds a zero "perturbation"
``eps`` to its output; the gradient w.r.t. ``eps`` is ``g`` (Flax's ``perturb`` idea, done through an
argument instead of a variable collection, so any ``model.apply`` call inside your function works).
One forward and one backward pass give the objective's parameter gradient and the statistics together.

Two uses:

* per-example loss (supervised training)::

      def per_example_loss(params, x, y):          # ONE example: x (d,), y ()
          logits = model.apply({"params": params}, x)
          return optax.softmax_cross_entropy_with_integer_labels(logits, y)

      loss, grads, stats = value_grad_and_stats(per_example_loss, params, xs, ys)  # mean over examples

* VMC, per-sample log-amplitude: ``g = d log|psi(x_n)| / d(layer output)`` per walker::

      def logpsi(params, r):                       # ONE walker: r (3 n_electrons,)
          return model.apply({"params": params}, r)

      logpsi_n, grads, stats = value_grad_and_stats(logpsi, params, walkers,
                                                     weights=2 * (e_loc - e_loc.mean()) / n)
      # grads = sum_n weights_n grad log|psi(x_n)| (the VMC gradient), stats from log|psi| itself
      # or, statistics only: logpsi_n, stats = layer_statistics(logpsi, params, walkers)

With ``batched=True`` the function takes the whole batch and returns one value per example ``(N,)``
(valid when examples do not interact, e.g. no batch norm, and when the model is applied to the whole
batch directly -- not through a ``jax.vmap`` inside the function, which hides the example axis; use the
per-example form then). Layers applied several times per example, or
to inputs with extra axes (e.g. every electron), contribute several rows per example:
``LayerStats.inputs (N, P, d_in)``, ``out_grads (N, P, d_out)``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import flax.linen as nn

__all__ = ["LayerStats", "value_grad_and_stats", "layer_statistics", "capture_dense"]


class LayerStats(NamedTuple):
    """Per-example statistics of one dense layer: ``inputs (N, P, d_in)`` and ``out_grads (N, P, d_out)``
    (``g = d f_n / d(layer output)``), with P rows per example."""

    inputs: jax.Array
    out_grads: jax.Array


_local = threading.local()


class _Recorder:
    def __init__(self, eps):
        self.eps = eps                    # None while probing shapes
        self.inputs = {}
        self.shapes = {}
        self.calls = {}


def _interceptor(next_fun, args, kwargs, context):
    rec = getattr(_local, "recorder", None)

    if rec is None or context.method_name != "__call__" or not isinstance(context.module, nn.Dense):
        return next_fun(*args, **kwargs)
    x = args[0] if args else kwargs["inputs"]
    y = next_fun(*args, **kwargs)
    path = "/".join(str(p) for p in context.module.path)
    i = rec.calls.get(path, 0)
    rec.calls[path] = i + 1
    key = f"{path}#{i}"
    rec.inputs[key] = x
    if rec.eps is None:
        rec.shapes[key] = jax.ShapeDtypeStruct(y.shape, y.dtype)
    else:
        y = y + rec.eps[key]
    return y


@contextlib.contextmanager
def capture_dense(eps=None):
    """Context in which every ``nn.Dense`` call is recorded (input) and perturbed (output + eps[key]);
    yields the recorder. Keys are ``"<module path>#<call index>"``. Low-level; prefer
    :func:`value_grad_and_stats`."""

    prev = getattr(_local, "recorder", None)
    rec = _Recorder(eps)
    _local.recorder = rec
    try:
        with nn.intercept_methods(_interceptor):
            yield rec
    finally:
        _local.recorder = prev


def _call(fn, eps, params, args):
    with capture_dense(eps) as rec:
        value = fn(params, *args)
    return value, rec


def _stats(inputs: dict, eps_grads: dict, n: int) -> dict:
    by_layer: dict[str, list] = {}
    for key in inputs:
        path = key.rsplit("#", 1)[0]
        a = inputs[key].reshape(n, -1, inputs[key].shape[-1])
        g = eps_grads[key].reshape(n, -1, eps_grads[key].shape[-1])
        by_layer.setdefault(path, []).append((a, g))
    return {p: LayerStats(jnp.concatenate([a for a, _ in v], axis=1), jnp.concatenate([g for _, g in v], axis=1))
            for p, v in by_layer.items()}


def value_grad_and_stats(fn: Callable, params, *args, weights=None, batched: bool = False):
    """Values, parameter gradient and per-layer statistics in one forward and backward pass.

    Args:
      fn: ``fn(params, *example) -> scalar`` for ONE example (vmapped over the leading axis of ``args``),
        or with ``batched=True`` ``fn(params, *args) -> (N,)``. It may call ``model.apply`` any way it
        likes; every ``flax.linen.Dense`` call inside is captured.
      params: the parameters (what ``fn`` differentiates).
      args: arrays with a leading example axis N.
      weights: ``(N,)`` weights of the gradient; default ``1/N`` (the gradient of the mean).
      batched: see ``fn``.

    Returns:
      ``(value, grads, stats)``: ``value`` the weighted sum ``sum_n w_n f_n`` (the mean by default),
      ``grads`` its gradient w.r.t. ``params``, ``stats`` a dict layer path -> :class:`LayerStats` with
      ``out_grads = d f_n / d(layer output)`` (unweighted, per example).
    """
    values, grads, stats = _run(fn, params, args, weights, batched, need_grads=True)
    w = _weights(weights, values)
    return jnp.sum(w * values), grads, stats


def layer_statistics(fn: Callable, params, *args, batched: bool = False):
    """``(values (N,), stats)``: the per-example values of ``fn`` and the layer statistics (one forward,
    one backward; no parameter gradient). For VMC pass the per-walker ``log|psi|``."""
    values, _, stats = _run(fn, params, args, None, batched, need_grads=False)
    return values, stats


def _weights(weights, values):
    n = values.shape[0]
    if weights is None:
        return jnp.full((n,), 1.0 / n, values.dtype)
    w = jnp.asarray(weights, values.dtype)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},) (one per example); got {w.shape}")
    return w


def _run(fn, params, args, weights, batched, need_grads):
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    if not args:
        raise ValueError("pass at least one batched argument (leading axis = examples)")
    sizes = {jnp.shape(a)[0] if jnp.ndim(a) else None for a in jax.tree.leaves(args)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"all arguments need the same leading example axis; got leading sizes {sizes}")
    n = sizes.pop()
    if weights is not None and jnp.shape(weights) != (n,):
        raise ValueError(f"weights must have shape ({n},) (one per example); got {jnp.shape(weights)}")

    # 1. shapes of every captured layer output (abstract evaluation: no FLOPs)
    if batched:
        def probe(p, *a):
            v, rec = _call(fn, None, p, a)
            return v, rec.shapes
        out_shape, shapes = jax.eval_shape(lambda p, *a: probe(p, *a), params, *args)
        if out_shape.shape != (n,):
            raise ValueError(f"with batched=True fn must return one value per example ({n},); got {out_shape.shape}")
        eps = {k: jnp.zeros(s.shape, s.dtype) for k, s in shapes.items()}
    else:
        one_args = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a)[1:], jnp.result_type(a)), args)

        def probe(p, *a):
            v, rec = _call(fn, None, p, a)
            return v, rec.shapes
        out_shape, shapes = jax.eval_shape(probe, params, *one_args)
        if out_shape.shape != ():
            raise ValueError(f"fn must return a scalar for one example; got shape {out_shape.shape} "
                             "(use batched=True for a batched function)")
        eps = {k: jnp.zeros((n,) + s.shape, s.dtype) for k, s in shapes.items()}
    if not eps:
        raise ValueError("no flax.linen.Dense layer was called inside fn; nothing to capture")

    # 2. forward with eps, backward for params and eps
    def forward(p, e):
        if batched:
            v, rec = _call(fn, e, p, args)
            return v, rec.inputs
        def one(e_n, *a_n):
            v, rec = _call(fn, e_n, p, a_n)
            return v, rec.inputs
        return jax.vmap(one)(e, *args)

    if batched:
        bad = {k: s.shape for k, s in shapes.items() if not s.shape or s.shape[0] != n}
        if bad:
            raise ValueError(
                f"with batched=True every Dense must see the whole batch (leading axis {n}); layer outputs "
                f"{bad} do not -- a jax.vmap inside fn hides the example axis: use batched=False with a "
                "per-example fn instead")
    values, vjp_fn, inputs = jax.vjp(forward, params, eps, has_aux=True)
    ones = jnp.ones_like(values)
    if need_grads and weights is None:
        g_sum, eps_grads = vjp_fn(ones)
        grads = jax.tree.map(lambda x: x / n, g_sum)
    else:
        _, eps_grads = vjp_fn(ones)
        grads = vjp_fn(_weights(weights, values))[0] if need_grads else None
    return values, grads, _stats(inputs, eps_grads, n)
