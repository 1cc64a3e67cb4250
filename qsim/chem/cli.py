"""``qsim vqe``: molecular ground states on qubits (VQE on qsim circuits, or a NetKet NQS).

    qsim vqe --system LiH --basis sto-3g --active 2,2 --backend statevector --out runs/lih
    qsim vqe --system H2 --ansatz nqs --out runs/h2-nqs                  # NetKet RBM, VMC + SR
    qsim vqe --system H2 --backend qiskit:aer --shots 2000 --steps 30 --out runs/h2-aer

Writes the run directory of DESIGN.md: config.json, metrics.csv (step, energy, grad_norm or
energy_error/variance, error_mha), checkpoints, summary.json with ``system``, ``basis``,
``active_space``, ``energy``, ``fci_energy``, ``error_mha`` (energy - fci_energy in mHa), plus
``hf_energy``, ``reference_energy`` (exact non-relativistic, from the catalog), ``n_qubits``.
"""

from __future__ import annotations

import sys

import jax
import numpy as np

from qsim.chem import vqe
from qsim.chem.hamiltonians import molecular_hamiltonian
from qsim.chem.nqs import run_nqs
from qsim.infra.cli import add_common_arguments, resolve_config
from qsim.infra.runs import open_run
from qsim.infra.validation import one_of, positive_int
from qsim.molecules import get_molecule

__all__ = ["register", "run", "run_config", "solve", "DEFAULTS"]

DEFAULTS = {
    "system": "H2",
    "basis": "sto-3g",
    "active": None,             # "n_electrons,n_orbitals" or [n_electrons, n_orbitals]; None: all
    "mapping": "jordan_wigner",
    "ansatz": "uccsd",          # uccsd | hea | nqs
    "layers": 2,                # hea layers
    "backend": "statevector",
    "shots": None,              # None: exact energies (statevector only)
    "optimizer": "adam",
    "learning_rate": 0.1,
    "steps": 200,
    "qng": False,
    "tol": 0.0,                 # stop early when the energy moved less than tol over 10 steps (0: never)
    "nqs": {"alpha": 2, "n_samples": 1024, "learning_rate": 0.1, "diag_shift": 0.01, "sampler": "auto",
            "n_restarts": 3, "warmup_steps": 30},
    "checkpoint_every": 50,
}


def register(subparsers) -> None:
    p = subparsers.add_parser("vqe", help="molecular ground state on qubits: VQE (UCCSD/HEA) or NetKet NQS",
                              description=__doc__.splitlines()[0])
    p.add_argument("--system", help="catalog molecule (H, He, H2, LiH, Li, Be, B, C, N, Li2)")
    p.add_argument("--basis", help="PySCF basis name (default sto-3g)")
    p.add_argument("--active", help="active space 'n_electrons,n_orbitals' (default: all)")
    p.add_argument("--mapping", choices=["jordan_wigner", "parity"], help="fermion-to-qubit mapping")
    p.add_argument("--ansatz", choices=["uccsd", "hea", "nqs"], help="circuit ansatz or NetKet NQS")
    p.add_argument("--backend", help="statevector (exact), qiskit:aer, pennylane:lightning.qubit, ...")
    p.add_argument("--shots", type=int, help="shots per measurement group (shot-based energies)")
    p.add_argument("--optimizer", help="adam | sgd | lbfgs | adabelief | rmsprop")
    p.add_argument("--learning-rate", dest="learning_rate", type=float)
    p.add_argument("--steps", type=int, help="optimisation steps")
    p.add_argument("--qng", action="store_true", default=None, help="quantum natural gradient (statevector)")
    add_common_arguments(p)
    p.set_defaults(func=run)


def _parse_active(active):
    if active is None or active == "":
        return None
    if isinstance(active, str):
        parts = active.replace(" ", "").split(",")
        if len(parts) != 2:
            raise ValueError(f"--active must be 'n_electrons,n_orbitals', got {active!r}")
        try:
            return (int(parts[0]), int(parts[1]))
        except ValueError:
            raise ValueError(f"--active must be two integers 'n_electrons,n_orbitals', got {active!r}") from None
    if isinstance(active, (list, tuple)) and len(active) == 2:
        return (int(active[0]), int(active[1]))
    raise ValueError(f"active must be 'n_electrons,n_orbitals', got {active!r}")


def run(args) -> int:
    jax.config.update("jax_enable_x64", True)
    cfg = resolve_config(DEFAULTS, args, cli_keys=["system", "basis", "active", "mapping", "ansatz", "backend",
                                                   "shots", "optimizer", "learning_rate", "steps", "qng"])
    s = solve(cfg, args.out, progress=not args.no_progress)
    err = "" if s.get("error_mha") is None else f" ({s['error_mha']:.4f} mHa above FCI)"
    print(f"vqe {s['system']} {s['ansatz']}: E = {s['energy']:.10f} Ha{err}"
          + (f" -> {args.out}" if args.out else ""))
    return 0


