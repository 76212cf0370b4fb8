"""Image sources for training: bundled photos, folders of images, and seeded random crops.

A source has ``__len__``, ``get(index, crop) -> (3, H, W) uint8`` (at least ``crop`` pixels on
each side) and ``provenance() -> dict`` (what the data was, for manifests and model cards).
:class:`RandomCrops` turns any source into seeded float batches in the calling thread (the
held-out evaluation uses it); the pretext trainer draws its crops through
:mod:`erl_losses.pretext.data` (a ``DataLoader`` with workers).

A folder source decodes a JPEG with Pillow's ``draft`` (DCT scaling) straight to about
``max_side``, so a 4000-pixel photo never exists in memory at full size when it is going to be
downscaled anyway, and :meth:`FolderImages.scan` decodes and resizes every file once into an
on-disk cache (:mod:`erl_losses.data.image_cache`), dropping the files that cannot be decoded.
"""

from __future__ import annotations

import collections
import hashlib
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from erl_losses.data.io import IMAGE_EXTENSIONS, format_names, image_to_uint8, read_image

if TYPE_CHECKING:
    from erl_losses.data.image_cache import ScanReport

__all__ = ["FolderImages", "PhotoImages", "RandomCrops", "decode_image", "list_image_files"]


def _to_chw_uint8(array: Any, source: str) -> Tensor:
    image = torch.tensor(image_to_uint8(array))  # a copy: decoded arrays may be read-only
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"Expected {source} to be an (H, W, 3) RGB image, got shape {tuple(image.shape)}"
        )
    return image.permute(2, 0, 1).contiguous()


def _fit(image: Tensor, crop: int, max_side: int | None) -> Tensor:
    """Area-downscales ``(3, H, W)`` uint8 to ``max_side`` and upscales it to at least ``crop``."""
    height, width = image.shape[-2:]
    scale = 1.0
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
    if min(height, width) * scale < crop:
        scale = crop / min(height, width)
    if scale == 1.0:
        return image
    size = (max(crop, round(height * scale)), max(crop, round(width * scale)))
    mode = "area" if scale < 1 else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    resized = torch.nn.functional.interpolate(image[None].float(), size=size, mode=mode, **kwargs)
    return resized[0].round().clamp(0, 255).to(torch.uint8)


def decode_image(path: str | os.PathLike[str], max_side: int | None = None) -> Tensor:
    """Decodes one image file to ``(3, H, W)`` uint8, area-downscaled to ``max_side``.

    A JPEG is decoded with Pillow's ``draft`` at the smallest DCT scale (1/2, 1/4, 1/8) that
    still leaves at least ``max_side`` pixels on the longer side: a quarter or less of the
    memory and about half the time of a full decode of a 3-4 MP photo, and the area resize that
    follows starts from the smaller image. Other formats go through
    :func:`erl_losses.data.io.read_image` (8- and 16-bit; 16-bit is quantised to 8 bits).

    Args:
        path: an image file.
        max_side: longest side in pixels after the downscale; ``None`` keeps the full size.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file cannot be decoded (the message names it).
    """
    path = Path(path)
    array = _decode_jpeg_draft(path, max_side) if max_side is not None else None
    if array is None:
        array = read_image(path)
    return _fit(_to_chw_uint8(array, f"image {str(path)!r}"), 1, max_side)


def _decode_jpeg_draft(path: Path, max_side: int) -> np.ndarray | None:
    """``(H, W, 3)`` uint8 of a JPEG decoded at a reduced DCT scale; ``None`` for other files
    (and for any failure, which :func:`read_image` then reports with its own message)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.format != "JPEG":
                return None
            width, height = image.size
            scale = max_side / max(width, height)
            if scale < 1:
                # draft picks the largest reduction keeping the size >= the one asked for
                image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
            return np.asarray(image.convert("RGB"))
    except Exception:  # read_image re-reads the file and raises the error naming it
        return None


def _hidden(path: Path, root: Path) -> bool:
    """Dot-files and dot-folders below ``root`` (macOS ``._name`` forks, ``.cache``, ...)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def list_image_files(
    folders: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, recursive: bool = True
) -> list[Path]:
    """The image files in ``folders``: each folder's files sorted by relative path, folders in
    the order given, a file reached twice listed once.

    Args:
        folders: one folder or several (e.g. ``--images`` given several times).
        recursive: also the files of nested folders (MSEC's ``GT_IMAGES`` trees, SICE parts).
            Hidden files and folders (a leading ``.``) are skipped either way.

    Raises:
        FileNotFoundError: a folder is missing or not a directory.
        ValueError: no folder given, or no image file in any of them.
    """
    roots = (
        [Path(folders)] if isinstance(folders, (str, os.PathLike)) else [Path(f) for f in folders]
    )
    if not roots:
        raise ValueError("Expected at least one image folder, got none")
    files: list[Path] = []
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"Expected `images` to be a directory, got {str(root)!r}")
        candidates = root.rglob("*") if recursive else root.iterdir()
        found = sorted(
            p
            for p in candidates
            if p.suffix.lower() in IMAGE_EXTENSIONS and not _hidden(p, root) and p.is_file()
        )
        for path in found:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                files.append(path)
    if not files:
        where = ", ".join(repr(str(r)) for r in roots)
        raise ValueError(
            f"Expected image files ({', '.join(IMAGE_EXTENSIONS)}) in {where}, got none"
        )
    return files


