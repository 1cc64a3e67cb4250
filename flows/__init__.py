"""flows: wavefunction flows -- learn a flow, simulate its continuity Hamiltonian on a qubit grid (docs/flows.md).

The modules, in the order one ``qsim flow`` run uses them:

- ``flows.targets``: densities with samplers and log densities (catalogue, ``from_samples``);
- ``flows.learn``: the Flax learners (gfm, am, cfm) trained through qsim's driver loop;
- ``flows.grid``: the periodic qubit grid, checked against qsim's memory limit;
- ``flows.hamiltonian``: the symmetric Hamiltonian of a flow, matrix-free or dense, and its checks;
- ``flows.evolve``: product-formula evolution and the pushforward reference;
- ``flows.circuits``: one step as a ``qsim.Circuit``;
- ``flows.metrics``: Bhattacharyya, overlap, total variation, infidelity;
- ``flows.estimate``: amplitude estimation of a tail probability vs Monte Carlo;
- ``flows.cli``: the ``qsim flow`` command (``run_flow``).

Everything in :data:`__all__` is importable from ``flows`` and loaded on first use (``import flows``
itself loads none of its modules, Flax or optax).
"""

from __future__ import annotations

from qsim.infra.lazy import lazy_exports

_MODULES = ("circuits", "cli", "estimate", "evolve", "grid", "hamiltonian", "learn", "metrics", "targets")

_NAMES = {  # public name -> the module that defines it (``flows.evolve`` is the module; its function is
    # ``flows.evolve.evolve``)
    "Target": "flows.targets", "get_target": "flows.targets", "gaussian": "flows.targets",
    "gaussian_mixture": "flows.targets", "from_samples": "flows.targets", "TARGETS": "flows.targets",
    "LearnerConfig": "flows.learn", "train": "flows.learn", "learned_flow": "flows.learn",
    "LEARNERS": "flows.learn",
    "Grid": "flows.grid", "make_grid": "flows.grid", "coordinates": "flows.grid", "axis_points": "flows.grid",
    "state_from_density": "flows.grid",
    "Flow": "flows.hamiltonian", "gradient_flow": "flows.hamiltonian", "velocity_flow": "flows.hamiltonian",
    "apply_hamiltonian": "flows.hamiltonian", "dense_hamiltonian": "flows.hamiltonian",
    "check_velocity": "flows.hamiltonian", "helmholtz_potential": "flows.hamiltonian",
    "FORMULAS": "flows.evolve", "reference_probabilities": "flows.evolve",
    "pushforward_logdensity": "flows.evolve",
    "step_circuit": "flows.circuits", "step_gate_counts": "flows.circuits",
    "probabilities": "flows.metrics", "bhattacharyya": "flows.metrics", "overlap": "flows.metrics",
    "total_variation": "flows.metrics", "infidelity": "flows.metrics",
    "mlae": "flows.estimate", "tail_probability": "flows.estimate",
    "run_flow": "flows.cli", "DEFAULTS": "flows.cli",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES, _NAMES)
