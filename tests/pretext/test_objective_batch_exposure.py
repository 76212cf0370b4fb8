"""The batch-context pretext objective (ours, not the paper's): pretext="batch_exposure"."""

from __future__ import annotations

import torch

from erl_losses import BatchCorrelationModule
from erl_losses.pretext.objective_batch_exposure import batch_exposure_targets
from erl_losses.pretext.objectives import get_objective
from tests._helpers import TINY_BCM


def _batch(n: int = 4, size: int = 16) -> torch.Tensor:
    return (0.3 + 0.2 * torch.rand(n, 3, size, size)).clamp(0, 1)


def test_registered_as_an_extension() -> None:
    objective = get_objective("batch_exposure")
    assert objective.trains_relation and not objective.paper
    assert "ours" in objective.description


def test_targets_are_the_batch_at_one_shared_exposure() -> None:
    batch = _batch(1).expand(4, -1, -1, -1).contiguous()
    inputs, targets = batch_exposure_targets(batch)
    # Identical images at different exposures go in; one and the same image must come out.
    assert (inputs[0] - inputs[1]).abs().max() > 1e-3
    assert torch.allclose(targets, targets[:1].expand_as(targets), atol=1e-6)


def test_draws_are_reproducible_for_a_batch() -> None:
    batch = _batch()
    first, second = batch_exposure_targets(batch), batch_exposure_targets(batch.clone())
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_loss_trains_the_relation() -> None:
    bcm = BatchCorrelationModule(**TINY_BCM)
    bcm.requires_grad_(False)
    for p in bcm.relation_parameters():
        p.requires_grad_(True)
    loss = get_objective("batch_exposure").loss(bcm, _batch())
    loss.backward()
    assert loss.ndim == 0 and bcm.t_e.in_proj.weight.grad.abs().sum() > 0
