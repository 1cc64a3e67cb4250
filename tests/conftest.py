"""Session-wide test settings: float64 available everywhere (dtypes stay explicit in the tests)."""
import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
