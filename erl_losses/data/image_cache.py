"""Decode every file of an image folder once: validation, sizes, and an on-disk cache.

:func:`scan_files` decodes each file (in ``workers`` processes), records its size and decode
time, and drops the files that cannot be decoded. With a cache folder it also stores each image,
already resized to ``max_side``, as a ``.npy`` file of ``(3, H, W)`` uint8 named by the file's
sha256 and ``max_side``, so later epochs, later runs and other processes (``DataLoader``
workers) read a few hundred kilobytes instead of decoding and resizing a 3-4 MP photo. Measured
on 3-4 MP JPEGs (``benchmarks/bench_pretext_data.py``): decoding with ``draft`` and resizing
costs tens of milliseconds per image, reading the cached entry well under one.

Keys are content digests, so a renamed or copied file hits the cache and an edited one misses
it. The digest of a file is remembered in ``digests.json`` under its path, size and modification
time (re-hashing thousands of photos at every start would cost as much as reading them). Every
file is written through a temporary file and renamed, so concurrent runs (or ranks) that fill
one cache never see half an entry; the worst a race costs is one image decoded twice.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from erl_losses._files import atomic_path, file_sha256

__all__ = ["ScanReport", "default_cache_dir", "entry_path", "read_entry", "scan_files"]


def default_cache_dir() -> Path:
    """``$ERL_LOSSES_HOME/images``, else ``torch.hub.get_dir()/erl-losses/images`` (next to
    the cached BCM weights)."""
    env = os.environ.get("ERL_LOSSES_HOME")
    if env:
        return Path(env).expanduser() / "images"
    return Path(torch.hub.get_dir()) / "erl-losses" / "images"


def entry_path(cache_dir: Path, digest: str, max_side: int) -> Path:
    """Where the image with sha256 ``digest`` resized to ``max_side`` is cached."""
    return cache_dir / f"side{max_side}" / digest[:2] / f"{digest}.npy"


def read_entry(path: Path) -> Tensor | None:
    """A cached ``(3, H, W)`` uint8 image, or ``None`` if the entry is missing or unreadable
    (the caller decodes the file instead)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[0] != 3:
        return None
    return torch.from_numpy(array)


def _write_entry(path: Path, image: Tensor) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, image.numpy(), allow_pickle=False)


@dataclass
class ScanReport:
    """What :func:`scan_files` found.

    Attributes:
        listed: files scanned.
        usable: indices (into the scanned list) of the decodable files, in order.
        skipped: ``(path, reason)`` of each file that cannot be decoded.
        sizes: ``(width, height)`` in pixels of each usable file as stored.
        resized: ``(width, height)`` of each usable image after the ``max_side`` downscale.
        file_bytes: bytes on disk of the usable files.
        entries: the cache entry of each usable file (empty without a cache).
        cached: usable files found in the cache (not decoded again).
        decode_seconds: decode + resize time of each file decoded by this scan (per worker).
        seconds: wall time of the scan.
        workers: decoding processes used.
        cache_dir: the cache root, or ``None``.
    """

    listed: int
    usable: list[int] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    resized: list[tuple[int, int]] = field(default_factory=list)
    file_bytes: int = 0
    entries: list[Path] = field(default_factory=list)
    cached: int = 0
    decode_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 0
    cache_dir: Path | None = None

    @property
    def cache_bytes(self) -> int:
        """Bytes the cached (resized, uint8) images take: ``3 * W * H`` each."""
        return sum(3 * w * h for w, h in self.resized)


