"""Statevector benchmark: qsim (JAX) vs PennyLane lightning.qubit / default.qubit and qiskit-aer.

    python benchmarks/statevector.py            # 12, 16, 20, 24 qubits
    python benchmarks/statevector.py --quick    # 12, 16, 20 qubits, fewer repeats

Two circuits per size n (wire 0 the most significant bit everywhere):

* ``layers``: 10 layers of RY on every qubit followed by a CNOT chain 0->1->...->n-1 (10 n parameters);
* ``random``: a seeded random circuit of 10 layers, each a random rotation (RX/RY/RZ) or fixed
  gate (H/S/T/SX) on every qubit, then n/2 random two-qubit gates (CNOT/CZ/CRX/RZZ/ISWAP-free) on
  random disjoint pairs.

Each is timed warm (median of repeats, every backend in turn inside one repeat so that load
from other processes hits all of them alike) for the forward pass (``<H>`` with ``H = sum_i Z_i``)
and for value + gradient (qsim: ``jax.value_and_grad``; PennyLane: adjoint differentiation; Aer: n/a).
qsim runs complex128 (the equal-precision comparison) and complex64 beside it. The table quotes
each time and the ratio (fastest peer at complex128) / qsim-complex128; qsim's effective bandwidth
is reported next to this machine's copy bandwidth. Results go to ``benchmarks/results/statevector.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

import qsim  # noqa: E402
from qsim.infra import settings  # noqa: E402
from qsim.simulator import compiler, program  # noqa: E402
from qsim.simulator import statevector as sv  # noqa: E402

LAYERS = 10


# --------------------------------------------------------------------------------------------------
# circuits, as a neutral gate list: (name, wires, param index or None, fixed value or None)
# --------------------------------------------------------------------------------------------------
def layered_spec(n: int):
    ops, k = [], 0
    for _ in range(LAYERS):
        for w in range(n):
            ops.append(("RY", (w,), k))
            k += 1
        for w in range(n - 1):
            ops.append(("CNOT", (w, w + 1), None))
    return ops, k


def random_spec(n: int, seed: int = 1234):
    rng = np.random.default_rng(seed + n)
    ops, k = [], 0
    for _ in range(LAYERS):
        for w in range(n):
            g = rng.choice(["RX", "RY", "RZ", "RY", "H", "S", "T", "SX"])
            if g in ("RX", "RY", "RZ"):
                ops.append((g, (w,), k))
                k += 1
            else:
                ops.append((g, (w,), None))
        perm = rng.permutation(n)
        for i in range(n // 2):
            a, b = int(perm[2 * i]), int(perm[2 * i + 1])
            g = rng.choice(["CNOT", "CZ", "CRX", "RZZ"])
            if g in ("CRX", "RZZ"):
                ops.append((g, (a, b), k))
                k += 1
            else:
                ops.append((g, (a, b), None))
    return ops, k


def to_qsim(n, ops):
    c = qsim.Circuit(n)
    for name, wires, k in ops:
        if k is None:
            c.add(name, wires)
        else:
            c.add(name, wires, param=c.new_param() if k == c.num_params else k)
    return c


def hamiltonian_qsim(n):
    h = qsim.Z(0)
    for w in range(1, n):
        h = h + qsim.Z(w)
    return h


# --------------------------------------------------------------------------------------------------
# backends: each returns (forward(p) -> float, value_and_grad(p) -> (float, array) or None)
# --------------------------------------------------------------------------------------------------
def qsim_backend(n, ops, dtype):
    c = to_qsim(n, ops)
    h = hamiltonian_qsim(n)
    f = jax.jit(lambda p: sv.expval(c, p, h))
    vg = jax.jit(jax.value_and_grad(lambda p: sv.expval(c, p, h)))
    rdt = jnp.float64 if dtype == "complex128" else jnp.float32

    def fwd(p):
        return float(f(jnp.asarray(p, rdt)))

    def valgrad(p):
        v, g = vg(jnp.asarray(p, rdt))
        return float(v), np.asarray(g)
    return fwd, valgrad, c


_PL = {"RY": "RY", "RX": "RX", "RZ": "RZ", "H": "Hadamard", "S": "S", "T": "T", "SX": "SX",
       "CNOT": "CNOT", "CZ": "CZ", "CRX": "CRX", "RZZ": "IsingZZ"}


def pennylane_backend(n, ops, device):
    import pennylane as qml

    dev = qml.device(device, wires=n)
    h = qml.Hamiltonian([1.0] * n, [qml.PauliZ(w) for w in range(n)])

    def body(p):
        for name, wires, k in ops:
            cls = getattr(qml, _PL[name])
            if k is None:
                cls(wires=list(wires))
            else:
                cls(p[k], wires=list(wires))
        return qml.expval(h)

    f = qml.QNode(body, dev, diff_method=None, interface=None)
    # default.qubit's adjoint builds a dense matrix of a Hamiltonian observable (64 GiB at 16 qubits),
    # so it differentiates by backprop (its own JAX einsum path) instead
    method = "adjoint" if device == "lightning.qubit" else "backprop"
    g = qml.QNode(body, dev, diff_method=method, interface="jax")
    vg = jax.value_and_grad(g)

    def fwd(p):
        return float(f(np.asarray(p)))

    def valgrad(p):
        v, gr = vg(jnp.asarray(p, jnp.float64))
        return float(v), np.asarray(gr)
    return fwd, valgrad


def aer_backend(n, ops):
    from qiskit import QuantumCircuit, transpile
    from qiskit.circuit import ParameterVector
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_aer import AerSimulator

    nparams = 1 + max([k for _, _, k in ops if k is not None] + [-1])
    pv = ParameterVector("p", nparams)
    qc = QuantumCircuit(n)
    q = lambda w: n - 1 - w  # noqa: E731  (qiskit: qubit 0 is the least significant bit)
    for name, wires, k in ops:
        ws = [q(w) for w in wires]
        if name == "RZZ":
            qc.rzz(pv[k], *ws)
        elif k is None:
            getattr(qc, {"CNOT": "cx"}.get(name, name.lower()))(*ws)
        else:
            getattr(qc, name.lower())(pv[k], *ws)
    obs = SparsePauliOp.from_sparse_list([("Z", [i], 1.0) for i in range(n)], num_qubits=n)
    qc.save_expectation_value(obs, list(range(n)))
    sim = AerSimulator(method="statevector", precision="double", fusion_enable=True)
    tqc = transpile(qc, sim, optimization_level=0)

    def fwd(p):
        bound = tqc.assign_parameters(np.asarray(p, float))
        res = sim.run(bound).result()
        return float(np.real(res.data(0)["expectation_value"]))
    return fwd, None


# --------------------------------------------------------------------------------------------------
# timing helpers
# --------------------------------------------------------------------------------------------------
def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def copy_bandwidth(nbytes: int, repeats: int = 5) -> float:
    """GB/s of a NumPy copy (bytes read + written) of an array of ``nbytes``."""
    a = np.ones(nbytes // 8)
    b = np.empty_like(a)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(b, a)
        ts.append(time.perf_counter() - t)
    return 2 * a.nbytes / min(ts) / 1e9


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key = line.split(":")[0].strip()
            if key in ("Model name", "L2 cache", "L3 cache", "Core(s) per socket", "Thread(s) per core"):
                info[key] = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        info["mem_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    info["versions"] = {"jax": jax.__version__, "numpy": np.__version__}
    info["devices"] = [str(d) for d in jax.devices()]
    for mod in ("pennylane", "qiskit_aer"):       # absent on a GPU machine that runs qsim alone (--peers)
        try:
            info["versions"][mod] = __import__(mod).__version__
        except ImportError:
            pass
    return info


# --------------------------------------------------------------------------------------------------
def run(args) -> dict:
    sizes = list(range(args.min_qubits, args.max_qubits + 1, 4))
    cases = {"layers": layered_spec, "random": random_spec}
    rows = []
    load0 = os.getloadavg()
    args.native = native_info()
    print(f"native kernels: {args.native}", flush=True)
    bw = {"copy_16MiB_GBps": copy_bandwidth(16 * 2**20, 20), "copy_256MiB_GBps": copy_bandwidth(256 * 2**20, 5)}
    print(f"copy bandwidth: {bw['copy_16MiB_GBps']:.1f} GB/s (16 MiB, cache), "
          f"{bw['copy_256MiB_GBps']:.1f} GB/s (256 MiB, DRAM); load average {load0[0]:.1f}", flush=True)
    for n in sizes:
        for cname in args.cases:
            ops, nparams = cases[cname](n)
            p = np.random.default_rng(7).uniform(-np.pi, np.pi, nparams)
            backends = {}
            compile_s = {}
            for dt in ("complex128", "complex64"):
                fwd, vg, circ = qsim_backend(n, ops, dt)
                t_f, _ = timed(fwd, p)
                t_g, _ = timed(vg, p) if args.grad else (0.0, None)
                compile_s[dt] = {"forward": t_f, "value_and_grad": t_g}
                backends[f"qsim-{dt[7:]}"] = (fwd, vg if args.grad else None)
            prog = qsim.compile(circ, dtype="complex128")
            n_blocks = prog.n_blocks
            n_transposes = prog.n_transposes
            real_path = bool(prog.real)
            if "lightning" in args.peers:
                backends["lightning.qubit"] = pennylane_backend(n, ops, "lightning.qubit")
            if "default" in args.peers and n <= args.default_max:
                backends["default.qubit"] = pennylane_backend(n, ops, "default.qubit")
            if "aer" in args.peers:
                backends["aer"] = aer_backend(n, ops)
            if not args.grad:       # --no-grad: forward passes only, the peers' too
                backends = {k: (fwd, None) for k, (fwd, _) in backends.items()}
            # warm-up (and a value check: every backend computes the same <H>)
            values = {}
            for name, (fwd, vg) in backends.items():
                values[name] = fwd(p)
                if vg is not None and args.grad and not name.startswith("qsim"):
                    vg(p)
            ref = values["qsim-128"]
            for name, v in values.items():
                # complex64: relative to ||H|| = n (<H> sums 2^n terms of size <= n; at 24 qubits the random
                # circuit's <H> = -0.029 comes out 3.6e-4 off in complex64 with either engine)
                tol = 1e-4 * n if name == "qsim-64" else 1e-8 * max(1.0, abs(ref))
                if abs(v - ref) > tol:
                    raise RuntimeError(f"{name} gives <H> = {v}, qsim-complex128 {ref} (n={n}, {cname})")
            reps = args.repeats if n < 24 else max(2, args.repeats // 2)
            tf = {k: [] for k in backends}
            tg = {k: [] for k in backends if backends[k][1] is not None}
            for _ in range(reps):
                for name, (fwd, vg) in backends.items():
                    tf[name].append(timed(fwd, p)[0])
                    if vg is not None:
                        tg[name].append(timed(vg, p)[0])
            med_f = {k: statistics.median(v) for k, v in tf.items()}
            med_g = {k: statistics.median(v) for k, v in tg.items()}
            peers_f = {k: v for k, v in med_f.items() if not k.startswith("qsim")}
            peers_g = {k: v for k, v in med_g.items() if not k.startswith("qsim")}
            best_f = min(peers_f, key=peers_f.get) if peers_f else None
            best_g = min(peers_g, key=peers_g.get) if peers_g else None
            state_bytes = 16 * 2 ** n
            gates = len([o for o in ops])
            row = {
                "n": n, "circuit": cname, "gates": gates, "params": nparams, "qsim_blocks": n_blocks, "qsim_real_path": real_path,
                "qsim_engine": prog.engine, "qsim_transposes": n_transposes,
                "forward_s": med_f, "value_and_grad_s": med_g, "repeats": reps,
                "forward_all_s": tf, "value_and_grad_all_s": tg,
                "qsim_compile_s": compile_s,
                "fastest_peer_forward": best_f, "fastest_peer_value_and_grad": best_g,
                "speedup_forward": (peers_f[best_f] / med_f["qsim-128"]) if best_f else None,
                "speedup_value_and_grad": (peers_g[best_g] / med_g["qsim-128"]) if best_g and "qsim-128" in med_g else None,
                # bytes read + written: per fused block (what qsim does) and per gate (the measure)
                "qsim_bandwidth_blocks_GBps": 2 * state_bytes * n_blocks / med_f["qsim-128"] / 1e9,
                "qsim_bandwidth_gates_GBps": 2 * state_bytes * gates / med_f["qsim-128"] / 1e9,
                # what the block passes really move: one real plane (8 B/amplitude) on the real path
                "qsim_bandwidth_planes_GBps": 2 * (state_bytes // (2 if real_path else 1)) * n_blocks
                / med_f["qsim-128"] / 1e9,
                "value": ref,
            }
            rows.append(row)
            print_row(row, flush=True)
            write(args, result(args, bw, load0, rows))   # after every row: a partial run leaves data
    return result(args, bw, load0, rows)


def native_info() -> dict:
    """Whether the native kernels are used here, and how long loading (or first compiling) them took."""
    from qsim.simulator import native
    t = time.perf_counter()
    ok = native.available()
    return {"available": ok, "load_s": time.perf_counter() - t, "flags": " ".join(native.FLAGS),
            "env": {k: os.environ[k] for k in ("QSIM_NATIVE", "QSIM_SV_ENGINE", "QSIM_SV_NATIVE_FUSE",
                                               "QSIM_SV_GEMM_FUSE", "QSIM_SV_GEMM_MIN_QUBITS") if k in os.environ}}


def result(args, bw, load0, rows) -> dict:
    return {"machine": machine(), "bandwidth": bw, "load_average_start": load0,
            "load_average_end": os.getloadavg(), "rows": rows, "command": " ".join(sys.argv),
            "settings": {"layers": LAYERS, "repeats": args.repeats, "max_fuse": compiler.MAX_FUSE,
                         "gemm_min_qubits": settings.get().gemm_min_qubits,
                         "gemm_max_fuse": settings.get().gemm_max_fuse, "native_max_fuse": settings.get().native_max_fuse,
                         "native": args.native,
                         "default_qubit_max": args.default_max,
                         "observable": "sum_i Z_i", "aer": "statevector, double, default fusion",
                         "pennylane_gradients": "lightning: adjoint, default.qubit: backprop (jax)", "qsim_gradients": "jax.value_and_grad",
                         "qsim_adjoint_bytes": program.ADJOINT_BYTES}}


def write(args, res) -> None:
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.append:     # keep an earlier run's rows (e.g. 12-20 qubits) and add this run's as a new part
        prev = args.previous
        if prev is None:
            prev = args.previous = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
        parts = prev.get("parts", [{k: v for k, v in prev.items() if k != "machine"}] if prev else [])
        res = {"machine": res["machine"], "parts": parts + [{k: v for k, v in res.items() if k != "machine"}],
               "rows": [r for p in parts for r in p["rows"]] + res["rows"]}
    Path(args.out).write_text(json.dumps(res, indent=1))


COLS = ["qsim-128", "qsim-64", "lightning.qubit", "default.qubit", "aer"]


def print_header():
    print(f"{'n':>3} {'circuit':8} {'what':6} " + " ".join(f"{c:>16}" for c in COLS) + f" {'peer/qsim':>10}")


def print_row(row, flush=False):
    for what, key, sk in (("fwd", "forward_s", "speedup_forward"),
                          ("val+g", "value_and_grad_s", "speedup_value_and_grad")):
        vals = row[key]
        cells = [f"{vals[c]:16.4f}" if c in vals else f"{'n/a':>16}" for c in COLS]
        sp = row[sk]
        print(f"{row['n']:>3} {row['circuit']:8} {what:6} " + " ".join(cells)
              + (f" {sp:9.2f}x" if sp else f" {'n/a':>10}"), flush=flush)
    print(f"    qsim: {row['qsim_blocks']} fused blocks for {row['gates']} gates, effective bandwidth "
          f"{row['qsim_bandwidth_blocks_GBps']:.1f} GB/s per block pass "
          f"({row['qsim_bandwidth_gates_GBps']:.1f} GB/s gate-equivalent); compile "
          f"{row['qsim_compile_s']['complex128']['forward']:.2f} s fwd, "
          f"{row['qsim_compile_s']['complex128']['value_and_grad']:.2f} s val+grad", flush=flush)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="stop at 20 qubits, 3 repeats")
    ap.add_argument("--min-qubits", type=int, default=12)
    ap.add_argument("--max-qubits", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--default-max", type=int, default=20,
                    help="largest n for default.qubit (it is slow and memory-hungry beyond)")
    ap.add_argument("--cases", nargs="+", default=["layers", "random"], choices=["layers", "random"])
    ap.add_argument("--peers", nargs="*", default=["lightning", "default", "aer"],
                    choices=["lightning", "default", "aer"])
    ap.add_argument("--no-grad", dest="grad", action="store_false", help="forward pass only")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "statevector.json"))
    ap.add_argument("--append", action="store_true",
                    help="add this run's rows to the JSON already at --out (as a separate part)")
    args = ap.parse_args(argv)
    args.previous = None
    if args.quick:
        args.max_qubits = min(args.max_qubits, 20)
        args.repeats = min(args.repeats, 3)
    print_header()
    write(args, run(args))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
