"""The element-wise part of the phase loss as ONE autograd node, fused per device.

:func:`erl_losses.functional.phase_loss` spends little time in the two FFTs on a GPU: the rest
(two ``atan2``, a difference, ``abs``, weights, a sum, and the backward of each) is about twenty
small kernels, so the loss is launch-bound. :class:`FusedPhaseDistance` computes the per-sample
loss from the spectrum planes in one forward and writes the gradient of the prediction's planes
in one backward, with the same float operations in the same order as the autograd graph of the
unfused code (so on CPU the value and gradient are bit-identical, see
``tests/core/test_phase_fused.py``). On CUDA its two bodies go through ``torch.compile`` (one
kernel each instead of about ten); on CPU they run eagerly, where the FFTs dominate and
compiling would only add start-up time.

``ERL_LOSSES_FUSED_PHASE`` chooses: ``auto`` (default: compiled on CUDA, eager elsewhere),
``eager`` (never compile), ``off`` (the unfused autograd path).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from erl_losses._validation import is_compiling

FUSED_PHASE_CHOICES: tuple[str, ...] = ("auto", "eager", "off")


def fused_phase_setting() -> str:
    """``ERL_LOSSES_FUSED_PHASE`` (``auto``, ``eager`` or ``off``), read at each call."""
    value = os.environ.get("ERL_LOSSES_FUSED_PHASE", "auto").strip().lower() or "auto"
    if value not in FUSED_PHASE_CHOICES:
        raise ValueError(
            f"Expected ERL_LOSSES_FUSED_PHASE among {list(FUSED_PHASE_CHOICES)}, got {value!r}"
        )
    return value


# -- the element-wise bodies (plain torch ops: compilable, and the eager path on CPU) ------------
# Every body takes (p_re, p_im, t_re, t_im, weights, eps2, floor2); the forward also returns the
# sign of the angle difference, which the backward needs and would otherwise recompute with two
# more atan2 (the most expensive op here on a CPU).
def _paper_forward(
    p_re: Tensor, p_im: Tensor, t_re: Tensor, t_im: Tensor, weights: Tensor, eps2: float,
    floor2: float,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``(B, C, H, W')`` planes -> ``(B,)`` weighted sums of ``|angle(p) - angle(t)|``, sign."""
    diff = torch.atan2(p_im, p_re) - torch.atan2(t_im, t_re)
    return (diff.abs() * weights).sum(dim=(1, 2, 3)), diff.sign()


