"""Synthetic MSEC-like exposure pairs: one linear scene per crop, a camera branch and an expert branch.

MSEC (Afifi et al., CVPR 2021) renders each raw at -1.5 ... +1.5 EV with an emulated camera and
takes as ground truth an expert's retouch of the same raw, so even the 0 EV input differs from the
GT. This renderer has the same structure, on photos bundled with installed packages:

* **scene** (:func:`scene_from_photo`): the photo with the camera's tone curve undone (the raw
  behind it) and scaled by a random ``2 ** u``, ``u`` uniform in +-0.5 stops (scenes differ in
  brightness, as raws do);
* **inputs** (:mod:`erl_losses.data.camera`): as-shot white-balance error (R and B about
  N(0, 0.12) stops), ``2 ** EV``, raw clip at 1, a filmic shoulder, sRGB, a contrast S-curve,
  8-bit, JPEG quality 88-95;
* **ground truth** (:mod:`erl_losses.data.retouch`): white balance to the true illuminant (the
  as-shot error undone), a content-driven exposure change, local tone mapping with detail boost,
  white point and roll-off, S-curve, saturation x1.15 -- fixed settings, so the GT is a function
  of the scene, not of a random style.

The GT does not depend on EV (it is rendered from the raw at its own exposure). Input PSNR against
the GT, mean over the default set (10 photos x 4 crops x 128 px, seed 0; the table in
``docs/renderer.md``): N1.5 11.61, N1 14.10, 0 21.28, P1 16.77, P1.5 13.04 dB, inside the
calibration targets 18-22 dB at 0 EV and 11-16 dB at +-1.5 EV, peaking at 0 EV. Individual crops
spread widely (about 12-31 dB at 0 EV): a bright, high-key scene is closest to the GT when
under-exposed. This is our emulation, a stand-in for demos, tests and benchmarks, not MSEC.

:func:`render_dataset` writes the MSEC layout from random crops of the bundled photos
(:mod:`erl_losses.data.photos`), split by source photo.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from erl_losses._validation import check_int, check_positive_int
from erl_losses.data.camera import (
    CameraParams,
    camera_render,
    draw_camera_params,
    invert_tone_curve,
)
from erl_losses.data.colour import linear_to_srgb, srgb_to_linear
from erl_losses.data.io import write_png
from erl_losses.data.levels import LEVEL_EV, MSEC_LEVELS
from erl_losses.data.photos import load_photo, split_photos
from erl_losses.data.retouch import ExpertStyle, expert_retouch

__all__ = [
    "SCENE_SPREAD_STOPS",
    "RenderedScene",
    "RenderedSet",
    "linear_to_srgb",
    "render_dataset",
    "render_exposures",
    "render_scene",
    "scene_from_photo",
    "srgb_to_linear",
]

#: Half-width (stops) of the uniform random brightness of a scene.
SCENE_SPREAD_STOPS = 0.5

Seed = int | Sequence[int]


def scene_from_photo(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A linear scene from an sRGB photo: ``invert_tone_curve(img / 255) * 2 ** u``.

    A photo is a camera's rendering of its raw: undoing the camera's tone curve
    (:func:`~erl_losses.data.camera.invert_tone_curve`), not only the sRGB encoding, keeps the
    photo's own mid-tone lift from being applied twice (inputs too bright when under-exposed).

    Args:
        img: ``(H, W, 3)`` ``uint8`` sRGB photo.
        rng: draws ``u`` uniform in +-:data:`SCENE_SPREAD_STOPS` (one draw).

    Returns:
        ``(scene, u)``: ``(H, W, 3)`` float64 linear values in [0, 2 ** 0.5], and ``u`` in stops.
    """
    stops = float(rng.uniform(-SCENE_SPREAD_STOPS, SCENE_SPREAD_STOPS))
    return invert_tone_curve(np.asarray(img) / 255.0) * 2.0**stops, stops


@dataclass(frozen=True)
class RenderedScene:
    """One scene rendered by :func:`render_scene`.

    Attributes:
        gt: ``(H, W, 3)`` ``uint8`` expert retouch (independent of EV).
        inputs: ``{level: (H, W, 3) uint8}`` camera JPEGs, in the order of the levels asked for.
        camera: the scene's random camera settings.
        scene_stops: the scene's random brightness, stops.
    """

    gt: np.ndarray
    inputs: dict[str, np.ndarray]
    camera: CameraParams
    scene_stops: float


def _check_render_args(img: np.ndarray, levels: Sequence[str]) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"Expected img to be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    unknown = [level for level in levels if level not in LEVEL_EV]
    if unknown:
        raise ValueError(f"Expected levels from {list(MSEC_LEVELS)}, got {unknown}")
    return img


