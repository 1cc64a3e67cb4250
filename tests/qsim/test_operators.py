"""Pauli algebra, sparse matrices and ground energies against dense linear algebra."""

import numpy as np
import pytest

import qsim
from qsim import I, PauliSum, X, Y, Z

PX = np.array([[0, 1], [1, 0]])
PY = np.array([[0, -1j], [1j, 0]])
PZ = np.diag([1, -1])


def _kron(*ms):
    out = np.eye(1)
    for m in ms:
        out = np.kron(out, m)
    return out


def test_products_follow_pauli_algebra():
    assert X(0) @ Y(0) == 1j * Z(0)
    assert Y(0) @ X(0) == -1j * Z(0)
    assert Z(0) @ Z(0) == I()
    assert (X(0) @ Z(1)) @ (X(0) @ Z(1)) == I()
    assert (X(0) + Y(0)) @ (X(0) - Y(0)) == -2j * Z(0)


def test_to_matrix_wire_order_and_sums():
    h = 0.5 * X(0) @ Z(2) - 1.5 * Y(1) + 0.25 * I()
    dense = 0.5 * _kron(PX, np.eye(2), PZ) - 1.5 * _kron(np.eye(2), PY, np.eye(2)) + 0.25 * np.eye(8)
    np.testing.assert_allclose(h.to_matrix(3).toarray(), dense, atol=1e-14)
    assert h.n_wires == 3 and h.wires == (0, 1, 2)
    with pytest.raises(ValueError, match="outside a 2-wire register"):
        h.to_matrix(2)


def test_simplify_and_from_list():
    h = X(0) + X(0) - 2 * X(0) + 1e-15 * Z(1)
    assert len(h.simplify()) == 0
    g = PauliSum.from_list([(1.0, "XZ"), (2.0, "IY")])
    assert g == X(0) @ Z(1) + 2 * Y(1)
    with pytest.raises(ValueError, match="unknown Pauli letter"):
        PauliSum.from_list([(1.0, "XQ")])
    with pytest.raises(ValueError, match="non-finite coefficient"):
        float("nan") * X(0)


def test_ground_energy_transverse_ising_matches_dense():
    n = 8
    h = sum(-Z(i) @ Z(i + 1) for i in range(n - 1)) + sum(-0.7 * X(i) for i in range(n))
    e_sparse = h.ground_energy()
    e_dense = np.linalg.eigvalsh(h.to_matrix().toarray())[0]
    assert abs(e_sparse - e_dense) < 1e-9
    with pytest.raises(ValueError, match="Hermitian"):
        (1j * X(0)).ground_energy()


def test_matches_qiskit_sparse_pauli_op():
    from qiskit.quantum_info import SparsePauliOp

    h = 0.3 * X(0) @ Y(1) + 0.8 * Z(2)
    # qiskit labels are little-endian: the rightmost letter is qubit 0 = our last wire
    sp = SparsePauliOp.from_list([("IYX"[::-1], 0.3), ("ZII"[::-1], 0.8)])
    np.testing.assert_allclose(h.to_matrix(3).toarray(), sp.to_matrix(), atol=1e-14)
    assert qsim.Z(0) != qsim.Z(1)
