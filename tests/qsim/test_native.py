"""The native CPU kernels (qsim.simulator.native, qsim/_native/apply_block.cc) and the engine built on them.

The kernels are checked against a dense NumPy reference and against the XLA kernels of
qsim.simulator.kernels on random unitaries, every block width 1..5 and wire sets that include the lowest
wires (the ones inside a SIMD vector); the native engine against the scan engine, finite
differences and the NumPy reference; the fallback to the XLA GEMM engine gives the same numbers.
"""

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsim
from qsim.infra import settings
from qsim.simulator import compile, fusion, native, records
from qsim.simulator import kernels as K
from qsim.simulator import statevector as sv

needs_native = pytest.mark.skipif(not native.available(), reason="native kernels unavailable (no C++ compiler?)")


def _unitary(rng, d, complex_=True):
    z = rng.normal(size=(d, d)) + (1j * rng.normal(size=(d, d)) if complex_ else 0)
    return np.linalg.qr(z)[0]


def _dense_apply(psi, u, wires, n):
    """Reference: ``u`` on ``wires`` (``wires[0]`` the most significant matrix bit) of ``psi``."""
    k = len(wires)
    t = np.moveaxis(psi.reshape((2,) * n), wires, range(k)).reshape(2 ** k, -1)
    return np.moveaxis((u @ t).reshape((2,) * n), range(k), wires).reshape(-1)


def _wire_sets(n, rng):
    for k in range(1, 6):
        yield tuple(range(n - 1, n - 1 - k, -1))         # the lowest wires, reversed
        yield tuple(int(w) for w in rng.permutation(n)[:k])
        yield (n - 1,) + tuple(range(k - 1))              # the lowest wire with the highest ones


@functools.partial(jax.jit, static_argnums=(3, 4))
def _xla_vjp(x, m, lam, wires, n):
    return jax.vjp(lambda a, b: K.apply_dot(a, n, wires, b), x, m)[1](lam)


@needs_native
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_kernels_match_dense_reference_and_xla(dtype, tol):
    """apply: complex state + complex block, real state + real block, complex state + real block;
    adjoint: uncomputed state, pulled-back cotangent and matrix cotangent equal the dense reference
    and jax.vjp of the XLA kernel."""
    n = 9
    rng = np.random.default_rng(0)
    for wires in _wire_sets(n, rng):
        d = 2 ** len(wires)
        for planes, complex_u in ((2, True), (1, False), (2, False)):
            u = _unitary(rng, d, complex_u)
            m = np.stack([u.real, u.imag]) if complex_u else u.real
            x = rng.normal(size=(planes, 2 ** n))
            psi = x[0] + 1j * x[1] if planes == 2 else x[0] + 0j
            y = np.asarray(native.apply(jnp.asarray(x, dtype), jnp.asarray(m, dtype), wires, n), np.float64)
            ref = _dense_apply(psi, u, wires, n)
            got = y[0] + 1j * y[1] if planes == 2 else y[0]
            np.testing.assert_allclose(got, ref, atol=tol * np.abs(ref).max(), err_msg=f"{wires} P={planes}")
            # adjoint step of out = u x_in, with out = x
            lam = rng.normal(size=x.shape)
            q, k, g = native.adjoint(jnp.asarray(x, dtype), jnp.asarray(lam, dtype), jnp.asarray(m, dtype), wires, n)
            x_in = _dense_apply(psi, u.conj().T, wires, n)
            q = np.asarray(q, np.float64)
            np.testing.assert_allclose(q[0] + 1j * q[1] if planes == 2 else q[0], x_in,
                                       atol=tol * np.abs(x_in).max())
            xin_planes = jnp.asarray(np.stack([x_in.real, x_in.imag])[:planes], jnp.float64)
            lam_ref, g_ref = _xla_vjp(xin_planes, jnp.asarray(m, jnp.float64), jnp.asarray(lam, jnp.float64),
                                      wires, n)
            np.testing.assert_allclose(np.asarray(k, np.float64), lam_ref, atol=tol * np.abs(lam_ref).max())
            np.testing.assert_allclose(np.asarray(g, np.float64), g_ref, atol=10 * tol * np.abs(g_ref).max())


@needs_native
def test_kernel_rejects_bad_blocks():
    x = jnp.zeros((2, 2 ** 6))
    with pytest.raises(Exception, match="repeated bit"):
        native.apply(x, jnp.zeros((2, 4, 4)), (1, 1), 6)
    with pytest.raises(Exception, match="does not match"):
        native.apply(x, jnp.zeros((2, 8, 8)), (1, 2), 6)
    with pytest.raises(ValueError, match="at most 5 wires"):
        fusion.plan([records.gates_of(_circuit(7, 6, seed=0, wide=True))], 7, native=True)


