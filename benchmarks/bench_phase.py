"""PhaseLoss on the half spectrum (``rfft2`` + column weights) vs a full-``fft2`` reference.

The reference below is an independent implementation of the paper's eq. 3 -- ``torch.fft.fft2``,
``angle``, L1, mean -- and shares no code with :mod:`erl_losses.functional.phase`. Both run
forward + backward on a ``(4, 3, S, S)`` batch, the library both as shipped (a fused
element-wise node) and unfused. Before any timing all must give the same value (and the same
gradient) to float32 tolerance; the design targets a speed-up of the library over ``fft2`` of
>= 2x on CPU and >= 1.5x on CUDA. ``run_perf.py`` measures it with interleaved rounds.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from erl_losses import phase_loss

BATCH, CHANNELS = 4, 3


def reference_phase_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Eq. 3 on the full 2-D spectrum: ``mean |angle(fft2(pred)) - angle(fft2(target))|``."""
    phase_pred = torch.fft.fft2(pred.float()).angle()
    phase_target = torch.fft.fft2(target.float()).angle()
    return (phase_pred - phase_target).abs().mean()


def _library(fused: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The library's loss with ``ERL_LOSSES_FUSED_PHASE=fused`` for the call (its forward
    decides the path; the setting is restored afterwards)."""

    def loss(pred: Tensor, target: Tensor) -> Tensor:
        previous = os.environ.get("ERL_LOSSES_FUSED_PHASE")
        os.environ["ERL_LOSSES_FUSED_PHASE"] = fused
        try:
            return phase_loss(pred, target, mode="paper")
        finally:
            if previous is None:
                del os.environ["ERL_LOSSES_FUSED_PHASE"]
            else:
                os.environ["ERL_LOSSES_FUSED_PHASE"] = previous

    return loss


library_phase_loss = _library("auto")

#: "rfft2": the library as shipped (fused element-wise node, compiled on CUDA); "rfft2-unfused":
#: ``ERL_LOSSES_FUSED_PHASE=off``, the same node run eagerly (on a CPU the same code as "rfft2";
#: on CUDA the uncompiled bodies); "fft2": the independent full-spectrum reference.
IMPLEMENTATIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "rfft2": library_phase_loss,
    "rfft2-unfused": _library("off"),
    "fft2": reference_phase_loss,
}


def make_inputs(
    size: int, device: torch.device | str = "cpu", seed: int = 0
) -> tuple[Tensor, Tensor]:
    """A seeded ``(4, 3, size, size)`` prediction (a leaf that requires grad) and target."""
    gen = torch.Generator().manual_seed(seed)
    pred = torch.rand(BATCH, CHANNELS, size, size, generator=gen).to(device).requires_grad_()
    target = torch.rand(BATCH, CHANNELS, size, size, generator=gen).to(device)
    return pred, target


def make_step(impl: str, pred: Tensor, target: Tensor) -> Callable[[], None]:
    """One forward + backward of ``impl`` ("rfft2" or "fft2")."""
    fn = IMPLEMENTATIONS[impl]

    def step() -> None:
        pred.grad = None
        fn(pred, target).backward()

    return step


def check_agreement(size: int, device: torch.device | str = "cpu") -> dict[str, float]:
    """Every implementation's value and gradient on the same inputs; raises if they differ.

    Returns the largest absolute value difference from the reference and the largest gradient
    difference relative to the reference's largest gradient entry.
    """
    pred, target = make_inputs(size, device)
    values, grads = {}, {}
    for name, fn in IMPLEMENTATIONS.items():
        pred.grad = None
        loss = fn(pred, target)
        loss.backward()
        values[name] = loss.detach().double().item()
        grads[name] = pred.grad.detach().double().clone()
    grad_scale = grads["fft2"].abs().max().item()
    value_diff = max(abs(values[n] - values["fft2"]) for n in values)
    grad_diff = max((grads[n] - grads["fft2"]).abs().max().item() for n in grads) / grad_scale
    if value_diff > 1e-5 * max(abs(values["fft2"]), 1.0):
        raise AssertionError(f"phase-loss implementations differ at {size}px: {values!r}")
    if grad_diff > 1e-3:
        raise AssertionError(
            f"phase-loss gradients differ at {size}px: max relative {grad_diff:.2e}"
        )
    return {
        "value": values["fft2"],
        "abs_value_diff": value_diff,
        "max_rel_grad_diff": grad_diff,
    }


# -- pytest-benchmark ---------------------------------------------------------------------------
def test_phase_agreement(size: int, device: torch.device) -> None:
    check_agreement(size, device)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_phase_forward_backward(benchmark, impl: str, size: int, device: torch.device) -> None:
    from conftest import synchronize

    check_agreement(size, device)  # never time two implementations that disagree
    benchmark.group = f"phase-loss {size}px fwd+bwd"
    benchmark.extra_info.update({"batch": BATCH, "channels": CHANNELS, "size": size})
    pred, target = make_inputs(size, device)
    step = make_step(impl, pred, target)

    def run() -> None:
        step()
        synchronize(device)

    benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=2)
