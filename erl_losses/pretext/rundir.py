"""The output folder of a pretext run: its file names, the checks before any work, the lock.

Nothing is lost and nothing escapes the folder: output names are plain file names (no path
separator, no ``..``, not hidden), an earlier run in the folder is only continued (``resume``) or
replaced (``overwrite``) when asked, and a lock file refuses a second run into the same folder
while the first one is alive (the operating system releases the lock when a process dies).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LOCK_NAME", "RunDir", "check_output_name", "run_lock"]

#: The lock file a running pretext run holds in its output folder.
LOCK_NAME = ".erl-pretrain.lock"


def check_output_name(value: object, name: str) -> str:
    """Returns ``value`` if it is usable as (part of) a file name inside the output folder.

    Raises:
        ValueError: not a non-empty string, or one holding a path separator, ``..``, a NUL, or
            starting with ``.`` (hidden; temporary and lock files use that prefix).
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"Expected `{name}` to be a non-empty string, got {value!r}")
    separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if any(s in value for s in separators) or ".." in value or "\0" in value:
        raise ValueError(
            f"Expected `{name}` to be a plain file name (no path separator, no '..'), got {value!r}"
        )
    if value.startswith("."):
        raise ValueError(f"Expected `{name}` not to start with '.', got {value!r}")
    return value


@dataclass(frozen=True)
class RunDir:
    """The files of one pretext run in ``root``.

    Args:
        root: the output folder.
        name: the zoo name of the result (checked by :func:`check_output_name`).
        version: its zoo version (checked likewise).
    """

    root: Path
    name: str
    version: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        check_output_name(self.name, "name")
        check_output_name(self.version, "version")
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"Expected `out_dir` to be a folder, got the file {str(self.root)!r}")

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.safetensors"

    @property
    def stage1(self) -> Path:
        return self.root / "stage1.safetensors"

    @property
    def log(self) -> Path:
        return self.root / "log.csv"

    @property
    def weights(self) -> Path:
        return self.root / f"{self.name}-v{self.version}.safetensors"

    @property
    def manifest_entry(self) -> Path:
        return self.root / f"{self.name}.manifest.json"

    @property
    def card(self) -> Path:
        return self.root / f"{self.name}.md"

    def outputs(self) -> list[Path]:
        """Every file a run writes here."""
        return [
            self.checkpoint, self.stage1, self.log, self.weights, self.manifest_entry, self.card
        ]  # fmt: skip

    def check(self, *, resume: bool, overwrite: bool) -> list[Path]:
        """Checks the folder before any work; returns the earlier run's files (to :meth:`clear`
        once the run's inputs are known to be good, when ``overwrite``).

        Call it while holding :func:`run_lock`.

        Raises:
            ValueError: ``resume`` and ``overwrite`` together, or an earlier run's files here
                without either (the message names both).
            FileNotFoundError: ``resume`` without a checkpoint.
        """
        if resume and overwrite:
            raise ValueError("Expected at most one of `resume` and `overwrite`, got both")
        if resume:
            if not self.checkpoint.is_file():
                raise FileNotFoundError(
                    f"Expected a checkpoint to resume from at {str(self.checkpoint)!r}, got none"
                )
            return []
        existing = [p for p in self.outputs() if p.exists()]
        if existing and not overwrite:
            raise ValueError(
                f"Expected an output folder without an earlier run, got {str(self.root)!r} "
                f"holding {', '.join(p.name for p in existing)}; pass --resume (resume=True) to "
                "continue it or --overwrite (overwrite=True) to replace it"
            )
        return existing

    def clear(self) -> None:
        """Removes every file a run writes here (``overwrite``)."""
        for path in self.outputs():
            path.unlink(missing_ok=True)


def _try_lock(handle: object) -> None:
    """Takes an exclusive, non-blocking lock on an open file; ``OSError`` if it is held."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[attr-defined]


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Holds ``folder/.erl-pretrain.lock`` for the duration of a run (the folder is created).

    Raises:
        ValueError: another live process holds it (the message names its pid).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    handle = path.open("a+")
    try:
        try:
            _try_lock(handle)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ValueError(
                f"Expected no other pretext run writing into {str(folder)!r}, got one running "
                f"({holder}); wait for it to finish or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield path
        finally:
            # Removed while still held: a run that opened the old file fails its lock, one that
            # opens after this creates a fresh file; either way no stale lock is left behind.
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        handle.close()
