"""ECLNet (Huang et al., ACM MM 2022): exposure correction with positive/negative feature split.

Structure (follows ``shared/facts/nets.md`` section 2, the MSEC configuration ``nc=8``):

* a 3x3 conv lifts RGB to ``nc`` channels;
* ``num_blocks`` chained DualBlocks: each splits its input into ReLU(x) and ReLU(-x), runs both
  through one shared ProcessBlock (3x3 conv pair in parallel with a cross/diagonal
  central-difference conv), fuses each with the instance-normalised input, and merges both
  polarities with a residual;
* a 1x1 conv fuses all block outputs into the feature map ``feat`` (``nc`` channels), and Refine
  (3x3 conv, channel-attention layer, 3x3 conv) maps it to RGB. No global input residual.

Where we chose (see nets.md section 7):

* ``num_blocks=4`` by default: 18,409 parameters, the paper's 0.018M. The released model has 5
  DualBlocks (22,450 parameters, 0.022M); pass ``num_blocks=5`` for it.
* The central-difference conv builds its 3x3 kernels from registered buffers, so it runs on any
  device and dtype (the release creates its zero taps with ``.cuda()``). The "+"/"x" tap placement
  and the ``theta`` centre subtraction are folded into one kernel, and the learnable gate mixes
  the two kernels before a single convolution; by linearity this equals the release's two
  convolutions plus two 1x1 difference terms.
* The gate scalar is initialised to 0 (an even 0.5/0.5 mix); the release reads uninitialised
  memory (``torch.FloatTensor(1)``).
* The channel-attention layer keeps the release's arithmetic: it returns ``z * GAP(y) + x``, i.e.
  it adds a learned per-channel constant rather than gating spatially.
* Stride 1 everywhere, so no padding is needed except for 1-pixel-high or -wide inputs, which are
  replicate-padded to 2 because InstanceNorm needs more than one spatial element.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from erl_losses._validation import check_image, check_positive_int
from erl_losses.archs._blocks import ExposureNet, conv, lrelu
from erl_losses.archs._padding import PadMode, check_pad_mode, crop_to, pad_to_multiple

__all__ = ["ECLNet"]

# Positions (row-major in a 3x3 kernel) of the 5 learned taps.
_CROSS_TAPS = (1, 3, 4, 5, 7)  # "+": up, left, centre, right, down
_DIAG_TAPS = (0, 2, 4, 6, 8)  # "x": four corners and centre
_CENTRE = 4


def _placement(taps: tuple[int, ...], theta: float) -> Tensor:
    """(5, 9) matrix mapping 5 taps to a flattened 3x3 central-difference kernel.

    Each tap also contributes ``-theta`` at the centre: conv with ``W - theta * sum(W) * delta``
    equals ``conv(x, W) - theta * conv1x1(x, sum(W))``, the central-difference form.
    """
    place = torch.zeros(len(taps), 9)
    for i, pos in enumerate(taps):
        place[i, pos] = 1.0
    place[:, _CENTRE] -= theta
    return place


class _CDCConv(nn.Module):
    """Gated cross/diagonal central-difference conv, bias-free, with an identity residual.

    ``out = conv3x3(x, s * K_cross + (1 - s) * K_diag) + x`` with ``s = sigmoid(gate)``.
    Parameters: 2 * C * C * 5 + 1.
    """

    def __init__(self, ch: int, theta: float = 0.8) -> None:
        super().__init__()
        self.theta = float(theta)
        self.weight_cross = nn.Parameter(torch.empty(ch, ch, 5))
        self.weight_diag = nn.Parameter(torch.empty(ch, ch, 5))
        self.gate = nn.Parameter(torch.zeros(1))
        # Same default init as a bias-free nn.Conv2d with a 1x5 kernel (fan_in = 5 * C).
        nn.init.kaiming_uniform_(self.weight_cross, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.weight_diag, a=math.sqrt(5))
        self.register_buffer("place_cross", _placement(_CROSS_TAPS, self.theta), persistent=False)
        self.register_buffer("place_diag", _placement(_DIAG_TAPS, self.theta), persistent=False)

    def kernel(self) -> Tensor:
        """The effective 3x3 kernel (C, C, 3, 3)."""
        s = torch.sigmoid(self.gate)
        place_cross = self.place_cross.to(self.weight_cross.dtype)
        place_diag = self.place_diag.to(self.weight_diag.dtype)
        k = s * torch.einsum("oit,tn->oin", self.weight_cross, place_cross) + (
            1 - s
        ) * torch.einsum("oit,tn->oin", self.weight_diag, place_diag)
        return k.reshape(*k.shape[:2], 3, 3)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.kernel(), padding=1) + x


class _ProcessBlock(nn.Module):
    """``fuse([LReLU(conv3(LReLU(conv3(x)))), cdc(x)])``, no residual."""

    def __init__(self, ch: int, theta: float) -> None:
        super().__init__()
        self.spatial = nn.Sequential(conv(ch, ch), lrelu(), conv(ch, ch), lrelu())
        self.cdc = _CDCConv(ch, theta)
        self.fuse = conv(2 * ch, ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(torch.cat([self.spatial(x), self.cdc(x)], dim=1))


class _DualBlock(nn.Module):
    """Process ReLU(x) and ReLU(-x) with shared weights, fuse each with IN(x), merge, residual."""

    def __init__(self, ch: int, theta: float) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(ch, affine=True)
        self.process = _ProcessBlock(ch, theta)
        self.fuse_pos = conv(2 * ch, ch, 1)
        self.fuse_neg = conv(2 * ch, ch, 1)
        self.merge = nn.Sequential(conv(2 * ch, ch), lrelu(), conv(ch, ch))

    def forward(self, x: Tensor) -> Tensor:
        xn = self.norm(x)
        pos = self.process(F.relu(x))
        neg = -self.process(F.relu(-x))  # one ProcessBlock for both polarities, as released
        pos = self.fuse_pos(torch.cat([xn, pos], dim=1))
        neg = self.fuse_neg(torch.cat([xn, neg], dim=1))
        return self.merge(torch.cat([pos, neg], dim=1)) + x


class _CALayer(nn.Module):
    """Channel attention as released: ``z * GAP(y) + x`` (see module docstring)."""

    def __init__(self, ch: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(ch // reduction, 1)
        self.body = nn.Sequential(conv(ch, ch), nn.ReLU(), conv(ch, ch))
        self.squeeze = nn.Sequential(
            conv(ch, hidden, 1), nn.ReLU(), conv(hidden, ch, 1), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x).mean(dim=(2, 3), keepdim=True)
        return self.squeeze(y) * y + x


class ECLNet(ExposureNet):
    """ECLNet: RGB in [0, 1] -> RGB in [0, 1].

    Args:
        nc: feature width (the paper's model: 8).
        num_blocks: number of DualBlocks. 4 (default) matches the paper's 0.018M; the released
            code has 5.
        theta: central-difference strength of the CDC conv (0.8 as released).
        pad_mode: padding for 1-pixel-thin inputs (``"reflect"`` falls back to replicate there).

    Shape:
        input (B, 3, H, W) in [0, 1], any H, W >= 1; output (B, 3, H, W) in [0, 1].
    """

    def __init__(
        self, nc: int = 8, num_blocks: int = 4, theta: float = 0.8, pad_mode: PadMode = "reflect"
    ) -> None:
        super().__init__()
        self.nc = check_positive_int(nc, "nc")
        self.num_blocks = check_positive_int(num_blocks, "num_blocks")
        self.pad_mode = check_pad_mode(pad_mode)
        self.head = conv(3, nc, 3)
        self.blocks = nn.ModuleList(_DualBlock(nc, theta) for _ in range(num_blocks))
        self.fuse = conv(num_blocks * nc, nc, 1)
        self.refine = nn.Sequential(conv(nc, nc, 3), _CALayer(nc, 4), conv(nc, 3, 3))

    def forward(
        self, x: Tensor, return_aux: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """(B, 3, H, W) in [0, 1] -> corrected (B, 3, H, W) in [0, 1], or ``(pred, aux)``.

        Call ``net(x, return_aux=True)`` (not ``net.forward_with_aux``) when ``net`` may be
        wrapped in DistributedDataParallel, so that the call goes through the wrapper.

        Returns:
            ``pred`` when ``return_aux`` is false (the default), else
            ``(pred, aux)``: ``pred`` (B, 3, H, W) clamped to [0, 1]; ``aux["feature"]``
            (B, nc, H, W) is the fused feature map that ECLNet's consistency loss compares.
        """
        check_image(x, "x", channels=3)
        xp, size = pad_to_multiple(x, 1, min_size=2, mode=self.pad_mode)
        h = self.head(xp)
        outs = []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        feat = self.fuse(torch.cat(outs, dim=1))
        out = self.refine(feat)
        pred = crop_to(out, size).clamp(0.0, 1.0)
        return (pred, {"feature": crop_to(feat, size)}) if return_aux else pred
