"""``loss_weight`` must be a finite number >= 0 in every BasicSR-form loss: a `.nan` would train
to all-NaN weights with exit code 0, and a negative weight rewards the error."""

from __future__ import annotations

import pytest
import yaml
from basicsr.losses import build_loss

import erl_losses.adapters.basicsr  # noqa: F401  -- registers (after the torchvision alias)
from erl_losses.adapters import vendored
from tests._helpers import TINY_BCM

BAD = [float("nan"), float("inf"), -0.1, -1]


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize(
    "opt",
    [
        {"type": "PhaseLoss"},
        {"type": "SampleRelationLoss", "bcm": TINY_BCM},
        {"type": "ERLCompositeLoss", "base": {"type": "L1Loss"}, "relation": {"bcm": TINY_BCM}},
        {"type": "ECLNetLoss"},
        {"type": "FECNetLoss"},
        {"type": "DRBNLoss"},
    ],
)
def test_registered_losses_refuse_bad_weights(opt: dict, value: float) -> None:
    with pytest.raises(ValueError, match=rf"`loss_weight` of `{opt['type']}`.*finite non-neg"):
        build_loss({**opt, "loss_weight": value})


@pytest.mark.parametrize("value", BAD)
def test_composite_refuses_a_bad_relation_or_base_weight(value: float) -> None:
    with pytest.raises(ValueError, match=r"`loss_weight` of `SampleRelationLoss`"):
        build_loss(
            {
                "type": "ERLCompositeLoss",
                "base": {"type": "L1Loss"},
                "relation": {"bcm": TINY_BCM, "loss_weight": value},
            }
        )
    with pytest.raises(ValueError, match=r"`loss_weight` of `PhaseLoss`"):
        build_loss(
            {
                "type": "ERLCompositeLoss",
                "base": {"type": "PhaseLoss", "loss_weight": value},
                "relation": {"bcm": TINY_BCM},
            }
        )


def test_yaml_nan_and_strings_are_refused_at_construction() -> None:
    opt = yaml.safe_load("type: SampleRelationLoss\nloss_weight: .nan\n")
    with pytest.raises(ValueError, match="got nan"):
        build_loss({**opt, "bcm": TINY_BCM})
    opt = yaml.safe_load("type: PhaseLoss\nloss_weight: 1e-3\n")  # YAML 1.1: a string
    with pytest.raises(TypeError, match=r"`loss_weight` of PhaseLoss to be a number, got '1e-3'"):
        build_loss(opt)


@pytest.mark.parametrize("cls", [vendored.PhaseLoss, vendored.SampleRelationLoss])
@pytest.mark.parametrize("value", BAD)
def test_vendored_losses_refuse_bad_weights(cls: type, value: float) -> None:
    kwargs = {"bcm": TINY_BCM} if cls is vendored.SampleRelationLoss else {}
    with pytest.raises(ValueError, match=rf"`loss_weight` of `{cls.__name__}`"):
        cls(loss_weight=value, **kwargs)


def test_zero_weight_is_allowed() -> None:
    assert build_loss({"type": "PhaseLoss", "loss_weight": 0}).loss_weight == 0.0
