"""The reference nets' own losses: values, zeros at the optimum, gradients, augmentation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from erl_losses.archs import DRBN_ENC, ECLNet, FECNet
from erl_losses.archs.losses import (
    DRBNLoss,
    ECLNetLoss,
    FECNetLoss,
    exposure_mix_augment,
    ssim,
)

SHAPE = (2, 3, 32, 48)


def _drbn_aux(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"half": x[..., ::2, ::2], "quarter": x[..., ::4, ::4]}


# --- SSIM -----------------------------------------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(
    h=st.integers(1, 24),
    w=st.integers(1, 24),
    seed=st.integers(0, 2**16),
)
def test_ssim_is_one_on_equal_inputs_and_symmetric(h: int, w: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, h, w, generator=gen)
    y = torch.rand(2, 3, h, w, generator=gen)
    torch.testing.assert_close(ssim(x, x), torch.tensor(1.0))
    torch.testing.assert_close(ssim(x, y), ssim(y, x))
    assert -1.0 <= ssim(x, y).item() < 1.0


def test_ssim_orders_distortions() -> None:
    x = torch.rand(1, 3, 32, 32)
    mild = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    strong = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    assert ssim(x, mild) > ssim(x, strong)


def test_ssim_gradcheck() -> None:
    x = torch.rand(1, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 3, 7, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: ssim(a, y), (x,))


# --- FECNetLoss -----------------------------------------------------------------------------


def test_fecnet_loss_is_zero_when_both_stages_equal_gt() -> None:
    gt = torch.rand(*SHAPE)
    loss = FECNetLoss()(gt.clone(), {"amplitude": gt.clone()}, gt)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)


def test_fecnet_loss_matches_its_formula() -> None:
    pred, amp, gt = torch.rand(*SHAPE), torch.rand(*SHAPE), torch.rand(*SHAPE)
    fa, fg, fp = (torch.fft.rfft2(t) for t in (amp, gt, pred))
    expected = (
        F.l1_loss(pred, gt)
        + 0.5 * F.l1_loss(amp, gt)
        + 0.1 * F.l1_loss(fa.abs(), fg.abs())
        + 0.1 * F.l1_loss(fp.angle(), fg.angle())
    )
    torch.testing.assert_close(FECNetLoss()(pred, {"amplitude": amp}, gt), expected)
    only_l1 = FECNetLoss(amp_weight=0, amp_spectrum_weight=0, phase_weight=0)
    torch.testing.assert_close(only_l1(pred, {"amplitude": amp}, gt), F.l1_loss(pred, gt))


def test_fecnet_loss_compute_trains_both_stages() -> None:
    net = FECNet()
    lq, gt = torch.rand(*SHAPE), torch.rand(*SHAPE)
    loss, pred = FECNetLoss().compute(net, lq, gt)
    assert pred.shape == lq.shape and torch.isfinite(loss) and loss > 0
    loss.backward()
    for module in (net.amplitude_net, net.phase_net):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())


# --- ECLNetLoss and its augmentation --------------------------------------------------------


def test_ecl_loss_is_zero_at_optimum_and_adds_weighted_consistency() -> None:
    gt = torch.rand(*SHAPE)
    feat = torch.randn(2, 8, 32, 48)
    crit = ECLNetLoss()
    assert crit(gt, {"feature": feat}, gt, {"feature": feat}).item() == pytest.approx(0, abs=1e-6)
    shifted = feat + 0.5
    with_consistency = crit(gt, {"feature": feat}, gt, {"feature": shifted})
    assert with_consistency.item() == pytest.approx(0.02 * 0.5, abs=1e-5)
    # Without the augmented pass the consistency term is simply absent.
    pred = torch.rand(*SHAPE)
    base = crit(pred, {"feature": feat}, gt)
    expected = F.l1_loss(pred, gt) + 0.1 * (1 - ssim(pred, gt))
    torch.testing.assert_close(base, expected)


def test_ecl_loss_compute_runs_two_passes_with_gradients_through_both() -> None:
    torch.manual_seed(1)
    net = ECLNet()
    calls: list[torch.Tensor] = []

    def spy(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        # compute() calls the net itself (so a DDP wrapper sees the call), asking for aux.
        assert kwargs == {"return_aux": True}, f"Expected return_aux=True, got {kwargs}"
        calls.append(args[0])

    net.register_forward_pre_hook(spy, with_kwargs=True)
    lq, gt = torch.rand(*SHAPE), torch.rand(*SHAPE)
    loss, pred = ECLNetLoss().compute(net, lq, gt, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 2 and not torch.equal(calls[0], calls[1])
    assert pred.shape == lq.shape
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    calls.clear()
    ECLNetLoss(augment=False).compute(net, lq, gt)
    assert len(calls) == 1


def test_exposure_mix_augment_is_a_local_partial_blend() -> None:
    lq, gt = torch.zeros(3, 3, 96, 80), torch.ones(3, 3, 96, 80)
    gen = torch.Generator().manual_seed(0)
    aug = exposure_mix_augment(lq, gt, box_size=16, generator=gen)
    assert aug.shape == lq.shape
    # Pixel-wise convex mix: 0 <= m * alpha <= 0.48, identical across channels.
    assert aug.min() >= 0 and aug.max() <= 0.48 + 1e-6
    torch.testing.assert_close(aug[:, 0], aug[:, 2])
    # Local: each sample has a blended region and an untouched region.
    per_sample_max = aug.amax(dim=(1, 2, 3))
    assert (per_sample_max > 0.05).all()
    assert ((aug < 1e-6).flatten(1).float().mean(dim=1) > 0.3).all()
    # Reproducible with a generator, random without.
    again = exposure_mix_augment(lq, gt, box_size=16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(aug, again)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), box=st.integers(1, 120))
def test_exposure_mix_augment_any_size_stays_between_inputs(h: int, w: int, box: int) -> None:
    lq, gt = torch.rand(2, 3, h, w), torch.rand(2, 3, h, w)
    aug = exposure_mix_augment(lq, gt, box_size=box)
    lo, hi = torch.minimum(lq, gt), torch.maximum(lq, gt)
    assert aug.shape == lq.shape
    assert (aug >= lo - 1e-6).all() and (aug <= hi + 1e-6).all()


# --- DRBNLoss -------------------------------------------------------------------------------


def test_drbn_loss_is_zero_when_every_scale_equals_gt() -> None:
    gt = torch.rand(*SHAPE)
    assert DRBNLoss()(gt, _drbn_aux(gt), gt).item() == pytest.approx(0.0, abs=1e-5)


def test_drbn_loss_sums_weighted_scales() -> None:
    gt, pred = torch.rand(*SHAPE), torch.rand(*SHAPE)
    aux = _drbn_aux(torch.rand(*SHAPE))
    expected = (
        (1 - ssim(pred, gt))
        + 2 * (1 - ssim(aux["half"], gt[..., ::2, ::2]))
        + 0.5 * (1 - ssim(aux["quarter"], gt[..., ::4, ::4]))
    )
    got = DRBNLoss(scale_weights=(1.0, 2.0, 0.5))(pred, aux, gt)
    torch.testing.assert_close(got, expected)


def test_drbn_loss_distillation_term_with_a_frozen_teacher() -> None:
    torch.manual_seed(2)
    net, teacher = DRBN_ENC(num_units=1), DRBN_ENC(num_units=1)
    lq, gt = torch.rand(*SHAPE), torch.rand(*SHAPE)
    crit = DRBNLoss()
    plain, _ = crit.compute(net, lq, gt)
    distilled, _ = crit.compute(net, lq, gt, teacher=teacher)
    pred_aux = net.forward_with_aux(lq)[1]
    teacher_aux = teacher.forward_with_aux(gt)[1]
    extra = 0.1 * sum(F.l1_loss(pred_aux[k], teacher_aux[k]) for k in ("inst_feat", "enc_feat"))
    torch.testing.assert_close(distilled, plain + extra)
    distilled.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


# --- bad input ------------------------------------------------------------------------------


def test_loss_input_errors_name_the_argument() -> None:
    gt = torch.rand(*SHAPE)
    with pytest.raises(ValueError, match=r"Expected `pred` and `gt` to have the same shape"):
        FECNetLoss()(gt[:, :, :16], {"amplitude": gt}, gt)
    with pytest.raises(ValueError, match=r"Expected `aux` to contain 'amplitude'"):
        FECNetLoss()(gt, {"feature": gt}, gt)
    with pytest.raises(ValueError, match=r"Expected `pred` with 3 channels"):
        ECLNetLoss()(gt[:, :1], {}, gt[:, :1])
    with pytest.raises(ValueError, match=r"Expected `aux` to contain 'half'"):
        DRBNLoss()(gt, {}, gt)
    with pytest.raises(ValueError, match=r"Expected `aux\['quarter'\]` and `gt \(subsampled\)`"):
        DRBNLoss()(gt, {"half": gt[..., ::2, ::2], "quarter": gt}, gt)
    with pytest.raises(ValueError, match=r"Expected `ssim_weight` to be a finite non-negative"):
        ECLNetLoss(ssim_weight=-1.0)
    with pytest.raises(ValueError, match=r"Expected `scale_weights` to have 3 entries"):
        DRBNLoss(scale_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"Expected `box_size` to be a positive int, got 0"):
        exposure_mix_augment(gt, gt, box_size=0)


def test_losses_follow_dtype() -> None:
    gt = torch.rand(*SHAPE, dtype=torch.float64)
    for crit, aux in (
        (DRBNLoss().double(), _drbn_aux(gt)),
        (ECLNetLoss().double(), {"feature": gt}),
        (FECNetLoss(), {"amplitude": gt}),
    ):
        pred = torch.rand(*SHAPE, dtype=torch.float64)
        assert crit(pred, aux, gt).dtype == torch.float64
