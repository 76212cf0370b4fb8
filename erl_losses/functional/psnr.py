"""Peak signal-to-noise ratio of image batches, for training-time reporting.

This is the one tensor PSNR of the package (pretext evaluation and demo curves use it). The
literature's protocol numbers (8-bit images, MAX = 255, maintained metric code) come from
:mod:`erl_losses.evaluation.metrics` instead.
"""

from __future__ import annotations

import torch
from torch import Tensor

from erl_losses._validation import check_image, check_pair

__all__ = ["psnr"]

# An exact match would give +inf; this floor caps the PSNR at 10 * log10(range^2 / 1e-12) dB.
_MSE_FLOOR = 1e-12


def psnr(pred: Tensor, target: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Per-image PSNR in dB: ``10 * log10(data_range^2 / MSE)``.

    Args:
        pred: ``(B, C, H, W)`` prediction, values in ``[0, data_range]``; clipped to that range
            first (as an image would be saved).
        target: ``(B, C, H, W)`` reference, same shape and device.
        data_range: the maximum pixel value (1.0 for images in [0, 1], 255 for 8-bit).

    Returns:
        ``(B,)`` float tensor of PSNRs; identical images give ``10 * log10(range^2 / 1e-12)``
        (120 dB for range 1) instead of infinity.
    """
    check_pair(check_image(pred, "pred"), check_image(target, "target"), "pred", "target")
    if not isinstance(data_range, (int, float)) or isinstance(data_range, bool):
        raise TypeError(f"Expected `data_range` to be a number, got {type(data_range).__name__}")
    if not data_range > 0:
        raise ValueError(f"Expected `data_range` > 0, got {data_range}")
    mse = (pred.clamp(0, data_range) - target).float().square().flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(_MSE_FLOOR))
