"""The losses' input contract: inputs outside [0, 1] warn once (or raise), wrong types and meta
tensors raise typed errors naming the argument, non-finite inputs give NaN (or raise)."""

from __future__ import annotations

import warnings

import pytest
import torch

from erl_losses import PhaseLoss, SampleRelationLoss


@pytest.fixture(params=["phase", "relation"])
def make_loss(request, tiny_bcm):
    if request.param == "phase":
        return lambda **kw: PhaseLoss(**kw)
    return lambda **kw: SampleRelationLoss(tiny_bcm, **kw)


def _images(scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    return torch.rand(2, 3, 32, 32) * scale + shift


def test_0_255_inputs_warn_once(make_loss):
    loss = make_loss()
    with pytest.warns(UserWarning, match=r"`pred` with values in \[0, 1\].*divide by 255"):
        loss(_images(255), _images())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(_images(255), _images())  # once per loss


def test_the_warning_points_at_the_callers_line(make_loss):
    loss = make_loss()
    with pytest.warns(UserWarning, match="divide by 255") as caught:
        loss(_images(255), _images())
    assert caught[0].filename == __file__


def test_target_out_of_range_warns(make_loss):
    with pytest.warns(UserWarning, match="`target`"):
        make_loss()(_images(), _images(shift=-1.0))


def test_check_range_raises_every_call(make_loss):
    loss = make_loss(check_range=True)
    loss(_images(), _images())
    with pytest.raises(ValueError, match="`pred` with values in"):
        loss(_images(255), _images())
    with pytest.raises(ValueError, match="`target`"):
        loss(_images(), _images(255))


def test_slightly_out_of_range_is_accepted(make_loss):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_loss(check_range=True)(_images(1.4, -0.2), _images())


def test_lists_raise_type_error_naming_the_argument(make_loss):
    x = _images()
    with pytest.raises(TypeError, match=r"`pred` to be a torch\.Tensor, got list"):
        make_loss()(x.tolist(), x)
    with pytest.raises(TypeError, match=r"`target` to be a torch\.Tensor"):
        make_loss()(x, [x])


def test_meta_tensors_raise_a_clear_error():
    x = torch.empty(2, 3, 16, 16, device="meta")
    with pytest.raises(ValueError, match=r"`pred` .*meta tensor"):
        PhaseLoss()(x, x)


@pytest.mark.parametrize(
    ("value", "error"), [("x", TypeError), (None, TypeError), (0.0, ValueError), (-1, ValueError)]
)
def test_amp_floor_errors_name_the_argument(value, error):
    with pytest.raises(error, match="`amp_floor`"):
        PhaseLoss(amp_floor=value)


@pytest.mark.parametrize("where", ["pred", "target"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_nonfinite_inputs_give_a_nan_loss_and_nan_gradients(make_loss, where, bad, reduction):
    """NaN, not a finite wrong number: one bad pixel in either input poisons its sample's loss
    (every sample's for the relation, whose BCM relates the batch) and the gradient."""
    pred, target = _images().requires_grad_(), _images()
    images = {"pred": pred.detach(), "target": target}
    images[where][1, 0, 5, 7] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the range check may warn about the inf
        out = make_loss(reduction=reduction)(pred, target)
    assert torch.isnan(out).any() and not torch.isfinite(out).all()
    if reduction == "none":
        assert torch.isnan(out[1])
    out.sum().backward()
    assert torch.isnan(pred.grad[1]).any()


@pytest.mark.parametrize("mode", ["paper", "wrapped"])
def test_an_inf_pixel_in_pred_gives_a_nan_phase_loss(mode):
    """The angle of an infinite Fourier bin is finite (atan2(inf, inf) = pi / 4), so the loss must
    propagate the non-finite input itself rather than rely on the angle."""
    pred, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    pred[0, 0, 3, 3] = float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.isnan(PhaseLoss(mode=mode)(pred, target))


def test_check_nonfinite_raises_naming_the_argument(make_loss):
    target = _images()
    target[0, 0, 0, 0] = float("inf")
    loss = make_loss(check_nonfinite=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="`target`"):
            loss(_images(), target)


@pytest.mark.parametrize("flag", ["check_range", "check_nonfinite", "gather", "cuda_graphs"])
@pytest.mark.parametrize("value", ["false", "no", 0, 1, None])
def test_a_flag_of_the_losses_is_a_bool_not_a_truthy_value(tiny_bcm, flag: str, value) -> None:
    # "false" is truthy: read as a flag it would switch the check ON; refused instead.
    if flag == "cuda_graphs" and value is None:
        return  # None means "from the environment" there
    with pytest.raises(TypeError, match=f"Expected `{flag}` to be a bool"):
        SampleRelationLoss(tiny_bcm, **{flag: value})
    if flag in ("check_range", "check_nonfinite"):
        with pytest.raises(TypeError, match=f"Expected `{flag}` to be a bool"):
            PhaseLoss(**{flag: value})
