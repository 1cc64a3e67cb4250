"""The statevector simulator: ``simulate``, ``probs``, ``expval``, ``sample`` and ``compile``.

Stages, each module using only the ones before it: circuit -> gate records (``records``) -> fused
blocks and pass plan (``fusion``) -> static program (``program``) -> engine run and its adjoint
(``scan``, ``gemm``, on ``kernels`` and ``native``) -> the cached ``compile`` (``compiler``) -> the
public functions (``statevector``, ``measure``). ``inputs`` checks what enters;
``qsim.simulator.sharded`` holds a state across devices.
"""

from qsim.simulator.compiler import Program, compile
from qsim.simulator.statevector import expval, probs, sample, simulate

__all__ = ["simulate", "probs", "expval", "sample", "compile", "Program"]
