"""Output-path checks the ``erl`` sub-commands run before any work.

A run that computes for minutes and then cannot write its result loses the work, so each
command checks its output folders and files first: they must be creatable and writable, a
folder flag must not name an existing file, and a file flag must not name a folder. Writability
is probed by creating (and removing) a temporary file, which also holds for root, for whom
``os.access`` always answers yes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

__all__ = ["check_output_dir", "check_output_file"]


def _probe(folder: Path, flag: str, path: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(
            f"Expected {flag} {path} to be writable, got {type(err).__name__}: {err.strerror}"
        ) from err


def check_output_dir(path: str | Path, flag: str) -> Path:
    """Creates the folder ``path`` (and parents) if needed and checks it is writable.

    Raises:
        ValueError: ``path`` is an existing file, or cannot be created or written; the message
            names ``flag`` (e.g. ``"--out"``).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"Expected {flag} to be a folder, got the existing file {path}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"Expected {flag} {path} to be a folder that can be created, got "
            f"{type(err).__name__}: {err.strerror or err}"
        ) from err
    _probe(path, flag, path)
    return path


def check_output_file(path: str | Path, flag: str) -> Path:
    """Checks that the file ``path`` can be written: its folder exists and is writable, and
    ``path`` is not a folder (an existing file is replaced when the command writes it).

    Raises:
        ValueError: naming ``flag`` (e.g. ``"--json"``).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"Expected {flag} to be a file, got the folder {path}")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"Expected the folder of {flag} {path} to exist, got none at {folder}")
    _probe(folder, flag, path)
    if path.exists():
        try:
            with path.open("a"):  # append mode: opens for writing without touching the content
                pass
        except OSError as err:
            raise ValueError(
                f"Expected {flag} {path} to be writable, got {type(err).__name__}: {err.strerror}"
            ) from err
    return path
