"""The fused phase-loss node: gradcheck, equality with the unfused graph and with numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from erl_losses import phase_loss
from erl_losses.functional.phase_fused import fused_phase_distance
from tests.core._reference import numpy_paper, numpy_wrapped

SIZES = [(5, 7), (6, 8), (37, 50), (36, 51), (16, 16)]


def _both_paths(monkeypatch, pred, target, **kw):
    """Value and gradient of ``phase_loss`` through the unfused graph and the fused node."""
    out = {}
    for setting in ("off", "auto"):
        monkeypatch.setenv("ERL_LOSSES_FUSED_PHASE", setting)
        pred.grad = None
        loss = phase_loss(pred, target, **kw)
        loss.sum().backward()
        out[setting] = (loss.detach(), pred.grad.clone())
    return out["off"], out["auto"]


@pytest.mark.parametrize("mode", ["paper", "wrapped"])
def test_gradcheck_float64(mode: str) -> None:
    gen = torch.Generator().manual_seed(0)
    shape = (2, 2, 4, 3)
    # Planes away from the origin and from equal angles: the loss is smooth there.
    p_re, p_im, t_re, t_im = (
        torch.rand(shape, generator=gen, dtype=torch.float64) + 0.2 for _ in range(4)
    )
    t_im = -t_im
    weights = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    p_re.requires_grad_()
    p_im.requires_grad_()
    eps2 = 1e-30 if mode == "paper" else 1e-12

    def fn(re, im):
        return fused_phase_distance(re, im, t_re, t_im, weights, mode, eps2, 1e-6)

    assert torch.autograd.gradcheck(fn, (p_re, p_im), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["paper", "wrapped"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_fused_is_bit_identical_to_the_unfused_graph(monkeypatch, size, mode, reduction) -> None:
    gen = torch.Generator().manual_seed(sum(size))
    pred = torch.rand(3, 3, *size, generator=gen).requires_grad_()
    target = torch.rand(3, 3, *size, generator=gen)
    (v_off, g_off), (v_on, g_on) = _both_paths(
        monkeypatch, pred, target, mode=mode, reduction=reduction
    )
    assert torch.equal(v_off, v_on)
    assert torch.equal(g_off, g_on)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["paper", "wrapped"])
def test_fused_equals_numpy(monkeypatch, size, mode) -> None:
    monkeypatch.setenv("ERL_LOSSES_FUSED_PHASE", "auto")
    rng = np.random.default_rng(3)
    pred, target = rng.random((2, 3, *size)), rng.random((2, 3, *size))
    expected = (numpy_paper if mode == "paper" else numpy_wrapped)(pred, target)
    got = phase_loss(
        torch.from_numpy(pred).float(),
        torch.from_numpy(target).float(),
        mode=mode,
        reduction="none",
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("mode", ["paper", "wrapped"])
@pytest.mark.parametrize("pred_kind", ["black", "white", "constant", "random"])
@pytest.mark.parametrize("target_kind", ["black", "white", "constant"])
def test_fused_gradients_are_finite_on_degenerate_images(monkeypatch, mode, pred_kind, target_kind):
    values = {"black": 0.0, "white": 1.0, "constant": 0.37}
    shape = (2, 3, 17, 20)
    make = {k: (lambda v=v: torch.full(shape, v)) for k, v in values.items()}
    make["random"] = lambda: torch.rand(shape)
    pred = make[pred_kind]().requires_grad_()
    (v_off, g_off), (v_on, g_on) = _both_paths(monkeypatch, pred, make[target_kind](), mode=mode)
    assert torch.isfinite(v_on).all() and torch.isfinite(g_on).all()
    assert torch.equal(v_off, v_on) and torch.equal(g_off, g_on)


def test_a_target_that_requires_grad_takes_the_unfused_path(monkeypatch) -> None:
    monkeypatch.setenv("ERL_LOSSES_FUSED_PHASE", "auto")
    pred = torch.rand(1, 3, 8, 9, requires_grad=True)
    target = torch.rand(1, 3, 8, 9, requires_grad=True)
    phase_loss(pred, target, mode="wrapped").backward()
    assert target.grad is not None and torch.isfinite(target.grad).all()


def test_bad_setting_is_named(monkeypatch) -> None:
    monkeypatch.setenv("ERL_LOSSES_FUSED_PHASE", "fast")
    with pytest.raises(ValueError, match="ERL_LOSSES_FUSED_PHASE"):
        phase_loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4))
