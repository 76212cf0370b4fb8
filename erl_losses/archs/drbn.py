"""DRBN (Yang et al., CVPR 2020) and DRBN-ENC (Huang et al., CVPR 2022).

Structure (follows ``shared/facts/nets.md`` section 3):

* DRBN chains ``num_units`` (4) recurrent band units with separate weights. Each unit sees
  ``cat(previous estimate, input)`` (the first sees ``cat(input, input)``), encodes at full, 1/2
  and 1/4 resolution with residual dense blocks (RDBs), decodes with transposed convs, adds the
  previous unit's features at each scale, and predicts the image coarse to fine:
  ``res4``, then ``res2 = up(res4) + ...``, then ``res1 = up(res2) + ...``.
* DRBN-ENC replaces each unit's first conv with the ENC module (exposure normalisation and
  compensation): instance-normalised and raw features are mixed by a learned gate, reweighted by
  channel attention and projected back. Two released variants, chosen by ``variant``:

  - ``"msec"`` (``EnhanceN_arch.py``, ``which_model_G: DRBN``, the MSEC yml): std+mean channel
    attention, no residual; the unit's skip adds the raw ENC output, and the first unit's
    instance-normalised and ENC features are returned for the MSEC distillation term.
  - ``"sice"`` (``DRBNIN3`` in ``EnhanceN_arch2``, the SICE yml; only a compiled ``.pyc`` was
    released): global-average-pooling attention, the ENC output is ``conv1x1(...) + x1`` (a
    residual on the lifted input), and the unit treats it like plain DRBN's first conv (ReLU,
    then both the next conv and the skip use the rectified features). The net returns only
    ``(res1, res2, res4)``, so no ENC features. Same parameters and ``state_dict`` keys.
* G0=16, G=8, 4 conv layers per RDB; 557,668 parameters (DRBN) and 612,228 (DRBN-ENC), i.e. the
  paper's 0.53M and 0.58M with M = 2^20.

Where we chose (see nets.md sections 3.2 and 7):

* ``forward`` returns only the full-resolution estimate, clamped to [0, 1] (the original does not
  clamp). ``forward_with_aux`` returns the 1/2 and 1/4 estimates unclamped, as the multi-scale
  loss of :class:`~erl_losses.archs.losses.DRBNLoss` uses them, and for DRBN-ENC the first unit's
  ENC features for the optional distillation term.
* Any H, W: the input is reflect-padded to a multiple of 4 and every output cropped back (the 1/2
  and 1/4 maps to ``ceil(H/2) x ceil(W/2)`` and ``ceil(H/4) x ceil(W/4)``, the sizes of
  ``gt[..., ::2, ::2]`` and ``gt[..., ::4, ::4]``).
* The release's ``forward(x, i)`` debug signature is replaced by ``forward(x)``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from erl_losses._validation import check_choice, check_image, check_positive_int
from erl_losses.archs._blocks import ExposureNet, channel_std_plus_mean, conv, lrelu
from erl_losses.archs._padding import PadMode, check_pad_mode, crop_to, pad_to_multiple, scaled_size

__all__ = ["DRBN", "DRBN_ENC", "ENC_VARIANTS"]

EncVariant = Literal["msec", "sice"]
#: DRBN-ENC's released variants: ``msec`` (``EnhanceN_arch``), ``sice`` (``DRBNIN3``).
ENC_VARIANTS: tuple[str, ...] = ("msec", "sice")

_G0, _G = 16, 8  # base width and RDB growth rate of the original DRBN


class _RDB(nn.Module):
    """Residual dense block: ``n_layers`` densely connected conv3x3+ReLU, 1x1 fusion, residual."""

    def __init__(self, g0: int, g: int, n_layers: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(conv(g0 + i * g, g), nn.ReLU()) for i in range(n_layers)
        )
        self.fuse = conv(g0 + n_layers * g, g0, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for layer in self.layers:
            h = torch.cat([h, layer(h)], dim=1)
        return self.fuse(h) + x


class _ENC(nn.Module):
    """Exposure normalisation + compensation (``AttING`` in the release); returns (out, IN feat).

    ``variant="msec"``: std+mean attention, ``out = conv1x1(xp)``. ``variant="sice"``: attention
    from the spatial mean only, ``out = conv1x1(xp) + x1`` (the SICE release, whose module
    returns ``out`` alone; its band unit ignores ``xn`` here).
    """

    def __init__(self, in_ch: int, ch: int, variant: EncVariant = "msec") -> None:
        super().__init__()
        self.variant = variant
        self.lift = conv(in_ch, ch, 1, bias=False)
        self.norm = nn.InstanceNorm2d(ch, affine=True)
        self.conv_norm = conv(ch, ch, 3, bias=False)
        self.conv_raw = conv(ch, ch, 3, bias=False)
        self.gate = nn.Sequential(conv(2 * ch, ch, 3, bias=False), lrelu(), nn.Sigmoid())
        self.attention = nn.Sequential(
            conv(2 * ch, ch // 2, 3), lrelu(), conv(ch // 2, 2 * ch, 3), nn.Sigmoid()
        )
        self.out = conv(2 * ch, ch, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x1 = self.lift(x)
        xn = self.norm(x1)
        o1, o2 = self.conv_norm(xn), self.conv_raw(x1)
        g = self.gate(torch.cat([o1, o2], dim=1))
        xp = torch.cat([g * o2 + o1, (1 - g) * o1 + o2], dim=1)
        if self.variant == "sice":
            pooled = xp.mean(dim=(2, 3), keepdim=True)
            return self.out(self.attention(pooled) * xp) + x1, xn
        xp = self.attention(channel_std_plus_mean(xp)) * xp
        return self.out(xp), xn


_Feats = tuple[Tensor, Tensor, Tensor]


class _BandUnit(nn.Module):
    """One recurrent band unit; ``enc`` (an ENC variant) swaps the first conv for the ENC module."""

    def __init__(self, enc: EncVariant | None) -> None:
        super().__init__()
        self.enc = enc
        self.head: nn.Module = conv(6, _G0) if enc is None else _ENC(6, _G0, enc)
        self.head2 = conv(_G0, _G0)
        self.rdb_s1 = _RDB(_G0, _G)
        self.down1 = conv(_G0, _G0, 3, stride=2)
        self.rdb_s2 = _RDB(_G0, _G)
        self.down2 = conv(_G0, 2 * _G0, 3, stride=2)
        self.rdb_s4 = nn.Sequential(_RDB(2 * _G0, 2 * _G), _RDB(2 * _G0, 2 * _G))
        self.up2 = nn.ConvTranspose2d(2 * _G0, _G0, 4, stride=2, padding=1)
        self.rdb_up2 = _RDB(_G0, _G)
        self.up1 = nn.ConvTranspose2d(_G0, _G0, 4, stride=2, padding=1)
        self.rdb_up1 = _RDB(_G0, _G)
        # No activation between the two convs of each output head, as in the original.
        self.out_s1 = nn.Sequential(conv(_G0, _G0), conv(_G0, 3))
        self.out_s2 = nn.Sequential(conv(_G0, _G0), conv(_G0, 3))
        self.out_s4 = nn.Sequential(conv(2 * _G0, _G0), conv(_G0, 3))

    @staticmethod
    def _up(x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, inp: Tensor, prev: _Feats | None) -> tuple[_Feats, _Feats, dict[str, Tensor]]:
        enc_aux: dict[str, Tensor] = {}
        if self.enc == "msec":
            # The MSEC release rectifies the ENC output for the next conv but skips it raw.
            f_first, inst = self.head(inp)
            enc_aux = {"inst_feat": inst, "enc_feat": f_first}
        elif self.enc == "sice":
            f_first = F.relu(self.head(inp)[0])  # as plain DRBN's first conv (DRBNIN3)
        else:
            f_first = F.relu(self.head(inp))
        f_s1 = F.relu(self.head2(F.relu(f_first)))
        f_s2 = self.down1(self.rdb_s1(f_s1))
        f_s4 = self.down2(self.rdb_s2(f_s2))
        f_s4 = f_s4 + self.rdb_s4(f_s4)
        if prev is not None:
            f_s4 = f_s4 + prev[2]
        f_s2 = f_s2 + self.rdb_up2(self.up2(f_s4))
        if prev is not None:
            f_s2 = f_s2 + prev[1]
        f_s1 = f_s1 + self.rdb_up1(self.up1(f_s2)) + f_first
        if prev is not None:
            f_s1 = f_s1 + prev[0]
        res4 = self.out_s4(f_s4)
        res2 = self.out_s2(f_s2) + self._up(res4)
        res1 = self.out_s1(f_s1) + self._up(res2)
        return (res1, res2, res4), (f_s1, f_s2, f_s4), enc_aux


class _DRBNBase(ExposureNet):
    def __init__(
        self, num_units: int = 4, pad_mode: PadMode = "reflect", enc: EncVariant | None = None
    ) -> None:
        super().__init__()
        self.num_units = check_positive_int(num_units, "num_units")
        self.pad_mode = check_pad_mode(pad_mode)
        self.units = nn.ModuleList(_BandUnit(enc) for _ in range(num_units))

    def forward(
        self, x: Tensor, return_aux: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """(B, 3, H, W) in [0, 1] -> corrected (B, 3, H, W) in [0, 1], or ``(pred, aux)``.

        Call ``net(x, return_aux=True)`` (not ``net.forward_with_aux``) when ``net`` may be
        wrapped in DistributedDataParallel, so that the call goes through the wrapper.

        Returns:
            ``pred`` when ``return_aux`` is false (the default), else
            ``(pred, aux)``: ``pred`` (B, 3, H, W) is the last unit's full-resolution estimate
            clamped to [0, 1]. ``aux["half"]`` (B, 3, ceil(H/2), ceil(W/2)) and
            ``aux["quarter"]`` (B, 3, ceil(H/4), ceil(W/4)) are its 1/2 and 1/4 estimates
            (unclamped). DRBN-ENC's ``"msec"`` variant adds the first unit's ENC features,
            (B, 16, H, W) each: ``aux["inst_feat"]`` (instance-normalised) and
            ``aux["enc_feat"]`` (ENC output); the ``"sice"`` variant adds none, as released.
        """
        check_image(x, "x", channels=3)
        xp, size = pad_to_multiple(x, 4, mode=self.pad_mode)
        est = xp
        prev: _Feats | None = None
        enc_aux: dict[str, Tensor] = {}
        for i, unit in enumerate(self.units):
            (est, half, quarter), prev, unit_aux = unit(torch.cat([est, xp], dim=1), prev)
            if i == 0:
                enc_aux = {k: crop_to(v, size) for k, v in unit_aux.items()}
        aux = {
            "half": crop_to(half, scaled_size(size, 2)),
            "quarter": crop_to(quarter, scaled_size(size, 4)),
            **enc_aux,
        }
        pred = crop_to(est, size).clamp(0.0, 1.0)
        return (pred, aux) if return_aux else pred


class DRBN(_DRBNBase):
    """Deep recursive band network: RGB in [0, 1] -> RGB in [0, 1].

    Args:
        num_units: number of recurrent band units (4 in the paper; 557,668 parameters).
        pad_mode: how inputs are padded to a multiple of 4 (``"reflect"`` or ``"replicate"``).

    Shape:
        input (B, 3, H, W) in [0, 1], any H, W >= 1; output (B, 3, H, W) in [0, 1].
    """

    def __init__(self, num_units: int = 4, pad_mode: PadMode = "reflect") -> None:
        super().__init__(num_units, pad_mode)


class DRBN_ENC(_DRBNBase):
    """DRBN with the ENC module as each unit's first layer: RGB in [0, 1] -> RGB in [0, 1].

    Args:
        num_units: number of recurrent band units (4 in the paper; 612,228 parameters).
        pad_mode: how inputs are padded to a multiple of 4 (``"reflect"`` or ``"replicate"``).
        variant: ``"msec"`` (the MSEC release, std+mean attention; returns the ENC features
            for the distillation term) or ``"sice"`` (``DRBNIN3``, the SICE release:
            mean-only attention, residual ENC output, no ENC features in ``aux``). Both have
            the same parameters and ``state_dict`` keys.

    Shape:
        input (B, 3, H, W) in [0, 1], any H, W >= 1; output (B, 3, H, W) in [0, 1].
    """

    def __init__(
        self, num_units: int = 4, pad_mode: PadMode = "reflect", variant: EncVariant = "msec"
    ) -> None:
        super().__init__(num_units, pad_mode, enc=check_choice(variant, "variant", ENC_VARIANTS))
        self.variant = variant
