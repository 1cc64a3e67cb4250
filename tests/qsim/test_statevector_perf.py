"""The fast paths of the statevector simulator: gate fusion, the kernel scan, the adjoint gradient, caching.

Correctness against PennyLane / Aer lives in test_statevector.py; here the fused program is checked
against a plain NumPy reference built gate by gate from the gate table, for several fusion widths.
"""

import ast
import pathlib

import numpy as np
import jax
import jax.numpy as jnp
import pytest

import qsim
from qsim.infra import settings
from qsim.simulator import compile, compiler, gemm
from qsim.simulator import statevector as sv


def _random_circuit(n: int, n_gates: int, seed: int) -> qsim.Circuit:
    rng = np.random.default_rng(seed)
    c = qsim.Circuit(n)
    fixed1 = ["x", "y", "z", "h", "s", "t", "sx"]
    rot1 = ["rx", "ry", "rz", "phaseshift"]
    fixed2 = ["cnot", "cz", "cy", "swap", "iswap"]
    rot2 = ["crx", "cry", "crz", "cphase", "rxx", "ryy", "rzz"]
    for _ in range(n_gates):
        u = rng.random()
        w = [int(x) for x in rng.choice(n, 3, replace=False)]
        if u < 0.15:
            getattr(c, rng.choice(fixed1))(w[0])
        elif u < 0.4:
            getattr(c, rng.choice(rot1))(w[0])
        elif u < 0.45:
            c.u3(w[0])
        elif u < 0.6:
            getattr(c, rng.choice(fixed2))(w[0], w[1])
        elif u < 0.8:
            getattr(c, rng.choice(rot2))(w[0], w[1])
        elif u < 0.85:
            c.ry(w[1], value=float(rng.uniform(-3, 3)))
        elif u < 0.9:
            c.toffoli(*w)
        elif u < 0.95:
            c.ctrl("ry", w[:2], w[2])
        else:
            q, _ = np.linalg.qr(rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4)))
            c.unitary(q, w[:2])
    return c


def test_fused_matches_unfused_and_reference(numpy_state):
    seed = 0
    c = _random_circuit(4, 16, seed)
    p = np.random.default_rng(seed + 10).uniform(-3, 3, c.num_params)
    ref = numpy_state(c, p)
    psi = np.asarray(sv.simulate(c, jnp.asarray(p, jnp.float64)))
    np.testing.assert_allclose(psi, ref, atol=1e-12)
    # unfused (every gate its own pass) on a short prefix
    c1 = qsim.Circuit(4)
    c1.ops, c1.num_params = c.ops[:6], c.num_params
    np.testing.assert_allclose(np.asarray(sv.simulate(c1, jnp.asarray(p), max_fuse=1)),
                               numpy_state(c1, p), atol=1e-12)
    psi64 = np.asarray(sv.simulate(c, jnp.asarray(p, jnp.float32)))
    assert psi64.dtype == np.complex64
    np.testing.assert_allclose(psi64, ref, atol=2e-5)


def test_fusion_reduces_passes_and_kernels_stay_few():
    """RY layer + CNOT chain: blocks < gates / 1.8, and the kernel count does not grow with depth."""
    def layered(n, layers):
        c = qsim.Circuit(n)
        for _ in range(layers):
            for w in range(n):
                c.ry(w)
            for w in range(n - 1):
                c.cnot(w, w + 1)
        return c
    progs = []
    for layers in (4, 12):
        c = layered(6, layers)
        prog = compile(c)
        assert prog.engine == "scan" and prog.n_blocks < len(c.ops) / 1.8
        assert max(prog.block_widths) <= prog.max_fuse == 2     # 6 qubits: blocks of 2 wires
        progs.append(prog)
    assert 0 < progs[0].n_kernels == progs[1].n_kernels <= 2 * 6


