"""Reference networks: shapes, ranges, gradients, parameter counts, input checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import erl_losses.archs as archs
from erl_losses.archs import ARCHS, DRBN, DRBN_ENC, ECLNet, FECNet, build_arch
from erl_losses.archs._padding import crop_to, pad_to_multiple
from erl_losses.archs.eclnet import _CDCConv
from erl_losses.archs.losses import DRBNLoss, ECLNetLoss, FECNetLoss

NAMES = sorted(ARCHS)
# Exact counts from nets.md's arithmetic (FECNet without the release's unused 12-parameter conv).
EXACT_PARAMS = {"DRBN": 557_668, "DRBN_ENC": 612_228, "ECLNet": 18_409, "FECNet": 151_965}
# Paper table 1; DRBN's and DRBN-ENC's "M" is 2^20 (nets.md section 0), the others match either.
PAPER_PARAMS = {
    "DRBN": 0.53 * 2**20,
    "DRBN_ENC": 0.58 * 2**20,
    "ECLNet": 0.018e6,
    "FECNet": 0.15e6,
}
LOSSES = {"DRBN": DRBNLoss, "DRBN_ENC": DRBNLoss, "ECLNet": ECLNetLoss, "FECNet": FECNetLoss}
AUX_CHANNELS = {
    "DRBN": {"half": 3, "quarter": 3},
    "DRBN_ENC": {"half": 3, "quarter": 3, "inst_feat": 16, "enc_feat": 16},
    "ECLNet": {"feature": 8},
    "FECNet": {"amplitude": 3},
}


@pytest.fixture(scope="module")
def nets() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {name: build_arch(name) for name in NAMES}


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_public_api() -> None:
    assert archs.__all__ == ["ARCHS", "DRBN", "DRBN_ENC", "ECLNet", "FECNet", "build_arch"]
    assert {"DRBN": DRBN, "DRBN_ENC": DRBN_ENC, "ECLNet": ECLNet, "FECNet": FECNet} == ARCHS


def test_build_arch_passes_kwargs_and_rejects_unknown_names() -> None:
    net = build_arch("ECLNet", num_blocks=5)
    assert isinstance(net, ECLNet)
    assert len(net.blocks) == 5
    with pytest.raises(ValueError, match=r"Expected `name` to be one of \['DRBN', 'DRBN_ENC'"):
        build_arch("UNet")


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_paper(nets: dict[str, torch.nn.Module], name: str) -> None:
    count = n_params(nets[name])
    assert count == EXACT_PARAMS[name]
    assert abs(count / PAPER_PARAMS[name] - 1) < 0.10


def test_eclnet_release_depth_has_five_blocks() -> None:
    # The released ECLNet (5 DualBlocks) is 22,450 parameters: 0.022M, not the paper's 0.018M.
    assert n_params(ECLNet(num_blocks=5)) == 22_450


@pytest.mark.parametrize("size", [(67, 93), (64, 64)])
@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_range(
    nets: dict[str, torch.nn.Module], name: str, size: tuple[int, int]
) -> None:
    torch.manual_seed(1)
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        pred, aux = nets[name].forward_with_aux(x)
    assert pred.shape == x.shape
    assert torch.isfinite(pred).all()
    assert pred.min() >= 0 and pred.max() <= 1
    assert set(aux) == set(AUX_CHANNELS[name])
    for key, ch in AUX_CHANNELS[name].items():
        factor = {"half": 2, "quarter": 4}.get(key, 1)
        # Matches gt[..., ::f, ::f], which DRBNLoss compares against.
        expected = x[..., ::factor, ::factor].shape[-2:]
        assert aux[key].shape == (1, ch, *expected), key
        assert torch.isfinite(aux[key]).all()


@pytest.mark.parametrize("name", NAMES)
def test_forward_returns_only_the_prediction(nets: dict[str, torch.nn.Module], name: str) -> None:
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        out = nets[name](x)
        pred, _ = nets[name].forward_with_aux(x)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, pred)


@pytest.mark.parametrize("name", NAMES)
def test_return_aux_matches_forward_with_aux(nets: dict[str, torch.nn.Module], name: str) -> None:
    x = torch.rand(2, 3, 20, 28)
    with torch.no_grad():
        plain = nets[name](x, return_aux=False)
        pred, aux = nets[name](x, return_aux=True)
        alias_pred, alias_aux = nets[name].forward_with_aux(x)
    assert isinstance(plain, torch.Tensor), f"Expected a tensor, got {type(plain).__name__}"
    torch.testing.assert_close(pred, plain)
    torch.testing.assert_close(alias_pred, pred)
    assert set(aux) == set(alias_aux) == set(AUX_CHANNELS[name])
    for key in aux:
        torch.testing.assert_close(alias_aux[key], aux[key])


def test_forward_with_aux_goes_through_module_call() -> None:
    # The alias calls the module (hooks fire), so it stays equivalent to net(x, return_aux=True).
    net = ECLNet(nc=4, num_blocks=1)
    seen: list[dict] = []
    net.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs), with_kwargs=True)
    net.forward_with_aux(torch.rand(1, 3, 8, 8))
    net(torch.rand(1, 3, 8, 8))
    assert seen == [{"return_aux": True}, {}], f"Expected one aux call then a plain one, got {seen}"


@pytest.mark.parametrize("name", ["ECLNet", "FECNet"])
def test_own_loss_through_a_ddp_wrapper_matches_the_plain_net(name: str, tmp_path) -> None:
    """``compute`` calls ``net(x, return_aux=True)``, which a DDP wrapper forwards (gloo, 1 rank)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(4)
    kwargs = {"nc": 4, "num_blocks": 1} if name == "ECLNet" else {"nc": 4}
    net, twin = build_arch(name, **kwargs), build_arch(name, **kwargs)
    twin.load_state_dict(net.state_dict())
    lq, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    crit = LOSSES[name]()
    extra = {"generator": torch.Generator().manual_seed(0)} if name == "ECLNet" else {}
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        wrapped = DistributedDataParallel(net)
        loss, pred = crit.compute(wrapped, lq, gt, **extra)
        loss.backward()
    finally:
        dist.destroy_process_group()
    extra = {"generator": torch.Generator().manual_seed(0)} if name == "ECLNet" else {}
    ref_loss, ref_pred = crit.compute(twin, lq, gt, **extra)
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(pred, ref_pred)
    for (pname, p), q in zip(net.named_parameters(), twin.parameters(), strict=True):
        assert p.grad is not None, f"Expected a gradient for {pname}, got none"
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m, n=pname: f"{n}: {m}")


