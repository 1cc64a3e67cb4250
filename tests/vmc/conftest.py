"""Shared helpers for the vmc tests (float64 is on for the session: tests/conftest.py)."""
import jax
import jax.numpy as jnp
import pytest


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@pytest.fixture(autouse=True)
def _fast_compile():
    """These tests are dominated by XLA compile time (tiny networks, few steps): compile with most
    optimisations off (about half the compile time here), restored after each test."""
    old = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)