def test_structure_cache_hits_for_an_equal_circuit():
    def make():
        c = qsim.Circuit(3)
        c.h(0).cnot(0, 1).ry(2).crz(1, 2)
        return c
    p = jnp.array([0.3, -0.7])
    a = sv.simulate(make(), p)
    hits = compiler.cache_info().hits
    b = sv.simulate(make(), p * 2)          # a new object with the same structure: no rebuild
    assert compiler.cache_info().hits == hits + 1
    assert not np.allclose(a, b)
    # compile() is the program simulate ran: the same cached object
    assert compile(make(), dtype=jnp.complex64) is compile(make(), dtype="complex64")
    assert compiler.cache_info().hits == hits + 2


@pytest.mark.parametrize("mode", ["0", "1"])
def test_gradient_paths_agree_with_finite_differences(mode):
    """Plain reverse mode ("0") and the adjoint method ("1", QSIM_SV_ADJOINT) both match central
    differences."""
    c = _random_circuit(3, 8, 3)
    h = 0.7 * qsim.Z(0) @ qsim.X(2) + qsim.Y(1) - 0.2 * qsim.Z(2)
    p = jnp.asarray(np.random.default_rng(4).uniform(-3, 3, (2, c.num_params)))
    with settings.override(sv_adjoint=mode):
        assert compile(c).adjoint == (mode == "1")
        f = jax.jit(lambda q: sv.expval(c, q, h))
        g = jax.grad(lambda q: f(q).sum())(p)           # batched params: vmap inside
        eps = 1e-6
        e = jnp.zeros((2, c.num_params)).at[0, 0].set(eps).at[1, -1].set(eps)
        fd = (f(p + e) - f(p - e)) / (2 * eps)
    np.testing.assert_allclose([g[0, 0], g[1, -1]], fd, atol=1e-7)


def test_init_state_gradient_and_forward_mode():
    c = qsim.Circuit(3)
    c.ry(0).cnot(0, 1).rx(2).crz(1, 2).h(1).rzz(0, 2)
    p = jnp.asarray([0.4, -1.1, 0.8, 2.0])
    psi0 = jnp.asarray(np.random.default_rng(7).normal(size=8) + 0j)
    psi0 = psi0 / jnp.linalg.norm(psi0)
    w = jnp.arange(8.0)

    def loss(s, q):
        out = sv.simulate(c, q, init_state=s)
        return jnp.sum(w * jnp.abs(out) ** 2)
    gs, gp = jax.grad(loss, argnums=(0, 1))(psi0, p)
    # JAX's gradient of a real loss at complex s is conj(dL/dx + i dL/dy): dL = Re(sum(g * ds))
    eps = 1e-6
    for d in (jnp.asarray(np.random.default_rng(8).normal(size=8) + 0j),
              1j * jnp.asarray(np.random.default_rng(9).normal(size=8))):
        fd = (loss(psi0 + eps * d, p) - loss(psi0 - eps * d, p)) / (2 * eps)
        np.testing.assert_allclose(jnp.real(jnp.sum(gs * d)), fd, atol=1e-7)
    # forward mode works in the default (small-state) mode, e.g. for metric tensors
    jac = jax.jacfwd(lambda q: loss(psi0, q))(p)
    np.testing.assert_allclose(jac, gp, atol=1e-10)


def test_bad_max_fuse():
    c = qsim.Circuit(2).h(0)
    with pytest.raises(ValueError, match="max_fuse"):
        sv.simulate(c, max_fuse=0)


