"""Converters between qsim circuits/operators and Qiskit, PennyLane, OpenFermion, NetKet, QASM and Cirq.

The frameworks themselves are imported inside the functions that need them.
"""