def render_scene(
    img: np.ndarray,
    *,
    seed: Seed = 0,
    levels: Sequence[str] = MSEC_LEVELS,
    style: ExpertStyle | None = None,
) -> RenderedScene:
    """Renders one photo as a scene: its expert GT and its camera inputs at ``levels``.

    Deterministic in ``(img, seed)``; the random draws (scene brightness, white-balance error,
    JPEG quality) do not depend on ``levels``, so neither does the GT.

    Args:
        img: ``(H, W, 3)`` ``uint8`` sRGB photo (a crop).
        seed: seed of :func:`numpy.random.default_rng` (an int or a sequence of ints).
        levels: MSEC level names (``N1.5, N1, 0, P1, P1.5`` = -1.5 ... +1.5 EV).
        style: the expert's settings (default :class:`~erl_losses.data.retouch.ExpertStyle`).

    Returns:
        A :class:`RenderedScene`.
    """
    img = _check_render_args(img, levels)
    rng = np.random.default_rng(seed)
    scene, stops = scene_from_photo(img, rng)
    camera = draw_camera_params(rng)
    # The expert edits the raw as shot: the camera's white-balance error and sensor clip at 0 EV.
    raw = np.clip(scene * np.asarray(camera.wb_gains), 0.0, 1.0)
    inputs = {level: camera_render(scene, LEVEL_EV[level], camera) for level in levels}
    gt = expert_retouch(raw, style, as_shot_gains=camera.wb_gains)
    return RenderedScene(gt, inputs, camera, stops)


def render_exposures(
    img: np.ndarray, *, levels: Sequence[str] = MSEC_LEVELS, seed: Seed = 0
) -> dict[str, np.ndarray]:
    """The camera inputs of :func:`render_scene` only: ``{level: (H, W, 3) uint8}``."""
    return render_scene(img, seed=seed, levels=levels).inputs


@dataclass
class RenderedSet:
    """What :func:`render_dataset` wrote.

    Attributes:
        root: the output folder.
        stems: split -> GT stems written (``<photo>_c<k>``); inputs are ``<stem>_<level>.png``.
        photos: split -> source photos used.
        levels: the exposure levels rendered.
        input_psnr: split -> level -> PSNR (dB, 8-bit) of each input against its GT, in stem order.
    """

    root: Path
    stems: dict[str, list[str]] = field(default_factory=dict)
    photos: dict[str, list[str]] = field(default_factory=dict)
    levels: tuple[str, ...] = MSEC_LEVELS
    input_psnr: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def count(self, split: str) -> int:
        """Number of input images written for ``split``."""
        return len(self.stems.get(split, [])) * len(self.levels)

    def psnr_by_level(self, split: str | None = None) -> dict[str, list[float]]:
        """Input-vs-GT PSNRs per level of one split, or of every split written (``None``)."""
        splits = list(self.input_psnr) if split is None else [split]
        return {
            level: [v for name in splits for v in self.input_psnr[name][level]]
            for level in self.levels
        }


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


def _check_dataset_args(crop_size: int, crops_per_photo: int, split: str, min_scale: float) -> None:
    check_int(crop_size, "crop_size", minimum=8)
    check_positive_int(crops_per_photo, "crops_per_photo")
    if split not in ("train", "test", "both"):
        raise ValueError(f"Expected split to be 'train', 'test' or 'both', got {split!r}")
    if not 0.0 < min_scale <= 1.0:
        raise ValueError(f"Expected min_scale in (0, 1], got {min_scale}")


def _photo_split(
    train_photos: Sequence[str] | None, test_photos: Sequence[str] | None
) -> dict[str, list[str]]:
    """The photos of each split: the fixed split unless overridden; the two must be disjoint."""
    default_train, default_test = split_photos()
    photos = {
        "train": list(default_train if train_photos is None else train_photos),
        "test": list(default_test if test_photos is None else test_photos),
    }
    shared = sorted(set(photos["train"]) & set(photos["test"]))
    if shared:
        raise ValueError(f"Expected disjoint train and test photos, got {shared} in both")
    return photos


def _prepare_folders(root: Path, splits: list[str], overwrite: bool) -> None:
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


def _input_psnr(image: np.ndarray, gt: np.ndarray) -> float:
    """PSNR in dB (MAX = 255) of a rendered uint8 input against its ground truth, by
    scikit-image (the data layer does not import :mod:`erl_losses.evaluation`, whose
    ``psnr_uint8(..., backend="skimage")`` gives the same number); ``inf`` if identical."""
    from skimage.metrics import peak_signal_noise_ratio

    if np.array_equal(image, gt):
        return float("inf")
    return float(peak_signal_noise_ratio(gt, image, data_range=255))


