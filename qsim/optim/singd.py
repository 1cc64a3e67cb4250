"""SINGD (structured inverse-free natural gradient descent, Lin et al. 2024) as an optax transformation.

Per dense layer with weight ``W (d_out x d_in)`` (a bias adds an input column of ones) SINGD keeps
structured factors ``K (d_in x d_in)``, ``C (d_out x d_out)`` (start at I) and their momenta ``m_K``,
``m_C`` (start at 0). Every ``update_interval`` (T) steps, from ``U = mean a a^T`` (layer inputs) and
``G = mean g g^T`` (gradients of the per-example objective w.r.t. the layer outputs):

    H_K = Pi(K^T U K),   H_C = Pi(C^T G C)
    m_K <- a1 m_K + 1/2 [ (tr H_C / d_out) H_K + damping (tr Pi(C^T C) / d_out) Pi(K^T K) - I ]
    m_C <- a1 m_C + 1/2 [ (tr H_K / d_in)  H_C + damping (tr Pi(K^T K) / d_in)  Pi(C^T C) - I ]
    K <- K (I - lr_cov m_K),   C <- C (I - lr_cov m_C)

and every step ``Delta = C C^T grad_W K K^T``, ``m <- momentum m + Delta + weight_decay W``,
``W <- W - learning_rate m`` (the returned update is ``-learning_rate m``). With ``cache_products`` (the
default for the dense structure) ``K K^T`` and ``C C^T`` are kept in the state and recomputed only at
factor updates, so a step applies one d x d product per side instead of two. IKFAC mode (``ikfac=True``)
drops the trace factors and sets a1 = 0: then ``K K^T -> (U + damping I)^-1`` and
``C C^T -> (G + damping I)^-1`` on a fixed batch (KFAC's damped inverse, without inverting anything).
Pi projects onto the structure (see :mod:`qsim.optim.structures`). No inverse or decomposition appears
anywhere, so the factors can live in bfloat16 (``factor_dtype``).

Parameters outside a supported layer -- anything that is not a ``{"kernel": (d_in, d_out),
"bias": (d_out,)?}`` node of the params tree, or a layer excluded by ``layers`` -- are updated by
``fallback`` (default: the same update with K = C = I, i.e. SGD with the same learning rate, momentum and
weight decay: ``optax.chain(add_decayed_weights(weight_decay), trace(momentum), scale_by_learning_rate(lr))``).

Calling convention (statistics are extra arguments of ``update``)::

    tx = singd(learning_rate=1e-3, structure="diagonal")
    opt_state = tx.init(params)                                   # params: the Flax "params" collection
    loss, grads, stats = value_grad_and_stats(per_example_loss, params, xs, ys)
    updates, opt_state = tx.update(grads, opt_state, params, layer_stats=stats)
    params = optax.apply_updates(params, updates)

Between factor updates (steps whose count is not a multiple of ``update_interval``) the statistics are
not used: pass ``layer_stats=None`` there and compute the gradient without capturing anything. In a
jitted step choose the branch with ``lax.cond(needs_layer_stats(state, T), ...)`` (only the taken branch
runs); outside jit choose it on the host. Without statistics a call only preconditions (the factors stay
unchanged); an eager call without them at a factor-update step raises ValueError::

    def step(params, state, batch):
        def with_stats(p, s):
            loss, g, st = value_grad_and_stats(per_example_loss, p, *batch)
            return (loss,) + tx.update(g, s, p, layer_stats=st)
        def without(p, s):
            loss, g = jax.value_and_grad(mean_loss)(p, *batch)
            return (loss,) + tx.update(g, s, p)
        loss, updates, state = jax.lax.cond(needs_layer_stats(state, T), with_stats, without, params, state)

``layer_stats`` maps a layer path ``"Block_0/Dense_1"`` (the module path, equal to the params path) to
``LayerStats(inputs (N, P, d_in), out_grads (N, P, d_out))`` -- see :mod:`qsim.optim.capture`; every
factored layer must have statistics at every call. With P positions per example (weight sharing, e.g.
one Dense applied to every electron) the KFAC-expand convention is used: ``U = sum a a^T / (N P)``,
``G = sum g g^T / N``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from .capture import LayerStats
from .structures import STRUCTURES, gram_left, gram_self, make_structure

__all__ = ["singd", "SINGDState", "LayerFactors", "find_dense_layers", "needs_layer_stats"]


class LayerFactors(NamedTuple):
    """Compact structured factors of one layer (see :mod:`qsim.optim.structures`), and with
    ``cache_products`` the dense symmetric products ``PK = K K^T``, ``PC = C C^T`` (else None)."""

    K: Any
    C: Any
    mK: Any
    mC: Any
    PK: Any = None
    PC: Any = None


class SINGDState(NamedTuple):
    count: jax.Array                 # int32 step counter
    factors: dict                    # layer path -> LayerFactors
    momentum: dict                   # layer path -> {"kernel": ..., "bias": ...} momentum of the weights
    fallback: Any                    # state of the fallback transformation (other parameters)


def needs_layer_stats(state: SINGDState, update_interval: int):
    """Whether the next ``update`` with this state is a factor-update step (``state.count`` a multiple of
    ``update_interval``, the value given to :func:`singd`), i.e. needs ``layer_stats``. A bool array
    (traced under jit: use it in ``lax.cond``)."""
    if not isinstance(update_interval, int) or isinstance(update_interval, bool) or update_interval < 1:
        raise ValueError(f"update_interval must be a positive int; got {update_interval!r}")
    return state.count % update_interval == 0


def _path_str(path) -> str:
    parts = []
    for p in path:
        if isinstance(p, jax.tree_util.DictKey):
            parts.append(str(p.key))
        elif isinstance(p, jax.tree_util.GetAttrKey):
            parts.append(p.name)
        elif isinstance(p, jax.tree_util.SequenceKey):
            parts.append(str(p.idx))
        else:
            parts.append(str(p))
    return "/".join(parts)


def find_dense_layers(params) -> dict[str, tuple[int, int, bool]]:
    """Nodes of ``params`` that look like a dense layer -- a mapping with a 2-D ``kernel`` and optionally
    a 1-D ``bias`` of matching size, nothing else -- as ``{path: (d_in, d_out, has_bias)}``."""
    out = {}

    def visit(node, path):
        if isinstance(node, Mapping):
            keys = set(node)
            k = node.get("kernel")
            if (k is not None and hasattr(k, "ndim") and k.ndim == 2 and keys <= {"kernel", "bias"}):
                b = node.get("bias")
                if b is None or (hasattr(b, "ndim") and b.ndim == 1 and b.shape[0] == k.shape[1]):
                    out["/".join(path)] = (int(k.shape[0]), int(k.shape[1]), b is not None)
                    return
            for name, child in node.items():
                visit(child, path + (str(name),))

    visit(params, ())
    return out


def _check_number(name, value, low=None, low_open=True, high=None, high_open=True):
    if callable(value):
        return
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number; got {value!r}") from None
    ok = v == v and abs(v) != float("inf")
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
        hi = "" if high is None else (f"< {high}" if high_open else f"<= {high}")
        raise ValueError(f"{name} must be {' and '.join(s for s in (lo, hi) if s)}; got {value!r}")


def singd(learning_rate=1e-3, structure: str = "dense", *, damping: float = 1e-3, momentum: float = 0.9,
          weight_decay: float = 0.0, cov_momentum: float = 0.5, lr_cov: float = 1e-2, update_interval: int = 10,
          ikfac: bool = False, factor_dtype=None, block_size: int = 16, hierarchical_size: int = 16,
          cache_products: bool | None = None, layers: Sequence[str] | Callable[[str], bool] | None = None,
          fallback: optax.GradientTransformation | None = None) -> optax.GradientTransformationExtraArgs:
    """SINGD as an ``optax.GradientTransformationExtraArgs`` (see the module docstring for the update).

    Args:
      learning_rate: beta_2 > 0, a float or an optax schedule ``count -> lr``.
      structure: one of ``"dense"``, ``"diagonal"``, ``"block"``, ``"hierarchical"``, ``"tril_toeplitz"``,
        ``"triu_toeplitz"`` for both factors of every layer.
      damping: lambda > 0.
      momentum: alpha_2 in [0, 1) (momentum of the weights).
      weight_decay: gamma >= 0 (added to the preconditioned gradient, as in the notes).
      cov_momentum: alpha_1 in [0, 1) (momentum of the factors; ignored in IKFAC mode, where it is 0).
      lr_cov: beta_1 > 0, step of the factor updates.
      update_interval: T >= 1, factors are updated at steps 0, T, 2T, ...
      ikfac: IKFAC mode (alpha_1 = 0, no trace factors).
      factor_dtype: dtype of K, C, m_K, m_C and of the factor-update arithmetic (default float32);
        ``jnp.bfloat16`` works (no inverses). The preconditioning itself runs in the gradient's dtype.
      block_size: block size of ``"block"`` (the last block takes the remainder).
      hierarchical_size: size h of the dense corner of ``"hierarchical"``.
      cache_products: keep the dense products ``K K^T`` and ``C C^T`` in the state (in ``factor_dtype``),
        recomputed only at factor updates, so that each step costs one product per side
        (``P_K grad P_C``: 2 d_in^2 d_out + 2 d_out^2 d_in flops) instead of two. Default (None): on for
        ``"dense"`` (state +50%), off for the other structures, whose point is a state far below d^2 (on
        a Toeplitz structure it trades that memory for speed: d^2 per factor).
      layers: which detected dense layers to factor (paths like ``"Dense_0"`` or a predicate on the
        path); default all. The others go to ``fallback``.
      fallback: optax transformation for all other parameters (default: identity-preconditioned SINGD,
        i.e. SGD with the same learning rate, momentum and weight decay).

    ``update(grads, state, params, layer_stats=...)`` needs ``params`` (weight decay, layer layout) and, at
    factor-update steps (see :func:`needs_layer_stats`), ``layer_stats`` (a mapping path ->
    :class:`LayerStats`) for every factored layer; at the other steps ``layer_stats=None`` skips the capture.
    """
    if not isinstance(structure, str) or structure not in STRUCTURES:
        raise ValueError(f"unknown structure {structure!r}; known: {', '.join(STRUCTURES)}")
    _check_number("learning_rate", learning_rate, low=0.0)
    _check_number("damping", damping, low=0.0)
    _check_number("momentum", momentum, low=0.0, low_open=False, high=1.0)
    _check_number("weight_decay", weight_decay, low=0.0, low_open=False)
    _check_number("cov_momentum", cov_momentum, low=0.0, low_open=False, high=1.0)
    _check_number("lr_cov", lr_cov, low=0.0)
    if not isinstance(update_interval, int) or isinstance(update_interval, bool) or update_interval < 1:
        raise ValueError(f"update_interval must be a positive int; got {update_interval!r}")
    for name, v in (("block_size", block_size), ("hierarchical_size", hierarchical_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int; got {v!r}")
    fdtype = jnp.dtype(factor_dtype) if factor_dtype is not None else jnp.dtype(jnp.float32)
    if not jnp.issubdtype(fdtype, jnp.floating):
        raise TypeError(f"factor_dtype must be a floating dtype; got {factor_dtype!r}")
    if cache_products is None:
        cache_products = structure == "dense"
    if not isinstance(cache_products, bool):
        raise TypeError(f"cache_products must be a bool or None; got {cache_products!r}")
    if layers is not None and not callable(layers):
        layers = tuple(layers)
    a1 = 0.0 if ikfac else float(cov_momentum)
    if fallback is None:
        fallback = optax.chain(optax.add_decayed_weights(weight_decay), optax.trace(decay=momentum),
                               optax.scale_by_learning_rate(learning_rate))

    def lr_at(count):
        return learning_rate(count) if callable(learning_rate) else learning_rate

    def select(params):
        found = find_dense_layers(params)
        if layers is None:
            return found
        if callable(layers):
            return {p: v for p, v in found.items() if layers(p)}
        missing = [p for p in layers if p not in found]
        if missing:
            raise ValueError(f"layers {missing} are not dense layers of params; found: {sorted(found)}")
        return {p: found[p] for p in layers}

    def structs(d_in, d_out, has_bias):
        s_k = make_structure(structure, d_in + int(has_bias), fdtype, block_size, hierarchical_size)
        s_c = make_structure(structure, d_out, fdtype, block_size, hierarchical_size)
        return s_k, s_c

    def split(tree, chosen):
        """(leaves, treedef, {layer: {'kernel': i, 'bias': i}}, {rest_path: i})."""
        flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
        index = {_path_str(p): i for i, (p, _) in enumerate(flat)}
        layer_idx = {}
        for lp, (_, _, has_bias) in chosen.items():
            pre = lp + "/" if lp else ""
            layer_idx[lp] = {"kernel": index[pre + "kernel"]}
            if has_bias:
                layer_idx[lp]["bias"] = index[pre + "bias"]
        used = {i for d in layer_idx.values() for i in d.values()}
        rest = {p: i for p, i in index.items() if i not in used}
        return [leaf for _, leaf in flat], treedef, layer_idx, rest

    def init_fn(params):
        chosen = select(params)
        leaves, _, layer_idx, rest = split(params, chosen)
        factors, mom = {}, {}
        for lp, (d_in, d_out, has_bias) in chosen.items():
            s_k, s_c = structs(d_in, d_out, has_bias)
            k0, c0 = s_k.identity(), s_c.identity()
            factors[lp] = LayerFactors(k0, c0, s_k.zeros(), s_c.zeros(), *products(s_k, k0, s_c, c0))
            mom[lp] = {k: jnp.zeros_like(leaves[i]) for k, i in layer_idx[lp].items()}
        fb = fallback.init({p: leaves[i] for p, i in rest.items()})
        return SINGDState(jnp.zeros((), jnp.int32), factors, mom, fb)

    def products(s_k, k, s_c, c):
        """``(K K^T, C C^T)`` as dense matrices in ``factor_dtype`` (computed in float32 at least), or
        ``(None, None)`` without ``cache_products``."""
        if not cache_products:
            return None, None
        cdt = jnp.promote_types(fdtype, jnp.float32)

        def square(s, x):
            m = s.to_dense(x).astype(cdt)
            return (m @ m.T).astype(fdtype)

        return square(s_k, k), square(s_c, c)

    def factor_step(f: LayerFactors, s_k, s_c, stats: LayerStats, has_bias):
        a = jnp.asarray(stats.inputs)
        g = jnp.asarray(stats.out_grads)
        n = a.shape[0]
        a = a.reshape(-1, a.shape[-1]).astype(fdtype)
        g = g.reshape(-1, g.shape[-1]).astype(fdtype)
        rows = a.shape[0]
        if has_bias:
            a = jnp.concatenate([a, jnp.ones((rows, 1), fdtype)], axis=1)
        d_in, d_out = s_k.d, s_c.d
        h_k = gram_left(s_k, f.K, a, jnp.asarray(1.0 / rows, fdtype))   # Pi(K^T U K)
        h_c = gram_left(s_c, f.C, g, jnp.asarray(1.0 / n, fdtype))      # Pi(C^T G C)
        ktk = gram_self(s_k, f.K)                                         # Pi(K^T K)
        ctc = gram_self(s_c, f.C)                                         # Pi(C^T C)
        lam = jnp.asarray(damping, fdtype)
        if ikfac:
            ck = cc = lk = lc = jnp.asarray(1.0, fdtype)
        else:
            ck, lk = s_c.trace(h_c) / d_out, s_c.trace(ctc) / d_out
            cc, lc = s_k.trace(h_k) / d_in, s_k.trace(ktk) / d_in
        tm = jax.tree.map
        half = jnp.asarray(0.5, fdtype)
        mk = tm(lambda m, h, q, i: a1 * m + half * (ck * h + lam * lk * q - i), f.mK, h_k, ktk, s_k.identity())
        mc = tm(lambda m, h, q, i: a1 * m + half * (cc * h + lam * lc * q - i), f.mC, h_c, ctc, s_c.identity())
        b1 = jnp.asarray(lr_cov, fdtype)
        k_new = s_k.mul(f.K, tm(lambda i, m: i - b1 * m, s_k.identity(), mk))
        c_new = s_c.mul(f.C, tm(lambda i, m: i - b1 * m, s_c.identity(), mc))
        return LayerFactors(k_new, c_new, mk, mc, *products(s_k, k_new, s_c, c_new))

    def update_fn(updates, state: SINGDState, params=None, *, layer_stats=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("singd needs params: call tx.update(grads, state, params, layer_stats=...)")
        chosen = {lp: None for lp in state.factors}
        found = find_dense_layers(params)
        chosen = {lp: found[lp] for lp in chosen}
        count = state.count
        do_factors = (count % update_interval) == 0
        if chosen and layer_stats is None and not isinstance(do_factors, jax.core.Tracer) and bool(do_factors):
            raise ValueError(f"singd needs layer_stats=... (per-example layer inputs and output gradients) for "
                             f"the layers {sorted(chosen)} at step {int(count)}, a factor-update step (every "
                             f"{update_interval} steps; see needs_layer_stats); see qsim.optim.value_grad_and_stats")
        missing = [lp for lp in chosen if layer_stats is not None and lp not in layer_stats]
        if missing:
            raise ValueError(f"layer_stats has no statistics for layers {missing}; got {sorted(layer_stats)}")
        g_leaves, treedef, layer_idx, rest = split(updates, chosen)
        p_leaves = jax.tree_util.tree_leaves(params)
        lr = lr_at(count)
        out = list(g_leaves)
        new_factors, new_mom = {}, {}
        for lp, (d_in, d_out, has_bias) in chosen.items():
            s_k, s_c = structs(d_in, d_out, has_bias)
            stats = None if layer_stats is None else layer_stats[lp]
            if stats is not None and not isinstance(stats, LayerStats):
                stats = LayerStats(*stats)
            if stats is not None:
                ai, gi = stats.inputs.shape, stats.out_grads.shape
                if ai[-1] != d_in or gi[-1] != d_out or ai[:-1] != gi[:-1]:
                    raise ValueError(f"layer_stats[{lp!r}] shapes inputs {ai} / out_grads {gi} do not match the "
                                     f"layer ({d_in} -> {d_out}) or each other")
            if stats is None:                       # preconditioning only: the factors stay as they are
                f = state.factors[lp]
            elif isinstance(do_factors, jax.core.Tracer):
                f = jax.lax.cond(do_factors, lambda f: factor_step(f, s_k, s_c, stats, has_bias), lambda f: f,
                                 state.factors[lp])
            else:                                   # eager call: plain Python branch, nothing to compile
                f = factor_step(state.factors[lp], s_k, s_c, stats, has_bias) if bool(do_factors) else state.factors[lp]
            new_factors[lp] = f
            idx = layer_idx[lp]
            grad = g_leaves[idx["kernel"]]
            gdt = grad.dtype
            x = grad
            if has_bias:
                x = jnp.concatenate([x, g_leaves[idx["bias"]][None, :]], axis=0)   # (d_in + 1, d_out)
            if cache_products:                      # P_K grad P_C: one product per side
                z = f.PK.astype(gdt) @ (x @ f.PC.astype(gdt))
            else:
                kf = jax.tree.map(lambda v: v.astype(gdt), f.K)
                cf = jax.tree.map(lambda v: v.astype(gdt), f.C)
                z = s_k.precondition(kf, s_c.precondition(cf, x, axis=1), axis=0)    # K K^T grad C C^T
            delta = {"kernel": z[:d_in]}
            if has_bias:
                delta["bias"] = z[d_in]
            mom = {}
            for name, i in idx.items():
                m = state.momentum[lp][name]
                m = momentum * m + delta[name].astype(m.dtype) + weight_decay * p_leaves[i]
                mom[name] = m
                out[i] = (-lr * m).astype(g_leaves[i].dtype)
            new_mom[lp] = mom
        fb_updates, fb_state = fallback.update({p: g_leaves[i] for p, i in rest.items()}, state.fallback,
                                               {p: p_leaves[i] for p, i in rest.items()})
        for p, i in rest.items():
            out[i] = fb_updates[p]
        new_state = SINGDState(optax.safe_int32_increment(count), new_factors, new_mom, fb_state)
        return jax.tree_util.tree_unflatten(treedef, out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
