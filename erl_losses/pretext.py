"""Two-stage pretext training of the batch-correlation module (ERL paper sec. 3.2).

Stage 1 trains the convolutional encoder ``f_e``, the fusion ``W`` and the decoder ``f_d`` as a
plain auto-encoder (``F'`` replaced by zeros) with an L1 reconstruction loss on normal-exposure
images. Stage 2 freezes ``f_e`` and ``f_d`` and trains the batch transformer ``t_e`` and ``W`` on
mini-batches (paper: 4 images) so that the reconstruction *through the batch relation* keeps the
content of every input:

* ``pretext="phase"``: the paper's objective, the Fourier phase loss of eq. 3 between
  ``reconstruct(x, relation=True)`` and ``x``;
* ``pretext="l1"``: the table-2 ablation, a pixel L1 loss instead;
* ``pretext="none"``: the table-2 ablation "w/o pretext task": stage 2 is skipped and ``t_e``
  keeps its (seeded) random initialisation.

Everything is seeded (model initialisation, crops, flips), checkpoints are pickle-free
(safetensors tensors + JSON metadata, including the optimiser moments and the crop generator's
state), so an interrupted run resumed from its checkpoint ends with the same weights as an
uninterrupted one. The final file is a zoo-ready safetensors file whose metadata holds the BCM
config and the recipe (see :mod:`erl_losses.zoo`), written next to a manifest entry, a model card
draft and a CSV log of both stages' losses.

Example:
    >>> from erl_losses.pretext import PretextRecipe, pretrain_bcm
    >>> recipe = PretextRecipe(stage1_steps=2, stage2_steps=2, crop_size=32)
    >>> result = pretrain_bcm(recipe, "runs/tiny", progress=False)   # doctest: +SKIP
    >>> result.weights                                               # doctest: +SKIP
    PosixPath('runs/tiny/bcm-phase-v1.safetensors')
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from erl_losses._files import file_sha256
from erl_losses._version import __version__
from erl_losses.functional.phase import PHASE_MODES, phase_loss
from erl_losses.modules.bcm import BatchCorrelationModule
from erl_losses.modules.bcm_io import WEIGHTS_FORMAT, load_bcm, save_bcm
from erl_losses.modules.bcm_io import read_bcm_metadata as read_metadata

__all__ = [
    "IMAGE_EXTENSIONS",
    "PRETEXTS",
    "STAGE2_FUSE",
    "WEIGHTS_FORMAT",
    "FolderImages",
    "PhotoImages",
    "PretextRecipe",
    "PretrainResult",
    "RandomCrops",
    "evaluate_bcm",
    "load_weights",
    "pretrain_bcm",
    "random_relation",
    "save_weights",
]

#: The pretext objectives of stage 2 (paper table 2): phase loss (eq. 3), pixel L1, none.
PRETEXTS: tuple[str, ...] = ("phase", "l1", "none")

#: What stage 2 trains of the fusion ``W``: the ``F'``-reading half only, or all of it.
STAGE2_FUSE: tuple[str, ...] = ("relation", "all")


#: File name endings read by :class:`FolderImages`.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_CHECKPOINT_FORMAT = "erl-losses/pretext-checkpoint-1"
_LOG_FIELDS = ("stage", "step", "global_step", "loss", "lr", "seconds")


# ---------------------------------------------------------------------------------------------
# Recipe
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PretextRecipe:
    """Everything that determines a pretext run (together with the BCM config and the data).

    Args:
        pretext: stage-2 objective, one of :data:`PRETEXTS`.
        stage1_steps: optimiser steps of the auto-encoder stage (0 skips it, e.g. when the run
            starts from a stage-1 file).
        stage2_steps: optimiser steps of the relation stage (ignored for ``pretext="none"``).
        stage1_batch_size: images per stage-1 step.
        batch_size: images per stage-2 mini-batch, the batch the relation is learnt over
            (paper: 4).
        crop_size: side in pixels of the square stage-2 crops; ``None`` uses the BCM's
            ``work_size`` (128 by default), the resolution the relation loss sees.
        stage1_crop_size: side of the stage-1 crops; ``None`` uses ``crop_size``. The
            auto-encoder is fully convolutional, so smaller crops train it faster on a CPU.
        stage1_lr: peak Adam learning rate of stage 1.
        stage2_lr: peak Adam learning rate of stage 2.
        betas: Adam betas (paper: 0.9, 0.99).
        warmup_fraction: linear warm-up share of each stage; a cosine decay to
            ``min_lr_ratio * lr`` follows.
        min_lr_ratio: final learning rate as a fraction of the peak.
        phase_mode: ``mode`` of :func:`~erl_losses.phase_loss` for ``pretext="phase"``.
        stage2_fuse: which part of the fusion ``W`` stage 2 trains. ``"relation"`` (default):
            only the weights that read ``F'`` (``W``'s second input half); the weights that read
            ``F`` and the bias keep their stage-1 values, so the file's auto-encoder path
            (``reconstruct(x, relation=False)``) stays exactly the stage-1 auto-encoder.
            ``"all"``: the whole ``W``, as a literal reading of "t_e (+ W)".
        flip: random horizontal/vertical flips of the crops.
        seed: seeds the model initialisation (so the random ``t_e`` of ``"none"`` is
            reproducible) and the crop sampler.
    """

    pretext: str = "phase"
    stage1_steps: int = 2000
    stage2_steps: int = 1000
    stage1_batch_size: int = 8
    batch_size: int = 4
    crop_size: int | None = None
    stage1_crop_size: int | None = None
    stage1_lr: float = 2e-3
    stage2_lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.05
    phase_mode: str = "paper"
    stage2_fuse: str = "relation"
    flip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pretext not in PRETEXTS:
            raise ValueError(
                f"Expected `pretext` to be one of {list(PRETEXTS)}, got {self.pretext!r}"
            )
        if self.stage2_fuse not in STAGE2_FUSE:
            raise ValueError(
                f"Expected `stage2_fuse` to be one of {list(STAGE2_FUSE)}, got {self.stage2_fuse!r}"
            )
        if self.phase_mode not in PHASE_MODES:
            raise ValueError(
                f"Expected `phase_mode` to be one of {list(PHASE_MODES)}, got {self.phase_mode!r}"
            )
        for name in ("stage1_steps", "stage2_steps", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Expected `{name}` to be an int >= 0, got {value!r}")
        if self.batch_size < 2 or not isinstance(self.batch_size, int):
            raise ValueError(
                "Expected `batch_size` to be an int >= 2 (the relation needs other samples), "
                f"got {self.batch_size!r}"
            )
        if self.stage1_batch_size < 1 or not isinstance(self.stage1_batch_size, int):
            raise ValueError(
                f"Expected `stage1_batch_size` to be an int >= 1, got {self.stage1_batch_size!r}"
            )
        for name in ("crop_size", "stage1_crop_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 16):
                raise ValueError(f"Expected `{name}` to be None or an int >= 16, got {value!r}")
        for name in ("stage1_lr", "stage2_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Expected `{name}` > 0, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"Expected `warmup_fraction` in [0, 1), got {self.warmup_fraction!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"Expected `min_lr_ratio` in [0, 1], got {self.min_lr_ratio!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    @property
    def effective_stage2_steps(self) -> int:
        """Stage-2 steps actually run: 0 for ``pretext="none"``."""
        return 0 if self.pretext == "none" else self.stage2_steps

    def crop_sizes(self, bcm: BatchCorrelationModule) -> tuple[int, int]:
        """``(stage1_crop, stage2_crop)`` in pixels for ``bcm``."""
        stage2 = self.crop_size or bcm.work_size or 128
        return self.stage1_crop_size or stage2, stage2

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict; :meth:`from_dict` inverts it."""
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretextRecipe:
        """Builds a recipe from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Expected recipe keys among {sorted(known)}, got unknown {unknown}")
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        return cls(**data)


def _lr_at(step: int, total: int, peak: float, recipe: PretextRecipe) -> float:
    """Linear warm-up then cosine decay; a pure function of the step so resuming needs no state."""
    warmup = max(1, int(recipe.warmup_fraction * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    low = recipe.min_lr_ratio * peak
    return low + (peak - low) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# ---------------------------------------------------------------------------------------------
# Data: random crops of normal-exposure images
# ---------------------------------------------------------------------------------------------
def _to_chw_uint8(array: Any, source: str) -> Tensor:
    image = torch.as_tensor(array)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != torch.uint8:
        raise ValueError(
            f"Expected {source} to be an (H, W, 3) uint8 RGB image, got shape "
            f"{tuple(image.shape)} and dtype {image.dtype}"
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

    Args:
        folder: the directory; files ending in :data:`IMAGE_EXTENSIONS` are used, sorted by name.
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
        try:
            from PIL import Image
        except ImportError as err:  # pragma: no cover - pillow ships with the [data] extra
            raise ImportError("Reading an image folder needs pillow: pip install pillow") from err
        import numpy as np

        with Image.open(self.files[index]) as image:
            array = np.array(image.convert("RGB"))
        return _to_chw_uint8(array, f"image {str(self.files[index])!r}")

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
        self.generator.set_state(state)


# ---------------------------------------------------------------------------------------------
# Weight files (zoo format) and checkpoints (pickle-free)
# ---------------------------------------------------------------------------------------------
def save_weights(
    bcm: BatchCorrelationModule, path: str | os.PathLike[str], **metadata: Any
) -> Path:
    """Writes ``bcm`` as a weights file: :func:`erl_losses.modules.bcm_io.save_bcm` with the
    metadata as keywords."""
    return save_bcm(bcm, path, metadata=metadata)


def load_weights(path: str | os.PathLike[str], **overrides: Any) -> BatchCorrelationModule:
    """Rebuilds a BCM from a weights file: :func:`erl_losses.modules.bcm_io.load_bcm`."""
    return load_bcm(path, **overrides)


def random_relation(bcm: BatchCorrelationModule, seed: int = 0) -> BatchCorrelationModule:
    """A copy of ``bcm`` whose ``t_e`` is re-initialised as a fresh, seeded BCM would be.

    With the recipe's seed this is exactly the ``t_e`` a pretext run starts stage 2 from (and
    the ``t_e`` of the ``"none"`` variant).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = BatchCorrelationModule(**bcm.config)
    other = copy.deepcopy(bcm)
    other.t_e.load_state_dict(fresh.t_e.state_dict())
    return other


