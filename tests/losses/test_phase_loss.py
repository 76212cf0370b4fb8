"""PhaseLoss: numpy references, the invariances eq. 3 relies on, gradients, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from erl_losses import PhaseLoss, phase_loss
from erl_losses.functional.phase import rfft_column_weights
from tests._reference import numpy_paper, numpy_wrapped


@pytest.mark.parametrize("size", [(37, 50), (36, 50), (37, 51), (16, 16), (5, 7)])
@pytest.mark.parametrize("channels", [1, 3, 5])
def test_paper_mode_equals_numpy_full_spectrum(size: tuple[int, int], channels: int) -> None:
    rng = np.random.default_rng(1)
    pred = rng.random((2, channels, *size))
    target = rng.random((2, channels, *size))
    expected = numpy_paper(pred, target)
    got = phase_loss(
        torch.from_numpy(pred).float(), torch.from_numpy(target).float(), reduction="none"
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("size", [(37, 50), (32, 33)])
def test_wrapped_mode_equals_numpy(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(2)
    pred, target = rng.random((3, 3, *size)), rng.random((3, 3, *size))
    expected = numpy_wrapped(pred, target)
    got = phase_loss(
        torch.from_numpy(pred).float(),
        torch.from_numpy(target).float(),
        mode="wrapped",
        reduction="none",
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("width", [1, 2, 7, 8, 50, 51])
def test_column_weights_count_the_full_spectrum(width: int) -> None:
    weights = rfft_column_weights(width)
    assert weights.shape == (width // 2 + 1,)
    assert weights.sum().item() == width


@settings(max_examples=25, deadline=None)
@given(
    gain=st.floats(0.05, 20.0),
    mode=st.sampled_from(["paper", "wrapped"]),
    seed=st.integers(0, 2**16),
)
def test_phase_is_unchanged_by_a_positive_gain(gain: float, mode: str, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 24, 31, generator=gen) + 0.05
    assert phase_loss(gain * x, x, mode=mode).item() < 1e-3


def test_a_negative_gain_flips_the_phase() -> None:
    x = torch.rand(1, 3, 24, 24)
    # -x has every phase shifted by pi: the loss must see it (it is not an exposure change).
    assert phase_loss(-x, x, mode="wrapped").item() > 1.0


def _cosine_image(phase: float, height: int = 8, width: int = 16, k: int = 3) -> torch.Tensor:
    n = torch.arange(width, dtype=torch.float64)
    row = 0.5 + 0.25 * torch.cos(2 * math.pi * k * n / width + phase)
    return row.expand(height, width).reshape(1, 1, height, width).float()


def test_wrapped_mode_wraps_at_pi_but_paper_mode_does_not() -> None:
    eps = 0.1
    a, b = _cosine_image(math.pi - eps), _cosine_image(-math.pi + eps)
    bins = a.shape[-1] * a.shape[-2]
    # Only the two bins +-k (row 0) carry the cosine; the DC bins agree; the rest are ~0.
    wrapped = phase_loss(a, b, mode="wrapped").item()
    assert wrapped == pytest.approx(2 * (2 * eps) / bins, rel=1e-3)
    paper = phase_loss(a, b, mode="paper").item()
    assert paper >= 2 * (2 * math.pi - 2 * eps) / bins * 0.999


@pytest.mark.parametrize("mode", ["paper", "wrapped"])
@pytest.mark.parametrize(
    "pred_kind,target_kind",
    [
        ("black", "black"),
        ("white", "white"),
        ("constant", "random"),
        ("random", "black"),
        ("black", "random"),
        ("white", "constant"),
        ("random", "random"),
    ],
)
def test_gradients_are_finite_on_degenerate_images(
    mode: str, pred_kind: str, target_kind: str
) -> None:
    makers = {
        "black": lambda: torch.zeros(2, 3, 17, 20),
        "white": lambda: torch.ones(2, 3, 17, 20),
        "constant": lambda: torch.full((2, 3, 17, 20), 0.37),
        "random": lambda: torch.rand(2, 3, 17, 20),
    }
    pred = makers[pred_kind]().requires_grad_(True)
    loss = phase_loss(pred, makers[target_kind](), mode=mode)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(pred.grad).all()


def test_wrapped_mode_ignores_frequencies_the_target_lacks() -> None:
    flat = torch.full((1, 3, 16, 16), 0.5)
    noisy = flat + 1e-7 * torch.randn_like(flat)
    # Phases of a flat image are rounding noise; they must not count.
    assert phase_loss(noisy, flat, mode="wrapped").item() < 1e-6


@pytest.mark.parametrize("mode", ["paper", "wrapped"])
def test_zero_at_identical_inputs(mode: str) -> None:
    x = torch.rand(3, 3, 20, 21)
    assert phase_loss(x, x.clone(), mode=mode).item() == 0.0


def test_reductions() -> None:
    pred, target = torch.rand(4, 3, 10, 12), torch.rand(4, 3, 10, 12)
    per_sample = phase_loss(pred, target, reduction="none")
    assert per_sample.shape == (4,)
    torch.testing.assert_close(phase_loss(pred, target, reduction="sum"), per_sample.sum())
    torch.testing.assert_close(phase_loss(pred, target), per_sample.mean())


def test_module_equals_function() -> None:
    pred, target = torch.rand(2, 3, 10, 12), torch.rand(2, 3, 10, 12)
    module = PhaseLoss(mode="wrapped", reduction="sum", amp_floor=1e-2)
    expected = phase_loss(pred, target, mode="wrapped", reduction="sum", amp_floor=1e-2)
    torch.testing.assert_close(module(pred, target), expected)
    assert "wrapped" in repr(module)


def test_float64_and_half_inputs_compute_in_float32() -> None:
    x64 = torch.rand(2, 3, 12, 12, dtype=torch.float64)
    y64 = torch.rand(2, 3, 12, 12, dtype=torch.float64)
    assert phase_loss(x64, y64).dtype == torch.float32
    assert phase_loss(x64.half(), y64.half()).dtype == torch.float32


def test_autocast_bfloat16_is_close_to_float32() -> None:
    pred = torch.rand(2, 3, 30, 30, requires_grad=True)
    target = torch.rand(2, 3, 30, 30)
    reference = phase_loss(pred, target, mode="wrapped")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred_bf16 = pred.bfloat16()
        loss = phase_loss(pred_bf16, target.bfloat16(), mode="wrapped")
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(reference.item(), rel=0.05)
    loss.backward()
    assert torch.isfinite(pred.grad).all()


@pytest.mark.parametrize(
    "pred,target,error,match",
    [
        (torch.rand(3, 8, 8), torch.rand(3, 8, 8), ValueError, r"`pred` of shape \(B, C, H, W\)"),
        (torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), ValueError, "same shape"),
        (
            torch.zeros(1, 3, 8, 8, dtype=torch.uint8),
            torch.rand(1, 3, 8, 8),
            TypeError,
            "floating-point",
        ),
        (torch.rand(0, 3, 8, 8), torch.rand(0, 3, 8, 8), ValueError, "empty batch"),
        (torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8, device="meta"), ValueError, "same device"),
        ([[0.0]], torch.rand(1, 3, 8, 8), TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_is_named(pred, target, error, match) -> None:
    with pytest.raises(error, match=match):
        phase_loss(pred, target)


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="`mode`"):
        PhaseLoss(mode="full")
    with pytest.raises(ValueError, match="`reduction`"):
        PhaseLoss(reduction="avg")
    with pytest.raises(ValueError, match="`amp_floor`"):
        PhaseLoss(amp_floor=0.0)


def test_nonfinite_check_is_opt_in() -> None:
    bad = torch.rand(1, 3, 8, 8)
    bad[0, 0, 0, 0] = float("nan")
    assert torch.isnan(phase_loss(bad, torch.rand(1, 3, 8, 8)))
    with pytest.raises(ValueError, match="finite"):
        phase_loss(bad, torch.rand(1, 3, 8, 8), check_nonfinite=True)
