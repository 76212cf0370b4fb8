"""DRBN-ENC's two released variants, pinned against a functional re-statement of the releases.

The reference below is written from ``shared/facts/nets.md`` section 3.2 and the SICE release's
disassembled ``EnhanceN_arch2`` (``DRBNIN3``), with ``torch.nn.functional`` calls on the net's
``state_dict`` only; it shares no code with :mod:`erl_losses.archs.drbn`.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from erl_losses.archs import DRBN_ENC, build_arch
from erl_losses.archs.losses import DRBNLoss

_State = dict[str, Tensor]


def _conv(sd: _State, name: str, x: Tensor, stride: int = 1) -> Tensor:
    weight = sd[f"{name}.weight"]
    return F.conv2d(x, weight, sd.get(f"{name}.bias"), stride, weight.shape[-1] // 2)


def _rdb(sd: _State, name: str, x: Tensor) -> Tensor:
    h = x
    for i in range(4):
        h = torch.cat([h, F.relu(_conv(sd, f"{name}.layers.{i}.0", h))], dim=1)
    return _conv(sd, f"{name}.fuse", h) + x


def _enc(sd: _State, x: Tensor, variant: str) -> tuple[Tensor, Tensor]:
    """``AttING``: MSEC returns ``(conv1x1(a * xp), IN(x1))``; SICE ``conv1x1(a * xp) + x1``."""
    x1 = _conv(sd, "head.lift", x)
    xn = F.instance_norm(x1, weight=sd["head.norm.weight"], bias=sd["head.norm.bias"])
    o1, o2 = _conv(sd, "head.conv_norm", xn), _conv(sd, "head.conv_raw", x1)
    g = torch.sigmoid(F.leaky_relu(_conv(sd, "head.gate.0", torch.cat([o1, o2], 1)), 0.1))
    xp = torch.cat([g * o2 + o1, (1 - g) * o1 + o2], dim=1)
    mean = xp.mean(dim=(2, 3), keepdim=True)
    if variant == "msec":
        pooled = xp.var(dim=(2, 3), keepdim=True, unbiased=False).sqrt() + mean
    else:
        pooled = mean  # DRBNIN3: nn.AdaptiveAvgPool2d(1) only
    a = _conv(sd, "head.attention.0", pooled)
    a = torch.sigmoid(_conv(sd, "head.attention.2", F.leaky_relu(a, 0.1)))
    out = _conv(sd, "head.out", a * xp)
    return (out, xn) if variant == "msec" else (out + x1, xn)


def _up(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _one_unit(sd: _State, x: Tensor, variant: str) -> tuple[Tensor, Tensor, Tensor]:
    """One band unit on ``cat(x, x)`` (the first unit), returning ``(res1, res2, res4)``."""
    f_first, _ = _enc(sd, torch.cat([x, x], dim=1), variant)
    if variant == "sice":
        f_first = F.relu(f_first)  # DRBNIN3: Relu(SFENet1(x)), used by the conv and the skip
    f_s1 = F.relu(_conv(sd, "head2", F.relu(f_first)))
    f_s2 = _conv(sd, "down1", _rdb(sd, "rdb_s1", f_s1), stride=2)
    f_s4 = _conv(sd, "down2", _rdb(sd, "rdb_s2", f_s2), stride=2)
    f_s4 = f_s4 + _rdb(sd, "rdb_s4.1", _rdb(sd, "rdb_s4.0", f_s4))
    up2 = F.conv_transpose2d(f_s4, sd["up2.weight"], sd["up2.bias"], stride=2, padding=1)
    f_s2 = f_s2 + _rdb(sd, "rdb_up2", up2)
    up1 = F.conv_transpose2d(f_s2, sd["up1.weight"], sd["up1.bias"], stride=2, padding=1)
    f_s1 = f_s1 + _rdb(sd, "rdb_up1", up1) + f_first
    res4 = _conv(sd, "out_s4.1", _conv(sd, "out_s4.0", f_s4))
    res2 = _conv(sd, "out_s2.1", _conv(sd, "out_s2.0", f_s2)) + _up(res4)
    res1 = _conv(sd, "out_s1.1", _conv(sd, "out_s1.0", f_s1)) + _up(res2)
    return res1, res2, res4


@pytest.mark.parametrize("variant", ["msec", "sice"])
def test_one_unit_matches_the_functional_release(variant: str) -> None:
    torch.manual_seed(0)
    net = DRBN_ENC(num_units=1, variant=variant)
    sd = {k.removeprefix("units.0."): v for k, v in net.state_dict().items()}
    x = torch.rand(2, 3, 16, 20)
    with torch.no_grad():
        pred, aux = net(x, return_aux=True)
        res1, res2, res4 = _one_unit(sd, x, variant)
    torch.testing.assert_close(pred, res1.clamp(0, 1))
    torch.testing.assert_close(aux["half"], res2)
    torch.testing.assert_close(aux["quarter"], res4)


def test_the_variants_differ_on_the_same_weights() -> None:
    torch.manual_seed(1)
    msec = DRBN_ENC(num_units=1)
    sice = DRBN_ENC(num_units=1, variant="sice")
    sice.load_state_dict(msec.state_dict(), strict=True)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(
            msec(x, return_aux=True)[1]["half"], sice(x, return_aux=True)[1]["half"]
        )


def test_same_parameter_count_and_state_dict_keys() -> None:
    msec, sice = build_arch("DRBN_ENC"), build_arch("DRBN_ENC", variant="sice")
    assert msec.variant == "msec" and sice.variant == "sice"
    for net in (msec, sice):
        assert sum(p.numel() for p in net.parameters()) == 612_228
    assert {k: v.shape for k, v in msec.state_dict().items()} == {
        k: v.shape for k, v in sice.state_dict().items()
    }


def test_sice_returns_only_the_three_scales_at_any_size() -> None:
    x = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        pred, sice_aux = DRBN_ENC(num_units=2, variant="sice")(x, return_aux=True)
        _, msec_aux = DRBN_ENC(num_units=1)(x, return_aux=True)
    assert sorted(sice_aux) == ["half", "quarter"]  # DRBNIN3 returns (res1, res2, res4)
    assert pred.shape == x.shape and pred.min() >= 0 and pred.max() <= 1
    assert sice_aux["half"].shape[-2:] == (7, 6) and sice_aux["quarter"].shape[-2:] == (4, 3)
    assert sorted(msec_aux) == ["enc_feat", "half", "inst_feat", "quarter"]


def test_sice_variant_trains_with_drbn_loss_but_refuses_distillation() -> None:
    torch.manual_seed(2)
    net = DRBN_ENC(num_units=1, variant="sice")
    lq, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    loss, _ = DRBNLoss().compute(net, lq, gt)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    teacher = DRBN_ENC(num_units=1, variant="sice")
    with pytest.raises(ValueError, match=r"'inst_feat' \(from DRBN_ENC\(variant='msec'\)"):
        DRBNLoss().compute(net, lq, gt, teacher=teacher)


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"Expected `variant` to be one of \['msec', 'sice'\], got 'lol'"
    ):
        DRBN_ENC(variant="lol")  # type: ignore[arg-type]
