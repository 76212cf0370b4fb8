"""``python -m erl_losses`` runs the ``erl`` command line."""

import sys

from erl_losses.cli import main

sys.exit(main())
