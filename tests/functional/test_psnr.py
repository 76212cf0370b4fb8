"""The one tensor PSNR (erl_losses.functional.psnr)."""

from __future__ import annotations

import math

import pytest
import torch

from erl_losses.functional import psnr


def test_psnr_matches_the_definition():
    torch.manual_seed(0)
    target = torch.rand(3, 3, 8, 8)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    mse = (pred - target).square().flatten(1).mean(1)
    expected = [10 * math.log10(1 / float(m)) for m in mse]
    torch.testing.assert_close(psnr(pred, target), torch.tensor(expected), rtol=0, atol=1e-4)


def test_psnr_data_range_255_and_identical_images():
    x = torch.full((1, 3, 4, 4), 100.0)
    assert float(psnr(x + 1, x, data_range=255)) == pytest.approx(10 * math.log10(255**2), abs=1e-4)
    assert float(psnr(x / 255, x / 255)) == pytest.approx(120.0)


def test_psnr_errors_name_the_argument():
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, torch.rand(1, 3, 4, 5))
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0)
    with pytest.raises(TypeError, match="pred"):
        psnr([x], x)
