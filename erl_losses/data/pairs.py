"""An in-memory copy of a rendered split, cropped on the training device (``erl demo``, benchmarks).

A :class:`PairBank` holds every input/GT pair of one MSEC-layout split as ``uint8`` tensors, so a
small net trains without a ``DataLoader``: seeded random crops and flips are cut on the device the
bank lives on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["PairBank"]


@dataclass
class PairBank:
    """All input/GT pairs of one split as ``uint8`` tensors, for fast, seeded batches.

    Attributes:
        lq, gt: ``(N, 3, H, W)`` ``uint8`` on one device (values 0..255).
        levels, groups, names: per sample (exposure level, ``"under"``/``"over"``/``"normal"``,
            input file stem).
    """

    lq: Tensor
    gt: Tensor
    levels: list[str]
    groups: list[str]
    names: list[str]

    @classmethod
    def from_msec(
        cls, root: str | Path, split: str, device: torch.device | str = "cpu"
    ) -> PairBank:
        """Reads a split written by :func:`~erl_losses.data.render_dataset` (all images one size).

        Raises:
            ValueError: images of different sizes.
        """
        from erl_losses.data import MSECDataset, read_image

        dataset = MSECDataset(root, split=split)
        lq = [read_image(lq_path) for lq_path, _, _ in dataset.pairs]
        gt = [read_image(gt_path) for _, gt_path, _ in dataset.pairs]
        shapes = sorted({a.shape for a in lq + gt})
        if len(shapes) != 1:
            raise ValueError(f"Expected images of one size in {dataset.root}, got {shapes}")

        def stack(arrays: list[np.ndarray]) -> Tensor:
            return torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy()).to(device)

        return cls(
            lq=stack(lq),
            gt=stack(gt),
            levels=dataset.levels,
            groups=dataset.groups,
            names=[Path(p).stem for p, _, _ in dataset.pairs],
        )

    def __len__(self) -> int:
        return len(self.levels)

    @property
    def device(self) -> torch.device:
        return self.lq.device

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of every image."""
        height, width = self.lq.shape[-2:]
        return int(height), int(width)

    def batch(
        self, indices: Sequence[int], crop: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Float ``(B, 3, crop, crop)`` input and GT in [0, 1]: a random crop per sample, the same
        place in both, then random horizontal / vertical flips (``generator`` lives on the CPU)."""
        height, width = self.image_size
        count = len(indices)
        tops = torch.randint(0, height - crop + 1, (count,), generator=generator).tolist()
        lefts = torch.randint(0, width - crop + 1, (count,), generator=generator).tolist()
        flips = (torch.rand(count, 2, generator=generator) < 0.5).tolist()
        lq, gt = [], []
        for i, top, left, (flip_h, flip_v) in zip(indices, tops, lefts, flips, strict=True):
            pair = torch.stack([self.lq[i], self.gt[i]])[..., top : top + crop, left : left + crop]
            dims = [3] * flip_h + [2] * flip_v
            if dims:
                pair = pair.flip(dims)
            lq.append(pair[0])
            gt.append(pair[1])
        return torch.stack(lq).float().div_(255.0), torch.stack(gt).float().div_(255.0)

    def center_crops(self, crop: int) -> tuple[Tensor, Tensor]:
        """Float ``(N, 3, crop, crop)`` center crops of every sample in [0, 1] (a curve set)."""
        height, width = self.image_size
        top, left = (height - crop) // 2, (width - crop) // 2
        window = (..., slice(top, top + crop), slice(left, left + crop))
        return self.lq[window].float().div(255.0), self.gt[window].float().div(255.0)

    def mixed_indices(self, size: int) -> list[int]:
        """``size`` indices alternating under / over exposure, evenly spread over the bank (so
        that several scenes and levels appear); for showing a mixed batch, e.g. its attention."""
        pools = [
            [i for i, g in enumerate(self.groups) if g == "under"],
            [i for i, g in enumerate(self.groups) if g == "over"],
        ]
        counts = [size - size // 2, size // 2]  # even positions (under) get the odd one
        if any(n > len(pool) for pool, n in zip(pools, counts, strict=True)):
            raise ValueError(
                f"Expected `size` <= twice the smaller of the under/over groups "
                f"({len(pools[0])}, {len(pools[1])}), got {size}"
            )
        picks = [
            [pool[k * len(pool) // n] for k in range(n)]
            for pool, n in zip(pools, counts, strict=True)
        ]
        return [picks[k % 2][k // 2] for k in range(size)]
