"""Distribution-level fidelity through torch-fidelity (extra ``fidelity``), offline.

* **BCM feature space** (always offline): :class:`BCMFeatureExtractor`, registered with
  torch-fidelity as ``"erl-bcm"``, embeds each image with the batch-correlation module's
  per-sample encoder tokens (:meth:`~erl_losses.BatchCorrelationModule.encode_tokens`, before the
  batch transformer). Relation features (``bcm(x)``) are not used: they depend on which other
  images share the batch, so they are not a function of one image. Two features are provided:
  ``"tokens"`` (``(B, C')``, 4096-D for the default BCM) and ``"tokens_pooled"`` (the token grid
  average-pooled to at most 4 x 4, 256-D by default), the default for the Frechet distance and KID
  because covariance estimates need far fewer samples in 256 dimensions.
* **Inception** FID/KID: torch-fidelity's ``inception-v3-compat`` when the caller passes a local
  weights file; nothing is downloaded, and the file is never unpickled
  (:func:`inception_weights_buffer`).

The BCM is, in order: a module passed as ``bcm``; the safetensors file
``feature_extractor_weights_path``; the zoo's default pretrained BCM; and, when the zoo has none,
a randomly initialised BCM (seed 0) with a warning (random-feature distances are comparable only
between runs of the same erl-losses version).

Images are read with Pillow and resized to ``size x size`` (bicubic) so they can be batched.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from erl_losses._extras import require
from erl_losses._validation import check_positive_int

torch_fidelity = require("torch_fidelity", "fidelity")
from torch_fidelity.feature_extractor_base import FeatureExtractorBase  # noqa: E402
from torch_fidelity.registry import (  # noqa: E402
    FEATURE_EXTRACTORS_REGISTRY,
    register_feature_extractor,
)

from erl_losses.data.io import image_to_uint8, read_image  # noqa: E402
from erl_losses.evaluation.inference import load_state_dict_file  # noqa: E402
from erl_losses.evaluation.protocol import pair_folders  # noqa: E402

__all__ = [
    "BCM_EXTRACTOR",
    "BCMFeatureExtractor",
    "ImageFolderUInt8",
    "fidelity_between_folders",
    "fidelity_between_paths",
    "inception_weights_buffer",
    "register",
]

#: Name of the BCM feature extractor in torch-fidelity's registry.
BCM_EXTRACTOR = "erl-bcm"


def _default_bcm() -> nn.Module:
    from erl_losses import BatchCorrelationModule

    try:
        return BatchCorrelationModule.from_pretrained()
    except Exception as err:  # the zoo may have no default yet, or no file on this machine
        warnings.warn(
            f"No pretrained BCM available ({err}); using a randomly initialised BCM (seed 0). "
            "Distances are comparable only between runs of the same erl-losses version.",
            stacklevel=3,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return BatchCorrelationModule()


def _load_bcm(weights_path: str | None) -> nn.Module:
    if weights_path is None:
        return _default_bcm()
    from erl_losses import BatchCorrelationModule

    if not Path(weights_path).is_file():
        raise FileNotFoundError(f"Expected a BCM weights file, got missing path {weights_path}")
    return BatchCorrelationModule.from_pretrained(weights_path)


class BCMFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity feature extractor in BCM token space.

    Args:
        name: registry name (``"erl-bcm"``).
        features_list: requested features among ``("tokens", "tokens_pooled")``.
        feature_extractor_weights_path: safetensors BCM weights; ``None`` for the default.
        feature_extractor_internal_dtype: ``'float32'`` (default) or ``'float64'``.
        erl_bcm: a ready :class:`~erl_losses.BatchCorrelationModule` (overrides the path).

    Shape:
        input ``(B, 3, H, W)`` ``uint8`` (torch-fidelity's convention), ``H, W >= 8``; outputs a
        tuple with one ``(B, D)`` float tensor per requested feature.
    """

    POOLED_GRID = 4

    def __init__(
        self,
        name: str,
        features_list: Sequence[str],
        feature_extractor_weights_path: str | None = None,
        feature_extractor_internal_dtype: str | None = None,
        erl_bcm: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, list(features_list))
        if feature_extractor_internal_dtype not in (None, "float32", "float64"):
            raise ValueError(
                "Expected feature_extractor_internal_dtype 'float32' or 'float64', got "
                f"{feature_extractor_internal_dtype!r}"
            )
        self.dtype = (
            torch.float64 if feature_extractor_internal_dtype == "float64" else torch.float32
        )
        bcm = erl_bcm if erl_bcm is not None else _load_bcm(feature_extractor_weights_path)
        self.bcm = bcm.to(self.dtype).eval().requires_grad_(False)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("tokens", "tokens_pooled")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "tokens_pooled"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> Tensor:
        return torch.zeros(1, 3, 64, 64, dtype=torch.uint8)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"Expected a (B, 3, H, W) uint8 batch, got {tuple(x.shape)} {x.dtype}")
        tokens = self.bcm.encode_tokens(x.to(self.dtype) / 255.0)
        out: dict[str, Tensor] = {"tokens": tokens}
        if "tokens_pooled" in self.features_list:
            grid = self.bcm.grid
            channels = tokens.shape[1] // (grid * grid)
            maps = tokens.reshape(tokens.shape[0], channels, grid, grid)
            pooled = F.adaptive_avg_pool2d(maps, min(grid, self.POOLED_GRID))
            out["tokens_pooled"] = pooled.flatten(1)
        return tuple(out[name] for name in self.features_list)


def register() -> None:
    """Registers :class:`BCMFeatureExtractor` as ``"erl-bcm"`` (idempotent)."""
    if BCM_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(BCM_EXTRACTOR, BCMFeatureExtractor)