@pytest.mark.parametrize("name", NAMES)
def test_own_loss_gives_finite_gradient_to_every_parameter(name: str) -> None:
    torch.manual_seed(2)
    net = build_arch(name)
    lq, gt = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    loss, pred = LOSSES[name]().compute(net, lq, gt)
    assert pred.shape == lq.shape
    assert torch.isfinite(loss)
    loss.backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


def test_fecnet_prediction_comes_from_the_phase_stage() -> None:
    # The MSEC/SICE release returns the amplitude stage as the prediction, so PhaseNet never
    # trains; here a loss on the prediction alone must reach PhaseNet.
    torch.manual_seed(3)
    net = FECNet()
    pred, aux = net.forward_with_aux(torch.rand(2, 3, 32, 48))
    assert not torch.allclose(pred, aux["amplitude"])
    pred.mean().backward()
    for pname, p in net.phase_net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def _release_cdc(cdc: _CDCConv, x: torch.Tensor) -> torch.Tensor:
    """The release's arithmetic, written out: two 3x3 convs with zero taps, two 1x1 differences."""
    w_cross, w_diag = cdc.weight_cross.detach(), cdc.weight_diag.detach()
    o, i = w_cross.shape[:2]
    z = torch.zeros(o, i)
    c = w_cross.unbind(-1)
    d = w_diag.unbind(-1)
    k_cross = torch.stack([z, c[0], z, c[1], c[2], c[3], z, c[4], z], -1).view(o, i, 3, 3)
    k_diag = torch.stack([d[0], z, d[1], z, d[2], z, d[3], z, d[4]], -1).view(o, i, 3, 3)
    hv = F.conv2d(x, k_cross, padding=1) - cdc.theta * F.conv2d(x, w_cross.sum(-1)[..., None, None])
    dg = F.conv2d(x, k_diag, padding=1) - cdc.theta * F.conv2d(x, w_diag.sum(-1)[..., None, None])
    s = torch.sigmoid(cdc.gate.detach())
    return s * hv + (1 - s) * dg + x


