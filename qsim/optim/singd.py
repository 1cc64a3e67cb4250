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

The transformation is a chain of optax transformations, exactly the notes' per-step update::

    singd(lr, ...) = optax.chain(scale_by_singd(...),                   # Delta (the preconditioner)
                                 optax.add_decayed_weights(weight_decay),  # + gamma W   (if gamma != 0)
                                 optax.trace(decay=momentum),              # m <- alpha_2 m + ...
                                 optax.scale_by_learning_rate(learning_rate))  # -beta_2 m

:func:`scale_by_singd` alone is the preconditioner (``updates -> Delta``, factors in its
:class:`SINGDState`); compose it with other optax transformations as you like. Parameters outside a
supported layer -- anything that is not a ``{"kernel": (d_in, d_out), "bias": (d_out,)?}`` node of the
params tree, or a layer excluded by ``layers`` -- pass through it unchanged (K = C = I), so in
``singd`` they get SGD with the same learning rate, momentum and weight decay; with ``fallback`` they
are handed to that transformation instead (``optax.partition``). Find the factors in a composed state
with :func:`singd_state`.

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

from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from qsim.infra import validation

from .capture import LayerStats
from .singd_factors import FactorConfig, LayerFactors, factor_step, init_factors, layer_structures, precondition
from .structures import STRUCTURES

__all__ = ["singd", "scale_by_singd", "SINGDState", "LayerFactors", "find_dense_layers", "needs_layer_stats",
           "singd_state"]


class SINGDState(NamedTuple):
    """State of :func:`scale_by_singd`: the step counter and the factors of every factored layer."""

    count: jax.Array                 # int32 step counter
    factors: dict                    # layer path -> LayerFactors


def singd_state(opt_state) -> SINGDState:
    """The :class:`SINGDState` inside an optimiser state (itself, or nested in the tuples, named tuples and
    dicts of ``optax.chain``/``optax.partition`` states and wrappers); ValueError if there is none."""
    todo = [opt_state]
    while todo:
        s = todo.pop(0)
        if isinstance(s, SINGDState):
            return s
        if isinstance(s, (tuple, list)):
            todo.extend(s)
        elif isinstance(s, Mapping):
            todo.extend(s.values())
    raise ValueError(f"no SINGDState in this optimiser state (a {type(opt_state).__name__}); "
                     "was it made by qsim.optim.singd / scale_by_singd?")


def needs_layer_stats(state, update_interval: int):
    """Whether the next ``update`` with this state is a factor-update step (the SINGD count a multiple of
    ``update_interval``, the value given to :func:`singd`), i.e. needs ``layer_stats``. ``state``: the
    state of :func:`singd`, of :func:`scale_by_singd`, or of a composition holding one. A bool array
    (traced under jit: use it in ``lax.cond``)."""
    validation.positive_int(update_interval, "update_interval")
    return singd_state(state).count % update_interval == 0


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


def _select_layers(params, layers):
    """The dense layers of ``params`` that ``layers`` (None, a sequence of paths or a predicate) picks."""
    found = find_dense_layers(params)
    if layers is None:
        return found
    if callable(layers):
        return {p: v for p, v in found.items() if layers(p)}
    missing = [p for p in layers if p not in found]
    if missing:
        raise ValueError(f"layers {missing} are not dense layers of params; found: {sorted(found)}")
    return {p: found[p] for p in layers}