def _circuit(n, layers, seed, wide=False):
    rng = np.random.default_rng(seed)
    c = qsim.Circuit(n)
    for _ in range(layers):
        for w in range(n):
            getattr(c, str(rng.choice(["rx", "ry", "rz", "h", "t", "sx"])))(w)
        perm = rng.permutation(n)
        for i in range(n // 2):
            a, b = int(perm[2 * i]), int(perm[2 * i + 1])
            getattr(c, str(rng.choice(["cnot", "cz", "crx", "rzz", "iswap"])))(a, b)
    if wide:
        c.unitary(_unitary(rng, 2 ** 6), tuple(range(6)))
    return c


def _native(c, dtype="complex128", k=None):
    prog = compile(c, dtype=dtype, engine="native", max_fuse=k)
    assert prog.engine == "native" and prog.steps and all(s.kind == "N" for s in prog.steps)
    assert prog.n_blocks == len(prog.steps) and max(prog.block_widths) <= (k or 3)
    return prog.run


@needs_native
@pytest.mark.parametrize("k", [2, 5])
def test_native_engine_matches_scan_and_reference(k, numpy_state):
    """Random circuits: the native engine equals the scan engine and the NumPy reference to 1e-12,
    from |0> and from a complex initial state; complex64 within 1e-5."""
    n = 8
    c = _circuit(n, 4, seed=k)
    rng = np.random.default_rng(k)
    p = rng.uniform(-3, 3, c.num_params)
    psi0 = rng.normal(size=2 ** n) + 1j * rng.normal(size=2 ** n)
    psi0 = jnp.asarray(psi0 / np.linalg.norm(psi0))
    scan = compile(c, dtype="complex128", engine="scan").run
    got = np.asarray(_native(c, k=k)(jnp.asarray(p), None))
    np.testing.assert_allclose(got, numpy_state(c, p), atol=1e-12)
    np.testing.assert_allclose(np.asarray(_native(c, k=k)(jnp.asarray(p), psi0)),
                               np.asarray(scan(jnp.asarray(p), psi0)), atol=1e-12)
    got32 = np.asarray(_native(c, "complex64", k)(jnp.asarray(p, jnp.float32), None))
    np.testing.assert_allclose(got32, got, atol=1e-5)


@needs_native
def test_native_engine_gradient(real_circuit):
    """value + grad of a Pauli-sum expectation: the native adjoint pass equals the scan engine's
    gradient and central differences (a complex circuit, and a real one that runs on one plane)."""
    n = 6
    h = 0.7 * qsim.Z(0) @ qsim.X(2) + qsim.Y(1) - 0.2 * qsim.Z(5) + qsim.X(4) @ qsim.X(5)
    real = real_circuit(n, 3)
    for c in (_circuit(n, 2, seed=5), real):
        p = jnp.asarray(np.random.default_rng(6).uniform(-3, 3, c.num_params))
        prog = compile(c, dtype="complex128", engine="native", max_fuse=3)
        run = prog.run
        assert prog.engine == "native" and prog.adjoint and prog.real == (c is real)
        scan = compile(c, dtype="complex128", engine="scan").run
        f = jax.jit(lambda q, run=run: sv.state_expval(run(q, None), h))
        v, g = jax.value_and_grad(f)(p)
        v_ref, g_ref = jax.jit(jax.value_and_grad(lambda q: sv.state_expval(scan(q, None), h)))(p)
        np.testing.assert_allclose(v, v_ref, atol=1e-12)
        np.testing.assert_allclose(g, g_ref, atol=1e-10)
        eps = 1e-6
        for i in (0, c.num_params - 1):
            e = jnp.zeros(c.num_params).at[i].set(eps)
            np.testing.assert_allclose(g[i], (f(p + e) - f(p - e)) / (2 * eps), atol=1e-7)


@needs_native
def test_native_engine_under_vmap(monkeypatch):
    """The public API picks the native engine (QSIM_SV_ENGINE=native, read per call) and vmaps over
    parameters."""
    monkeypatch.setenv("QSIM_SV_ENGINE", "native")
    settings.refresh()
    c = _circuit(6, 3, seed=9)
    ps = jnp.asarray(np.random.default_rng(9).uniform(-3, 3, (3, c.num_params)))
    try:
        assert compile(c).engine == "native"
        batched = jax.vmap(lambda q: sv.simulate(c, q))(ps)
    finally:
        monkeypatch.delenv("QSIM_SV_ENGINE")
        settings.refresh()
    with settings.override(sv_engine="scan"):
        assert compile(c).engine == "scan"
        for i in range(3):
            np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(sv.simulate(c, ps[i])), atol=1e-12)


def _failing_compiler(tmp_path):
    """A fake C++ compiler that reports a version and fails every compile."""
    cxx = tmp_path / "fake-c++"
    cxx.write_text("#!/bin/sh\nif [ \"$1\" = --version ]; then echo fake 1.0; exit 0; fi\n"
                   "echo 'compile failed' >&2\nexit 1\n")
    cxx.chmod(0o755)
    return cxx


def test_fallback_to_xla_gemm(monkeypatch, caplog, tmp_path):
    """QSIM_NATIVE=0, or a compile that fails (one warning logged), gives the XLA GEMM engine and the
    same numbers."""
    c = _circuit(6, 3, seed=4)
    p = jnp.asarray(np.random.default_rng(4).uniform(-3, 3, c.num_params))
    ref = np.asarray(compile(c, dtype="complex128", engine="scan").run(p))
    with settings.override(sv_engine="native", native=False):
        assert not native.available() and compile(c).engine == "gemm"
        np.testing.assert_allclose(np.asarray(sv.simulate(c, p)), ref, atol=1e-12)
    monkeypatch.setenv("CXX", str(_failing_compiler(tmp_path)))
    native.reset()
    try:
        with settings.override(sv_engine="native", cache_dir=tmp_path / "cache"):
            with caplog.at_level(logging.WARNING, logger="qsim.simulator.native"):
                assert not native.available()
                assert not native.available()
            assert sum("compile failed" in r.getMessage() for r in caplog.records) == 1
            assert compile(c).engine == "gemm"
            np.testing.assert_allclose(np.asarray(sv.simulate(c, p)), ref, atol=1e-12)
    finally:
        monkeypatch.delenv("CXX")
        native.reset()