def test_real_path_matches_reference(numpy_state, real_circuit):
    """A real circuit runs on one real plane from |0>, and on two real planes from a complex
    initial state; both agree with the NumPy reference to 1e-10 (complex64: 1e-5)."""
    n = 5
    c = real_circuit(n, 1)
    assert compile(c).real
    p = np.random.default_rng(2).uniform(-3, 3, c.num_params)
    np.testing.assert_allclose(np.asarray(sv.simulate(c, jnp.asarray(p))), numpy_state(c, p), atol=1e-10)
    psi32 = sv.simulate(c, jnp.asarray(p, jnp.float32))
    assert psi32.dtype == jnp.complex64
    np.testing.assert_allclose(np.asarray(psi32), numpy_state(c, p), atol=1e-5)
    prep = qsim.Circuit(n)                   # fixed complex gates: a complex initial state
    for w in range(n):
        prep.h(w).t(w).rx(w, value=0.3 * w + 0.1)
    psi0 = numpy_state(prep, [])
    out = sv.simulate(c, jnp.asarray(p), init_state=jnp.asarray(psi0))
    np.testing.assert_allclose(np.asarray(out), numpy_state(prep + c, p), atol=1e-10)
    # a complex gate anywhere makes the program complex
    assert not compile(c.copy().s(0)).real


def test_dense_wide_unitary_and_wide_trainable_gate(numpy_state, haar):
    """A 6-qubit unitary on unsorted wires is one transpose + matmul; a trainable 4-wire controlled
    gate (wider than the fused blocks) too; both match the reference and finite differences."""
    rng = np.random.default_rng(5)
    n = 7
    c = qsim.Circuit(n)
    for w in range(n):
        c.rx(w)
    c.unitary(haar(6, rng), [5, 1, 3, 0, 6, 2])
    c.ctrl("ry", [0, 4, 6], 2)
    c.cnot(2, 3).rz(3)
    p = rng.uniform(-3, 3, c.num_params)
    prog = compile(c)
    assert max(len(op.wires) for op in c.ops) == 6 and max(prog.block_widths) == 6
    np.testing.assert_allclose(np.asarray(sv.simulate(c, jnp.asarray(p))), numpy_state(c, p), atol=1e-10)
    assert prog.n_blocks <= len(c.ops)
    h = qsim.Z(2) + 0.5 * qsim.X(3) @ qsim.Y(0)
    f = jax.jit(lambda q: sv.expval(c, q, h))
    g = jax.grad(f)(jnp.asarray(p))
    eps = 1e-6
    for i in (0, n, n + 1):                    # an RX, the wide controlled RY, the final RZ
        e = np.zeros(c.num_params)
        e[i] = eps
        fd = (f(jnp.asarray(p + e)) - f(jnp.asarray(p - e))) / (2 * eps)
        np.testing.assert_allclose(g[i], fd, atol=1e-7)


# ---------------------------------------------------------------------------------------------------
# the GEMM engine (qsim.simulator.fusion): wide blocks as matrix products on a tracked wire layout
# ---------------------------------------------------------------------------------------------------
def _gemm(c, k):
    prog = compile(c, dtype="complex128", engine="gemm", max_fuse=k)
    assert prog.engine == "gemm" and prog.max_fuse == k
    return prog.run


@pytest.mark.parametrize("n,gates,widths", [(1, 6, (1, 2)), (2, 10, (1, 2, 3)), (4, 24, (2, 3, 4, 5)),
                                            (7, 40, (3, 5, 6)), (10, 40, (4, 6))])
def test_gemm_engine_matches_unfused(n, gates, widths):
    """Random circuits, many block widths: the GEMM engine equals the unfused scan (every gate its
    own pass) to 1e-12, from |0> and from a complex initial state."""
    if n < 3:
        rng = np.random.default_rng(n)
        c = qsim.Circuit(n)
        for _ in range(gates):
            w = int(rng.integers(n))
            getattr(c, str(rng.choice(["rx", "ry", "rz", "h", "t", "sx"])))(w)
            if n == 2 and rng.random() < 0.4:
                getattr(c, str(rng.choice(["cnot", "crx", "rzz", "iswap"])))(w, 1 - w)
    else:
        c = _random_circuit(n, gates, seed=n)
    rng = np.random.default_rng(n + 1)
    p = jnp.asarray(rng.uniform(-3, 3, c.num_params))
    psi0 = rng.normal(size=2 ** n) + 1j * rng.normal(size=2 ** n)
    psi0 = jnp.asarray(psi0 / np.linalg.norm(psi0))
    unfused = compile(c, dtype="complex128", engine="scan", max_fuse=1).run
    ref, ref0 = np.asarray(unfused(p, None)), np.asarray(unfused(p, psi0))
    for k in widths:
        np.testing.assert_allclose(np.asarray(_gemm(c, k)(p, None)), ref, atol=1e-12, err_msg=f"k={k}")
        np.testing.assert_allclose(np.asarray(_gemm(c, k)(p, psi0)), ref0, atol=1e-12, err_msg=f"k={k}")


