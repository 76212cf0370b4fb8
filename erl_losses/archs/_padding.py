"""Pad an image batch to a size a network can process, and crop the result back.

Padding goes to the bottom and right edges only, so cropping back is a plain slice
``[..., :H, :W]`` and the top-left pixel grid is unchanged. Reflect padding is the default
because it continues local image statistics (replicate smears one border row). Reflect cannot
pad by as much as the input's own size (a 1-pixel-high image has nothing to mirror), so such
cases fall back to replicate padding.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

PadMode = Literal["reflect", "replicate"]
PAD_MODES: tuple[str, ...] = ("reflect", "replicate")


def check_pad_mode(mode: object) -> PadMode:
    if mode not in PAD_MODES:
        raise ValueError(f"Expected `pad_mode` to be one of {list(PAD_MODES)}, got {mode!r}")
    return mode  # type: ignore[return-value]


def _target(size: int, multiple: int, min_size: int) -> int:
    size = max(size, min_size)
    return -(-size // multiple) * multiple


def pad_to_multiple(
    x: Tensor, multiple: int, *, min_size: int = 1, mode: PadMode = "reflect"
) -> tuple[Tensor, tuple[int, int]]:
    """Pad ``x`` (B, C, H, W) at the bottom/right so H and W are multiples of ``multiple``.

    Args:
        x: batch of shape (B, C, H, W).
        multiple: both padded sides are divisible by this.
        min_size: both padded sides are at least this (e.g. InstanceNorm needs > 1 pixel).
        mode: ``"reflect"`` or ``"replicate"``.

    Returns:
        The padded batch (B, C, H', W') and the original ``(H, W)`` for :func:`crop_to`.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    pad_h = _target(h, multiple, min_size) - h
    pad_w = _target(w, multiple, min_size) - w
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    if mode == "reflect" and (pad_h >= h or pad_w >= w):
        mode = "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)


def crop_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop the bottom/right padding added by :func:`pad_to_multiple`."""
    return x[..., : size[0], : size[1]]


def scaled_size(size: tuple[int, int], factor: int) -> tuple[int, int]:
    """Size of ``img[..., ::factor, ::factor]`` for an image of ``size``: ceil(H/f), ceil(W/f)."""
    return -(-size[0] // factor), -(-size[1] // factor)
