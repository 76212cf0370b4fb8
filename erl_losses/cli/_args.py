"""argparse types shared by the ``erl`` sub-commands, and input checks run before any work.

Nothing here imports torch: a mistyped flag is reported in a fraction of a second, before the
seconds that importing torch takes. The types apply the wording of the Python API's checks
(:func:`erl_losses._validation.check_int`; a test keeps the two in step); argparse prefixes the
flag ("argument --steps: Expected a positive int, got 0").
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

__all__ = ["NET_NAMES", "existing_file", "existing_folder", "int_at_least", "net_name"]

#: The reference nets of :data:`erl_losses.archs.ARCHS` (kept equal by a test), for ``--net``.
NET_NAMES: tuple[str, ...] = ("DRBN", "DRBN_ENC", "ECLNet", "FECNet")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an int >= ``minimum`` (1: a positive int)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
            shown = repr(text) if value is None else repr(value)
            raise argparse.ArgumentTypeError(f"Expected {expected}, got {shown}")
        return value

    return parse


def net_name(text: str) -> str:
    """argparse type: a name of :data:`NET_NAMES`, case-insensitive (``eclnet`` -> ``ECLNet``)."""
    for name in NET_NAMES:
        if text.lower() == name.lower():
            return name
    raise argparse.ArgumentTypeError(f"Expected one of {list(NET_NAMES)}, got {text!r}")


def existing_folder(path: str | None, flag: str) -> Path | None:
    """``path`` as a Path if it is a folder (``None`` passes); else ``FileNotFoundError`` naming
    ``flag``: "Expected --data to be a folder, got no such folder: ..."."""
    if path is None:
        return None
    folder = Path(path)
    if not folder.is_dir():
        what = "a file, not a folder" if folder.exists() else "no such folder"
        raise FileNotFoundError(f"Expected {flag} to be a folder, got {what}: {folder}")
    return folder


def existing_file(path: str | None, flag: str) -> Path | None:
    """``path`` as a Path if it is a file (``None`` passes); else ``FileNotFoundError`` naming
    ``flag``."""
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        what = "a folder" if file.is_dir() else "no such file"
        raise FileNotFoundError(f"Expected {flag} to be a file, got {what}: {file}")
    return file