def test_gemm_engine_gradient_and_real_path(numpy_state, real_circuit):
    """The adjoint backward pass of the GEMM engine matches central differences (complex and real
    circuits); a real circuit from |0> runs on one plane; complex64 within 1e-5."""
    h = 0.7 * qsim.Z(0) @ qsim.X(2) + qsim.Y(1) - 0.2 * qsim.Z(4)
    for c in (_random_circuit(6, 30, 11), real_circuit(6, 2)):
        prog = compile(c, dtype="complex128", engine="gemm", max_fuse=4)
        assert any(s.kind == "G" for s in prog.steps) and prog.n_blocks < len(c.ops) and prog.adjoint
        p = jnp.asarray(np.random.default_rng(12).uniform(-3, 3, c.num_params))
        f = jax.jit(lambda q, c=c: sv.state_expval(_gemm(c, 4)(q, None), h))
        g = jax.grad(f)(p)
        eps = 1e-6
        for i in (0, c.num_params // 2, c.num_params - 1):
            e = jnp.zeros(c.num_params).at[i].set(eps)
            np.testing.assert_allclose(g[i], (f(p + e) - f(p - e)) / (2 * eps), atol=1e-7)
        psi32 = compile(c, dtype="complex64", engine="gemm", max_fuse=4).run(p.astype(jnp.float32))
        np.testing.assert_allclose(np.asarray(psi32), numpy_state(c, np.asarray(p)), atol=1e-5)
    assert prog.real


def test_gemm_layout_transposes_return_to_wire_order():
    """A transpose of merged axes is a permutation of the wires; every product acts on the leading
    axes, consecutive blocks on the same wires need no transpose, and the plan ends in wire order."""
    n = 5
    x = jnp.arange(2 * 2 ** n, dtype=jnp.float64).reshape(2, -1)
    new = (3, 4, 0, 1, 2)
    t = gemm.transpose_layout(x, tuple(range(n)), new)
    ref = np.transpose(np.asarray(x).reshape((2,) + (2,) * n), (0,) + tuple(1 + w for w in new)).reshape(2, -1)
    np.testing.assert_array_equal(np.asarray(t), ref)
    np.testing.assert_array_equal(np.asarray(gemm.transpose_layout(t, new, tuple(range(n)))), np.asarray(x))
    c = qsim.Circuit(8)
    for _ in range(3):
        for a, b in ((0, 5), (1, 6), (2, 7), (3, 4)):
            c.crx(a, b).ry(a).rx(b)
    prog = compile(c, dtype="complex128", engine="gemm", max_fuse=2)
    steps = prog.steps
    assert prog.n_transposes == sum(s.kind == "T" for s in steps)
    lay = list(range(8))
    for s in steps:
        if s.kind == "T":
            assert list(s.old) == lay
            lay = list(s.new)
        elif s.kind == "G":
            assert set(lay[:len(s.order)]) == set(s.order)
    assert lay == list(range(8))
    # each pair's three layers fuse into one block (4 products); a transpose at most before each
    # product whose wires do not lead, plus the last one back to wire order
    n_t, n_g = sum(s.kind == "T" for s in steps), sum(s.kind == "G" for s in steps)
    assert n_g == 4 and n_t <= n_g + 1


# ---------------------------------------------------------------------------------------------------
# the public compile / inspect API and the stages behind it
# ---------------------------------------------------------------------------------------------------
def test_compile_program_fields_run_and_bad_input():
    c = qsim.Circuit(4)
    for _ in range(2):
        for w in range(4):
            c.ry(w)
        for w in range(3):
            c.cnot(w, w + 1)
    prog = compile(c, dtype="complex128")
    assert qsim.compile is compile and qsim.simulator.Program is compiler.Program
    assert (prog.engine, prog.n_wires, prog.dtype, prog.max_fuse) == ("scan", 4, "complex128", 2)
    assert prog.real and prog.n_blocks == len(prog.block_widths) > 0 and prog.n_kernels > 0
    assert prog.steps == () and prog.n_transposes == 0
    rng = np.random.default_rng(1)
    p = jnp.asarray(rng.uniform(-3, 3, c.num_params))
    psi0 = jnp.asarray(rng.normal(size=16) + 1j * rng.normal(size=16))
    psi0 = psi0 / jnp.linalg.norm(psi0)
    np.testing.assert_allclose(np.asarray(prog.run(p)), np.asarray(sv.simulate(c, p)), atol=1e-12)
    np.testing.assert_allclose(np.asarray(prog.state(p, init_state=psi0)),
                               np.asarray(sv.simulate(c, p, init_state=psi0)), atol=1e-12)
    g = jax.grad(lambda q: jnp.abs(prog.run(q)[3]) ** 2)(p)
    g_ref = jax.grad(lambda q: jnp.abs(sv.simulate(c, q)[3]) ** 2)(p)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), atol=1e-12)
    with pytest.raises(ValueError, match="unknown engine"):
        compile(c, engine="fast")
    with pytest.raises(ValueError, match="max_fuse"):
        compile(c, max_fuse=7)
    with pytest.raises(TypeError, match="qsim.Circuit"):
        compile("not a circuit")
    with pytest.raises(TypeError, match="complex64 or complex128"):
        compile(c, dtype=jnp.float32)
    with pytest.raises(ValueError, match="init_state"):
        prog.run(p, init_state=jnp.ones(3))


