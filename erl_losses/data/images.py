"""Image sources for training: bundled photos, a folder of images, and seeded random crops.

A source has ``__len__``, ``get(index, crop) -> (3, H, W) uint8`` (at least ``crop`` pixels on
each side) and ``provenance() -> dict`` (what the data was, for manifests and model cards).
:class:`RandomCrops` turns any source into seeded float batches; its generator state is what a
pretext checkpoint saves so that a resumed run sees the same crops.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from erl_losses.data.io import IMAGE_EXTENSIONS, image_to_uint8, read_image

__all__ = ["FolderImages", "PhotoImages", "RandomCrops"]


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
    """Every image file directly inside a folder (e.g. MSEC's ``GT_IMAGES``), decoded lazily.

    Files are read by :func:`erl_losses.data.io.read_image` (8- and 16-bit; 16-bit images are
    quantised to 8 bits here, which is all a crop in [0, 1] for the pretext needs).

    Args:
        folder: the directory; files ending in :data:`~erl_losses.data.io.IMAGE_EXTENSIONS`
            are used, sorted by name.
        max_side: area-downscale images whose longer side exceeds this (``None``: keep). MSEC-
            style training commonly uses images of at most 512 pixels.
        cache_size: decoded images kept in memory.
    """

    def __init__(
        self, folder: str | os.PathLike[str], max_side: int | None = None, cache_size: int = 64
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"Expected `images` to be a directory, got {str(folder)!r}")
        self.files = sorted(
            p for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not self.files:
            raise ValueError(
                f"Expected image files ({', '.join(IMAGE_EXTENSIONS)}) in {str(self.folder)!r}, "
                "got none"
            )
        self.max_side = max_side
        self._load = functools.lru_cache(maxsize=cache_size)(self._decode)

    def __len__(self) -> int:
        return len(self.files)

    def _decode(self, index: int) -> Tensor:
        path = self.files[index]
        return _to_chw_uint8(read_image(path), f"image {str(path)!r}")

    def get(self, index: int, crop: int) -> Tensor:
        """Image ``index`` as ``(3, H, W)`` uint8, at least ``crop`` pixels on each side."""
        return _fit(self._load(index), crop, self.max_side)

    def provenance(self) -> dict[str, Any]:
        """What the data was: the folder, the file count and a digest of the file names."""
        digest = hashlib.sha256("\n".join(p.name for p in self.files).encode()).hexdigest()
        return {
            "kind": "image-folder",
            "folder": str(self.folder),
            "num_images": len(self.files),
            "file_list_sha256": digest,
            "max_side": self.max_side,
        }


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
