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
    try:
        pipeline(os.getcwd())
    finally:
        sys.argv = saved
