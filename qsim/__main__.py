"""``python -m qsim ...`` is the ``qsim`` command."""

import sys

from qsim.infra.cli import main

sys.exit(main())