class PhotoImages:
    """The natural photos bundled with scikit-image / scikit-learn / matplotlib.

    Args:
        names: photo names of :func:`erl_losses.data.photos.list_photos`; ``None`` means the
            fixed pretext-train split (never the held-out test photos).
        max_side: area-downscale photos whose longer side exceeds this (``None``: keep).
    """

    def __init__(self, names: Sequence[str] | None = None, max_side: int | None = None) -> None:
        from erl_losses.data import photos

        train, _ = photos.split_photos()
        self.names = list(train if names is None else names)
        if not self.names:
            raise ValueError("Expected at least one photo name, got an empty list")
        self.max_side = max_side
        self._images = [_to_chw_uint8(photos.load_photo(n), f"photo {n!r}") for n in self.names]
        self.sources = {n: photos.PHOTO_SOURCES.get(n, "?") for n in self.names}

    def __len__(self) -> int:
        return len(self._images)

    def get(self, index: int, crop: int) -> Tensor:
        """Photo ``index`` as ``(3, H, W)`` uint8, at least ``crop`` pixels on each side."""
        return _fit(self._images[index], crop, self.max_side)

    def provenance(self) -> dict[str, Any]:
        """What the data was, for the manifest and the model card."""
        return {
            "kind": "bundled-photos",
            "description": "random crops of natural photos bundled with scikit-image, "
            "scikit-learn and matplotlib (erl_losses.data.photos pretext-train split); "
            "NOT MSEC or SICE",
            "photos": self.names,
            "sources": self.sources,
            "max_side": self.max_side,
        }


