"""Image files: the one place that reads, writes and lists them (needs the ``data`` extra).

* :data:`IMAGE_EXTENSIONS`: the file types every reader accepts.
* :func:`read_image`: 8-bit and 16-bit PNG / TIFF (RGB, RGBA, grey), JPEG, BMP, WebP as
  ``(H, W, 3)`` RGB. 8-bit files give ``uint8``; files with more than 8 bits per channel give
  ``float32`` in [0, 1] (16-bit values divided by 65535), so no precision is thrown away and a
  16-bit file never reads as pure white (Pillow's ``convert("RGB")`` clips 16-bit grey to 255 and
  keeps only the high byte of 16-bit colour). :func:`image_to_float` and :func:`image_to_uint8`
  bring either kind to one dtype.
* :func:`write_png`: the one PNG writer (``uint8`` RGB or grey).
* :func:`list_images`, :func:`missing_files`, :func:`format_names`: folder listing and the
  "these files are missing" messages.

Unreadable, truncated or non-image files raise :class:`ValueError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from erl_losses._extras import require

__all__ = [
    "IMAGE_EXTENSIONS",
    "format_names",
    "image_to_float",
    "image_to_uint8",
    "list_images",
    "missing_files",
    "read_image",
    "write_png",
]

#: Image file extensions every reader accepts (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
)

# Pillow modes holding one channel of more than 8 bits, and the divisor that maps them to [0, 1].
_HIGH_DEPTH_GREY = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0}


def _pil() -> Any:
    return require("PIL.Image", "data")


def _is_16bit_colour(image: Any) -> bool:
    """Pillow decodes 16-bit RGB(A) into 8-bit modes; its raw mode (``RGB;16B``) tells."""
    if image.mode not in ("RGB", "RGBA", "LA"):
        return False
    for tile in getattr(image, "tile", None) or ():
        rawmode = tile[3] if len(tile) > 3 else None
        if isinstance(rawmode, tuple):  # some plugins pass (rawmode, ...) tuples
            rawmode = rawmode[0] if rawmode else None
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _read_16bit_colour(path: Path) -> np.ndarray:
    cv2 = require("cv2", "data")
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ValueError(f"Expected a readable 16-bit image, got one OpenCV cannot decode: {path}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    # OpenCV orders channels BGR(A); alpha is dropped as convert("RGB") does for 8-bit files.
    rgb = array[..., 2::-1] if array.shape[2] >= 3 else np.repeat(array[..., :1], 3, axis=2)
    scale = float(np.iinfo(rgb.dtype).max) if rgb.dtype.kind in "ui" else 1.0
    return np.clip(rgb.astype(np.float32) / scale, 0.0, 1.0)


def _decode(image: Any, path: Path) -> np.ndarray:
    if _is_16bit_colour(image):  # before load(), which clears the tile list
        return _read_16bit_colour(path)
    image.load()
    if image.mode in _HIGH_DEPTH_GREY:
        grey = np.asarray(image, dtype=np.float32) / _HIGH_DEPTH_GREY[image.mode]
        return np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=2)
    if image.mode == "I":  # 32-bit integer grey (Pillow widens some 16-bit files to it)
        grey = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if grey.size == 0 or grey.max() <= 65535 else float(np.iinfo(np.int32).max)
        return np.repeat(np.clip(grey / scale, 0.0, 1.0).astype(np.float32)[..., None], 3, axis=2)
    if image.mode == "F":  # float grey, taken to already be in [0, 1]
        grey = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def read_image(path: str | Path) -> np.ndarray:
    """Reads one image file as RGB.

    Args:
        path: a file with one of :data:`IMAGE_EXTENSIONS` (the suffix is not enforced here).

    Returns:
        ``(H, W, 3)`` array: ``uint8`` for 8-bit files; ``float32`` in [0, 1] for 16-bit and
        float files (grey is repeated on the three channels, alpha is dropped).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file is not an image Pillow can decode, or it is truncated.
        ImportError: a 16-bit colour file without OpenCV (the message names the install line).
    """
    Image = _pil()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Expected an image file, got missing path {path}")
    try:
        with Image.open(path) as image:
            return _decode(image, path)
    except Image.UnidentifiedImageError as err:
        raise ValueError(f"Expected an image file, got one that is not an image: {path}") from err
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        # Pillow reports truncated and corrupt data as OSError (and a few parsers SyntaxError).
        raise ValueError(f"Expected a readable image file, got {path}: {err}") from err


def image_to_float(array: np.ndarray) -> np.ndarray:
    """``uint8`` (divided by 255) or float (unchanged) image -> ``float32`` in [0, 1]."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype.kind == "f":
        return array.astype(np.float32, copy=False)
    raise TypeError(f"Expected a uint8, uint16 or float image, got dtype {array.dtype}")


def image_to_uint8(array: np.ndarray) -> np.ndarray:
    """Any :func:`read_image` result -> ``uint8``; floats are clipped to [0, 1], scaled by 255 and
    rounded, as BasicSR's ``tensor2img`` quantises."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    return np.round(np.clip(image_to_float(array), 0.0, 1.0) * 255.0).astype(np.uint8)


def write_png(path: str | Path, array: np.ndarray, *, compress_level: int = 6) -> Path:
    """Writes a ``(H, W, 3)`` or ``(H, W)`` ``uint8`` image as PNG and returns the path.

    ``compress_level`` is zlib's 0 (fastest) .. 9 (smallest); pixels are identical for all.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8 or not (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)
    ):
        raise ValueError(
            f"Expected array to be (H, W, 3) or (H, W) uint8, got {array.shape} {array.dtype}"
        )
    path = Path(path)
    image = _pil().fromarray(np.ascontiguousarray(array))
    image.save(path, format="PNG", compress_level=compress_level)
    return path


def list_images(folder: str | Path) -> dict[str, Path]:
    """``{stem: path}`` of the image files directly in ``folder`` (extension case-insensitive).

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
        ValueError: two files share a stem (e.g. ``a.jpg`` and ``a.png``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Expected an image folder, got missing path {folder}")
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            if path.stem in out:
                raise ValueError(
                    f"Expected one image per name in {folder}, got {out[path.stem].name} and "
                    f"{path.name}"
                )
            out[path.stem] = path
    return out


def missing_files(paths: Iterable[str | Path]) -> list[Path]:
    """The entries of ``paths`` that are not existing files, in input order."""
    return [Path(p) for p in paths if not Path(p).is_file()]


def format_names(items: Sequence[object], limit: int = 20) -> str:
    """``"a, b, c"``; past ``limit`` items, ``"a, b, ... (N more)"`` (for error messages)."""
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
