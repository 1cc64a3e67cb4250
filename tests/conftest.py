"""Session-wide test settings: float64 available everywhere (dtypes stay explicit in the tests).

Tests marked ``multidevice`` need four CPU devices. They are not collected by the main run (one device,
as users run): tests/test_multidevice.py runs them in a child pytest with QSIM_TEST_DEVICES=4, which
forces four host devices before JAX starts. Forcing four devices on the whole session instead made a
JAX call inside a ``jax.pure_callback`` (qsim.gradients with the JAX statevector backend) hang once.
"""
import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
_DEVICES = os.environ.get("QSIM_TEST_DEVICES")
if _DEVICES and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={int(_DEVICES)}").strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


def _float32_dot_precisions(jaxpr):
    """The ``precision`` of every float32/complex64 dot_general in a (closed) jaxpr, nested ones too."""
    import numpy as np

    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general" and any(
                np.dtype(v.aval.dtype) in (np.float32, np.complex64, np.dtype("bfloat16")) for v in eqn.invars):
            out.append(eqn.params.get("precision"))
        for p in eqn.params.values():
            for sub in (p if isinstance(p, (list, tuple)) else [p]):
                inner = getattr(sub, "jaxpr", None)
                if inner is not None:
                    out += _float32_dot_precisions(inner if hasattr(inner, "eqns") else inner.jaxpr)
    return out


@pytest.fixture
def float32_dot_precisions():
    """``f(fn, *args)``: precisions of fn's float32 matrix products. On GPUs JAX's default multiplies
    float32 matrices in TF32 (10-bit mantissa); code whose float32 path must stay float32-accurate asks
    for ``lax.Precision.HIGHEST``, which these tests check in the traced program (CPUs ignore it)."""
    def f(fn, *args):
        return _float32_dot_precisions(jax.make_jaxpr(fn)(*args).jaxpr)
    return f


@pytest.fixture
def assert_all_highest():
    """``f(precisions, at_least=1)``: at least that many products were traced and every one asks for
    ``lax.Precision.HIGHEST`` on both operands."""
    def f(precisions, at_least=1):
        assert len(precisions) >= at_least, f"{len(precisions)} float32 matrix products traced"
        hi = jax.lax.Precision.HIGHEST
        assert all(p is not None and all(q == hi for q in p) for p in precisions), precisions
    return f
