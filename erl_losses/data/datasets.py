"""Paired exposure datasets for the real MSEC and SICE layouts (and the synthetic renders).

No torchvision: images are read with Pillow, converted with numpy and returned as torch tensors.

Every item is a dict::

    {"lq": (3, H, W) float32 in [0, 1],   # the mis-exposed input
     "gt": (3, H, W) float32 in [0, 1],   # the reference
     "level": str,                        # 'N1.5' ... 'P1.5' (MSEC) or 'low' | 'over' (SICE)
     "group": 'under' | 'over',           # the paper's groups
     "lq_path": str, "gt_path": str}

Training mode (``crop`` set and/or ``augment=True``) takes a random square crop at the same place
in input and GT and applies horizontal flip, vertical flip and a 180 degree rotation, each with
p = 0.5, as the Huang et al. repos do. Random draws use torch's generator, so DataLoader workers
are seeded by PyTorch. Unlike those repos, images are not stretched to a multiple of 4: the nets in
:mod:`erl_losses.archs` pad internally. ``groups`` lists each item's group for
:class:`~erl_losses.data.sampler.MixedExposureBatchSampler`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from erl_losses._validation import check_positive_int
from erl_losses.data.io import (
    IMAGE_EXTENSIONS,
    image_to_float,
    list_images,
    read_image,
)
from erl_losses.data.layouts import DatasetLayout, dataset_pairs
from erl_losses.data.levels import MSEC_LEVELS, SICE_LEVELS, group_of

__all__ = ["IMAGE_EXTENSIONS", "MSECDataset", "SICEDataset", "list_images", "read_image"]


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 or float image -> ``(3, H, W)`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image_to_float(array).transpose(2, 0, 1)))


class _PairedExposureDataset(Dataset):
    """Shared loading, cropping and augmentation of ``(lq_path, gt_path, level)`` pairs."""

    def __init__(self, layout: DatasetLayout, crop: int | None, augment: bool) -> None:
        if crop is not None:
            check_positive_int(crop, "crop")
        self.root = layout.base
        self.input_dir = layout.input_dir
        self.gt_dir = layout.gt_dir
        #: ``(input_path, gt_path, level)`` of every item, in index order.
        self.pairs: list[tuple[Path, Path, str]] = [(p.input, p.gt, p.level) for p in layout.pairs]
        self.crop = crop
        self.augment = bool(augment)

    @property
    def groups(self) -> list[str]:
        """The paper's group (``'under'`` | ``'over'``) of every item, in index order."""
        return [group_of(level) for _, _, level in self.pairs]

    @property
    def levels(self) -> list[str]:
        """The exposure level of every item, in index order."""
        return [level for _, _, level in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        lq_path, gt_path, level = self.pairs[index]
        lq = _to_tensor(read_image(lq_path))
        gt = _to_tensor(read_image(gt_path))
        if lq.shape != gt.shape:
            raise ValueError(
                f"Expected input {lq_path} and GT {gt_path} to have the same size, got "
                f"{tuple(lq.shape[1:])} and {tuple(gt.shape[1:])}"
            )
        if self.crop is not None:
            h, w = lq.shape[1:]
            if self.crop > min(h, w):
                raise ValueError(
                    f"Expected crop <= image size {h}x{w} of {lq_path}, got crop={self.crop}"
                )
            top = int(torch.randint(0, h - self.crop + 1, ()))
            left = int(torch.randint(0, w - self.crop + 1, ()))
            lq = lq[:, top : top + self.crop, left : left + self.crop]
            gt = gt[:, top : top + self.crop, left : left + self.crop]
        if self.augment:
            flips = torch.rand(3) < 0.5
            for do, dims in zip(flips.tolist(), ((2,), (1,), (1, 2)), strict=True):
                if do:
                    lq, gt = lq.flip(dims), gt.flip(dims)
        return {
            "lq": lq.contiguous(),
            "gt": gt.contiguous(),
            "level": level,
            "group": group_of(level),
            "lq_path": str(lq_path),
            "gt_path": str(gt_path),
        }


class MSECDataset(_PairedExposureDataset):
    """MSEC (Afifi et al., CVPR 2021) layout, also written by :func:`~erl_losses.data.render_dataset`
    (the rules live in :mod:`erl_losses.data.layouts`).

    ``<root>/<split>/INPUT_IMAGES/<scene>_<level>.<ext>`` paired with
    ``<root>/<split>/GT_IMAGES/<scene>.<ext>``; ``<level>`` in ``N1.5, N1, 0, P1, P1.5`` and the
    scene is the name up to the last underscore (MSEC's ``gtRead.m``). Extensions are matched
    case-insensitively (MSEC uses ``.JPG`` inputs and ``.jpg`` GT). The split folder may be named
    ``train|training``, ``valid|validation|val`` or ``test|testing``. For the test split, when
    ``GT_IMAGES`` is absent, the GT is ``expert_<expert>_testing_set`` (expert C by convention).

    Args:
        root: dataset root (holding the split folders), or the split folder itself with
            ``split=None``.
        split: ``'train'``, ``'valid'``, ``'test'`` or ``None``.
        crop: random square crop side for training, or ``None`` for full images.
        augment: random flips / 180 degree rotation.
        levels: keep only these levels (default: all five).
        expert: which expert's GT folder to use when ``GT_IMAGES`` is absent (``'a'`` ... ``'e'``).

    Raises:
        FileNotFoundError: missing folders.
        ValueError: inputs without a GT image (all listed), unrecognised input names, no pairs.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        *,
        crop: int | None = None,
        augment: bool = False,
        levels: Sequence[str] = MSEC_LEVELS,
        expert: str = "c",
    ) -> None:
        if not isinstance(expert, str) or len(expert) != 1 or expert not in "abcde":
            raise ValueError(f"Expected expert to be one of 'a'..'e', got {expert!r}")
        layout = dataset_pairs(root, "msec", split, levels=levels, expert=expert)
        super().__init__(layout, crop, augment)


class SICEDataset(_PairedExposureDataset):
    """SICE as re-packaged for ENC / FECNet / ECLNet ("SICEV2").

    ``<root>/<split>/{low,over}/<id>.<ext>`` paired with ``<root>/<split>/mid/<id>.<ext>``: the
    ``mid`` folder is the GT; ``low`` is the under-exposed and ``over`` the over-exposed group.
    ``root`` may be the ``SICEV2`` folder or its parent.

    Args:
        root: the ``SICEV2`` folder (or a folder containing it).
        split: ``'train'`` or ``'test'`` (or ``None`` when ``root`` is the split folder).
        crop, augment: as :class:`MSECDataset`.
        levels: which input folders to use (default both ``low`` and ``over``).

    Raises:
        FileNotFoundError: missing folders.
        ValueError: inputs without a ``mid`` image (all listed), or no pairs.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        *,
        crop: int | None = None,
        augment: bool = False,
        levels: Sequence[str] = SICE_LEVELS,
    ) -> None:
        super().__init__(dataset_pairs(root, "sice", split, levels=levels), crop, augment)
