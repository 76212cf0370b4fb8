"""erl_losses.training: the warm-up + cosine schedule, the weight EMA and the net-training loop."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
from torch import Tensor

from erl_losses import BatchCorrelationModule, SampleRelationLoss
from erl_losses.training import (
    curve_steps,
    ema_decay_at,
    ema_model,
    quantised_psnr,
    train_net,
    warmup_cosine,
)
from tests._helpers import TINY_BCM


class ToyPairs:
    """A torch-only PairSource: dark inputs whose GT is twice as bright (a learnable mapping)."""

    def __init__(self, count: int = 8, size: int = 24) -> None:
        generator = torch.Generator().manual_seed(0)
        self.gt = torch.rand(count, 3, size, size, generator=generator) * 0.8 + 0.1
        self.lq = self.gt / 2
        self.groups = ["under", "over"] * (count // 2)
        self.device = torch.device("cpu")
        self.image_size = (size, size)

    def batch(
        self, indices: Sequence[int], crop: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        top, left = torch.randint(0, self.image_size[0] - crop + 1, (2,), generator=generator)
        window = (list(indices), slice(None), slice(top, top + crop), slice(left, left + crop))
        return self.lq[window], self.gt[window]


def test_warmup_cosine_follows_the_formula() -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
    scheduler = warmup_cosine(optimizer, 10, warmup_steps=2, min_ratio=0.1)
    rates = []
    for _ in range(12):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:2] == pytest.approx([1.0, 2.0])  # linear warm-up: 1/2, 2/2 of the peak
    progress = [(s - 2) / 8 for s in range(2, 12)]
    expected = [2.0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1, p)))) for p in progress]
    assert rates[2:] == pytest.approx(expected)
    with pytest.raises(ValueError, match="Expected `total_steps` to be a positive int"):
        warmup_cosine(optimizer, 0, warmup_steps=1)


def test_ema_matches_a_hand_computed_average() -> None:
    net = torch.nn.Linear(2, 1, bias=False)
    values = [torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0]]), torch.tensor([[5.0, 4.0]])]
    ema = ema_model(net, decay=0.5)
    expected = None
    for count, value in enumerate(values):
        with torch.no_grad():
            net.weight.copy_(value)
        ema.update_parameters(net)
        # The first update copies; later ones lerp with the ramped decay.
        d = ema_decay_at(count, 0.5) if count else 0.0
        expected = value if expected is None else d * expected + (1 - d) * value
    torch.testing.assert_close(ema.module.weight, expected)
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(10**6, 0.999) == 0.999
    with pytest.raises(ValueError, match=r"Expected `ema_decay` in \[0, 1\), got 1.0"):
        ema_model(net, 1.0)


def test_curve_steps() -> None:
    assert curve_steps(10, 2) == [0, 5, 10]
    assert curve_steps(3, 10) == [0, 1, 2, 3]


def test_quantised_psnr_of_identity_is_the_8bit_rounding_error() -> None:
    x = torch.rand(4, 3, 8, 8)
    mse = (x.mul(255).round().div(255) - x).pow(2).flatten(1).mean(1)
    expected = float((-10 * torch.log10(mse)).mean())
    assert quantised_psnr(torch.nn.Identity(), x, x) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_train_net_pairs_runs_by_seed_and_learns() -> None:
    source = ToyPairs()
    curve = (source.lq, source.gt)
    kwargs = {"steps": 30, "crop_size": 16, "lr": 3e-3, "curve_set": curve, "curve_points": 3}
    first = train_net("ECLNet", source, seed=3, progress=False, **kwargs)
    again = train_net("ECLNet", source, seed=3, progress=False, **kwargs)
    relation = SampleRelationLoss(BatchCorrelationModule(**TINY_BCM).eval())
    erl = train_net(
        "ECLNet", source, seed=3, relation=relation, alpha=10.0, progress=False, **kwargs
    )
    # Same seed, same loss: identical weights; with the relation term: different weights.
    for a, b in zip(first.net.parameters(), again.net.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(first.net.parameters(), erl.net.parameters(), strict=True)
    )
    assert [p["step"] for p in first.curve] == [0, 10, 20, 30]
    assert first.curve[0] == erl.curve[0]  # same initial weights
    assert first.curve[-1]["psnr"] > first.curve[0]["psnr"] + 1.0  # it learns the brightening
    assert all(p["relation"] == 0.0 for p in first.losses)
    assert all(p["relation"] > 0.0 for p in erl.losses)
    assert not first.net.training


def test_train_net_evaluates_the_ema_or_the_last_weights() -> None:
    source = ToyPairs(count=4, size=16)
    raw = train_net("ECLNet", source, steps=3, crop_size=16, ema_decay=None, progress=False)
    ema = train_net("ECLNet", source, steps=3, crop_size=16, ema_decay=0.9, progress=False)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(raw.net.parameters(), ema.net.parameters(), strict=True)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "Expected `steps` to be a positive int, got 0"),
        ({"crop_size": 64}, r"Expected `crop_size` <= the images' size \(16, 16\), got 64"),
        ({"lr": 0.0}, "Expected `lr` > 0, got 0.0"),
        ({"alpha": -1.0}, "Expected `alpha` to be a finite non-negative number"),
        ({"ema_decay": 1.5}, r"Expected `ema_decay` in \[0, 1\)"),
    ],
)
def test_train_net_rejects_bad_arguments(kwargs, message) -> None:
    arguments = {"steps": 1, "crop_size": 16, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        train_net("ECLNet", ToyPairs(count=4, size=16), **arguments)
