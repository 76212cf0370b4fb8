"""The phase distance node (forward and backward written once): gradcheck, gradients against a
plain-autograd reference, values against numpy, the eager/compiled switch."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
import torch

import erl_losses.functional.phase as phase_module
import erl_losses.functional.phase_fused as fused_module
from erl_losses import phase_loss
from erl_losses.functional.phase_fused import phase_distance
from tests._reference import numpy_paper, numpy_wrapped, torch_full_spectrum_phase

SIZES = [(5, 7), (6, 8), (37, 50), (36, 51), (16, 16)]


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
    planes = tuple(x.requires_grad_() for x in (p_re, p_im, t_re, t_im))
    eps2 = 1e-30 if mode == "paper" else 1e-12

    def fn(*planes):
        return phase_distance(*planes, weights, mode, eps2, 1e-6)

    # "wrapped" differentiates only the angle (its power weight is a constant by definition), so
    # the numerical gradient of the target planes differs there; "paper" checks all four.
    wanted = planes if mode == "paper" else planes[:2]
    fixed = () if mode == "paper" else tuple(x.detach() for x in planes[2:])
    assert torch.autograd.gradcheck(lambda *x: fn(*x, *fixed), wanted, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["paper", "wrapped"])
@pytest.mark.parametrize("target_grad", [False, True])
def test_gradients_match_a_plain_autograd_reference(size, mode, target_grad) -> None:
    gen = torch.Generator().manual_seed(sum(size))
    pred = torch.rand(3, 3, *size, generator=gen).requires_grad_()
    target = torch.rand(3, 3, *size, generator=gen).requires_grad_(target_grad)
    phase_loss(pred, target, mode=mode, reduction="none").sum().backward()
    ref_pred = pred.detach().double().requires_grad_()
    ref_target = target.detach().double().requires_grad_(target_grad)
    torch_full_spectrum_phase(ref_pred, ref_target, mode).sum().backward()
    scale = ref_pred.grad.abs().max()
    torch.testing.assert_close(pred.grad.double(), ref_pred.grad, rtol=0, atol=2e-4 * scale)
    if target_grad:  # "wrapped": the angle only, as in the reference (its power is detached)
        torch.testing.assert_close(target.grad.double(), ref_target.grad, rtol=0, atol=2e-4 * scale)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["paper", "wrapped"])
def test_values_equal_numpy(size, mode) -> None:
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
def test_gradients_are_finite_on_degenerate_images(mode, pred_kind, target_kind):
    values = {"black": 0.0, "white": 1.0, "constant": 0.37}
    shape = (2, 3, 17, 20)
    make = {k: (lambda v=v: torch.full(shape, v)) for k, v in values.items()}
    make["random"] = lambda: torch.rand(shape)
    pred = make[pred_kind]().requires_grad_()
    loss = phase_loss(pred, make[target_kind](), mode=mode)
    loss.backward()
    assert torch.isfinite(loss).all() and torch.isfinite(pred.grad).all()


def test_a_target_that_requires_grad_gets_a_finite_gradient() -> None:
    pred = torch.rand(1, 3, 8, 9, requires_grad=True)
    target = torch.rand(1, 3, 8, 9, requires_grad=True)
    phase_loss(pred, target, mode="wrapped").backward()
    assert target.grad is not None and torch.isfinite(target.grad).all()


@pytest.mark.parametrize("setting", ["auto", "eager", "off"])
def test_every_setting_gives_the_same_values_on_cpu(monkeypatch, setting) -> None:
    monkeypatch.setenv("ERL_LOSSES_FUSED_PHASE", setting)
    gen = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 3, 12, 13, generator=gen).requires_grad_()
    target = torch.rand(2, 3, 12, 13, generator=gen)
    loss = phase_loss(pred, target)
    loss.backward()
    monkeypatch.delenv("ERL_LOSSES_FUSED_PHASE")
    pred_again = pred.detach().clone().requires_grad_()
    again = phase_loss(pred_again, target)
    again.backward()
    assert torch.equal(loss, again) and torch.equal(pred.grad, pred_again.grad)


def test_compile_is_asked_for_on_cuda_only_and_never_under_eager(monkeypatch) -> None:
    """The switch itself, without a GPU: which bodies would go through torch.compile."""
    compiled: list[str] = []

    def fake_compiled(body):  # type: ignore[no-untyped-def]
        compiled.append(body.__name__)
        return body

    monkeypatch.setattr(fused_module, "_compiled", fake_compiled)
    args = (torch.ones(1),)
    fused_module._call(lambda x: x, torch.device("cpu"), *args)
    assert compiled == []
    body = lambda x: x  # noqa: E731
    fused_module._call(body, torch.device("cuda"), *args)
    assert compiled == ["<lambda>"]
    monkeypatch.setenv("ERL_LOSSES_FUSED_PHASE", "eager")
    fused_module._call(body, torch.device("cuda"), *args)
    assert compiled == ["<lambda>"]


def test_compiled_bodies_are_dynamic_in_shape(monkeypatch) -> None:
    seen: list[dict[str, object]] = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: seen.append(kw) or fn)
    fused_module._compiled.cache_clear()
    try:
        fused_module._compiled(fused_module.phase_forward)
    finally:
        fused_module._compiled.cache_clear()
    assert seen == [{"dynamic": True}]


def test_the_phase_distance_is_defined_once() -> None:
    """One forward and one backward body in the package; phase.py only calls the node."""
    defined = {
        node.name
        for module in (phase_module, fused_module)
        for node in ast.walk(ast.parse(inspect.getsource(module)))
        if isinstance(node, ast.FunctionDef)
    }
    assert {"phase_forward", "phase_backward", "phase_distance"} <= defined
    assert not {"_phase_distance", "_run", "_paper_forward", "_wrapped_forward"} & defined
    assert "atan2" not in inspect.getsource(phase_module.phase_loss)


def test_bad_setting_is_named(monkeypatch) -> None:
    monkeypatch.setenv("ERL_LOSSES_FUSED_PHASE", "fast")
    with pytest.raises(ValueError, match="ERL_LOSSES_FUSED_PHASE"):
        phase_loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4))
