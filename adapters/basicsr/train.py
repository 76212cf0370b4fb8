"""``erl-basicsr-train -opt FILE [--launcher none|pytorch|slurm] [--auto_resume] [--debug]``.

Imports the adapter (which registers ERL into BasicSR and applies :mod:`.compat`) and runs
basicsr's ``train_pipeline`` with the CURRENT directory as root: ``experiments/<name>/``,
``tb_logger/`` and ``--auto_resume``'s search all live under the directory you run it from,
and relative ``dataroot`` paths of the option file are resolved from there. Also runnable as
``python -m erl_losses.adapters.basicsr.train``.
"""

from __future__ import annotations

from collections.abc import Sequence

from erl_losses.adapters.basicsr._entry import run_pipeline


def main(argv: Sequence[str] | None = None) -> None:
    """Runs basicsr's training pipeline on an option file.

    Args:
        argv: the command-line arguments (default ``sys.argv[1:]``); basicsr's own parser reads
            them (``-opt``, ``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``).
    """
    from basicsr.train import train_pipeline

    run_pipeline(train_pipeline, "erl-basicsr-train", argv)


if __name__ == "__main__":
    main()
