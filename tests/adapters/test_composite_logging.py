"""``ERLCompositeLoss`` reports ``l_base`` and ``l_relation`` in the log of the model that calls it.

A stock model logs only what its training step passes to ``self.reduce_loss_dict``: the loss
adds its two terms there, with no edit to the model. Checked in-process on a model shaped like
BasicSR's (the registry-free class and the registered one) and end to end with pip basicsr's
stock ``SRModel``; the vendored route's end-to-end run is in ``test_vendored.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import erl_losses.adapters.basicsr as adapter
from erl_losses.adapters import vendored
from erl_losses.adapters.basicsr.losses import ERLCompositeLoss as RegisteredComposite
from tests._helpers import TINY_BCM


class _HostL1(nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(pred, target)


class _Composite(vendored.ERLCompositeLoss):
    """The registry-free class with a base that needs no host module."""

    def build_base(self, opt: dict) -> nn.Module:
        return _HostL1()


class _Model:
    """The two methods of a BasicSR model that logging involves."""

    def __init__(self, criterion: nn.Module) -> None:
        self.cri_pix = criterion
        self.log_dict: OrderedDict[str, float] = OrderedDict()

    def reduce_loss_dict(self, loss_dict: dict) -> OrderedDict[str, float]:
        return OrderedDict((k, v.mean().item()) for k, v in loss_dict.items())

    def optimize_parameters(self, outputs: list[torch.Tensor], gt: torch.Tensor) -> None:
        l_pix = 0.0
        for pred in outputs:  # multi-output nets sum the criterion over their outputs
            l_pix = l_pix + self.cri_pix(pred, gt)
        self.log_dict = self.reduce_loss_dict(OrderedDict(l_pix=l_pix))


def _batch(count: int = 1) -> tuple[list[torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)
    return [torch.rand(4, 3, 16, 16) for _ in range(count)], torch.rand(4, 3, 16, 16)


@pytest.mark.parametrize("outputs", [1, 2])
def test_the_model_log_gains_both_terms(outputs: int) -> None:
    loss = _Composite(base={"type": "L1"}, relation={"bcm": dict(TINY_BCM)})
    model = _Model(loss)
    preds, gt = _batch(outputs)
    for _ in range(2):  # the second step goes through the wrapped method found on the first
        model.optimize_parameters(preds, gt)
        assert list(model.log_dict) == ["l_pix", "l_base", "l_relation"]
        log = model.log_dict
        assert log["l_pix"] == pytest.approx(log["l_base"] + log["l_relation"], rel=1e-5)
        relation = sum(loss.relation(p, gt) for p in preds)
        assert log["l_relation"] == pytest.approx(float(relation), rel=1e-5)
    # A reduction without a loss call in between (a GAN's discriminator-only step) adds nothing.
    assert list(model.reduce_loss_dict({"l_d": torch.tensor(1.0)})) == ["l_d"]


def test_a_wrapper_criterion_is_passed_and_log_terms_false_adds_nothing() -> None:
    class Wrapper(nn.Module):  # e.g. a model's own criterion around the composite
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
            return self.inner(pred, gt)

    preds, gt = _batch()
    model = _Model(Wrapper(_Composite(base={"type": "L1"}, relation={"bcm": dict(TINY_BCM)})))
    model.optimize_parameters(preds, gt)
    assert "l_relation" in model.log_dict

    quiet = _Model(
        _Composite(base={"type": "L1"}, relation={"bcm": dict(TINY_BCM)}, log_terms=False)
    )
    quiet.optimize_parameters(preds, gt)
    assert list(quiet.log_dict) == ["l_pix"]
    assert "reduce_loss_dict" not in vars(quiet)
    with pytest.raises(TypeError, match=r"`log_terms`.*got 'yes'"):
        _Composite(base={"type": "L1"}, relation={"bcm": dict(TINY_BCM)}, log_terms="yes")


def test_a_plain_loop_reads_last_terms() -> None:
    loss = _Composite(base={"type": "L1"}, relation={"bcm": dict(TINY_BCM)})
    preds, gt = _batch()
    total = loss(preds[0], gt)
    assert set(loss.last_terms) == {"base", "relation"}
    torch.testing.assert_close(total.detach(), sum(loss.last_terms.values()))


def test_the_registered_class_reports_through_basicsr_reduce_loss_dict() -> None:
    from basicsr.models.base_model import BaseModel

    class Stock(BaseModel):
        def __init__(self, criterion: nn.Module) -> None:  # no networks: only the logging path
            self.opt = {"dist": False}
            self.cri_pix = criterion

        def optimize_parameters(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
            l_pix = self.cri_pix(pred, gt)
            self.log_dict = self.reduce_loss_dict(OrderedDict(l_pix=l_pix))

    loss = RegisteredComposite(base={"type": "L1Loss"}, relation={"bcm": dict(TINY_BCM)})
    model = Stock(loss)
    preds, gt = _batch()
    model.optimize_parameters(preds[0], gt)
    assert list(model.log_dict) == ["l_pix", "l_base", "l_relation"]


@pytest.mark.slow
def test_stock_srmodel_logs_base_and_relation(tmp_path: Path) -> None:
    """pip basicsr's own SRModel and MessageLogger: the shipped tiny option file, 2 iterations."""
    tiny = next(p for p in adapter.option_files() if p.stem == "tiny_cpu_synthetic")
    train = Path(sys.executable).parent / "erl-basicsr-train"
    done = subprocess.run(
        [
            str(train),
            "-opt",
            str(tiny),
            "--force_yml",
            "train:total_iter=2",
            "logger:print_freq=1",
            "logger:save_checkpoint_freq=100",
            "val:val_freq=100",
        ],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    log = next((tmp_path / "experiments").rglob("train_*.log")).read_text()
    lines = re.findall(r"l_pix: (\S+) l_base: (\S+) l_relation: (\S+)", log)
    assert len(lines) == 2, log[-2000:]
    for pix, base, relation in lines:
        assert float(relation) > 0
        assert float(pix) == pytest.approx(float(base) + float(relation), rel=1e-2)