def test_eclnet_cdc_conv_equals_release_arithmetic_with_zero_gate() -> None:
    torch.manual_seed(4)
    cdc = _CDCConv(8)
    assert cdc.gate.item() == 0.0
    x = torch.randn(2, 8, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(cdc(x), _release_cdc(cdc, x))
        cdc.gate.fill_(1.3)
        torch.testing.assert_close(cdc(x), _release_cdc(cdc, x))


def test_eclnet_follows_dtype_and_keeps_kernels_out_of_state_dict() -> None:
    net = ECLNet().double()
    out = net(torch.rand(1, 3, 10, 12, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert not any("place_" in k for k in net.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(nets: dict[str, torch.nn.Module], name: str) -> None:
    other = build_arch(name)
    other.load_state_dict(nets[name].state_dict(), strict=True)
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(other(x), nets[name](x))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (torch.rand(3, 16, 16), ValueError, r"Expected `x` of shape \(B, C, H, W\), got 3-D"),
        (torch.rand(1, 1, 16, 16), ValueError, r"Expected `x` with 3 channels, got 1"),
        (
            torch.zeros(1, 3, 16, 16, dtype=torch.uint8),
            TypeError,
            r"floating-point tensor.*got dtype torch.uint8",
        ),
        (torch.rand(0, 3, 16, 16), ValueError, r"Expected `x` to hold at least one sample"),
        ([[0.0]], TypeError, r"Expected `x` to be a torch.Tensor, got list"),
    ],
)
def test_bad_input_is_rejected(
    nets: dict[str, torch.nn.Module], name: str, bad: object, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        nets[name](bad)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("FECNet", {"nc": 0}, r"Expected `nc` to be a positive int, got 0"),
        ("ECLNet", {"num_blocks": 2.0}, r"Expected `num_blocks` to be a positive int"),
        ("DRBN", {"num_units": -1}, r"Expected `num_units`"),
        ("DRBN_ENC", {"pad_mode": "zeros"}, r"Expected `pad_mode` to be one of"),
    ],
)
def test_bad_constructor_arguments(name: str, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_arch(name, **kwargs)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    multiple=st.sampled_from([1, 2, 4, 8]),
    min_size=st.integers(1, 4),
    mode=st.sampled_from(["reflect", "replicate"]),
)
def test_pad_then_crop_is_identity(h: int, w: int, multiple: int, min_size: int, mode: str) -> None:
    x = torch.rand(1, 2, h, w)
    padded, size = pad_to_multiple(x, multiple, min_size=min_size, mode=mode)  # type: ignore[arg-type]
    ph, pw = padded.shape[-2:]
    assert ph % multiple == 0 and pw % multiple == 0
    assert ph >= max(h, min_size) and pw >= max(w, min_size)
    assert ph - max(h, min_size) < multiple and pw - max(w, min_size) < multiple
    assert size == (h, w)
    assert torch.equal(crop_to(padded, size), x)


_SMALL_NETS = {
    "FECNet": FECNet(),
    "ECLNet": ECLNet(num_blocks=1),
    "DRBN": DRBN(num_units=1),
    "DRBN_ENC": DRBN_ENC(num_units=1),
}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(_SMALL_NETS)),
    h=st.integers(1, 13),
    w=st.integers(1, 13),
    scale=st.floats(0.0, 1.0),
)
def test_any_size_keeps_shape_and_range(name: str, h: int, w: int, scale: float) -> None:
    x = torch.rand(2, 3, h, w) * scale
    with torch.no_grad():
        out = _SMALL_NETS[name](x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", ["DRBN", "FECNet"])
@pytest.mark.parametrize("pad_mode", ["reflect", "replicate"])
def test_odd_sizes_are_padded_at_bottom_right_and_cropped_back(name: str, pad_mode: str) -> None:
    torch.manual_seed(5)
    net = build_arch(name, pad_mode=pad_mode)
    x = torch.rand(1, 3, 30, 29)
    with torch.no_grad():
        out = net(x)
        expected = net(F.pad(x, (0, 3, 0, 2), mode=pad_mode))[..., :30, :29]
    torch.testing.assert_close(out, expected)


def test_fecnet_runs_under_bfloat16_autocast() -> None:
    # bfloat16 FFTs do not exist; the net must keep its spectra in float32 by itself.
    torch.manual_seed(6)
    net = FECNet()
    lq, gt = torch.rand(2, 3, 30, 29), torch.rand(2, 3, 30, 29)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, pred = FECNetLoss().compute(net, lq, gt)
    assert pred.shape == lq.shape and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
