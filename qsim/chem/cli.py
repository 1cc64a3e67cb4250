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
from qsim.infra.cli import add_common_arguments
import jax
from qsim.infra.cli import resolve_config
import numpy as np
from qsim.infra import runs
from qsim.chem.hamiltonians import molecular_hamiltonian
from qsim.molecules import get_molecule
from tqdm.auto import tqdm
from qsim.chem import vqe
from qsim.chem.nqs import run_nqs


__all__ = ["register", "run", "DEFAULTS"]

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
    if args.out is None:
        raise ValueError("qsim vqe needs --out DIR (the run directory)")
    return run_config(cfg, args.out, progress=not args.no_progress)


def run_config(cfg: dict, out, progress: bool = False) -> int:
    """Run one VQE / NQS calculation from a resolved configuration into run directory ``out``."""


    active = _parse_active(cfg["active"])
    ansatz_name = cfg["ansatz"]
    if ansatz_name not in ("uccsd", "hea", "nqs"):
        raise ValueError(f"unknown ansatz {ansatz_name!r}; choose uccsd, hea or nqs")
    shots = cfg["shots"]
    backend = cfg["backend"]
    if shots is not None and (not isinstance(shots, int) or shots < 1):
        raise ValueError(f"shots must be a positive int, got {shots!r}")
    if backend != "statevector" and shots is None and ansatz_name != "nqs":
        raise ValueError(f"backend {backend!r} needs --shots (exact energies run on the statevector)")
    spec = get_molecule(cfg["system"])  # clear error for unknown names before any heavy work
    mh = molecular_hamiltonian(spec.name, basis=cfg["basis"], active=active, mapping=cfg["mapping"])
    cfg = dict(cfg, active=list(mh.active_space))
    fci = mh.fci_energy

    def err_mha(e):
        return None if fci is None or e is None else 1000.0 * (e - fci)


    with runs.RunDir.open(out, command="vqe", config=cfg) as rd:
        rd.update_summary(system=spec.name, basis=cfg["basis"], active_space=list(mh.active_space),
                          mapping=mh.mapping, ansatz=ansatz_name, backend=backend, n_qubits=mh.n_qubits,
                          fci_energy=fci, hf_energy=mh.hf_energy, reference_energy=spec.reference_energy,
                          energy=None, error_mha=None)
        bar = tqdm(total=int(cfg["steps"]), desc=f"vqe {spec.name}", disable=not progress)
        if ansatz_name == "nqs":

            n = cfg["nqs"]

            def cb(k, e, err):
                bar.update(1)
                bar.set_postfix(E=f"{e:.6f}", err_mHa=f"{err_mha(e):.3f}")

            res = run_nqs(mh.qubit_hamiltonian, mh.n_qubits, alpha=int(n["alpha"]), n_samples=int(n["n_samples"]),
                          steps=int(cfg["steps"]), learning_rate=float(n["learning_rate"]),
                          diag_shift=float(n["diag_shift"]), seed=int(cfg["seed"]), run=rd, callback=cb,
                          sampler=str(n["sampler"]), n_restarts=int(n["n_restarts"]),
                          warmup_steps=int(n["warmup_steps"]),
                          exact_every=10 if mh.n_qubits <= 16 else 0)
            energy = res.exact_energy if res.exact_energy is not None else res.energy
            rd.update_summary(energy=energy, error_mha=err_mha(energy), mc_energy=res.energy,
                              energy_stderr=res.energy_error, variance=res.variance)
            bar.close()
            return 0


        if ansatz_name == "uccsd":
            ansatz = vqe.uccsd(mh)
            init = np.zeros(ansatz.num_params)
        else:
            ansatz = vqe.hardware_efficient(mh.n_qubits, int(cfg["layers"]), mh.hf_state)
            init = 0.01 * np.random.default_rng(int(cfg["seed"])).normal(size=ansatz.num_params)
        every = int(cfg["checkpoint_every"])
        shot_run = shots is not None
        template = {"params": init} if shot_run else vqe.vqe_init(
            init, vqe.make_optimizer(cfg["optimizer"], float(cfg["learning_rate"])))._asdict()
        start, init_state = 0, None
        restored = rd.load_checkpoint(template)
        if restored is not None:
            start, tree = restored[0] + 1, restored[1]
            init = np.asarray(tree["params"])
            if not shot_run:
                init_state = vqe.VQEState(**tree)
        remaining = max(0, int(cfg["steps"]) - start)
        bar.update(start)

        def cb(step, e, gn, state):
            rd.log_metrics(step, energy=e, grad_norm=gn, error_mha=err_mha(e))
            if (step + 1) % every == 0 or step + 1 == int(cfg["steps"]):
                rd.save_checkpoint(step, {"params": np.asarray(state)} if shot_run else state._asdict())
            bar.update(1)
            bar.set_postfix(E=f"{e:.8f}", err_mHa=f"{err_mha(e):.4f}" if fci is not None else "")

        if shots is None:
            if remaining:
                res = vqe.run_vqe(ansatz.circuit, mh.qubit_hamiltonian, init_params=init, init_state=init_state,
                                  optimizer=cfg["optimizer"], learning_rate=float(cfg["learning_rate"]),
                                  steps=remaining, qng=bool(cfg["qng"]), tol=float(cfg["tol"] or 0.0), callback=cb,
                                  step_offset=start)
                energy = res.energy
            else:
                energy = float(vqe.energy_and_grad(ansatz.circuit, mh.qubit_hamiltonian)(init)[0])
            rd.update_summary(energy=energy, error_mha=err_mha(energy), num_params=ansatz.num_params)
        else:
            if cfg["qng"]:
                raise ValueError("qng needs exact statevector gradients; drop --qng for shot-based runs")
            res = vqe.run_vqe_shots(ansatz.circuit, mh.qubit_hamiltonian, backend, shots=int(shots),
                                    init_params=init, optimizer=cfg["optimizer"],
                                    learning_rate=float(cfg["learning_rate"]), steps=max(remaining, 1),
                                    seed=int(cfg["seed"]) + start,
                                    callback=lambda k, e, gn, p: cb(start + k, e, gn, p))
            rd.update_summary(energy=res.energy, energy_stderr=res.energy_stderr, exact_energy=res.exact_energy,
                              error_mha=err_mha(res.energy), num_params=ansatz.num_params, shots=shots)
        bar.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    from qsim.infra.cli import main

    sys.exit(main(["vqe", *sys.argv[1:]]))
