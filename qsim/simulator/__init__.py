"""The statevector simulator: ``simulate``, ``probs``, ``expval``, ``sample``.

Stages, each using only the ones before it: circuit -> gate records -> fused plan -> program -> engine
run (and its adjoint). ``qsim.simulator.sharded`` holds a state across devices.
"""

from qsim.simulator.statevector import expval, probs, sample, simulate

__all__ = ["simulate", "probs", "expval", "sample"]
