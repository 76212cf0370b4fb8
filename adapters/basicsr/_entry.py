"""Shared body of the ``erl-basicsr-train`` / ``erl-basicsr-test`` entry points."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence


def run_pipeline(pipeline: Callable[[str], object], prog: str, argv: Sequence[str] | None) -> None:
    """Runs a basicsr pipeline with the CURRENT directory as its root path.

    basicsr's pipelines parse ``sys.argv`` themselves, so ``argv`` (when given) replaces it for
    the duration of the call. The adapter package is already imported (registrations and
    :mod:`.compat` patches applied) because this module lives inside it.
    """
    saved = sys.argv
    if argv is not None:
        sys.argv = [saved[0] if saved else prog, *argv]
    finished = False
    try:
        pipeline(os.getcwd())
        finished = True
    finally:
        sys.argv = saved
        _close_process_group(wait=finished)


def _close_process_group(wait: bool) -> None:
    """Tears down the process group a ``--launcher pytorch`` run initialised.

    basicsr's pipelines call ``init_process_group`` and never ``destroy_process_group``; a gloo
    group left to interpreter exit can abort a rank ("terminate called without an active
    exception", exit -6) after its work is saved. After a finished run the ranks first meet at a
    barrier; after a failure nothing waits for the others.
    """
    if "torch.distributed" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()
