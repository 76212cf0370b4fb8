"""``erl-basicsr-test -opt FILE``: basicsr's ``test_pipeline`` with ERL registered.

Results (logs, images, metrics) go to ``results/<name>/`` under the CURRENT directory. Also
runnable as ``python -m erl_losses.adapters.basicsr.test``.
"""

from __future__ import annotations

from collections.abc import Sequence

from erl_losses.adapters.basicsr._entry import run_pipeline


def main(argv: Sequence[str] | None = None) -> None:
    """Runs basicsr's test pipeline on an option file.

    Args:
        argv: the command-line arguments (default ``sys.argv[1:]``), read by basicsr's parser.
    """
    from basicsr.test import test_pipeline

    run_pipeline(test_pipeline, "erl-basicsr-test", argv)


if __name__ == "__main__":
    main()
