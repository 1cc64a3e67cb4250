"""Tasks: a bit layout, a binary network (forward pass), a loss and a data set.

A :class:`Task` is everything needed to score one bitstring classically:

- ``layout``: the :class:`~hypernets.layout.Layout` decoding bitstrings to weights and choices;
- ``forward(params, x) -> z``: ONE network (``params`` = one decoded network, unbatched) applied to
  inputs ``x (n, d)``, returning the logit ``z (n,)``; the network's output is ``sigmoid(z)`` and it
  predicts class 1 where ``z > 0``. Written with ``jax.numpy``; the landscape ``vmap``s it over networks;
- ``loss``: ``"mse"`` (mean squared error of ``sigmoid(z)`` against the 0/1 labels), ``"bce"`` (binary
  cross-entropy, ``mean(softplus(z) - y z)``) or a function ``loss(z (n,), y (n,)) -> scalar``;
- ``data``: a :class:`~hypernets.data.Dataset` (cost and training accuracy on the training set, test
  accuracy on the test set);
- ``permutable_units`` (optional): groups of bit positions that can be permuted among each other without
  changing the cost (hidden units of a layer); the landscape then scores one representative per orbit.

Built-in tasks: :func:`gaussian_task` (18 bits: 2-4-1 network with ReLU-or-sigmoid bit, MSE),
:func:`digits_task` (17 bits: logistic regression on 4x4 digits, BCE; ``value_bits=True`` adds 2 bits
choosing the weight values {0,1}, {-1,1}, {-2,1} or {-3,1}: 19 bits). :func:`make_task` builds a user task.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .data import Dataset, digits_data, gaussian_data, make_dataset
from .layout import Choice, Layout, Weights
import jax
import jax.numpy as jnp

__all__ = ["Task", "make_task", "gaussian_task", "digits_task", "get_task", "TASKS", "WEIGHT_VALUE_OPTIONS",
           "loss_value"]

WEIGHT_VALUE_OPTIONS = ((0, 1), (-1, 1), (-2, 1), (-3, 1))
LOSSES = ("mse", "bce")


def loss_value(loss, z, y):
    """Loss of one network: logits ``z (n,)``, labels ``y (n,)`` in {0, 1} -> scalar (jax)."""

    if loss == "mse":
        return jnp.mean((jax.nn.sigmoid(z) - y) ** 2)
    if loss == "bce":
        return jnp.mean(jax.nn.softplus(z) - y * z)
    return loss(z, y)


def _code_digest(fn) -> str:
    if isinstance(fn, str):
        return fn
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        return (getattr(fn, "__qualname__", repr(fn)) + (code.co_code.hex() if code else ""))


@dataclass(frozen=True, eq=False)
class Task:
    """See the module docstring."""

    name: str
    layout: Layout
    forward: Callable
    loss: str | Callable
    data: Dataset
    classes: tuple = (0, 1)
    permutable_units: tuple | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_bits(self) -> int:
        return self.layout.num_bits

    def fingerprint(self) -> str:
        """A hash of everything that determines the landscape (for the on-disk cache)."""
        h = hashlib.sha256()
        for part in (self.name, repr(self.layout), _code_digest(self.forward), _code_digest(self.loss),
                     self.data.fingerprint(), repr(self.permutable_units)):
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()[:20]

    def cost_numpy(self, bits) -> np.ndarray:
        """Reference cost of networks ``bits (B, N)`` with the task's own forward (no vmap/jit)."""

        bits = np.atleast_2d(np.asarray(bits))
        out = []
        for b in bits:
            dec = self.layout.decode(b[None, :], np.float64)
            p = {k: np.asarray(v[0]) for k, v in dec.items()}
            z = self.forward(p, jnp.asarray(self.data.x_train))
            out.append(float(loss_value(self.loss, z, jnp.asarray(self.data.y_train))))
        return np.asarray(out)


