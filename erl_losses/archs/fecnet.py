"""FECNet (Huang et al., ECCV 2022): Fourier-based exposure correction in two stages.

Structure (follows ``shared/facts/nets.md`` section 1, the MSEC configuration ``nc=8``):

* **AmplitudeNet** (width ``nc``): a 3-level U-Net of ProcessBlocks in "amplitude" mode
  (2x2 stride-2 convs down, bilinear resize + 1x1 transposed conv up), plus a global input
  residual. It corrects the Fourier amplitude, i.e. brightness.
* **PhaseNet** (width ``2 * nc``): PhaseProcess recombines the amplitude of the stage-1 output
  with the phase of the input, four ProcessBlocks in "phase" mode refine structure, two SFT
  layers modulate with the stage-1 residual, and a global residual adds the input.
* Each ProcessBlock mixes a spatial branch (two residual 3x3 conv blocks) with a frequency branch
  (1x1 convs on the magnitude or phase of ``rfft2``), exchanging information both ways.

Where we chose (see nets.md section 7):

* The prediction is the PhaseNet output. The MSEC/SICE release returns the AmplitudeNet output
  twice by mistake, so its PhaseNet never trains; the FiveK copy returns both, as here.
* ``forward_with_aux`` also returns the amplitude-stage output (clamped to [0, 1]) for the
  auxiliary loss terms of :class:`~erl_losses.archs.losses.FECNetLoss`.
* The SFT layers receive ``trans(x_amp - x)`` with the *input* of ``trans`` detached. The release
  detaches the output of ``trans`` instead, which leaves ``trans`` without any gradient (a frozen
  random projection). Both keep the amplitude stage out of the SFT path.
* The release's unused ``pro`` 1x1 conv (12 parameters) is not created: 151,965 parameters
  instead of 151,977.
* Any H, W: the input is reflect-padded to a multiple of 4 (two stride-2 levels) and the
  output cropped back; every ``irfft2`` gets the explicit signal size, so odd sizes cannot lose a
  column (the release's PhaseProcess omits it).
* Every FFT, and the 1x1 convs on magnitude/phase, run in float32 (or float64), also under
  autocast or in a ``.half()`` model: bfloat16 FFTs do not exist, half-precision ones need
  power-of-two sizes, and un-normalised spectrum magnitudes overflow float16.
* The release's ``nan_to_num`` after every ProcessBlock and its 1e-8 offsets before ``abs`` /
  ``angle`` are kept: they are what keeps the magnitude/phase gradients finite.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from erl_losses._validation import check_image, check_positive_int
from erl_losses.archs._blocks import LRELU_SLOPE, ExposureNet, channel_std_plus_mean, conv, lrelu
from erl_losses.archs._padding import PadMode, check_pad_mode, crop_to, pad_to_multiple

__all__ = ["FECNet"]

Mode = Literal["amplitude", "phase"]
_EPS = 1e-8


def _rfft2(x: Tensor) -> Tensor:
    # FFTs run in float32 at least: cuFFT/pocketfft reject bfloat16, and half precision only
    # takes power-of-two sizes. Autocast does not do this cast for us.
    return torch.fft.rfft2(x.to(torch.promote_types(x.dtype, torch.float32)), norm="backward")


def _irfft2(xf: Tensor, size: tuple[int, int], like: Tensor) -> Tensor:
    """Inverse of :func:`_rfft2`, returned in ``like``'s dtype for the spatial convs."""
    return torch.fft.irfft2(xf, s=size, norm="backward").to(like.dtype)


def _finite(x: Tensor) -> Tensor:
    # The release's guard after every ProcessBlock: a NaN from angle()/abs() of a degenerate
    # spectrum must not poison the whole batch.
    return torch.nan_to_num(x, nan=1e-5, posinf=1e-5, neginf=1e-5)


