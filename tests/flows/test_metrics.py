import numpy as np
import pytest

from flows.metrics import bhattacharyya, infidelity, overlap, probabilities, total_variation


def test_metric_values():
    p = np.array([0.5, 0.5, 0.0, 0.0])
    q = np.array([0.0, 0.5, 0.5, 0.0])
    assert np.isclose(bhattacharyya(p, p), 1.0)
    assert np.isclose(bhattacharyya(p, q), 0.5)
    assert np.isclose(total_variation(p, q), 0.5)
    psi = np.sqrt(p) * np.array([1, -1, 1, 1])          # a phase: Bhattacharyya 1, overlap 0
    assert np.isclose(bhattacharyya(probabilities(psi), p), 1.0)
    assert np.isclose(overlap(psi, p), 0.0)
    assert np.isclose(overlap(np.sqrt(p) * 1j, 2 * p), 1.0)
    assert np.isclose(infidelity(psi, np.sqrt(p)), 1.0)
    assert abs(infidelity(np.sqrt(q), 3 * np.sqrt(q))) < 1e-15


def test_metric_bad_inputs():
    with pytest.raises(ValueError, match="negative"):
        bhattacharyya([0.5, -0.5], [0.5, 0.5])
    with pytest.raises(ValueError, match="NaN"):
        total_variation([np.nan, 1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="shapes"):
        overlap(np.ones(4), np.ones(8))
