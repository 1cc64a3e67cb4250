"""Time per VQE energy-and-gradient: qsim's JAX statevector against PennyLane, same circuit, same H.

    python benchmarks/vqe.py            # ladder UCCSD: H2 (4 qubits), LiH (2,3) (6), LiH (4,4) (8); + compact H2
    python benchmarks/vqe.py --quick    # H2 (ladder, compact) and LiH (2,3)

For each molecule (PySCF STO-3G, Jordan-Wigner) the UCCSD circuit of :mod:`qsim.chem.vqe` is exported
unchanged to PennyLane (:func:`qsim.interop.to_pennylane_ops`, Hamiltonian through
:func:`qsim.interop.to_pennylane_hamiltonian`) and one energy + full gradient is timed on

- qsim: ``vqe.energy_and_grad`` (jitted ``jax.value_and_grad`` of the statevector energy);
- PennyLane ``default.qubit``, ``diff_method="backprop"``, JAX interface, under ``jax.jit``;
- PennyLane ``lightning.qubit``, ``diff_method="adjoint"`` (JAX interface, not jittable).

First-call (compile) time is reported separately; steady-state numbers are medians over repeats,
measured side by side in one process. Values must agree (checked to 1e-8). Writes
benchmarks/results/vqe.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qsim.chem import vqe  # noqa: E402
from qsim.chem.hamiltonians import molecular_hamiltonian  # noqa: E402


def _time(fn, repeats: int) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    first = time.perf_counter() - t0
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return first, ts


def bench_case(system: str, active, form: str, repeats: int, max_fuse: int | None = None) -> dict:
    import pennylane as qml

    from qsim.interop import to_pennylane_hamiltonian, to_pennylane_ops

    mh = molecular_hamiltonian(system, basis="sto-3g", active=active)
    ans = vqe.uccsd(mh, form=form)
    c, h = ans.circuit, mh.qubit_hamiltonian
    p = jnp.asarray(np.random.default_rng(0).uniform(-0.1, 0.1, c.num_params))
    n = c.n_wires
    row = {"system": system, "active_space": list(mh.active_space), "n_qubits": n, "n_terms": len(h),
           "num_params": c.num_params, "form": form, "max_fuse": max_fuse, "ops": len(c.ops),
           "counts": c.count_ops()}

    f_qsim = vqe.energy_and_grad(c, h, max_fuse=max_fuse)
    first, ts = _time(lambda: f_qsim(p), repeats)
    e_ref, g_ref = f_qsim(p)
    row["qsim"] = {"first_s": first, "median_s": statistics.median(ts)}

    h_pl = to_pennylane_hamiltonian(h)
    # lightning's adjoint serialiser rejects read-only arrays, and Circuit.unitary stores its matrix
    # read-only: hand PennyLane a copy of the circuit with writable matrices
    from qsim.circuits.circuit import Circuit, Op

    c_pl = Circuit(n)
    c_pl.num_params = c.num_params
    c_pl.ops = [op if op.matrix is None else Op(op.name, op.wires, op.params, op.n_controls, op.adjoint,
                                                   np.array(op.matrix)) for op in c.ops]

    def circuit_fn(params):
        to_pennylane_ops(c_pl, params)
        return qml.expval(h_pl)

    dev_bp = qml.device("default.qubit", wires=n)
    qn_bp = qml.QNode(circuit_fn, dev_bp, interface="jax", diff_method="backprop")
    f_bp = jax.jit(jax.value_and_grad(qn_bp))
    first, ts = _time(lambda: f_bp(p), repeats)
    e, g = f_bp(p)
    row["pennylane_default_backprop"] = {"first_s": first, "median_s": statistics.median(ts),
                                         "max_abs_diff": float(max(abs(e - e_ref), np.max(np.abs(g - g_ref))))}

    dev_lt = qml.device("lightning.qubit", wires=n)
    qn_lt = qml.QNode(circuit_fn, dev_lt, interface="jax", diff_method="adjoint")
    f_lt = jax.value_and_grad(qn_lt)
    first, ts = _time(lambda: f_lt(p), max(3, repeats // 4))
    e, g = f_lt(p)
    row["pennylane_lightning_adjoint"] = {"first_s": first, "median_s": statistics.median(ts),
                                          "max_abs_diff": float(max(abs(e - e_ref), np.max(np.abs(g - g_ref))))}
    for k in ("pennylane_default_backprop", "pennylane_lightning_adjoint"):
        row[k]["ratio_to_qsim"] = row[k]["median_s"] / row["qsim"]["median_s"]
        if row[k]["max_abs_diff"] > 1e-8:
            raise RuntimeError(f"{k} disagrees with qsim by {row[k]['max_abs_diff']:.3g} on {system} {form}")
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="H2 (ladder, compact) and LiH (2,3) only")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "vqe.json"))
    args = ap.parse_args(argv)
    cases = [("H2", None, "ladder", None), ("LiH", (2, 3), "ladder", None), ("H2", None, "compact", 4)]
    if not args.quick:
        cases += [("LiH", (4, 4), "ladder", None)]
    rows = []
    for system, active, form, mf in cases:
        print(f"... {system} {active or 'full'} {form} max_fuse={mf}", flush=True)
        rows.append(bench_case(system, active, form, args.repeats, mf))
        _write(args, rows)
    _table(rows)
    print(f"wrote {args.out}")
    return 0


def _write(args, rows) -> None:
    result = {"benchmark": "vqe energy+gradient", "quick": args.quick, "repeats": args.repeats,
              "machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "cpu_count": os.cpu_count(), "jax_devices": [str(d) for d in jax.devices()]},
              "note": "median wall seconds per energy+gradient after the first (compiling) call; "
                      "ratio_to_qsim > 1 means qsim is faster; shared, loaded 2-core machine",
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


def _table(rows) -> None:
    hdr = (f"{'system':<6} {'active':<7} {'form':<8} {'qubits':>6} {'params':>6} {'ops':>5} | "
           f"{'qsim ms':>9} {'(first s)':>9} | {'PL backprop ms':>14} {'x':>6} | {'PL lightning adj ms':>19} {'x':>6}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        bp, lt = r["pennylane_default_backprop"], r["pennylane_lightning_adjoint"]
        print(f"{r['system']:<6} {str(tuple(r['active_space'])):<7} {r['form']:<8} {r['n_qubits']:>6} "
              f"{r['num_params']:>6} {r['ops']:>5} | {1e3 * r['qsim']['median_s']:>9.3f} {r['qsim']['first_s']:>9.2f} | "
              f"{1e3 * bp['median_s']:>14.3f} {bp['ratio_to_qsim']:>6.1f} | {1e3 * lt['median_s']:>19.3f} "
              f"{lt['ratio_to_qsim']:>6.1f}")


if __name__ == "__main__":
    sys.exit(main())