class _SpaBlock(nn.Module):
    """Residual spatial block: ``x + LReLU(conv3(LReLU(conv3(x))))``."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(ch, ch), lrelu(), conv(ch, ch), lrelu())

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class _FreBlock(nn.Module):
    """1x1 convs on either the magnitude or the phase of a complex spectrum (B, C, H, W//2+1)."""

    def __init__(self, ch: int, mode: Mode) -> None:
        super().__init__()
        self.mode = mode
        self.body = nn.Sequential(conv(ch, ch, 1), lrelu(), conv(ch, ch, 1))

    def forward(self, xf: Tensor) -> Tensor:
        xf = xf + _EPS  # angle()/abs() have no useful gradient at exactly 0
        mag, pha = xf.abs(), xf.angle()
        if self.mode == "amplitude":
            mag = self._body_full_precision(mag)
        else:
            pha = self._body_full_precision(pha)
        # Not torch.polar: the conv may make the magnitude negative, which polar does not define.
        return torch.complex(mag * torch.cos(pha), mag * torch.sin(pha))

    def _body_full_precision(self, v: Tensor) -> Tensor:
        # Spectrum magnitudes reach H*W*C (norm="backward"), beyond float16's 65504, so these
        # cheap 1x1 convs run in the spectrum's float32+ whatever the module dtype or autocast.
        conv1, conv2 = self.body[0], self.body[2]
        with torch.autocast(device_type=v.device.type, enabled=False):
            h = F.conv2d(v, conv1.weight.to(v.dtype), conv1.bias.to(v.dtype))
            h = F.leaky_relu(h, LRELU_SLOPE)
            return F.conv2d(h, conv2.weight.to(v.dtype), conv2.bias.to(v.dtype))


class _ProcessBlock(nn.Module):
    """Spatial/frequency interaction block; 61 C^2 + 12 C parameters."""

    def __init__(self, ch: int, mode: Mode) -> None:
        super().__init__()
        self.pre = conv(ch, ch, 1)
        self.spa1, self.spa2 = _SpaBlock(ch), _SpaBlock(ch)
        self.fre1, self.fre2 = _FreBlock(ch, mode), _FreBlock(ch, mode)
        self.fre_to_spa = conv(ch, ch, 3)
        self.spa_to_fre = conv(ch, ch, 3)
        self.fuse = conv(2 * ch, ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        size = (x.shape[-2], x.shape[-1])
        x_in = x
        xf = _rfft2(self.pre(x))
        x = self.spa1(x)
        xf = self.fre1(xf) + _EPS
        x = x + self.fre_to_spa(_irfft2(xf, size, x).abs() + _EPS)
        xf = xf + _rfft2(self.spa_to_fre(x))
        x = self.spa2(x) + _EPS
        xf = self.fre2(xf) + _EPS
        xs = _irfft2(xf, size, x).abs()
        return self.fuse(torch.cat([x, xs], dim=1)) + x_in


class _AmplitudeNet(nn.Module):
    """Stage 1: 3-level U-Net of amplitude-mode ProcessBlocks (widths C, 2C, 3C)."""

    def __init__(self, nc: int) -> None:
        super().__init__()
        self.head = conv(3, nc, 1)
        self.enc1 = _ProcessBlock(nc, "amplitude")
        self.down1 = nn.Conv2d(nc, 2 * nc, 2, stride=2)
        self.enc2 = _ProcessBlock(2 * nc, "amplitude")
        self.down2 = nn.Conv2d(2 * nc, 3 * nc, 2, stride=2)
        self.mid = _ProcessBlock(3 * nc, "amplitude")
        self.up1 = nn.ConvTranspose2d(5 * nc, 2 * nc, 1)
        self.dec2 = _ProcessBlock(2 * nc, "amplitude")
        self.up2 = nn.ConvTranspose2d(3 * nc, nc, 1)
        self.dec1 = _ProcessBlock(nc, "amplitude")
        self.tail = conv(nc, 3, 1)
        self.final = conv(3, 3, 1)

    @staticmethod
    def _up(x: Tensor, ref: Tensor) -> Tensor:
        return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        s1 = _finite(self.enc1(self.head(x)))
        s2 = _finite(self.enc2(self.down1(s1)))
        s3 = _finite(self.mid(self.down2(s2)))
        d2 = _finite(self.dec2(self.up1(torch.cat([self._up(s3, s2), s2], dim=1))))
        d1 = _finite(self.dec1(self.up2(torch.cat([self._up(d2, s1), s1], dim=1))))
        return self.final(self.tail(d1) + x)


class _PhaseProcess(nn.Module):
    """Amplitude of the stage-1 output + phase of the input, channel attention, 1x1 projection."""

    def __init__(self, out_ch: int, in_ch: int = 3) -> None:
        super().__init__()
        cat_ch, hidden = 2 * in_ch, max(in_ch // 2, 1)
        self.attention = nn.Sequential(
            conv(cat_ch, hidden, 3), lrelu(), conv(hidden, cat_ch, 3), nn.Sigmoid()
        )
        self.proj = conv(cat_ch, out_ch, 1)

    def forward(self, x_amp: Tensor, x: Tensor) -> Tensor:
        size = (x.shape[-2], x.shape[-1])
        amp = _rfft2(x_amp).abs()
        pha = (_rfft2(x) + _EPS).angle()
        recom = torch.complex(amp * torch.cos(pha), amp * torch.sin(pha)) + _EPS
        x_recom = _irfft2(recom, size, x_amp).abs() + _EPS
        xcat = torch.cat([x_recom, x_amp], dim=1)
        xcat = self.attention(channel_std_plus_mean(xcat)) * xcat
        return self.proj(xcat)


class _SFT(nn.Module):
    """Spatial feature transform: ``fuse([x, mul(res) * x + add(res)])``."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.mul = conv(ch, ch, 3)
        self.add = conv(ch, ch, 3)
        self.fuse = conv(2 * ch, ch, 1)

    def forward(self, x: Tensor, res: Tensor) -> Tensor:
        return self.fuse(torch.cat([x, self.mul(res) * x + self.add(res)], dim=1))


class _PhaseNet(nn.Module):
    """Stage 2: phase-mode ProcessBlocks with SFT modulation and a global input residual."""

    def __init__(self, nc: int) -> None:
        super().__init__()
        self.trans = conv(3, nc, 1)
        self.process = _PhaseProcess(nc)
        self.blocks = nn.ModuleList(_ProcessBlock(nc, "phase") for _ in range(4))
        self.sft = nn.ModuleList(_SFT(nc) for _ in range(2))
        self.tail = conv(nc, 3, 1)

    def forward(self, x_amp: Tensor, x: Tensor) -> Tensor:
        # Detached so the SFT path cannot pull the amplitude stage (see module docstring).
        res = self.trans((x_amp - x).detach())
        h = self.process(x_amp, x)
        for i, block in enumerate(self.blocks):
            h = _finite(block(h))
            if i < len(self.sft):
                h = self.sft[i](h, res)
        return self.tail(h) + x


class FECNet(ExposureNet):
    """FECNet: amplitude stage then phase stage, RGB in [0, 1] -> RGB in [0, 1].

    Args:
        nc: width of the amplitude stage (its U-Net levels use ``nc, 2nc, 3nc``); the phase stage
            uses ``2 * nc``. The paper's model is ``nc=8`` (151,965 parameters, ~0.15M).
        pad_mode: how inputs are padded to a multiple of 4 (``"reflect"`` or ``"replicate"``).

    Shape:
        input (B, 3, H, W) in [0, 1], any H, W >= 1; output (B, 3, H, W) in [0, 1].
    """

    def __init__(self, nc: int = 8, pad_mode: PadMode = "reflect") -> None:
        super().__init__()
        self.nc = check_positive_int(nc, "nc")
        self.pad_mode = check_pad_mode(pad_mode)
        self.amplitude_net = _AmplitudeNet(self.nc)
        self.phase_net = _PhaseNet(2 * self.nc)

    def forward(
        self, x: Tensor, return_aux: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """(B, 3, H, W) in [0, 1] -> corrected (B, 3, H, W) in [0, 1], or ``(pred, aux)``.

        Call ``net(x, return_aux=True)`` (not ``net.forward_with_aux``) when ``net`` may be
        wrapped in DistributedDataParallel, so that the call goes through the wrapper.

        Returns:
            ``pred`` when ``return_aux`` is false (the default), else
            ``(pred, aux)``: ``pred`` (B, 3, H, W) is the PhaseNet output clamped to [0, 1];
            ``aux["amplitude"]`` (B, 3, H, W) is the AmplitudeNet output clamped to [0, 1].
        """
        check_image(x, "x", channels=3)
        xp, size = pad_to_multiple(x, 4, mode=self.pad_mode)
        x_amp = self.amplitude_net(xp)
        out = self.phase_net(x_amp, xp)
        pred = crop_to(out, size).clamp(0.0, 1.0)
        if not return_aux:
            return pred
        return pred, {"amplitude": crop_to(x_amp, size).clamp(0.0, 1.0)}
