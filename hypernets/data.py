"""Data sets for the hypernetwork tasks (NumPy, seeded, float64).

- :func:`gaussian_data`: the 2-D Gaussian task of the quantum-hypernetwork paper. Class 0 ~
  N((-1, -2), 0.1 I); class 1 is an equal mixture of N((-2, 1)), N((1, 1)), N((2, -2)), each with
  covariance 0.1 I; the two classes are equally likely (exactly half the points each).
- :func:`digits_data`: scikit-learn's bundled 8x8 digits averaged over 2x2 blocks to 4x4, pixel values
  scaled to [0, 1], two classes chosen by the user (label 0 for the first, 1 for the second), split
  into train and test sets (stratified, seeded).

A :class:`Dataset` holds ``x_train (n, d)``, ``y_train (n,)`` (0/1 floats), ``x_test``, ``y_test``.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from qsim.infra.validation import positive_int

__all__ = ["Dataset", "gaussian_data", "digits_data", "make_dataset"]

GAUSSIAN_CLASS0_MEAN = (-1.0, -2.0)
GAUSSIAN_CLASS1_MEANS = ((-2.0, 1.0), (1.0, 1.0), (2.0, -2.0))
GAUSSIAN_VARIANCE = 0.1


class Dataset(NamedTuple):
    """Train and test arrays: x ``(n, d)`` float64, y ``(n,)`` float64 in {0, 1}."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def fingerprint(self) -> str:
        """SHA-256 of the arrays (for landscape caches)."""
        h = hashlib.sha256()
        for a in self:
            a = np.ascontiguousarray(a, dtype=np.float64)
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()


def make_dataset(x_train, y_train, x_test=None, y_test=None, classes=(0, 1)) -> Dataset:
    """Validate and package user data; labels must lie in ``classes`` (two values) and are mapped to
    0 (first class) / 1 (second). Without a test set the training set doubles as test set.

    Raises ValueError for an empty set, mismatched lengths, non-finite inputs or labels outside
    ``classes``."""
    classes = tuple(classes)
    if len(classes) != 2 or classes[0] == classes[1]:
        raise ValueError(f"classes must be two distinct labels, got {classes!r}")

    def check(x, y, which):
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{which} inputs must be a non-empty (n, d) array, got shape {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"{which} labels have shape {y.shape}, expected ({x.shape[0]},)")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{which} inputs contain non-finite values")
        bad = ~np.isin(y, classes)
        if bad.any():
            raise ValueError(f"{which} labels {sorted(set(np.asarray(y)[bad].tolist()))[:5]} are outside "
                             f"the task's classes {classes}")
        return x, (y == classes[1]).astype(np.float64)

    xtr, ytr = check(x_train, y_train, "training")
    if x_test is None:
        xte, yte = xtr, ytr
    else:
        xte, yte = check(x_test, y_test, "test")
        if xte.shape[1] != xtr.shape[1]:
            raise ValueError(f"test inputs have {xte.shape[1]} features, training inputs {xtr.shape[1]}")
    return Dataset(xtr, ytr, xte, yte)


def _gaussian_points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    n0 = n // 2
    n1 = n - n0
    std = np.sqrt(GAUSSIAN_VARIANCE)
    x0 = rng.normal(GAUSSIAN_CLASS0_MEAN, std, size=(n0, 2))
    comp = rng.integers(0, 3, size=n1)
    x1 = np.asarray(GAUSSIAN_CLASS1_MEANS)[comp] + std * rng.normal(size=(n1, 2))
    x = np.concatenate([x0, x1])
    y = np.concatenate([np.zeros(n0), np.ones(n1)])
    perm = rng.permutation(n)
    return x[perm], y[perm]


def gaussian_data(n_train: int = 10_000, n_test: int = 2_000, seed: int = 0) -> Dataset:
    """The Gaussian task's points (see module docstring), seeded; train and test drawn independently."""
    positive_int(n_train, "n_train")
    positive_int(n_test, "n_test")
    rng = np.random.default_rng(seed)
    xtr, ytr = _gaussian_points(rng, int(n_train))
    xte, yte = _gaussian_points(rng, int(n_test))
    return Dataset(xtr, ytr, xte, yte)


def digits_data(classes=(0, 1), test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn digits averaged to 4x4 (16 features in [0, 1]), two classes, stratified split."""
    classes = tuple(int(c) for c in classes)
    if len(classes) != 2 or classes[0] == classes[1]:
        raise ValueError(f"digits: choose two distinct classes, got {classes!r}")
    bad = [c for c in classes if not 0 <= c <= 9]
    if bad:
        raise ValueError(f"digits: classes {bad} are outside the digit labels 0..9")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.isin(d.target, classes)
    img = d.images[keep].astype(np.float64) / 16.0                      # (n, 8, 8)
    img4 = img.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)  # (n, 16)
    y = d.target[keep]
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test_idx.append(idx[: int(round(test_fraction * len(idx)))])
    test_mask = np.zeros(len(y), bool)
    test_mask[np.concatenate(test_idx)] = True
    return make_dataset(img4[~test_mask], y[~test_mask], img4[test_mask], y[test_mask], classes=classes)
