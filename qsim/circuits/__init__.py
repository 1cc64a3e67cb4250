"""Circuits: the :class:`Circuit` structure, THE gate table, Pauli operators and shared templates.

Nothing here simulates; the simulator, exporters and parameter shift all read the gate table.
"""

from qsim.circuits.circuit import Circuit, Op, ParamRef
from qsim.circuits.gates import GATES, GateDef, get_gate
from qsim.circuits.operators import I, PauliSum, X, Y, Z

__all__ = ["Circuit", "Op", "ParamRef", "GATES", "GateDef", "get_gate", "PauliSum", "I", "X", "Y", "Z"]
