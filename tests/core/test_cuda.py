"""CUDA checks: run on a GPU machine, skipped elsewhere (the suite never needs a GPU)."""

from __future__ import annotations

import pytest
import torch

from erl_losses import BatchCorrelationModule, SampleRelationLoss, phase_loss

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture
def relation() -> SampleRelationLoss:
    return SampleRelationLoss(BatchCorrelationModule()).cuda()


@pytest.mark.parametrize("size", [(256, 256), (255, 257)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_phase_loss_under_autocast_matches_float32(size, dtype) -> None:
    pred = torch.rand(4, 3, *size, device="cuda", requires_grad=True)
    target = torch.rand(4, 3, *size, device="cuda")
    reference = phase_loss(pred, target, mode="wrapped")
    with torch.autocast("cuda", dtype=dtype):
        # Non-power-of-two sizes would fail in cuFFT half precision: the FFT must stay float32.
        loss = phase_loss(pred.to(dtype), target.to(dtype), mode="wrapped")
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=0.05)
    loss.backward()
    assert torch.isfinite(pred.grad).all()


def test_phase_loss_cuda_equals_cpu() -> None:
    pred, target = torch.rand(2, 3, 37, 50), torch.rand(2, 3, 37, 50)
    for mode in ("paper", "wrapped"):
        cpu = phase_loss(pred, target, mode=mode)
        gpu = phase_loss(pred.cuda(), target.cuda(), mode=mode)
        assert gpu.item() == pytest.approx(cpu.item(), rel=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_relation_under_autocast(relation: SampleRelationLoss, dtype) -> None:
    pred = torch.rand(4, 3, 256, 256, device="cuda", requires_grad=True)
    gt = torch.rand(4, 3, 256, 256, device="cuda")
    reference = relation(pred, gt)
    with torch.autocast("cuda", dtype=dtype):
        loss = relation(pred, gt)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=1e-4)
    loss.backward()
    assert torch.isfinite(pred.grad).all()


def test_relation_cuda_equals_cpu() -> None:
    bcm = BatchCorrelationModule()
    relation = SampleRelationLoss(bcm)
    pred, gt = torch.rand(4, 3, 96, 96), torch.rand(4, 3, 96, 96)
    cpu = relation(pred, gt).item()
    relation.cuda()
    assert relation.bcm.fuse.weight.is_cuda
    assert relation(pred.cuda(), gt.cuda()).item() == pytest.approx(cpu, rel=1e-3)


def test_relation_with_torch_compile_inductor(relation: SampleRelationLoss) -> None:
    compiled = torch.compile(relation)
    pred = torch.rand(4, 3, 128, 128, device="cuda", requires_grad=True)
    gt = torch.rand(4, 3, 128, 128, device="cuda")
    value = compiled(pred, gt)
    value.backward()
    assert value.item() == pytest.approx(relation(pred, gt).item(), rel=1e-3)
    assert torch.isfinite(pred.grad).all()


def test_cuda_input_with_cpu_bcm_is_named() -> None:
    relation = SampleRelationLoss(BatchCorrelationModule())
    x = torch.rand(2, 3, 32, 32, device="cuda")
    with pytest.raises(ValueError, match="BCM's device"):
        relation(x, x)
