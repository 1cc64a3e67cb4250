"""Converters between qsim circuits/operators and other frameworks, one module per framework:

- :mod:`qsim.interop.qiskit`: ``QuantumCircuit`` (to/from), state vectors (bit order), ``SparsePauliOp``;
- :mod:`qsim.interop.pennylane`: operations, QNodes, tapes (to/from), Hamiltonians (to/from);
- :mod:`qsim.interop.openfermion`: ``QubitOperator`` (to/from);
- :mod:`qsim.interop.netket`: ``PauliStrings``;
- :mod:`qsim.interop.common`: the helpers they share (:func:`op_values`, ...).

Every converter is re-exported here (``from qsim.interop import to_qiskit``). The frameworks are
imported inside the functions that need them (all are slow to import; ``import netket`` also switches
on float64), so importing this package is cheap. The old path ``qsim.convert`` resolves here, with a
``DeprecationWarning``.
"""

from qsim.interop.common import op_values
from qsim.interop.netket import to_netket
from qsim.interop.openfermion import from_openfermion, to_openfermion
from qsim.interop.pennylane import (from_pennylane, from_pennylane_hamiltonian, to_pennylane_hamiltonian,
                                    to_pennylane_ops, to_qnode)
from qsim.interop.qiskit import (from_qiskit, from_qiskit_statevector, from_sparse_pauli_op, to_qiskit,
                                 to_qiskit_statevector, to_sparse_pauli_op)

__all__ = ["to_qiskit", "from_qiskit", "to_qiskit_statevector", "from_qiskit_statevector",
           "to_pennylane_ops", "to_qnode", "from_pennylane", "to_sparse_pauli_op", "from_sparse_pauli_op",
           "to_pennylane_hamiltonian", "from_pennylane_hamiltonian", "to_openfermion", "from_openfermion",
           "to_netket", "op_values"]