def run_config(cfg: dict, out, progress: bool = False) -> int:
    """Run one VQE / NQS calculation from a resolved configuration into run directory ``out`` (0 when done)."""
    solve(cfg, out, progress=progress)
    return 0


def solve(cfg: dict, out=None, progress: bool = False) -> dict:
    """Run one VQE / NQS calculation from a resolved configuration; returns the summary (also written
    to the run directory ``out`` when given; without it nothing is written)."""
    active = _parse_active(cfg["active"])
    ansatz = one_of(cfg["ansatz"], "ansatz", ("uccsd", "hea", "nqs"))
    shots, backend = cfg["shots"], cfg["backend"]
    if shots is not None:
        positive_int(shots, "shots")
        if cfg["qng"]:
            raise ValueError("qng needs exact statevector gradients; drop --qng for shot-based runs")
    if backend != "statevector" and shots is None and ansatz != "nqs":
        raise ValueError(f"backend {backend!r} needs --shots (exact energies run on the statevector)")
    spec = get_molecule(cfg["system"])  # clear error for unknown names before any heavy work
    mh = molecular_hamiltonian(spec.name, basis=cfg["basis"], active=active, mapping=cfg["mapping"])
    cfg = dict(cfg, active=list(mh.active_space))
    with open_run(out, command="vqe", config=cfg) as run:
        run.update_summary(system=spec.name, basis=cfg["basis"], active_space=list(mh.active_space),
                           mapping=mh.mapping, ansatz=ansatz, backend=backend, n_qubits=mh.n_qubits,
                           fci_energy=mh.fci_energy, hf_energy=mh.hf_energy,
                           reference_energy=spec.reference_energy, energy=None, error_mha=None)
        solver = _solve_nqs if ansatz == "nqs" else _solve_circuit
        run.update_summary(**solver(cfg, mh, run, progress, f"vqe {spec.name}"))
        return run.write_summary("completed")


def _error_mha(energy, fci):
    return None if fci is None or energy is None else 1000.0 * (energy - fci)


def _solve_nqs(cfg: dict, mh, run, progress: bool, desc: str) -> dict:
    n = cfg["nqs"]
    res = run_nqs(mh.qubit_hamiltonian, mh.n_qubits, alpha=int(n["alpha"]), n_samples=int(n["n_samples"]),
                  steps=int(cfg["steps"]), learning_rate=float(n["learning_rate"]),
                  diag_shift=float(n["diag_shift"]), seed=int(cfg["seed"]), run=run, progress=progress,
                  sampler=str(n["sampler"]), n_restarts=int(n["n_restarts"]), warmup_steps=int(n["warmup_steps"]),
                  exact_every=10 if mh.n_qubits <= 16 else 0, checkpoint_every=int(cfg["checkpoint_every"]),
                  reference_energy=mh.fci_energy, desc=desc)
    energy = res.exact_energy if res.exact_energy is not None else res.energy
    return dict(energy=energy, error_mha=_error_mha(energy, mh.fci_energy), mc_energy=res.energy,
                energy_stderr=res.energy_error, variance=res.variance)


def _solve_circuit(cfg: dict, mh, run, progress: bool, desc: str) -> dict:
    if cfg["ansatz"] == "uccsd":
        ansatz = vqe.uccsd(mh)
        init = np.zeros(ansatz.num_params)
    else:
        ansatz = vqe.hardware_efficient(mh.n_qubits, int(cfg["layers"]), mh.hf_state)
        init = 0.01 * np.random.default_rng(int(cfg["seed"])).normal(size=ansatz.num_params)
    common = dict(init_params=init, optimizer=cfg["optimizer"], learning_rate=float(cfg["learning_rate"]),
                  steps=int(cfg["steps"]), run=run, checkpoint_every=int(cfg["checkpoint_every"]),
                  progress=progress, reference_energy=mh.fci_energy, desc=desc)
    h = mh.qubit_hamiltonian
    if cfg["shots"] is None:
        res = vqe.run_vqe(ansatz.circuit, h, qng=bool(cfg["qng"]), tol=float(cfg["tol"] or 0.0), **common)
        return dict(energy=res.energy, error_mha=_error_mha(res.energy, mh.fci_energy),
                    num_params=ansatz.num_params)
    res = vqe.run_vqe_shots(ansatz.circuit, h, cfg["backend"], shots=int(cfg["shots"]), seed=int(cfg["seed"]),
                            **common)
    return dict(energy=res.energy, energy_stderr=res.energy_stderr, exact_energy=res.exact_energy,
                error_mha=_error_mha(res.energy, mh.fci_energy), num_params=ansatz.num_params,
                shots=cfg["shots"])


if __name__ == "__main__":  # pragma: no cover
    from qsim.infra.cli import main

    sys.exit(main(["vqe", *sys.argv[1:]]))