class _ScanJobs(torch.utils.data.Dataset):
    """One record per file; run by ``DataLoader`` workers so files decode in parallel."""

    def __init__(
        self,
        files: Sequence[Path],
        max_side: int | None,
        cache_dir: Path | None,
        write: bool,
        digests: dict[str, list[Any]],
    ) -> None:
        self.files, self.max_side, self.cache_dir = list(files), max_side, cache_dir
        self.write, self.digests = write, digests

    def __len__(self) -> int:
        return len(self.files)

    def _digest(self, path: Path, stat: os.stat_result) -> str:
        known = self.digests.get(str(path.resolve()))
        if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            return str(known[2])
        return file_sha256(path)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from PIL import Image

        from erl_losses.data.images import decode_image

        path = self.files[index]
        record: dict[str, Any] = {"index": index}
        try:
            stat = path.stat()
            record["bytes"] = stat.st_size
            with Image.open(path) as header:  # reads the header only
                record["size"] = header.size
            entry = None
            if self.cache_dir is not None and self.max_side is not None:
                record["digest"] = digest = self._digest(path, stat)
                record["stat"] = [stat.st_size, stat.st_mtime_ns]
                entry = entry_path(self.cache_dir, digest, self.max_side)
                record["entry"] = str(entry)
                cached = read_entry(entry)
                if cached is not None:
                    record.update(cached=True, resized=(cached.shape[2], cached.shape[1]))
                    return record
            start = time.perf_counter()
            image = decode_image(path, self.max_side)
            if entry is not None and self.write:
                _write_entry(entry, image)
            record.update(seconds=time.perf_counter() - start, cached=False)
            record["resized"] = (image.shape[2], image.shape[1])
        except Exception as err:  # any undecodable file is reported, never fatal here
            record["error"] = f"{type(err).__name__}: {err}"
        return record


def _identity(record: dict[str, Any]) -> dict[str, Any]:
    return record


def _short(reason: str, path: Path) -> str:
    """The decoder's message without the path it repeats, on one line."""
    return " ".join(reason.replace(str(path), "").replace(" :", ":").split())[:200]


def scan_files(
    files: Sequence[Path],
    max_side: int | None,
    *,
    cache_dir: Path | None = None,
    write: bool = True,
    workers: int = 0,
    progress: bool = False,
) -> ScanReport:
    """Decodes each of ``files`` once (or finds it in the cache) and reports what it found.

    Args:
        files: image files.
        max_side: the downscale the images are decoded to (``None``: full size).
        cache_dir: the cache root; ``None`` (or ``max_side=None``) decodes without caching.
        write: store newly decoded images in the cache.
        workers: decoding processes (0: this one).
        progress: a tqdm bar.
    """
    # not tqdm.auto: its asyncio class calls iter() on the loader, starting the workers twice
    from tqdm import tqdm

    from erl_losses._validation import check_int

    check_int(workers, "workers", minimum=0)
    memo = cache_dir / "digests.json" if cache_dir is not None else None
    digests = _read_digests(memo)
    jobs = _ScanJobs(files, max_side, cache_dir, write, digests)
    loader = torch.utils.data.DataLoader(
        jobs, batch_size=None, num_workers=workers, collate_fn=_identity
    )
    report = ScanReport(listed=len(files), workers=workers, cache_dir=cache_dir)
    start = time.perf_counter()
    records = sorted(
        tqdm(loader, total=len(files), desc="scanning images", unit="img", disable=not progress),
        key=lambda r: r["index"],
    )
    learnt: dict[str, list[Any]] = {}
    for record in records:
        path = files[record["index"]]
        if "error" in record:
            report.skipped.append((path, _short(record["error"], path)))
            continue
        report.usable.append(record["index"])
        report.sizes.append(tuple(record["size"]))  # type: ignore[arg-type]
        report.resized.append(tuple(record["resized"]))  # type: ignore[arg-type]
        report.file_bytes += record["bytes"]
        if "entry" in record:
            report.entries.append(Path(record["entry"]))
            learnt[str(path.resolve())] = [*record["stat"], record["digest"]]
        if record["cached"]:
            report.cached += 1
        else:
            report.decode_seconds.append(record["seconds"])
    report.seconds = time.perf_counter() - start
    if memo is not None and write and any(digests.get(k) != v for k, v in learnt.items()):
        _write_digests(memo, learnt)
    return report


def _read_digests(memo: Path | None) -> dict[str, list[Any]]:
    if memo is None:
        return {}
    try:
        data = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_digests(memo: Path, learnt: dict[str, list[Any]]) -> None:
    """Merges ``learnt`` into the memo on disk (re-read first: another run may have added)."""
    merged = {**_read_digests(memo), **learnt}
    with atomic_path(memo) as tmp:
        tmp.write_text(json.dumps(merged, separators=(",", ":")), encoding="utf-8")
