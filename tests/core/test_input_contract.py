"""Issue 13 items 8 and 12: inputs outside [0, 1] warn once (or raise), wrong types and meta
tensors raise typed errors naming the argument."""

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
