"""erl_losses.diagnostics: the relational index, attention entropy and cross-sample gradients."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from erl_losses import BatchCorrelationModule, SampleRelationLoss
from erl_losses.diagnostics import (
    RelationDiagnostics,
    attention_entropy_fraction,
    cross_sample_gradient_share,
    exposure_shift,
    mixed_exposure_batches,
    probe,
    relational_index,
)
from tests._helpers import TINY_BCM


def _crops(n: int = 8, size: int = 24, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # Smooth-ish mid-grey images: far from clipping, like natural crops.
    base = torch.rand(n, 3, 1, 1, generator=generator) * 0.4 + 0.3
    return (base + 0.1 * torch.rand(n, 3, size, size, generator=generator)).clamp(0, 1)


def _feature_loss(bcm: BatchCorrelationModule):
    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (bcm.encode_tokens(pred) - bcm.encode_tokens(target)).abs().mean(dim=1)

    return loss


def _centred_brightness(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Hand-built relational loss: each sample's brightness relative to its batch mean."""
    bp, bt = pred.mean(dim=(1, 2, 3)), target.mean(dim=(1, 2, 3))
    return ((bp - bp.mean()) - (bt - bt.mean())).abs()


def _zero_qk(bcm: BatchCorrelationModule) -> BatchCorrelationModule:
    with torch.no_grad():
        for layer in bcm.t_e.layers:
            d_model = layer.qkv.weight.shape[1]
            layer.qkv.weight[: 2 * d_model] = 0
            layer.qkv.bias[: 2 * d_model] = 0
    return bcm


def test_per_sample_feature_loss_has_zero_index_and_no_cross_gradient(tiny_bcm) -> None:
    crops = _crops()
    loss = _feature_loss(tiny_bcm)
    assert relational_index(loss, crops) == pytest.approx(0.0, abs=1e-6)
    assert cross_sample_gradient_share(loss, crops) == pytest.approx(0.0, abs=1e-7)


def test_hand_built_relational_loss_has_positive_index() -> None:
    crops = _crops()
    # Consistent errors shift every brightness alike, so the centred term barely moves; the
    # alternating ones do not cancel: R must be large and positive.
    assert relational_index(_centred_brightness, crops) > 1.0
    share = cross_sample_gradient_share(_centred_brightness, crops)
    # |g_other| = |g_own| / 3 for a batch of 4 here (d/dp_i of the mean-centred terms).
    assert 0.1 < share < 0.5


def test_pixel_l1_index_is_zero_and_opposite_errors_cancel_in_a_batch_mean() -> None:
    crops = _crops()

    def batch_mean_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Compares only the batch means: opposite errors cancel, so R < 0.
        return (pred.mean(dim=0) - target.mean(dim=0)).abs().mean().expand(pred.shape[0])

    def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs().flatten(1).mean(dim=1)

    assert relational_index(l1, crops) == pytest.approx(0.0, abs=1e-6)
    assert relational_index(batch_mean_l1, crops) < -0.5


def test_uniform_attention_has_entropy_fraction_one(tiny_bcm) -> None:
    bcm = _zero_qk(tiny_bcm)
    assert attention_entropy_fraction(bcm, _crops()) == pytest.approx(1.0, abs=1e-6)


def test_sharp_cosine_attention_has_low_entropy() -> None:
    bcm = BatchCorrelationModule(**TINY_BCM, qk="cosine").eval()
    with torch.no_grad():
        for layer in bcm.t_e.layers:
            layer.log_scale.fill_(math.log(1e4))
    assert attention_entropy_fraction(bcm, _crops()) < 0.5


def test_exposure_shift_rejects_a_wrong_ev_shape() -> None:
    with pytest.raises(ValueError, match="Expected `ev` of shape"):
        exposure_shift(_crops(4), [0.5, 0.5])


def test_too_few_crops_raise() -> None:
    with pytest.raises(ValueError, match="at least one full batch"):
        relational_index(_centred_brightness, _crops(3))


def test_mixed_batches_are_re_exposed_per_sample() -> None:
    crops = _crops(4)
    (batch,) = mixed_exposure_batches(crops, evs=(-1.0, 1.0))
    assert (batch[0].mean() < crops[0].mean()) and (batch[1].mean() > crops[1].mean())


@settings(max_examples=25, deadline=None)
@given(
    ev=st.floats(-3, 3, allow_nan=False),
    seed=st.integers(0, 2**16),
)
def test_exposure_shift_is_in_range_and_monotone(ev: float, seed: int) -> None:
    crops = _crops(2, 8, seed)
    zero = exposure_shift(crops, [0.0, 0.0])
    shifted = exposure_shift(crops, [ev, ev])
    assert torch.allclose(zero, crops, atol=1e-5)
    assert shifted.min() >= 0 and shifted.max() <= 1
    if ev >= 0:
        assert (shifted >= zero - 1e-6).all()
    else:
        assert (shifted <= zero + 1e-6).all()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), d=st.floats(0.05, 1.5))
def test_any_per_sample_loss_has_zero_index(seed: int, d: float) -> None:
    torch.manual_seed(seed)
    weights = torch.rand(3, 1, 1)

    def weighted_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((pred - target) * weights).square().flatten(1).mean(dim=1)

    assert relational_index(weighted_l2, _crops(8, 8, seed), ev_errors=(d,)) == pytest.approx(
        0.0, abs=1e-5
    )


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_entropy_fraction_is_a_fraction(seed: int) -> None:
    torch.manual_seed(seed)
    bcm = BatchCorrelationModule(**TINY_BCM).eval()
    assert 0.0 <= attention_entropy_fraction(bcm, _crops(4, 16, seed)) <= 1.0 + 1e-6


def test_probe_of_a_bcm_and_of_its_losses(tiny_bcm) -> None:
    crops = _crops()
    flags = [p.requires_grad for p in tiny_bcm.parameters()]
    paper = probe(tiny_bcm, crops=crops)
    assert [p.requires_grad for p in tiny_bcm.parameters()] == flags  # restored
    centred = probe(SampleRelationLoss(tiny_bcm, variant="centred"), crops=crops)
    assert isinstance(paper, RelationDiagnostics)
    assert paper.variant == "paper" and centred.variant == "centred"
    assert paper.attention_entropy_fraction == centred.attention_entropy_fraction
    data = centred.as_dict()
    assert set(data) >= {
        "relational_index",
        "attention_entropy_fraction",
        "cross_sample_gradient_share",
    }
    assert data["num_crops"] == 8


def test_probe_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="Expected `relation`"):
        probe(torch.nn.L1Loss(), crops=_crops())


def test_centred_variant_ignores_an_error_shared_by_the_batch(tiny_bcm) -> None:
    from erl_losses.functional.relation import sample_relation_loss

    target = _crops(4)
    same = sample_relation_loss(target, target, tiny_bcm, variant="centred")
    assert float(same.detach()) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="Expected `variant`"):
        SampleRelationLoss(tiny_bcm, variant="centered")


@pytest.mark.parametrize("qk", ["cosine", "raw"])
def test_qk_modes_round_trip_their_config(qk: str) -> None:
    bcm = BatchCorrelationModule(**TINY_BCM, qk=qk)
    assert bcm.config["qk"] == qk
    rebuilt = BatchCorrelationModule(**bcm.config)
    rebuilt.load_state_dict(bcm.state_dict())
    x = _crops(4, 16)
    assert torch.allclose(rebuilt(x), bcm(x))
    assert "qk" not in BatchCorrelationModule(**TINY_BCM).config