def _paper_backward(
    grad: Tensor, sign: Tensor, p_re: Tensor, p_im: Tensor, t_re: Tensor, t_im: Tensor,
    weights: Tensor, eps2: float, floor2: float,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    # Same order as autograd on the unfused graph: sum -> * weights -> abs (sign) -> atan2.
    g = grad[:, None, None, None].expand_as(p_re) * weights * sign
    r2 = (p_re * p_re + p_im * p_im).clamp_min(eps2)
    return -g * p_im / r2, g * p_re / r2


def _wrapped_forward(
    p_re: Tensor, p_im: Tensor, t_re: Tensor, t_im: Tensor, weights: Tensor, eps2: float,
    floor2: float,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Angular distance of ``p`` and ``t`` weighted by the target's ``power / (power + floor2)``
    (``weights``: the column multiplicities), summed per sample; and its sign."""
    cross, dot = p_im * t_re - p_re * t_im, p_re * t_re + p_im * t_im
    power = t_re * t_re + t_im * t_im
    angle = torch.atan2(cross, dot)
    dist = angle.abs() * (power / (power + floor2))
    return (dist * weights).sum(dim=(1, 2, 3)), angle.sign()


def _wrapped_backward(
    grad: Tensor, sign: Tensor, p_re: Tensor, p_im: Tensor, t_re: Tensor, t_im: Tensor,
    weights: Tensor, eps2: float, floor2: float,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    cross, dot = p_im * t_re - p_re * t_im, p_re * t_re + p_im * t_im
    power = t_re * t_re + t_im * t_im
    g = grad[:, None, None, None].expand_as(p_re) * weights
    g = g * (power / (power + floor2)) * sign
    r2 = (dot * dot + cross * cross).clamp_min(eps2)
    g_cross, g_dot = g * dot / r2, -g * cross / r2
    return g_cross * -t_im + g_dot * t_re, g_cross * t_re + g_dot * t_im


_Body = Callable[..., tuple[Tensor, Tensor]]
_BODIES: dict[str, tuple[_Body, _Body]] = {
    "paper": (_paper_forward, _paper_backward),
    "wrapped": (_wrapped_forward, _wrapped_backward),
}


@functools.cache
def _compiled(mode: str) -> tuple[_Body, _Body]:
    forward, backward = _BODIES[mode]
    return torch.compile(forward, dynamic=False), torch.compile(backward, dynamic=False)


_compile_failed: set[str] = set()


def _run(index: int, mode: str, device: torch.device, *args: object):  # type: ignore[no-untyped-def]
    """Runs body ``index`` (0 forward, 1 backward) compiled on CUDA, eagerly elsewhere.

    A compiler failure (no Triton, an unsupported GPU) warns once and falls back to the eager
    body, which computes the same thing with more kernels.
    """
    eager = _BODIES[mode][index]
    use_compiled = (
        device.type == "cuda"
        and fused_phase_setting() == "auto"
        and mode not in _compile_failed
        and not is_compiling()
    )
    if not use_compiled:
        return eager(*args)
    try:
        return _compiled(mode)[index](*args)
    except Exception as err:  # the compiler's errors have no common base class
        _compile_failed.add(mode)
        warnings.warn(
            f"torch.compile of the fused phase loss failed ({type(err).__name__}: {err}); "
            "using the eager kernels (same values, slower on a GPU)",
            RuntimeWarning,
            stacklevel=3,
        )
        return eager(*args)


class FusedPhaseDistance(torch.autograd.Function):
    """Per-sample weighted phase distance of two spectra, one node forward and backward.

    Inputs: the contiguous real and imaginary planes ``(B, C, H, W // 2 + 1)`` of the prediction
    and the target, the column weights ``(W // 2 + 1,)``, the mode, ``eps2`` (the squared-radius
    floor of the angle gradient: ``1e-30`` for ``"paper"``, ``amp_floor ** 4`` for ``"wrapped"``)
    and ``floor2`` (``amp_floor ** 2``, the power floor of ``"wrapped"``). Returns the ``(B,)``
    weighted sums (divide by ``C * H * W`` for the mean). Gradients flow to the prediction's
    planes only: the target's planes must not require grad (:func:`phase_loss` takes the
    unfused path when they do).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, p_re: Tensor, p_im: Tensor, t_re: Tensor, t_im: Tensor, weights: Tensor, mode: str,
        eps2: float, floor2: float,
    ) -> Tensor:  # fmt: skip
        sums, sign = _run(0, mode, p_re.device, p_re, p_im, t_re, t_im, weights, eps2, floor2)
        ctx.save_for_backward(sign, p_re, p_im, t_re, t_im, weights)
        ctx.mode, ctx.eps2, ctx.floor2 = mode, eps2, floor2
        return sums

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        sign, p_re, p_im, t_re, t_im, weights = ctx.saved_tensors
        g_re, g_im = _run(
            1, ctx.mode, p_re.device, grad.contiguous(), sign, p_re, p_im, t_re, t_im, weights,
            ctx.eps2, ctx.floor2,
        )  # fmt: skip
        return g_re, g_im, None, None, None, None, None, None


def fused_phase_distance(
    p_re: Tensor, p_im: Tensor, t_re: Tensor, t_im: Tensor, weights: Tensor, mode: str,
    eps2: float, floor2: float = 0.0,
) -> Tensor:  # fmt: skip
    """Functional form of :class:`FusedPhaseDistance`: ``(B,)`` weighted distance sums."""
    return FusedPhaseDistance.apply(p_re, p_im, t_re, t_im, weights, mode, eps2, floor2)