class ImageFolderUInt8(Dataset):
    """Image files as ``(3, size, size)`` ``uint8`` tensors for torch-fidelity."""

    def __init__(self, paths: Sequence[str | Path], size: int = 128) -> None:
        if not paths:
            raise ValueError("Expected at least one image, got none")
        if check_positive_int(size, "size") < 8:
            raise ValueError(f"Expected `size` >= 8, got {size}")
        self.paths = [Path(p) for p in paths]
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor:
        from PIL import Image

        image = Image.fromarray(image_to_uint8(read_image(self.paths[index])))
        array = np.asarray(image.resize((self.size, self.size), Image.Resampling.BICUBIC))
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def inception_weights_buffer(path: str | Path) -> io.BytesIO:
    """Inception weights read without running any pickled code, as an in-memory file.

    torch-fidelity reads its ``feature_extractor_weights_path`` with
    ``torch.load(weights_only=False)``, which runs whatever code a pickle holds. So the user's file
    is read here with :func:`~erl_losses.evaluation.inference.load_state_dict_file` (safetensors,
    or ``torch.load(weights_only=True)``, which refuses anything but tensors and containers), and
    torch-fidelity gets a buffer this process wrote from those tensors alone.

    Raises:
        FileNotFoundError: missing file.
        ValueError: a file holding pickled objects other than tensors, or no state dict.
    """
    buffer = io.BytesIO()
    torch.save(load_state_dict_file(path), buffer)
    buffer.seek(0)
    return buffer


def _kid_subset(n1: int, n2: int) -> int:
    return max(2, min(1000, n1, n2))


def fidelity_between_paths(
    paths1: Sequence[str | Path],
    paths2: Sequence[str | Path],
    *,
    bcm: nn.Module | None = None,
    bcm_weights: str | Path | None = None,
    inception_weights: str | Path | None = None,
    size: int = 128,
    device: str = "cpu",
    batch_size: int = 32,
) -> dict[str, float]:
    """Frechet distance and KID between two image sets, in BCM space and optionally Inception's.

    Args:
        paths1, paths2: image files (at least 2 each).
        bcm: BCM module to embed with (default: ``bcm_weights`` or the zoo default, see module doc).
        bcm_weights: safetensors BCM file.
        inception_weights: local torch-fidelity ``inception-v3-compat`` weights (safetensors, or
            a state dict readable with ``torch.load(weights_only=True)``; see
            :func:`inception_weights_buffer`); adds
            ``inception_fid`` and ``inception_kid_*``. ``None`` skips Inception (no download).
        size: images are resized to ``size x size`` for the BCM.
        device: ``'cpu'`` or a CUDA device.

    Returns:
        ``{'bcm_frechet_distance', 'bcm_kid_mean', 'bcm_kid_std'}`` plus the Inception keys.
    """
    if len(paths1) < 2 or len(paths2) < 2:
        raise ValueError(
            f"Expected at least 2 images per set for Frechet distance / KID, got {len(paths1)} "
            f"and {len(paths2)}"
        )
    if inception_weights is not None and not Path(inception_weights).is_file():
        raise FileNotFoundError(
            f"Expected a local Inception weights file, got missing path {inception_weights} "
            "(torch-fidelity's inception-v3-compat weights; nothing is downloaded)"
        )
    check_positive_int(batch_size, "batch_size")
    # Read (and vet) the Inception file before minutes of BCM feature extraction.
    inception = None if inception_weights is None else inception_weights_buffer(inception_weights)
    register()
    cuda = str(device).startswith("cuda")
    common: dict[str, Any] = {
        "cuda": cuda,
        "batch_size": batch_size,
        "fid": True,
        "kid": True,
        "kid_subset_size": _kid_subset(len(paths1), len(paths2)),
        "cache": False,
        "save_cpu_ram": True,
        "verbose": False,
        "datasets_download": False,
    }
    metrics = torch_fidelity.calculate_metrics(
        input1=ImageFolderUInt8(paths1, size),
        input2=ImageFolderUInt8(paths2, size),
        feature_extractor=BCM_EXTRACTOR,
        feature_extractor_weights_path=None if bcm_weights is None else str(bcm_weights),
        erl_bcm=bcm,
        **common,
    )
    out = _named(metrics, "bcm_frechet_distance", "bcm_kid")
    if inception is not None:
        metrics = torch_fidelity.calculate_metrics(
            input1=ImageFolderUInt8(paths1, 299),
            input2=ImageFolderUInt8(paths2, 299),
            feature_extractor="inception-v3-compat",
            feature_extractor_weights_path=inception,
            **common,
        )
        out.update(_named(metrics, "inception_fid", "inception_kid"))
    return out


def _named(metrics: dict[str, Any], fid: str, kid: str) -> dict[str, float]:
    return {
        fid: float(metrics["frechet_inception_distance"]),
        f"{kid}_mean": float(metrics["kernel_inception_distance_mean"]),
        f"{kid}_std": float(metrics["kernel_inception_distance_std"]),
    }


def fidelity_between_folders(
    pred_dir: str | Path,
    gt_dir: str | Path,
    *,
    protocol: str = "msec",
    strict: bool = False,
    **kwargs: Any,
) -> dict[str, float]:
    """:func:`fidelity_between_paths` between every prediction in ``pred_dir`` and the GT images
    they pair with (each GT image once), paired as in
    :func:`~erl_losses.evaluation.evaluate_folders`; ``kwargs`` go to
    :func:`fidelity_between_paths`."""
    pairs = pair_folders(pred_dir, gt_dir, protocol, strict=strict)  # type: ignore[arg-type]
    preds = [pred for pred, _, _, _ in pairs]
    gts = sorted({gt for _, gt, _, _ in pairs})
    return fidelity_between_paths(preds, gts, **kwargs)
