"""The ``erl`` command line.

Every sub-command lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds an argparse sub-parser whose ``func`` default runs it.
Modules are discovered, so a new sub-command needs no edit here. Heavy imports (torch, numpy,
matplotlib) belong inside the command functions so that ``erl --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from erl_losses._version import __version__


def build_parser() -> argparse.ArgumentParser:
    """Builds the ``erl`` parser with every sub-command found in :mod:`erl_losses.cli`."""
    parser = argparse.ArgumentParser(
        prog="erl",
        description="erl-losses: Exposure Relationship Learning (CVPR 2023) for PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"erl-losses {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``erl`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        # User errors (bad paths, bad options) end with one clear line, not a traceback.
        print(f"erl {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)
