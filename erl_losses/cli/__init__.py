"""The ``erl`` command line.

Every sub-command lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds an argparse sub-parser whose ``func`` default runs it.
Modules are discovered, so a new sub-command needs no edit here. Heavy imports (torch, numpy,
matplotlib) belong inside the command functions, never in ``register``, so that ``erl --help`` and
``erl zoo list`` run without importing torch (tests/cli/test_cli_errors.py checks it).
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


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input, not a bug: printed as one line, exit code 2."""
    types: list[type[BaseException]] = [ValueError, TypeError, OSError, ImportError]
    safetensors = sys.modules.get("safetensors")  # only loaded if a command read a weights file
    if safetensors is not None and hasattr(safetensors, "SafetensorError"):
        types.append(safetensors.SafetensorError)
    return tuple(types)


def _one_line(err: BaseException) -> str:
    if isinstance(err, ImportError):
        from erl_losses._extras import explain_import_error

        return explain_import_error(err)
    text = " ".join(str(err).split()) or type(err).__name__
    filename = getattr(err, "filename", None)
    if isinstance(err, OSError) and filename and str(filename) not in text:
        text = f"{text}: {filename}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``erl`` console script; returns the process exit code.

    Exit codes: 0 success; 1 a check the command ran failed (e.g. ``erl zoo verify``); 2 bad
    input (a bad argument, an unreadable, missing or corrupt file, an unwritable output, an
    unavailable device, a missing optional package), reported as one line
    ``erl <command>: error: ...`` naming the file or argument; 130 interrupted (Ctrl-C).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print(f"erl {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if not isinstance(err, _user_error_types()):
            raise  # a bug: keep the traceback
        print(f"erl {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    return int(result or 0)