class FolderImages:
    """The image files of one or more folders (e.g. MSEC's ``GT_IMAGES``), decoded lazily.

    Files are decoded by :func:`decode_image` (JPEGs with ``draft`` to about ``max_side``; 8- and
    16-bit files, 16-bit quantised to 8 bits, which is all a crop in [0, 1] for the pretext
    needs). Before :meth:`scan`, every file listed is used and :meth:`get` raises on a file that
    cannot be decoded; :meth:`scan` decodes each file once (into the on-disk cache when
    ``max_side`` is set), drops the undecodable ones with one warning naming them, and from then
    on :meth:`get` reads the cached, already resized image.

    Args:
        folder: a directory, or several (their files are concatenated in the order given).
        max_side: area-downscale images whose longer side exceeds this (``None``: keep).
            MSEC-style training commonly uses images of at most 512 pixels.
        cache_size: decoded images kept in memory per process (each ``3 * H * W`` bytes).
        recursive: also read nested folders (hidden files and folders are skipped).
        cache_dir: root of the on-disk cache of :meth:`scan` (default
            :func:`erl_losses.data.image_cache.default_cache_dir`).

    Raises:
        FileNotFoundError: a folder is missing.
        ValueError: no image file in the folders.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        max_side: int | None = None,
        cache_size: int = 64,
        *,
        recursive: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.folders = (
            [Path(folder)] if isinstance(folder, (str, os.PathLike)) else [Path(f) for f in folder]
        )
        self.folder = self.folders[0] if self.folders else Path()
        self.files = list_image_files(self.folders, recursive=recursive)
        self.listed = len(self.files)
        self.max_side = max_side
        self.cache_size = cache_size
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.skipped: list[tuple[Path, str]] = []
        self._cached: list[Path] | None = None  # the cache entry of each file, after scan()
        self._memory: collections.OrderedDict[int, Tensor] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self.files)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_memory"] = collections.OrderedDict()  # workers start with an empty memory
        return state

    def _load(self, index: int) -> Tensor:
        if index in self._memory:
            self._memory.move_to_end(index)
            return self._memory[index]
        image = None
        if self._cached is not None:
            from erl_losses.data.image_cache import read_entry

            image = read_entry(self._cached[index])
        if image is None:
            image = decode_image(self.files[index], self.max_side)
        if self.cache_size > 0:
            self._memory[index] = image
            if len(self._memory) > self.cache_size:
                self._memory.popitem(last=False)
        return image

    def get(self, index: int, crop: int) -> Tensor:
        """Image ``index`` as ``(3, H, W)`` uint8, at least ``crop`` pixels on each side."""
        return _fit(self._load(index), crop, self.max_side)

    def scan(
        self,
        *,
        workers: int = 0,
        cache: bool = True,
        write: bool = True,
        progress: bool = False,
        warn: bool = True,
    ) -> ScanReport:
        """Decodes every file once; keeps the decodable ones.

        Args:
            workers: decoding processes (0: this one).
            cache: read and (with ``write``) fill the on-disk cache of resized images, keyed by
                file sha256 and ``max_side``; only with ``max_side`` set (full-size images would
                take ``3 * H * W`` bytes each on disk).
            write: store new cache entries (``False``: measure only, as ``--dry-run`` does).
            progress: a tqdm bar.
            warn: one ``UserWarning`` naming the files that cannot be decoded.

        Returns:
            the :class:`~erl_losses.data.image_cache.ScanReport` (sizes, timings, skipped files).

        Raises:
            ValueError: no file in the folders can be decoded.
        """
        from erl_losses.data.image_cache import default_cache_dir, scan_files

        use_cache = cache and self.max_side is not None
        root = (self.cache_dir or default_cache_dir()) if use_cache else None
        report = scan_files(
            self.files, self.max_side, cache_dir=root, write=write, workers=workers,
            progress=progress,
        )  # fmt: skip
        self.skipped = list(report.skipped)
        if not report.usable:
            raise ValueError(
                f"Expected decodable image files in {format_names([str(f) for f in self.folders])}, "
                f"got none of {len(self.files)}: {report.skipped[0][1]}"
            )
        if warn and report.skipped:
            names = format_names([f"{path} ({reason})" for path, reason in report.skipped])
            warnings.warn(
                f"Skipping {len(report.skipped)} of {len(self.files)} image files that cannot be "
                f"decoded: {names}",
                UserWarning,
                stacklevel=2,
            )
        self.files = [self.files[i] for i in report.usable]
        self._cached = report.entries if use_cache and write else None
        self._memory.clear()
        return report

    def provenance(self) -> dict[str, Any]:
        """What the data was: the folders, the file counts and a digest of the file names."""
        names = [self._relative(p) for p in self.files]
        digest = hashlib.sha256("\n".join(names).encode()).hexdigest()
        folders = [str(f) for f in self.folders]
        out: dict[str, Any] = {
            "kind": "image-folder",
            "folder": folders[0] if len(folders) == 1 else folders,
            "num_images": len(self.files),
            "file_list_sha256": digest,
            "max_side": self.max_side,
        }
        if self.skipped:
            out["num_skipped"] = len(self.skipped)
            out["skipped"] = [self._relative(p) for p, _ in self.skipped[:20]]
        return out

    def _relative(self, path: Path) -> str:
        for root in self.folders:
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                continue
        return path.name


class RandomCrops:
    """Seeded random square crops (with optional flips) from an image source.

    Args:
        images: a :class:`PhotoImages`, :class:`FolderImages` or any object with ``__len__`` and
            ``get(index, crop) -> (3, H, W) uint8``.
        seed: seeds the private generator; its state is saved in checkpoints.
        flip: random horizontal and vertical flips.
    """

    def __init__(self, images: Any, seed: int = 0, flip: bool = True) -> None:
        self.images = images
        self.flip = flip
        self.generator = torch.Generator().manual_seed(seed)

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def sample(self, batch_size: int, crop: int) -> Tensor:
        """A batch ``(batch_size, 3, crop, crop)`` of float32 crops in ``[0, 1]``."""
        out = torch.empty(batch_size, 3, crop, crop)
        for i in range(batch_size):
            image = self.images.get(self._randint(len(self.images)), crop)
            top = self._randint(image.shape[1] - crop + 1)
            left = self._randint(image.shape[2] - crop + 1)
            patch = image[:, top : top + crop, left : left + crop]
            if self.flip:
                flips = torch.rand(2, generator=self.generator)
                if flips[0] < 0.5:
                    patch = patch.flip(-1)
                if flips[1] < 0.5:
                    patch = patch.flip(-2)
            out[i] = patch.float() / 255.0
        return out

    def state(self) -> Tensor:
        """The generator state as a uint8 tensor (for checkpoints)."""
        return self.generator.get_state()

    def set_state(self, state: Tensor) -> None:
        """Restores a :meth:`state` (a resumed run then draws the same crops)."""
        self.generator.set_state(state)
