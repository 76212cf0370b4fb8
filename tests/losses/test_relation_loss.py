"""SampleRelationLoss: frozen BCM, gradients only to pred, the relation, bad input."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from erl_losses import BatchCorrelationModule, SampleRelationLoss, sample_relation_loss
from tests._helpers import TINY_BCM


@pytest.fixture
def relation(tiny_bcm: BatchCorrelationModule) -> SampleRelationLoss:
    return SampleRelationLoss(tiny_bcm)


def test_zero_at_pred_equal_gt_and_positive_otherwise(relation: SampleRelationLoss) -> None:
    gt = torch.rand(4, 3, 24, 24)
    assert relation(gt.clone(), gt).item() == 0.0
    assert relation(torch.rand(4, 3, 24, 24), gt).item() > 0.0


def test_gradients_reach_pred_only(relation: SampleRelationLoss) -> None:
    pred = torch.rand(4, 3, 24, 24, requires_grad=True)
    gt = torch.rand(4, 3, 24, 24, requires_grad=True)
    relation(pred, gt).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert pred.grad.abs().sum() > 0
    assert gt.grad is None
    assert all(p.grad is None for p in relation.bcm.parameters())


def test_the_bcm_is_frozen_hidden_and_stays_in_eval(relation: SampleRelationLoss) -> None:
    assert list(relation.parameters()) == []
    assert relation.state_dict() == {}
    assert not any(p.requires_grad for p in relation.bcm.parameters())
    relation.train()
    assert relation.training and not relation.bcm.training
    pred, gt = torch.rand(3, 3, 24, 24), torch.rand(3, 3, 24, 24)
    assert relation(pred, gt).item() == relation(pred, gt).item()


def test_to_moves_the_hidden_bcm(relation: SampleRelationLoss) -> None:
    relation.double()
    assert relation.bcm.fuse.weight.dtype == torch.float64
    pred = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    gt = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda p: sample_relation_loss(p, gt, relation.bcm, reduction="none"),
        (pred,),
        eps=1e-6,
        atol=1e-4,
        fast_mode=True,
    )


def test_the_relation_crosses_the_batch(relation: SampleRelationLoss) -> None:
    """Sample 0's loss and gradient depend on sample 1, the paper's whole point."""
    pred = torch.rand(4, 3, 24, 24, requires_grad=True)
    gt = torch.rand(4, 3, 24, 24)
    per_sample = SampleRelationLoss(relation.bcm, reduction="none")
    first = per_sample(pred, gt)[0]
    (grad_before,) = torch.autograd.grad(first, pred)
    other = pred.detach().clone()
    other[1] = torch.rand(3, 24, 24)
    other.requires_grad_(True)
    second = per_sample(other, gt)[0]
    (grad_after,) = torch.autograd.grad(second, other)
    assert not torch.isclose(first, second)
    assert not torch.allclose(grad_before[0], grad_after[0])
    # ... and the gradient of sample 0's loss reaches sample 1 itself.
    assert grad_before[1].abs().sum() > 0


@settings(max_examples=10, deadline=None)
@given(perm=st.permutations(list(range(4))))
def test_the_loss_is_invariant_to_permuting_the_batch(perm: list[int]) -> None:
    torch.manual_seed(0)
    loss = SampleRelationLoss(BatchCorrelationModule(**TINY_BCM), reduction="none")
    pred, gt = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    index = torch.tensor(perm)
    torch.testing.assert_close(loss(pred[index], gt[index]), loss(pred, gt)[index])


def test_reductions(tiny_bcm: BatchCorrelationModule) -> None:
    pred, gt = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
    none = SampleRelationLoss(tiny_bcm, reduction="none")(pred, gt)
    assert none.shape == (3,)
    torch.testing.assert_close(SampleRelationLoss(tiny_bcm, reduction="sum")(pred, gt), none.sum())
    torch.testing.assert_close(SampleRelationLoss(tiny_bcm)(pred, gt), none.mean())
    with pytest.raises(ValueError, match="`reduction`"):
        SampleRelationLoss(tiny_bcm, reduction="batchmean")


def test_batch_of_one_warns_once(relation: SampleRelationLoss) -> None:
    x = torch.rand(1, 3, 16, 16)
    with pytest.warns(UserWarning, match="batch of 1"):
        relation(x, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        relation(x, x)


@pytest.mark.parametrize(
    "pred,gt,error,match",
    [
        (torch.rand(3, 16, 16), torch.rand(3, 16, 16), ValueError, r"`pred` of shape"),
        (torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 20), ValueError, "same shape"),
        (torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16), ValueError, "3 channels, got 1"),
        (
            torch.randint(0, 255, (2, 3, 16, 16)),
            torch.rand(2, 3, 16, 16),
            TypeError,
            "floating-point",
        ),
        (torch.rand(0, 3, 16, 16), torch.rand(0, 3, 16, 16), ValueError, "empty batch"),
        (
            torch.rand(2, 3, 16, 16),
            torch.rand(2, 3, 16, 16, device="meta"),
            ValueError,
            "same device",
        ),
        (torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6), ValueError, "at least 8"),
    ],
)
def test_bad_input_is_named(relation: SampleRelationLoss, pred, gt, error, match) -> None:
    with pytest.raises(error, match=match):
        relation(pred, gt)


def test_pred_on_another_device_than_the_bcm_is_named(relation: SampleRelationLoss) -> None:
    meta = torch.rand(2, 3, 16, 16, device="meta")
    with pytest.raises(ValueError, match=r"BCM's device.*\.to\(device\)"):
        relation(meta, meta)


def test_a_wrong_bcm_type_is_named() -> None:
    with pytest.raises(TypeError, match="`bcm`"):
        SampleRelationLoss(bcm=torch.nn.Linear(2, 2))


def test_nonfinite_check_is_opt_in(tiny_bcm: BatchCorrelationModule) -> None:
    bad = torch.rand(2, 3, 16, 16)
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="finite"):
        SampleRelationLoss(tiny_bcm, check_nonfinite=True)(bad, torch.rand(2, 3, 16, 16))


def test_autocast_bfloat16_is_close_to_float32(default_bcm: BatchCorrelationModule) -> None:
    relation = SampleRelationLoss(default_bcm)
    pred = torch.rand(4, 3, 64, 64, requires_grad=True)
    gt = torch.rand(4, 3, 64, 64)
    reference = relation(pred, gt)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = relation(pred, gt)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-4)
    loss.backward()
    assert torch.isfinite(pred.grad).all()


@pytest.mark.parametrize("kind", ["black", "white", "constant"])
def test_gradients_are_finite_on_degenerate_images(relation: SampleRelationLoss, kind) -> None:
    value = {"black": 0.0, "white": 1.0, "constant": 0.4}[kind]
    pred = torch.full((3, 3, 16, 16), value, requires_grad=True)
    relation(pred, torch.rand(3, 3, 16, 16)).backward()
    assert torch.isfinite(pred.grad).all()


def test_works_under_torch_compile(relation: SampleRelationLoss) -> None:
    compiled = torch.compile(relation, backend="aot_eager", fullgraph=False)
    pred = torch.rand(3, 3, 16, 16, requires_grad=True)
    gt = torch.rand(3, 3, 16, 16)
    value = compiled(pred, gt)
    value.backward()
    torch.testing.assert_close(value, relation(pred, gt))
    assert torch.isfinite(pred.grad).all()


class _Trainer(torch.nn.Module):
    """A model holding the loss, as trainers do."""

    def __init__(self, relation: SampleRelationLoss) -> None:
        super().__init__()
        self.net = torch.nn.Conv2d(3, 3, 1)
        self.relation = relation


def test_to_empty_keeps_the_frozen_bcm(tiny_bcm: BatchCorrelationModule) -> None:
    """to_empty() then load_state_dict(): the BCM (outside the state_dict) keeps its values."""
    model = _Trainer(SampleRelationLoss(tiny_bcm))
    pred, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    before = model.relation(pred, gt)
    weights = {k: v.clone() for k, v in tiny_bcm.state_dict().items()}
    state = model.state_dict()
    model.to_empty(device="cpu")
    model.load_state_dict(state)
    after = model.relation.bcm.state_dict()
    assert all(torch.equal(after[k], v) for k, v in weights.items())
    assert torch.equal(model.relation(pred, gt), before)


@pytest.mark.parametrize(
    "transform",
    [
        lambda m: m.half(),
        lambda m: m.bfloat16(),
        lambda m: m.double(),
        lambda m: m.to(torch.float64),
        lambda m: m.share_memory(),
        lambda m: m.float(),
    ],
)
def test_module_transformations_keep_the_bcm_values(tiny_bcm, transform) -> None:
    weights = {k: v.clone() for k, v in tiny_bcm.state_dict().items()}
    relation = SampleRelationLoss(tiny_bcm)
    transform(_Trainer(relation))
    for key, value in relation.bcm.state_dict().items():
        torch.testing.assert_close(value.double(), weights[key].double(), rtol=1e-2, atol=1e-3)
    assert not any(p.requires_grad for p in relation.bcm.parameters())


def test_share_memory_shares_the_bcm(tiny_bcm) -> None:
    relation = SampleRelationLoss(tiny_bcm)
    relation.share_memory()
    assert all(p.is_shared() for p in relation.bcm.parameters())


def test_a_bcm_on_meta_cannot_be_materialised_and_says_why(tiny_bcm) -> None:
    relation = SampleRelationLoss(tiny_bcm).to("meta")
    assert relation.bcm.device.type == "meta"
    with pytest.raises(RuntimeError, match=r"meta device.*state_dict"):
        relation.to_empty(device="cpu")


def test_the_loss_moves_its_bcm_to_the_inputs_device(tiny_bcm, monkeypatch) -> None:
    """The move logic without a GPU: inputs on another device than the BCM move the loss there
    once (its dtype kept); tests/losses/test_cuda.py runs it for real."""
    relation = SampleRelationLoss(tiny_bcm)
    moves: list[object] = []
    elsewhere = torch.device("meta")
    monkeypatch.setattr(type(tiny_bcm), "device", property(lambda self: elsewhere))

    def fake_to(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal elsewhere
        moves.append(args)
        elsewhere = torch.device("cpu")  # where it now is
        return self

    monkeypatch.setattr(SampleRelationLoss, "to", fake_to)
    x = torch.rand(2, 3, 16, 16)
    relation(x, x)
    relation(x, x)
    assert moves == [(x.device,)]
    assert relation.bcm.fuse.weight.dtype == torch.float32


def test_the_functional_names_pred_and_target_on_a_device_mismatch(tiny_bcm) -> None:
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"`pred` and `target` on the BCM's device meta"):
        sample_relation_loss(x, x, tiny_bcm.to("meta"))