def _render_photo(
    photo_name: str, folder: Path, *, crop_size: int, crops: int, seed: int, min_scale: float
) -> list[dict[str, object]]:
    """Writes the crops of one photo into ``folder`` and returns their manifest records."""
    photo = load_photo(photo_name)
    if crop_size > min(photo.shape[:2]):
        raise ValueError(
            f"Expected crop_size <= the short side of photo {photo_name!r} "
            f"({min(photo.shape[:2])} px), got {crop_size}"
        )
    photo_key = zlib.crc32(photo_name.encode())
    rng = np.random.default_rng([seed, photo_key])
    records: list[dict[str, object]] = []
    for k in range(crops):
        crop, box = _random_crop(photo, crop_size, rng, min_scale)
        stem = f"{photo_name}_c{k:02d}"
        rendered = render_scene(crop, seed=[seed, photo_key, k])
        write_png(folder / "GT_IMAGES" / f"{stem}.png", rendered.gt, compress_level=1)
        psnr = {}
        for level, image in rendered.inputs.items():
            write_png(folder / "INPUT_IMAGES" / f"{stem}_{level}.png", image, compress_level=1)
            psnr[level] = _input_psnr(image, rendered.gt)
        records.append(
            {
                "stem": stem,
                "photo": photo_name,
                **box,
                "scene_stops": rendered.scene_stops,
                "camera": asdict(rendered.camera),
                "input_psnr": psnr,
            }
        )
    return records


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
    overwrite: bool = False,
) -> RenderedSet:
    """Writes a synthetic exposure set in the MSEC layout.

    Layout: ``<out>/{train,test}/INPUT_IMAGES/<stem>_<level>.png`` (camera inputs) and
    ``<out>/{train,test}/GT_IMAGES/<stem>.png`` (expert retouch) with ``<stem> = <photo>_c<k>``
    and ``<level>`` in ``N1.5, N1, 0, P1, P1.5``, plus ``<out>/manifest.json`` (parameters, crop
    boxes, each scene's random settings and input PSNRs). The split is by source photo
    (:func:`~erl_losses.data.photos.split_photos` by default): no photo appears in both splits.
    Each crop is taken from the photo downscaled by a random factor in
    ``[max(min_scale, crop_size / short side), 1]`` (Lanczos) so crops show more than a texture
    patch, then rendered by :func:`render_scene` with seed ``(seed, crc32(photo), k)``. The output
    is a deterministic function of the arguments; the crops of one photo depend only on ``seed``
    and the photo's name. The default (10 photos x 4 crops x 128 px) renders in about 2 s.

    Args:
        out_dir: output folder (created).
        crop_size: square crop side in pixels; at most the photos' short side (300 px for chelsea).
        crops_per_photo: crops per source photo, >= 1.
        seed: random seed of the crops and scenes.
        split: which split(s) to write.
        train_photos, test_photos: override the fixed split (must be disjoint).
        min_scale: lower bound of the random downscale factor, in (0, 1].
        overwrite: replace the ``.png`` files of an existing non-empty split folder.

    Returns:
        A :class:`RenderedSet` listing the stems and input PSNRs written per split.
    """
    _check_dataset_args(crop_size, crops_per_photo, split, min_scale)
    photos = _photo_split(train_photos, test_photos)
    splits = ["train", "test"] if split == "both" else [split]
    root = Path(out_dir)
    _prepare_folders(root, splits, overwrite)

    result = RenderedSet(root=root)
    manifest: dict[str, object] = {
        "generator": "erl_losses.data.render.render_dataset",
        "renderer": "camera inputs + expert-retouch GT (erl_losses.data.camera / .retouch)",
        "expert_style": asdict(ExpertStyle()),
        "crop_size": crop_size,
        "crops_per_photo": crops_per_photo,
        "seed": seed,
        "min_scale": min_scale,
        "levels": list(MSEC_LEVELS),
        "splits": {},
    }
    for name in splits:
        records = [
            record
            for photo_name in photos[name]
            for record in _render_photo(
                photo_name,
                root / name,
                crop_size=crop_size,
                crops=crops_per_photo,
                seed=seed,
                min_scale=min_scale,
            )
        ]
        result.stems[name] = [str(r["stem"]) for r in records]
        result.photos[name] = photos[name]
        result.input_psnr[name] = {
            level: [r["input_psnr"][level] for r in records]  # type: ignore[index]
            for level in MSEC_LEVELS
        }
        manifest["splits"][name] = records  # type: ignore[index]
    _write_manifest(root, manifest, merge=split != "both")
    return result


def _write_manifest(root: Path, manifest: dict[str, object], *, merge: bool) -> None:
    """Writes ``root/manifest.json``; ``merge`` keeps the other split of an earlier render."""
    path = root / "manifest.json"
    if merge and path.is_file():
        previous = json.loads(path.read_text())
        manifest["splits"] = {**previous.get("splits", {}), **manifest["splits"]}  # type: ignore[dict-item]
    path.write_text(json.dumps(manifest, indent=2))
