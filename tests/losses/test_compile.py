"""The losses under ``torch.compile`` on CPU, whole-graph (``fullgraph=True``: no graph breaks).

``aot_eager`` traces exactly what inductor would compile (Dynamo + AOTAutograd, forward and
backward graphs) without generating C++; one inductor run checks the generated code itself.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from erl_losses import BatchCorrelationModule, PhaseLoss, SampleRelationLoss
from tests._helpers import TINY_BCM


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> None:
    torch._dynamo.reset()


def _value_and_grad(fn, pred: torch.Tensor, target: torch.Tensor):  # type: ignore[no-untyped-def]
    pred = pred.detach().clone().requires_grad_()
    value = fn(pred, target)
    value.backward()
    return value.detach(), pred.grad


def _inputs(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen), torch.rand(shape, generator=gen)


@pytest.mark.parametrize("mode", ["paper", "wrapped"])
@pytest.mark.parametrize("size", [(32, 40), (31, 33)])
def test_phase_loss_compiles_whole(mode: str, size: tuple[int, int]) -> None:
    loss = PhaseLoss(mode=mode)
    pred, target = _inputs((2, 3, *size))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
        got = _value_and_grad(compiled, pred, target)
    assert not [w for w in caught if "lru_cache" in str(w.message)]
    want = _value_and_grad(loss, pred, target)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["paper", "centred"])
def test_relation_loss_compiles_whole(variant: str) -> None:
    torch.manual_seed(0)
    loss = SampleRelationLoss(BatchCorrelationModule(**TINY_BCM), variant=variant)
    pred, target = _inputs((4, 3, 32, 32))
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    got = _value_and_grad(compiled, pred, target)
    want = _value_and_grad(loss, pred, target)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=1e-8)


@pytest.mark.slow
def test_relation_loss_with_cuda_graphs_compiles_whole_on_cpu() -> None:
    torch.manual_seed(0)
    loss = SampleRelationLoss(BatchCorrelationModule(**TINY_BCM), cuda_graphs=True)
    pred, target = _inputs((4, 3, 32, 32))
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(pred, target), loss(pred, target))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Torchinductor does not support code generation for complex")
def test_phase_loss_with_inductor() -> None:
    """Generated C++ code (the CPU twin of the GPU's Triton path), forward and backward."""
    loss = PhaseLoss(mode="wrapped")
    pred, target = _inputs((2, 3, 24, 30))
    got = _value_and_grad(torch.compile(loss, fullgraph=True), pred, target)
    want = _value_and_grad(loss, pred, target)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=1e-7)
