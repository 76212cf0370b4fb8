"""File helpers shared by the weights file, the pretext trainer and the zoo cache.

One home for: a file's sha256, the mode a new file gets under the process umask, and writing a
file atomically through a unique temporary file in the target folder (so two processes writing
into one folder never share a temporary name, and a reader never sees half a file).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "file_sha256", "umask_mode"]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def umask_mode() -> int:
    """The permission bits ``open(path, "w")`` would give a new file (``0o666 & ~umask``).

    ``tempfile.mkstemp`` creates files with mode 0600 whatever the umask, which would make a
    shared cache or output folder unreadable to other users once the file is renamed into place.
    """
    umask = os.umask(0)  # the only portable way to read the umask is to set it
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a unique temporary path next to ``dest``; on success it replaces ``dest``.

    The temporary file is created empty in ``dest``'s folder, so ``os.replace`` is atomic, and
    gets mode :func:`umask_mode` before it replaces ``dest``; on any exception (including ``KeyboardInterrupt``) it is removed
    and ``dest`` is left as it was.

    Example:
        >>> with atomic_path("out/weights.safetensors") as tmp:   # doctest: +SKIP
        ...     save_file(tensors, str(tmp))
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # after the write: some writers (safetensors) re-create the file with their own mode
        os.chmod(tmp, umask_mode())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