def _leaf_index(tree, chosen):
    """(leaves, treedef, {layer: {'kernel': i, 'bias': i}}) of ``tree`` for the chosen layers."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    index = {_path_str(p): i for i, (p, _) in enumerate(flat)}
    layer_idx = {}
    for lp, (_, _, has_bias) in chosen.items():
        pre = lp + "/" if lp else ""
        layer_idx[lp] = {"kernel": index[pre + "kernel"]}
        if has_bias:
            layer_idx[lp]["bias"] = index[pre + "bias"]
    return [leaf for _, leaf in flat], treedef, layer_idx


def _unit_interval(value, name):
    """A number in [0, 1) (momenta); ``value`` unchanged."""
    v = validation.finite_float(value, name)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def _factor_config(structure, damping, cov_momentum, lr_cov, ikfac, factor_dtype, block_size,
                   hierarchical_size, cache_products) -> FactorConfig:
    """The validated options of :func:`scale_by_singd`."""
    validation.one_of(structure, "structure", STRUCTURES)
    validation.positive_float(damping, "damping")
    _unit_interval(cov_momentum, "cov_momentum")
    validation.positive_float(lr_cov, "lr_cov")
    validation.positive_int(block_size, "block_size")
    validation.positive_int(hierarchical_size, "hierarchical_size")
    fdtype = jnp.dtype(factor_dtype) if factor_dtype is not None else jnp.dtype(jnp.float32)
    if not jnp.issubdtype(fdtype, jnp.floating):
        raise TypeError(f"factor_dtype must be a floating dtype; got {factor_dtype!r}")
    if cache_products is None:
        cache_products = structure == "dense"
    if not isinstance(cache_products, bool):
        raise TypeError(f"cache_products must be a bool or None; got {cache_products!r}")
    return FactorConfig(structure, fdtype, damping, 0.0 if ikfac else float(cov_momentum), lr_cov, bool(ikfac),
                        cache_products, block_size, hierarchical_size)


def _checked_stats(layer_stats, lp, d_in, d_out):
    """``layer_stats[lp]`` as a :class:`LayerStats` whose shapes fit the layer (None without statistics)."""
    if layer_stats is None:
        return None
    stats = layer_stats[lp]
    if stats is not None and not isinstance(stats, LayerStats):
        stats = LayerStats(*stats)
    if stats is not None:
        ai, gi = stats.inputs.shape, stats.out_grads.shape
        if ai[-1] != d_in or gi[-1] != d_out or ai[:-1] != gi[:-1]:
            raise ValueError(f"layer_stats[{lp!r}] shapes inputs {ai} / out_grads {gi} do not match the "
                             f"layer ({d_in} -> {d_out}) or each other")
    return stats


def _check_call(state: SINGDState, params, layer_stats, update_interval: int):
    """The factored layers ``{path: (d_in, d_out, has_bias)}``; ValueError for a call that cannot work."""
    if params is None:
        raise ValueError("singd needs params: call tx.update(grads, state, params, layer_stats=...)")
    found = find_dense_layers(params)
    chosen = {lp: found[lp] for lp in state.factors}
    count = state.count
    do_factors = (count % update_interval) == 0
    if chosen and layer_stats is None and not isinstance(do_factors, jax.core.Tracer) and bool(do_factors):
        raise ValueError(f"singd needs layer_stats=... (per-example layer inputs and output gradients) for "
                         f"the layers {sorted(chosen)} at step {int(count)}, a factor-update step (every "
                         f"{update_interval} steps; see needs_layer_stats); see qsim.optim.value_grad_and_stats")
    missing = [lp for lp in chosen if layer_stats is not None and lp not in layer_stats]
    if missing:
        raise ValueError(f"layer_stats has no statistics for layers {missing}; got {sorted(layer_stats)}")
    return chosen


def scale_by_singd(structure: str = "dense", *, damping: float = 1e-3, cov_momentum: float = 0.5,
                   lr_cov: float = 1e-2, update_interval: int = 10, ikfac: bool = False, factor_dtype=None,
                   block_size: int = 16, hierarchical_size: int = 16, cache_products: bool | None = None,
                   layers: Sequence[str] | Callable[[str], bool] | None = None
                   ) -> optax.GradientTransformationExtraArgs:
    """SINGD's preconditioner: ``updates -> Delta = C C^T grad_W K K^T`` per factored dense layer (other
    parameters pass through unchanged), the factors updated from ``layer_stats`` every ``update_interval``
    steps. The options are those of :func:`singd`; ``update(grads, state, params, layer_stats=...)``.
    The updates of factored layers are in the parameters' dtype (like the momentum that follows in
    :func:`singd`); its state is a :class:`SINGDState`."""
    cfg = _factor_config(structure, damping, cov_momentum, lr_cov, ikfac, factor_dtype, block_size,
                         hierarchical_size, cache_products)
    validation.positive_int(update_interval, "update_interval")
    if layers is not None and not callable(layers):
        layers = tuple(layers)

    def init_fn(params):
        factors = {lp: init_factors(cfg, *layer_structures(cfg, *shape))
                   for lp, shape in _select_layers(params, layers).items()}
        return SINGDState(jnp.zeros((), jnp.int32), factors)

    def new_factors(f, s_k, s_c, stats, has_bias, do_factors):
        if stats is None:                       # preconditioning only: the factors stay as they are
            return f
        if isinstance(do_factors, jax.core.Tracer):
            return jax.lax.cond(do_factors, lambda f: factor_step(cfg, f, s_k, s_c, stats, has_bias),
                                lambda f: f, f)
        # eager call: plain Python branch, nothing to compile
        return factor_step(cfg, f, s_k, s_c, stats, has_bias) if bool(do_factors) else f

    def update_fn(updates, state: SINGDState, params=None, *, layer_stats=None, **extra_args):
        del extra_args
        chosen = _check_call(state, params, layer_stats, update_interval)
        do_factors = (state.count % update_interval) == 0
        g_leaves, treedef, layer_idx = _leaf_index(updates, chosen)
        p_leaves = jax.tree_util.tree_leaves(params)
        out = list(g_leaves)
        factors = {}
        for lp, (d_in, d_out, has_bias) in chosen.items():
            s_k, s_c = layer_structures(cfg, d_in, d_out, has_bias)
            stats = _checked_stats(layer_stats, lp, d_in, d_out)
            f = factors[lp] = new_factors(state.factors[lp], s_k, s_c, stats, has_bias, do_factors)
            idx = layer_idx[lp]
            bias = g_leaves[idx["bias"]] if has_bias else None
            delta = precondition(cfg, f, s_k, s_c, g_leaves[idx["kernel"]], bias)
            for name, i in idx.items():       # in the parameter's dtype, like the momentum that follows
                out[i] = delta[name].astype(p_leaves[i].dtype)
        new_state = SINGDState(optax.safe_int32_increment(state.count), factors)
        return jax.tree_util.tree_unflatten(treedef, out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _partition_labels(layers):
    """``tree -> labels``: "singd" for the kernel/bias leaves of the chosen dense layers, else "fallback"."""

    def labels(tree):
        chosen = _select_layers(tree, layers)
        leaves, treedef, layer_idx = _leaf_index(tree, chosen)
        mine = {i for d in layer_idx.values() for i in d.values()}
        return jax.tree_util.tree_unflatten(treedef, ["singd" if i in mine else "fallback"
                                                      for i in range(len(leaves))])

    return labels


def singd(learning_rate=1e-3, structure: str = "dense", *, damping: float = 1e-3, momentum: float = 0.9,
          weight_decay: float = 0.0, cov_momentum: float = 0.5, lr_cov: float = 1e-2, update_interval: int = 10,
          ikfac: bool = False, factor_dtype=None, block_size: int = 16, hierarchical_size: int = 16,
          cache_products: bool | None = None, layers: Sequence[str] | Callable[[str], bool] | None = None,
          fallback: optax.GradientTransformation | None = None) -> optax.GradientTransformationExtraArgs:
    """SINGD as an ``optax.GradientTransformationExtraArgs``: :func:`scale_by_singd` chained with weight
    decay, momentum and the learning rate (see the module docstring for the update).

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
        path); default all. The others are updated like the other parameters.
      fallback: optax transformation for all other parameters (default: the same chain with K = C = I,
        i.e. SGD with the same learning rate, momentum and weight decay).

    ``update(grads, state, params, layer_stats=...)`` needs ``params`` (weight decay, layer layout) and, at
    factor-update steps (see :func:`needs_layer_stats`), ``layer_stats`` (a mapping path ->
    :class:`LayerStats`) for every factored layer; at the other steps ``layer_stats=None`` skips the capture.
    """
    if not callable(learning_rate):
        validation.positive_float(learning_rate, "learning_rate")
    _unit_interval(momentum, "momentum")
    if validation.finite_float(weight_decay, "weight_decay") < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    pre = scale_by_singd(structure, damping=damping, cov_momentum=cov_momentum, lr_cov=lr_cov,
                         update_interval=update_interval, ikfac=ikfac, factor_dtype=factor_dtype,
                         block_size=block_size, hierarchical_size=hierarchical_size,
                         cache_products=cache_products, layers=layers)
    decay = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
    tx = optax.chain(pre, *decay, optax.trace(decay=momentum), optax.scale_by_learning_rate(learning_rate))
    if fallback is None:
        return tx
    if layers is not None and not callable(layers):
        layers = tuple(layers)
    return optax.partition({"singd": tx, "fallback": fallback}, _partition_labels(layers))
