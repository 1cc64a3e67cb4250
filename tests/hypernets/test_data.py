import numpy as np
import pytest

from hypernets.data import digits_data, gaussian_data, make_dataset


def test_gaussian_data_seeded_and_balanced():
    a, b = gaussian_data(1000, 100, seed=5), gaussian_data(1000, 100, seed=5)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.y_train.mean() == 0.5
    x0 = a.x_train[a.y_train == 0]
    # class 0 ~ N((-1,-2), 0.1 I): mean within 5 standard errors, variance near 0.1
    se = np.sqrt(0.1 / len(x0))
    assert np.all(np.abs(x0.mean(0) - [-1, -2]) < 5 * se)
    assert np.all(np.abs(x0.var(0) - 0.1) < 0.02)
    assert not np.array_equal(gaussian_data(1000, 100, seed=6).x_train, a.x_train)


def test_digits_4x4_two_classes():
    d = digits_data((3, 8))
    assert d.x_train.shape[1] == 16 and d.x_test.shape[1] == 16
    assert set(np.unique(d.y_train)) == {0.0, 1.0}
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert abs(len(d.y_test) / (len(d.y_test) + len(d.y_train)) - 0.25) < 0.02


def test_bad_data_inputs():
    with pytest.raises(ValueError, match="outside the digit labels"):
        digits_data((3, 12))
    with pytest.raises(ValueError, match="non-empty"):
        make_dataset(np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(ValueError, match="outside the task's classes"):
        make_dataset(np.zeros((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="outside the task's classes"):
        make_dataset(np.zeros((3, 2)), np.array([5, 7, 7]), classes=(5, 6))
    d = make_dataset(np.zeros((3, 2)), np.array([5, 6, 6]), classes=(5, 6))
    np.testing.assert_array_equal(d.y_train, [0, 1, 1])
