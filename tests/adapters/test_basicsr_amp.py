"""``train.amp: bf16`` in ERLModel: the training forward is bfloat16, everything else float32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from basicsr.utils.registry import MODEL_REGISTRY
from torch import nn

import erl_losses.adapters.basicsr  # noqa: F401  -- registers ERLModel and the losses
from erl_losses.adapters.basicsr.amp import amp_dtype, autocast_forwards
from tests._helpers import TINY_BCM, erl_model_opt

RELATION = {"type": "SampleRelationLoss", "loss_weight": 0.1, "bcm": TINY_BCM}


def _opt(tmp_path: Path, **train: object) -> dict:
    return erl_model_opt(tmp_path, {"relation_opt": RELATION, **train}, name="amp")


def _step(model) -> dict:
    torch.manual_seed(0)
    model.feed_data({"lq": torch.rand(4, 3, 24, 24), "gt": torch.rand(4, 3, 24, 24)})
    model.optimize_parameters(1)
    return model.get_current_log()


@pytest.mark.parametrize(
    "train",
    [
        {"pixel_opt": {"type": "L1Loss", "loss_weight": 1.0}},
        {"net_loss_opt": {"type": "ECLNetLoss", "augment": False}},
    ],
    ids=["pixel_opt", "net_loss_opt"],
)
def test_bf16_trains_the_forward_in_bf16_and_keeps_weights_and_validation_float32(
    tmp_path: Path, train: dict
) -> None:
    model = MODEL_REGISTRY.get("ERLModel")(_opt(tmp_path, amp="bf16", **train))
    before = [p.detach().clone() for p in model.net_g.parameters()]
    log = _step(model)
    assert model.output.dtype == torch.bfloat16  # the training forward ran under autocast
    assert not torch.is_autocast_enabled("cpu")  # and the region closed with the step
    assert all(torch.isfinite(torch.tensor(v)) for v in log.values())
    assert log["l_relation"] > 0
    after = list(model.net_g.parameters())
    assert all(p.dtype == torch.float32 for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    model.test()  # validation: no grad, so no autocast
    assert model.output.dtype == torch.float32


def test_without_amp_the_forward_is_float32(tmp_path: Path) -> None:
    model = MODEL_REGISTRY.get("ERLModel")(
        _opt(tmp_path, amp=False, pixel_opt={"type": "L1Loss", "loss_weight": 1.0})
    )
    _step(model)
    assert model.output.dtype == torch.float32


@pytest.mark.parametrize(
    ("value", "match"),
    [("fp16", "needs loss scaling"), ("yes", "bf16 or false, got 'yes'"), (1, "got 1")],
)
def test_other_amp_values_are_refused_before_anything_is_built(value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        amp_dtype({"amp": value})
    assert amp_dtype({}) is None and amp_dtype({"amp": "BF16"}) is torch.bfloat16


def test_the_region_closes_when_a_forward_raises() -> None:
    class Failing(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    class Model:
        def __init__(self) -> None:
            self.net_g = Failing()
            self.other = nn.Linear(2, 2)  # neither net_* nor cri_*: not hooked

    model = Model()
    handles = autocast_forwards(model, torch.device("cpu"), torch.bfloat16)
    assert len(handles) == 2  # pre- and post-hook of net_g only
    with pytest.raises(RuntimeError, match="boom"):
        model.net_g(torch.ones(1))
    assert not torch.is_autocast_enabled("cpu")
    assert model.other(torch.ones(2)).dtype == torch.float32
    for handle in handles:
        handle.remove()