def make_task(name: str, layout: Layout, forward: Callable, loss, data: Dataset,
              permutable_units=None, classes=(0, 1), **meta) -> Task:
    """Build a user task (see module docstring); validates the pieces before any heavy work."""
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a hypernets.Layout, got {type(layout).__name__}")
    if not callable(forward):
        raise TypeError(f"forward must be callable, got {forward!r}")
    if not (callable(loss) or loss in LOSSES):
        raise ValueError(f"loss must be one of {LOSSES} or a callable, got {loss!r}")
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a hypernets.Dataset (see make_dataset), got {type(data).__name__}")
    for which, x, y in (("training", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        if len(x) == 0 or len(y) == 0:
            raise ValueError(f"the {which} set is empty")
        if len(x) != len(y):
            raise ValueError(f"the {which} set has {len(x)} inputs but {len(y)} labels")
        bad = ~np.isin(np.asarray(y), (0, 1))
        if bad.any():
            raise ValueError(f"{which} labels {sorted(set(np.asarray(y)[bad].tolist()))[:5]} are outside the "
                             f"task's classes (0/1 after make_dataset); map labels with make_dataset(classes=...)")
    if permutable_units is not None:
        groups = tuple(tuple(int(i) for i in g) for g in permutable_units)
        sizes = {len(g) for g in groups}
        flat = [i for g in groups for i in g]
        if len(groups) < 2 or len(sizes) != 1 or len(set(flat)) != len(flat) or \
                any(not 0 <= i < layout.num_bits for i in flat):
            raise ValueError(f"permutable_units must be >= 2 disjoint equal-size groups of bit positions in "
                             f"0..{layout.num_bits - 1}, got {permutable_units!r}")
        permutable_units = groups
    return Task(name, layout, forward, loss, data, tuple(classes), permutable_units, dict(meta))


# -- the Gaussian task -------------------------------------------------------------------------
GAUSSIAN_LAYOUT = Layout([Weights("W1", (2, 4)), Weights("b1", (4,)), Weights("W2", (4,)), Weights("b2", ()),
                          Choice("activation", ("relu", "sigmoid"))])


def gaussian_forward(p, x):
    """2-4-1 binary network: ``z = f(x W1 + b1) . W2 + b2`` with f = ReLU (choice 0) or sigmoid (1)."""

    h = _mm(x, p["W1"]) + p["b1"]                               # (n, 4)
    h = jnp.where(p["activation"] == 0, jax.nn.relu(h), jax.nn.sigmoid(h))
    return _mm(h, p["W2"]) + p["b2"]                            # (n,)


def _mm(a, b):
    """``a @ b`` in full precision: float32 landscapes on a GPU would otherwise multiply in TF32
    (10-bit mantissa), enough to split or merge cost ties."""

    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def _gaussian_units() -> tuple:
    lay = GAUSSIAN_LAYOUT
    w1, b1, w2 = lay.offsets["W1"][0], lay.offsets["b1"][0], lay.offsets["W2"][0]
    return tuple((w1 + j, w1 + 4 + j, b1 + j, w2 + j) for j in range(4))


def gaussian_task(n_train: int = 10_000, n_test: int = 2_000, seed: int = 0) -> Task:
    """The 18-bit Gaussian task (notes.md): W1 (2x4), b1 (4), W2 (4), b2, activation bit; MSE."""
    return make_task("gaussian", GAUSSIAN_LAYOUT, gaussian_forward, "mse",
                     gaussian_data(n_train, n_test, seed), permutable_units=_gaussian_units(),
                     seed=seed, n_train=n_train)


# -- the image (digits) task -------------------------------------------------------------------
DIGITS_LAYOUT = Layout([Weights("w", (16,)), Weights("b", ())])
DIGITS_VALUES_LAYOUT = Layout([Choice("weight_values", WEIGHT_VALUE_OPTIONS), Weights("w", (16,)),
                               Weights("b", ())])


def digits_forward(p, x):
    """Logistic regression on 16 pixels: ``z = x . w + b`` with ±1 weights."""
    return _mm(x, p["w"]) + p["b"]


def digits_values_forward(p, x):
    """Logistic regression whose bits map to (low, 1) with low from the ``weight_values`` choice
    ({0,1}, {-1,1}, {-2,1}, {-3,1}); bit 1 -> 1, bit 0 -> low, for the 16 weights and the bias."""

    low = jnp.asarray([v[0] for v in WEIGHT_VALUE_OPTIONS], dtype=p["w"].dtype)[p["weight_values"]]
    w = low + (p["w"] + 1) / 2 * (1 - low)
    b = low + (p["b"] + 1) / 2 * (1 - low)
    return _mm(x, w) + b


def digits_task(classes=(0, 1), value_bits: bool = False, test_fraction: float = 0.25, seed: int = 0) -> Task:
    """Logistic regression on scikit-learn digits averaged to 4x4, two classes, BCE (17 or 19 bits)."""
    data = digits_data(classes, test_fraction, seed)
    if value_bits:
        return make_task("digits_values", DIGITS_VALUES_LAYOUT, digits_values_forward, "bce", data,
                         classes=tuple(classes), seed=seed)
    return make_task("digits", DIGITS_LAYOUT, digits_forward, "bce", data, classes=tuple(classes), seed=seed)


TASKS = {"gaussian": gaussian_task, "digits": digits_task,
         "digits_values": lambda **kw: digits_task(value_bits=True, **kw)}


def get_task(name: str, **kwargs) -> Task:
    """A built-in task by name (``gaussian``, ``digits``, ``digits_values``)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name](**kwargs)


_ = make_dataset  # re-exported for users building their own tasks
