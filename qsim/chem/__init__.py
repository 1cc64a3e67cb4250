"""Chemistry on qubits, an application on the core: PySCF Hamiltonians mapped to qubits
(``qsim.chem.hamiltonians``), VQE (``qsim.chem.vqe``), NetKet neural quantum states (``qsim.chem.nqs``)
and the ``qsim vqe`` command (``qsim.chem.cli``). The rest of ``qsim`` never imports this package.
"""