def _save_checkpoint(
    path: Path,
    bcm: BatchCorrelationModule,
    optimizer: torch.optim.Optimizer | None,
    crops: RandomCrops,
    state: dict[str, Any],
) -> None:
    tensors: dict[str, Tensor] = {
        f"model.{k}": v.detach().cpu().contiguous() for k, v in bcm.state_dict().items()
    }
    tensors["rng.crops"] = crops.state()
    optim_meta: dict[str, Any] | None = None
    if optimizer is not None:
        optim_state = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, entry in optim_state["state"].items():
            for key, value in entry.items():
                if isinstance(value, Tensor):
                    tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(index), {})[key] = value
        optim_meta = {"param_groups": optim_state["param_groups"], "scalars": scalars}
    meta = {
        "format": _CHECKPOINT_FORMAT,
        "state": json.dumps(state, sort_keys=True),
        "optimizer": json.dumps(optim_meta),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def _load_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Any] | None]:
    meta = read_metadata(path)
    if meta.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(
            f"Expected a pretext checkpoint ({_CHECKPOINT_FORMAT}) at {str(path)!r}, got format "
            f"{meta.get('format')!r}"
        )
    return load_file(str(path)), json.loads(meta["state"]), json.loads(meta["optimizer"])


def _optimizer_state(tensors: dict[str, Tensor], optim_meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, scalars in optim_meta["scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    return {"state": state, "param_groups": optim_meta["param_groups"]}


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------
def _held_out_batches(
    num_batches: int, batch_size: int, crop: int, seed: int, photos: Sequence[str] | None
) -> list[Tensor]:
    from erl_losses.data.photos import split_photos

    names = list(split_photos()[1] if photos is None else photos)
    crops = RandomCrops(PhotoImages(names), seed=seed, flip=False)
    return [crops.sample(batch_size, crop) for _ in range(num_batches)]


def _psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR in dB of ``(B, C, H, W)`` images in ``[0, 1]``; ``pred`` is clipped."""
    mse = (pred.clamp(0, 1) - target).square().flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


@torch.no_grad()
def evaluate_bcm(
    bcm: BatchCorrelationModule,
    *,
    baseline: BatchCorrelationModule | None = None,
    batches: Sequence[Tensor] | None = None,
    photos: Sequence[str] | None = None,
    num_batches: int = 16,
    batch_size: int = 4,
    crop_size: int | None = None,
    seed: int = 2023,
    phase_mode: str = "paper",
) -> dict[str, Any]:
    """Measures a BCM on held-out crops: reconstruction PSNR and the stage-2 pretext losses.

    By default the crops come from the held-out test photos of
    :func:`erl_losses.data.photos.split_photos` (never seen by a shipped BCM): ``num_batches``
    seeded batches of ``batch_size`` crops of ``crop_size`` (default: the BCM's ``work_size``).

    Args:
        bcm: the BCM to measure.
        baseline: the same BCM with a random ``t_e`` (default: :func:`random_relation` of
            ``bcm`` with seed 0, keeping its trained ``W``).
        batches: explicit ``(B, 3, H, W)`` batches in ``[0, 1]`` instead of held-out photos.
        photos: photo names to crop instead of the held-out split.
        num_batches, batch_size, crop_size, seed: the held-out crops.
        phase_mode: the phase-loss mode (eq. 3 is ``"paper"``).

    Returns:
        A JSON-compatible dict: ``recon_psnr_db`` (the encoder/decoder's reconstruction,
        ``reconstruct(x, relation=False)`` vs ``x``: mean of per-crop PSNR in dB; with the default
        ``stage2_fuse="relation"`` this is exactly the stage-1 auto-encoder),
        ``recon_psnr_db_relation`` (``reconstruct(x, relation=True)``: the reconstruction through
        the batch relation, which the phase pretext deliberately does not hold to the input's
        amplitude, i.e. its exposure), ``phase_loss`` and ``phase_loss_random_te`` (eq. 3 in
        radians, for ``bcm`` and ``baseline``), ``l1`` and ``l1_random_te`` (pixel L1 of the
        relation reconstruction), ``phase_loss_reduction`` (relative reduction vs the random
        ``t_e``), and a description of the crops.
    """
    if phase_mode not in PHASE_MODES:
        raise ValueError(f"Expected `phase_mode` in {list(PHASE_MODES)}, got {phase_mode!r}")
    crop = crop_size or bcm.work_size or 128
    if batches is None:
        batches = _held_out_batches(num_batches, batch_size, crop, seed, photos)
        from erl_losses.data.photos import split_photos

        data = {
            "photos": list(split_photos()[1] if photos is None else photos),
            "num_batches": num_batches,
            "batch_size": batch_size,
            "crop_size": crop,
            "seed": seed,
        }
    else:
        data = {"num_batches": len(batches), "shapes": [list(b.shape) for b in batches[:1]]}
    if baseline is None:
        baseline = random_relation(bcm, seed=0)
    was_training = bcm.training, baseline.training
    bcm.eval()
    baseline.eval()
    device = bcm.fuse.weight.device
    sums: dict[str, list[float]] = {
        k: [] for k in ("psnr", "psnr_ae", "phase", "phase_rand", "l1", "l1_rand")
    }
    for batch in batches:
        x = batch.to(device)
        rec = bcm.reconstruct(x, relation=True)
        rec_ae = bcm.reconstruct(x, relation=False)
        rec_rand = baseline.reconstruct(x, relation=True)
        sums["psnr"] += _psnr(rec, x).tolist()
        sums["psnr_ae"] += _psnr(rec_ae, x).tolist()
        sums["phase"].append(float(phase_loss(rec, x, mode=phase_mode)))
        sums["phase_rand"].append(float(phase_loss(rec_rand, x, mode=phase_mode)))
        sums["l1"].append(float((rec - x).abs().mean()))
        sums["l1_rand"].append(float((rec_rand - x).abs().mean()))
    bcm.train(was_training[0])
    baseline.train(was_training[1])

    def mean(key: str) -> float:
        return round(sum(sums[key]) / len(sums[key]), 4)

    phase, phase_rand = mean("phase"), mean("phase_rand")
    return {
        "recon_psnr_db": mean("psnr_ae"),
        "recon_psnr_db_relation": mean("psnr"),
        "phase_loss": phase,
        "phase_loss_random_te": phase_rand,
        "phase_loss_reduction": round(1 - phase / phase_rand, 4) if phase_rand > 0 else 0.0,
        "l1": mean("l1"),
        "l1_random_te": mean("l1_rand"),
        "phase_mode": phase_mode,
        "held_out": data,
    }


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
@dataclass
class PretrainResult:
    """What :func:`pretrain_bcm` wrote and measured.

    Attributes:
        bcm: the trained module (eval mode).
        weights: the zoo-format safetensors file.
        manifest_entry: the JSON file with a ready :mod:`erl_losses.zoo` manifest entry.
        card: the model-card draft (markdown).
        log: the CSV log of both stages (stage, step, global_step, loss, lr, seconds).
        metrics: :func:`evaluate_bcm` output (empty if evaluation was skipped).
        seconds: wall time of this call's training (excluding earlier, resumed sessions).
    """

    bcm: BatchCorrelationModule
    weights: Path
    manifest_entry: Path
    card: Path
    log: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    total_seconds: float = 0.0


def _stage_loss(
    bcm: BatchCorrelationModule, x: Tensor, stage: int, recipe: PretextRecipe
) -> Tensor:
    if stage == 1:
        return (bcm.reconstruct(x, relation=False) - x).abs().mean()
    rec = bcm.reconstruct(x, relation=True)
    if recipe.pretext == "phase":
        return phase_loss(rec, x, mode=recipe.phase_mode)
    return (rec - x).abs().mean()


def _set_stage(
    bcm: BatchCorrelationModule, stage: int, recipe: PretextRecipe
) -> list[torch.nn.Parameter]:
    """Sets ``requires_grad`` for ``stage`` and returns the parameters it trains."""
    bcm.requires_grad_(False)
    params = bcm.encoder_decoder_parameters() if stage == 1 else bcm.relation_parameters()
    if stage == 2 and recipe.stage2_fuse == "relation" and bcm.fuse.bias is not None:
        params = [p for p in params if p is not bcm.fuse.bias]
    for p in params:
        p.requires_grad_(True)
    return params


def _mask_fuse_grad(bcm: BatchCorrelationModule, stage: int, recipe: PretextRecipe) -> None:
    """Zeroes the gradient of ``W``'s ``F``-reading half in stage 2 (``stage2_fuse="relation"``).

    Adam (no weight decay) turns an always-zero gradient into an exactly zero update, so those
    weights keep their stage-1 values bit for bit.
    """
    if stage == 2 and recipe.stage2_fuse == "relation" and bcm.fuse.weight.grad is not None:
        feat = bcm.fuse.weight.shape[1] // 2  # cat([F, F']): the first half reads F
        bcm.fuse.weight.grad[:, :feat] = 0


def _make_optimizer(
    params: list[torch.nn.Parameter], lr: float, recipe: PretextRecipe
) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=recipe.betas)


def _iter_steps(start: int, stop: int, desc: str, progress: bool) -> Iterator[int]:
    from tqdm.auto import tqdm

    return iter(
        tqdm(
            range(start, stop),
            initial=start,
            total=stop,
            desc=desc,
            disable=not progress or stop <= start,
            dynamic_ncols=True,
            leave=True,
        )
    )


def default_name(recipe: PretextRecipe) -> str:
    """``bcm-<pretext>`` (e.g. ``bcm-phase``), the default output name."""
    return f"bcm-{recipe.pretext}"


def pretrain_bcm(
    recipe: PretextRecipe,
    out_dir: str | os.PathLike[str],
    *,
    images: str | os.PathLike[str] | Any | None = None,
    max_side: int | None = None,
    bcm_config: dict[str, Any] | None = None,
    stage1_from: str | os.PathLike[str] | None = None,
    resume: bool = False,
    checkpoint_every: int = 200,
    log_every: int = 10,
    name: str | None = None,
    version: str = "1",
    license: str = "MIT",
    urls: Sequence[str] = (),
    evaluate: bool = True,
    eval_batches: int = 16,
    command: str | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
    callback: Callable[[int, int, float], None] | None = None,
) -> PretrainResult:
    """Runs the two-stage pretext training of a BCM and writes a zoo-ready weights file.

    Files written in ``out_dir``: ``checkpoint.safetensors`` (every ``checkpoint_every`` steps
    and at each stage end; model, Adam moments and crop-generator state, no pickle),
    ``stage1.safetensors`` (the auto-encoder with the seeded random ``t_e``: the ``"none"``
    variant), ``log.csv``, ``<name>-v<version>.safetensors`` (final weights; config, recipe, data provenance
    and metrics in the metadata), ``<name>.manifest.json`` (a manifest entry for
    :mod:`erl_losses.zoo`) and ``<name>.md`` (model-card draft).

    Args:
        recipe: the training recipe.
        out_dir: output folder (created).
        images: ``None`` for random crops of the bundled pretext-train photos, a folder of
            normal-exposure images (e.g. MSEC's ``GT_IMAGES``), or an image source object (see
            :class:`RandomCrops`).
        max_side: area-downscale images whose longer side exceeds this many pixels.
        bcm_config: :class:`~erl_losses.BatchCorrelationModule` arguments (default: its defaults).
        stage1_from: a BCM safetensors file (e.g. another run's ``stage1.safetensors``) whose
            ``f_e``, ``W`` and ``f_d`` replace stage 1; ``recipe.stage1_steps`` must then be 0.
            Its config must equal ``bcm_config``.
        resume: continue from ``out_dir/checkpoint.safetensors`` (the recipe must match).
        checkpoint_every: steps between checkpoints.
        log_every: steps between CSV log rows (loss averaged over the interval).
        name, version, license, urls: the zoo entry (``name`` defaults to ``bcm-<pretext>``).
        evaluate: run :func:`evaluate_bcm` on held-out photo crops at the end.
        eval_batches: held-out batches for the evaluation.
        command: the command line to record in the card (default: a Python call).
        progress: draw tqdm progress bars.
        device: where to train.
        callback: called as ``callback(global_step, stage, loss)`` after each step (tests).

    Returns:
        A :class:`PretrainResult`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or default_name(recipe)
    device = torch.device(device)
    checkpoint_path = out / "checkpoint.safetensors"
    log_path = out / "log.csv"
    if checkpoint_every < 1 or log_every < 1:
        raise ValueError(
            f"Expected `checkpoint_every` and `log_every` >= 1, got {checkpoint_every}, {log_every}"
        )
    if stage1_from is not None and recipe.stage1_steps:
        raise ValueError(
            "Expected `stage1_steps=0` with `stage1_from` (stage 1 comes from the file), got "
            f"{recipe.stage1_steps}"
        )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        bcm = BatchCorrelationModule(**(bcm_config or {}))
    config = bcm.config
    stage1_source: dict[str, Any] | None = None
    if stage1_from is not None:
        source = load_bcm(stage1_from)
        if source.config != config:
            raise ValueError(
                f"Expected `stage1_from` with the BCM config {config}, got {source.config}"
            )
        own_te = bcm.t_e.state_dict()
        bcm.load_state_dict(source.state_dict())
        bcm.t_e.load_state_dict(own_te)  # stage 2 starts from this recipe's seeded t_e
        stage1_source = {
            "file": Path(stage1_from).name,
            "sha256": file_sha256(Path(stage1_from)),
            "recipe": json.loads(read_metadata(stage1_from).get("recipe", "null")),
        }
    bcm.to(device)

    if images is None:
        source_images: Any = PhotoImages(max_side=max_side)
    elif isinstance(images, (str, os.PathLike)):
        source_images = FolderImages(images, max_side=max_side)
    else:
        source_images = images
    crops = RandomCrops(source_images, seed=recipe.seed + 1, flip=recipe.flip)
    crop1, crop2 = recipe.crop_sizes(bcm)
    provenance = (
        source_images.provenance() if hasattr(source_images, "provenance") else {"kind": "custom"}
    )
    steps = (recipe.stage1_steps, recipe.effective_stage2_steps)
    total = sum(steps)

    global_step, elapsed_before = 0, 0.0
    optim_state: dict[str, Any] | None = None
    if resume:
        if not checkpoint_path.is_file():
            raise FileNotFoundError(
                f"Expected a checkpoint to resume from at {str(checkpoint_path)!r}, got none"
            )
        tensors, state, optim_meta = _load_checkpoint(checkpoint_path)
        saved = PretextRecipe.from_dict(state["recipe"])
        if saved != recipe or state["config"] != config:
            diff = sorted(k for k, v in recipe.to_dict().items() if saved.to_dict().get(k) != v)
            raise ValueError(
                "Expected the same recipe and BCM config as the checkpoint to resume, got "
                f"differences in {diff or ['config']}"
            )
        bcm.load_state_dict(
            {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")},
            strict=True,
        )
        crops.set_state(tensors["rng.crops"])
        global_step = int(state["global_step"])
        elapsed_before = float(state["seconds"])
        if optim_meta is not None:
            optim_state = _optimizer_state(tensors, optim_meta)
        _truncate_log(log_path, global_step)
    else:  # a fresh run: drop what an earlier run left in `out_dir`
        for stale in (log_path, checkpoint_path, out / "stage1.safetensors"):
            stale.unlink(missing_ok=True)

    def state_dict(step: int, seconds: float) -> dict[str, Any]:
        return {
            "recipe": recipe.to_dict(),
            "config": config,
            "global_step": step,
            "seconds": seconds,
        }

    stage1_path = out / "stage1.safetensors"
    if global_step == steps[0] and not stage1_path.exists():
        # stage 1 comes from `stage1_from`, or a resumed run stopped right after stage 1
        _save_stage1(bcm, out, recipe, config, provenance, stage1_source)
    started = time.perf_counter()
    log_file = log_path.open("a", newline="")
    writer = csv.writer(log_file)
    if log_path.stat().st_size == 0:
        writer.writerow(_LOG_FIELDS)
    try:
        for stage in (1, 2):
            first = sum(steps[: stage - 1])
            last = first + steps[stage - 1]
            if global_step >= last or steps[stage - 1] == 0:
                continue
            params = _set_stage(bcm, stage, recipe)
            peak = recipe.stage1_lr if stage == 1 else recipe.stage2_lr
            optimizer = _make_optimizer(params, peak, recipe)
            if optim_state is not None and global_step > first:
                optimizer.load_state_dict(optim_state)
            optim_state = None
            bcm.train()
            crop = crop1 if stage == 1 else crop2
            batch = recipe.stage1_batch_size if stage == 1 else recipe.batch_size
            window: list[float] = []
            desc = f"stage {stage}/2 " + ("auto-encoder" if stage == 1 else recipe.pretext)
            for step in _iter_steps(global_step, last, desc, progress):
                local = step - first
                lr = _lr_at(local, steps[stage - 1], peak, recipe)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x = crops.sample(batch, crop).to(device)
                loss = _stage_loss(bcm, x, stage, recipe)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"Expected a finite stage-{stage} loss, got {float(loss)} at step {local}"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                _mask_fuse_grad(bcm, stage, recipe)
                optimizer.step()
                global_step = step + 1
                window.append(float(loss.detach()))
                if callback is not None:
                    callback(global_step, stage, window[-1])
                seconds = elapsed_before + time.perf_counter() - started
                if len(window) == log_every or global_step == last:
                    writer.writerow(
                        (stage, local + 1, global_step, f"{sum(window) / len(window):.6f}",
                         f"{lr:.3e}", f"{seconds:.1f}")
                    )  # fmt: skip
                    log_file.flush()
                    window = []
                if global_step % checkpoint_every == 0 or global_step == last:
                    _save_checkpoint(
                        checkpoint_path, bcm, optimizer, crops, state_dict(global_step, seconds)
                    )
            if stage == 1:
                _save_stage1(bcm, out, recipe, config, provenance)
    finally:
        log_file.close()

    seconds = time.perf_counter() - started
    total_seconds = elapsed_before + seconds
    if total == 0 or not checkpoint_path.exists():
        _save_checkpoint(checkpoint_path, bcm, None, crops, state_dict(global_step, total_seconds))
    bcm.requires_grad_(False).eval()

    metrics: dict[str, Any] = {}
    if evaluate:
        if stage1_path.exists():
            baseline = load_weights(stage1_path).to(device)
            baseline_text = "stage-1 weights with the recipe's seeded random t_e"
        else:  # resumed mid-stage-2 without the stage-1 file: keep the trained W
            baseline = random_relation(bcm, seed=recipe.seed)
            baseline_text = "this BCM with the recipe's seeded random t_e"
        metrics = evaluate_bcm(
            bcm, baseline=baseline, num_batches=eval_batches, batch_size=recipe.batch_size,
            crop_size=crop2, phase_mode=recipe.phase_mode,
        )  # fmt: skip
        metrics["baseline"] = baseline_text
    machine = _machine()
    training = {
        "seconds": round(total_seconds, 1),
        "machine": machine,
        "command": command or f"erl_losses.pretext.pretrain_bcm({recipe!r})",
        "torch": torch.__version__,
        "erl_losses": __version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    if stage1_source is not None:
        training["stage1_from"] = stage1_source
    weights = save_weights(
        bcm.cpu(),
        out / f"{name}-v{version}.safetensors",
        name=name,
        version=version,
        recipe=recipe.to_dict(),
        data=provenance,
        metrics=metrics,
        training=training,
    )
    bcm.to(device)
    entry = {
        "name": name,
        "version": version,
        "file": weights.name,
        "sha256": file_sha256(weights),
        "size": weights.stat().st_size,
        "urls": list(urls),
        "license": license,
        "description": f"BCM pretrained with the {recipe.pretext!r} pretext "
        f"({'paper eq. 3' if recipe.pretext == 'phase' else 'table-2 ablation'})",
        "config": config,
        "recipe": recipe.to_dict(),
        "data": provenance,
        "metrics": metrics,
        "training": training,
        "card": f"cards/{name}.md",
    }
    entry_path = out / f"{name}.manifest.json"
    entry_path.write_text(json.dumps(entry, indent=2, sort_keys=False) + "\n")
    card_path = out / f"{name}.md"
    card_path.write_text(model_card(entry))
    return PretrainResult(
        bcm=bcm.eval(),
        weights=weights,
        manifest_entry=entry_path,
        card=card_path,
        log=log_path,
        metrics=metrics,
        seconds=seconds,
        total_seconds=total_seconds,
    )


def _save_stage1(
    bcm: BatchCorrelationModule,
    out: Path,
    recipe: PretextRecipe,
    config: dict[str, Any],
    provenance: dict[str, Any],
    stage1_source: dict[str, Any] | None = None,
) -> None:
    """Stage-1 weights with the seeded random ``t_e`` (= the ``"none"`` variant)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        fresh = BatchCorrelationModule(**config)
    snapshot = copy.deepcopy(bcm).cpu()
    snapshot.t_e.load_state_dict(fresh.t_e.state_dict())
    extra = {"stage1_from": stage1_source} if stage1_source else {}
    save_weights(
        snapshot,
        out / "stage1.safetensors",
        name="stage1",
        version="0",
        recipe={**recipe.to_dict(), "pretext": "none"},
        data=provenance,
        **extra,
    )


def _truncate_log(log_path: Path, global_step: int) -> None:
    """Drops log rows written after the checkpoint being resumed."""
    if not log_path.exists():
        return
    with log_path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    kept = [rows[0]] + [r for r in rows[1:] if int(r[2]) <= global_step] if rows else []
    with log_path.open("w", newline="") as handle:
        csv.writer(handle).writerows(kept)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{cpu}, {os.cpu_count()} cores visible, torch threads={threads}, {platform.system()}"


def _stage1_text(r: dict[str, Any], source: dict[str, Any] | None) -> str:
    if source is not None:
        s1 = source.get("recipe") or {}
        text = f"taken from `{source['file']}` (sha256 {source['sha256'][:12]}...)"
        if s1.get("stage1_steps"):
            text += (
                f", trained for {s1['stage1_steps']} steps, batch {s1['stage1_batch_size']}, "
                f"{s1.get('stage1_crop_size') or s1.get('crop_size') or 'work_size'} px crops, "
                f"peak lr {s1['stage1_lr']}, seed {s1['seed']}"
            )
        return text
    crop = r["stage1_crop_size"] or r["crop_size"] or "work_size"
    return (
        f"{r['stage1_steps']} steps, batch {r['stage1_batch_size']}, {crop} px crops, peak lr "
        f"{r['stage1_lr']}"
    )


def _stage2_text(r: dict[str, Any]) -> str:
    if r["pretext"] == "none":
        return "skipped: `t_e` keeps its seeded random initialisation"
    fuse = (
        "`t_e` and the F'-reading half of `W`"
        if r.get("stage2_fuse", "all") == "relation"
        else "`t_e` and `W`"
    )
    loss = f"phase loss eq. 3 ({r['phase_mode']})" if r["pretext"] == "phase" else "pixel L1"
    return (
        f"{r['stage2_steps']} steps of {loss}, batch {r['batch_size']}, "
        f"{r['crop_size'] or 'work_size'} px crops, peak lr {r['stage2_lr']}; trains {fuse}, "
        "`f_e`/`f_d` frozen"
    )


def model_card(entry: dict[str, Any]) -> str:
    """A markdown model card for a manifest entry (a draft: edit the prose before publishing)."""
    m = entry.get("metrics") or {}
    t = entry.get("training") or {}
    r = entry["recipe"]
    data = entry.get("data") or {}
    lines = [
        f"# {entry['name']} (version {entry['version']})",
        "",
        f"{entry.get('description', '')}.",
        "",
        "## Training data",
        "",
    ]
    if data.get("kind") == "bundled-photos":
        lines += [
            "Random crops of the natural photos that ship inside scikit-image, scikit-learn and "
            "matplotlib: the fixed pretext-train split of `erl_losses.data.photos` "
            f"({', '.join(data.get('photos', []))}). **Not MSEC and not SICE**: a handful of "
            "everyday photos, normal exposure. The held-out photos used below were never seen.",
        ]
    else:
        lines += [f"`{json.dumps(data, sort_keys=True)}`"]
    lines += [
        "",
        "## Recipe",
        "",
        f"- pretext: `{r['pretext']}`; seed {r['seed']}; Adam betas {r['betas']}.",
        f"- stage 1 (auto-encoder, L1): {_stage1_text(r, t.get('stage1_from'))}.",
        f"- stage 2 ({r['pretext']}): {_stage2_text(r)}.",
        f"- BCM config: `{json.dumps(entry['config'], sort_keys=True)}`",
        f"- command: `{t.get('command', '?')}`",
        f"- time: {t.get('seconds', '?')} s on {t.get('machine', '?')} "
        f"(torch {t.get('torch', '?')}, erl-losses {t.get('erl_losses', '?')}, {t.get('date', '?')})",
        "",
        "## Measured on held-out photo crops",
        "",
    ]
    if m:
        held = m.get("held_out", {})
        lines += [
            f"Crops: {held.get('num_batches')} batches x {held.get('batch_size')} crops of "
            f"{held.get('crop_size')} px from {', '.join(held.get('photos', []))} (seed "
            f"{held.get('seed')}). Baseline: {m.get('baseline', 'random t_e')}.",
            "",
            "| metric | this BCM | random t_e |",
            "|---|---|---|",
            f"| reconstruction PSNR, encoder/decoder (`relation=False`, dB) | {m['recon_psnr_db']} | |",
            f"| reconstruction PSNR through the relation (`relation=True`, dB) | "
            f"{m['recon_psnr_db_relation']} | |",
            f"| phase loss eq. 3 ({m['phase_mode']}, rad) | {m['phase_loss']} | "
            f"{m['phase_loss_random_te']} |",
            f"| pixel L1 of the relation reconstruction | {m['l1']} | {m['l1_random_te']} |",
        ]
    else:
        lines += ["Not evaluated."]
    lines += [
        "",
        "## Train one on MSEC or SICE ground truth",
        "",
        "```",
        "erl pretrain --pretext phase --images /data/MSEC/training/GT_IMAGES --max-side 512 \\",
        "    --out runs/bcm-phase-msec --name bcm-phase-msec --threads 8",
        "```",
        "",
        "(SICE: point `--images` at the folder of its ground-truth images.) Then load it with "
        "`SampleRelationLoss.from_pretrained('runs/bcm-phase-msec/bcm-phase-msec-v1.safetensors')`.",
        "",
        f"License: {entry.get('license', '?')}.",
        "",
    ]
    return "\n".join(lines)
