"""Synthetic exposure renderer: MSEC-like over/under-exposed versions of a well-exposed photo.

The model of the camera, per pixel and channel:

1. Linearise the sRGB photo with the sRGB EOTF (IEC 61966-2-1, piecewise: ``c / 12.92`` below
   0.04045, ``((c + 0.055) / 1.055) ** 2.4`` above). The photo's linear values stand for scene
   radiance at EV 0.
2. Scale by ``2 ** EV`` for EV in {-1.5, -1, 0, +1, +1.5} (MSEC's levels ``N1.5, N1, 0, P1, P1.5``).
3. Apply a camera-like highlight shoulder :func:`tone_curve`: identity up to a knee ``k``
   (default 0.9), then a quadratic roll-off that meets 1 with zero slope at the white point
   ``2 - k`` (C1-continuous), and a hard clip above it, where the highlights saturate.
4. Re-encode with the inverse EOTF and round to ``uint8``.

Consequences, checked by the tests: EV 0 re-renders the photo up to the gentle shoulder above
linear 0.9 (sRGB above ~243 drops by at most 3 levels); mean brightness increases monotonically
over the levels; under-exposed renders are darker and lose shadow detail to 8-bit quantisation;
over-exposed renders clip: at +1 EV everything above sRGB ~196 saturates, at +1.5 EV above ~168.
There is no sensor noise and no colour cast, unlike the raw renders of MSEC (Afifi et al., 2021),
whose ground truth is additionally retouched by experts; this set is a stand-in for demos and tests,
not a replacement for MSEC.

:func:`render_dataset` writes the MSEC layout from random crops of the bundled photos
(:mod:`erl_losses.data.photos`), split by source photo.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from erl_losses.data.io import write_png
from erl_losses.data.levels import LEVEL_EV, MSEC_LEVELS
from erl_losses.data.photos import load_photo, split_photos

__all__ = [
    "RenderedSet",
    "linear_to_srgb",
    "render_dataset",
    "render_exposures",
    "srgb_to_linear",
    "tone_curve",
]


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB EOTF: encoded values in [0, 1] -> linear light in [0, 1] (float64, same shape)."""
    c = np.clip(np.asarray(srgb, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Inverse sRGB EOTF: linear light in [0, 1] -> encoded values in [0, 1] (float64)."""
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def tone_curve(x: np.ndarray, knee: float = 0.9) -> np.ndarray:
    """Camera highlight shoulder with clipping, on linear exposure values ``x >= 0``.

    ``T(x) = x`` for ``x <= knee``; ``T(x) = x - (x - knee)**2 / (4 (1 - knee))`` up to the white
    point ``2 - knee``, where ``T = 1`` with zero slope; ``T = 1`` (clipped) above.

    Args:
        x: linear values, any shape.
        knee: start of the shoulder, in (0, 1]; ``knee = 1`` is a plain clip.

    Returns:
        Float64 array of ``x``'s shape in [0, 1].
    """
    if not 0.0 < knee <= 1.0:
        raise ValueError(f"Expected knee in (0, 1], got {knee}")
    x = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
    if knee == 1.0:
        return np.minimum(x, 1.0)
    white = 2.0 - knee
    shoulder = x - (x - knee) ** 2 / (4.0 * (1.0 - knee))
    out = np.where(x <= knee, x, shoulder)
    return np.where(x >= white, 1.0, out)


def render_exposures(
    img: np.ndarray, *, levels: Sequence[str] = MSEC_LEVELS, knee: float = 0.9
) -> dict[str, np.ndarray]:
    """Renders an sRGB photo at several relative exposures.

    Args:
        img: ``(H, W, 3)`` ``uint8`` sRGB image, taken as the well-exposed reference.
        levels: MSEC level names to render (``N1.5, N1, 0, P1, P1.5`` = -1.5 ... +1.5 EV).
        knee: see :func:`tone_curve`.

    Returns:
        ``{level: (H, W, 3) uint8}`` in the order of ``levels``.
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"Expected img to be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    unknown = [level for level in levels if level not in LEVEL_EV]
    if unknown:
        raise ValueError(f"Expected levels from {list(MSEC_LEVELS)}, got {unknown}")
    linear = srgb_to_linear(img / 255.0)
    out: dict[str, np.ndarray] = {}
    for level in levels:
        exposed = tone_curve(linear * 2.0 ** LEVEL_EV[level], knee=knee)
        out[level] = np.round(linear_to_srgb(exposed) * 255.0).astype(np.uint8)
    return out


@dataclass
class RenderedSet:
    """What :func:`render_dataset` wrote.

    Attributes:
        root: the output folder.
        stems: split -> GT stems written (``<photo>_c<k>``); inputs are ``<stem>_<level>.png``.
        photos: split -> source photos used.
        levels: the exposure levels rendered.
    """

    root: Path
    stems: dict[str, list[str]] = field(default_factory=dict)
    photos: dict[str, list[str]] = field(default_factory=dict)
    levels: tuple[str, ...] = MSEC_LEVELS

    def count(self, split: str) -> int:
        """Number of input images written for ``split``."""
        return len(self.stems.get(split, [])) * len(self.levels)


def _save_png(array: np.ndarray, path: Path) -> None:
    write_png(path, array, compress_level=1)


def _random_crop(
    photo: np.ndarray, crop_size: int, rng: np.random.Generator, min_scale: float
) -> tuple[np.ndarray, dict[str, float | int]]:
    from PIL import Image

    h, w = photo.shape[:2]
    lowest = max(crop_size / min(h, w), min_scale)
    scale = float(rng.uniform(lowest, 1.0)) if lowest < 1.0 else 1.0
    if scale < 1.0:
        size = (max(crop_size, round(w * scale)), max(crop_size, round(h * scale)))
        photo = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS))
        h, w = photo.shape[:2]
    top = int(rng.integers(0, h - crop_size + 1))
    left = int(rng.integers(0, w - crop_size + 1))
    crop = photo[top : top + crop_size, left : left + crop_size]
    return np.ascontiguousarray(crop), {"scale": scale, "top": top, "left": left}