def test_engine_settings_are_read_per_call():
    """QSIM_SV_GEMM_MIN_QUBITS / QSIM_SV_ENGINE / QSIM_SV_GEMM_FUSE / QSIM_NATIVE take effect on the
    next call (qsim.infra.settings), not at import."""
    c = _random_circuit(6, 20, 5)
    assert compile(c).engine == "scan"
    with settings.override(gemm_min_qubits=4, native=False):
        prog = compile(c)
        assert prog.engine == "gemm" and prog.max_fuse == settings.get().gemm_max_fuse
    with settings.override(sv_engine="gemm", gemm_max_fuse=3):
        assert (compile(c).engine, compile(c).max_fuse) == ("gemm", 3)
    assert compile(c).engine == "scan"


STAGES = ("kernels", "native", "inputs", "records", "fusion", "program", "scan", "gemm", "compiler", "measure",
          "statevector", "sharded")


def test_simulator_stages_import_only_earlier_stages():
    """One direction through the simulator: each module imports only modules listed before it."""
    root = pathlib.Path(qsim.simulator.__file__).parent
    assert {p.stem for p in root.glob("*.py")} - {"__init__"} == set(STAGES)
    for i, name in enumerate(STAGES):
        tree = ast.parse((root / f"{name}.py").read_text())
        used = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qsim.simulator"):
                mod = node.module.split(".")[2:] or [a.name for a in node.names]
                used.update(m for m in mod if m in STAGES)
            elif isinstance(node, ast.Import):
                used.update(a.name.split(".")[2] for a in node.names
                            if a.name.startswith("qsim.simulator.") and a.name.split(".")[2] in STAGES)
        assert used <= set(STAGES[:i]), f"{name} imports {sorted(used - set(STAGES[:i]))}, a later stage"
