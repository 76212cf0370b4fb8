"""``erl-basicsr-test -opt FILE``: basicsr's ``test_pipeline`` with ERL registered.

Results (logs, images, metrics) go to ``results/<name>/`` under the CURRENT directory. Also
runnable as ``python -m erl_losses.adapters.basicsr.test``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Runs basicsr's test pipeline on an option file.

    Args:
        argv: the command-line arguments (default ``sys.argv[1:]``), read by basicsr's parser.
    """
    from basicsr.test import test_pipeline

    import erl_losses.adapters.basicsr  # noqa: F401  -- registers and patches

    saved = sys.argv
    if argv is not None:
        sys.argv = [saved[0] if saved else "erl-basicsr-test", *argv]
    try:
        test_pipeline(os.getcwd())
    finally:
        sys.argv = saved


if __name__ == "__main__":
    main()