def render_dataset(
    out_dir: str | Path,
    *,
    crop_size: int = 128,
    crops_per_photo: int = 4,
    seed: int = 0,
    split: Literal["train", "test", "both"] = "both",
    train_photos: Sequence[str] | None = None,
    test_photos: Sequence[str] | None = None,
    min_scale: float = 0.5,
    knee: float = 0.9,
    overwrite: bool = False,
) -> RenderedSet:
    """Writes a synthetic exposure set in the MSEC layout.

    Layout: ``<out>/{train,test}/INPUT_IMAGES/<stem>_<level>.png`` and
    ``<out>/{train,test}/GT_IMAGES/<stem>.png`` with ``<stem> = <photo>_c<k>`` and ``<level>`` in
    ``N1.5, N1, 0, P1, P1.5``, plus ``<out>/manifest.json`` (parameters and crop boxes). The split
    is by source photo (:func:`~erl_losses.data.photos.split_photos` by default): no photo appears
    in both splits. Each crop is taken from the photo downscaled by a random factor in
    ``[max(min_scale, crop_size / short side), 1]`` (Lanczos) so crops show more than a texture
    patch. The output is a deterministic function of the arguments; the crops of one photo depend
    only on ``seed`` and the photo's name. The default (10 photos x 4 crops x 128 px) renders in
    about a second.

    Args:
        out_dir: output folder (created).
        crop_size: square crop side in pixels; at most the photos' short side (300 px for chelsea).
        crops_per_photo: crops per source photo, >= 1.
        seed: random seed of the crop positions and scales.
        split: which split(s) to write.
        train_photos, test_photos: override the fixed split (must be disjoint).
        min_scale: lower bound of the random downscale factor, in (0, 1].
        knee: tone-curve knee, see :func:`tone_curve`.
        overwrite: replace the ``.png`` files of an existing non-empty split folder.

    Returns:
        A :class:`RenderedSet` listing the stems written per split.
    """
    if not isinstance(crop_size, int) or crop_size < 8:
        raise ValueError(f"Expected crop_size to be an int >= 8, got {crop_size!r}")
    if not isinstance(crops_per_photo, int) or crops_per_photo < 1:
        raise ValueError(f"Expected crops_per_photo to be an int >= 1, got {crops_per_photo!r}")
    if split not in ("train", "test", "both"):
        raise ValueError(f"Expected split to be 'train', 'test' or 'both', got {split!r}")
    if not 0.0 < min_scale <= 1.0:
        raise ValueError(f"Expected min_scale in (0, 1], got {min_scale}")
    default_train, default_test = split_photos()
    photos = {
        "train": list(default_train if train_photos is None else train_photos),
        "test": list(default_test if test_photos is None else test_photos),
    }
    shared = sorted(set(photos["train"]) & set(photos["test"]))
    if shared:
        raise ValueError(f"Expected disjoint train and test photos, got {shared} in both")
    splits = ["train", "test"] if split == "both" else [split]

    root = Path(out_dir)
    for name in splits:
        for sub in ("INPUT_IMAGES", "GT_IMAGES"):
            folder = root / name / sub
            if folder.is_dir() and any(folder.iterdir()):
                if not overwrite:
                    raise ValueError(
                        f"Expected an empty or new output folder, got {len(list(folder.iterdir()))}"
                        f" files in {folder} (pass overwrite=True / --overwrite to replace them)"
                    )
                for old in folder.glob("*.png"):
                    old.unlink()
            folder.mkdir(parents=True, exist_ok=True)

    result = RenderedSet(root=root)
    manifest: dict[str, object] = {
        "generator": "erl_losses.data.render.render_dataset",
        "crop_size": crop_size,
        "crops_per_photo": crops_per_photo,
        "seed": seed,
        "min_scale": min_scale,
        "knee": knee,
        "levels": list(MSEC_LEVELS),
        "splits": {},
    }
    for name in splits:
        records = []
        result.stems[name] = []
        result.photos[name] = photos[name]
        for photo_name in photos[name]:
            photo = load_photo(photo_name)
            if crop_size > min(photo.shape[:2]):
                raise ValueError(
                    f"Expected crop_size <= the short side of photo {photo_name!r} "
                    f"({min(photo.shape[:2])} px), got {crop_size}"
                )
            rng = np.random.default_rng([seed, zlib.crc32(photo_name.encode())])
            for k in range(crops_per_photo):
                crop, box = _random_crop(photo, crop_size, rng, min_scale)
                stem = f"{photo_name}_c{k:02d}"
                _save_png(crop, root / name / "GT_IMAGES" / f"{stem}.png")
                for level, rendered in render_exposures(crop, knee=knee).items():
                    _save_png(rendered, root / name / "INPUT_IMAGES" / f"{stem}_{level}.png")
                result.stems[name].append(stem)
                records.append({"stem": stem, "photo": photo_name, **box})
        manifest["splits"][name] = records  # type: ignore[index]
    if root.joinpath("manifest.json").is_file() and split != "both":
        previous = json.loads(root.joinpath("manifest.json").read_text())
        manifest["splits"] = {**previous.get("splits", {}), **manifest["splits"]}  # type: ignore[dict-item]
    root.joinpath("manifest.json").write_text(json.dumps(manifest, indent=2))
    return result
