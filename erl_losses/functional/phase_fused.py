"""The element-wise part of the phase loss, written once: a forward, a backward, one autograd node.

After its two FFTs, :func:`erl_losses.functional.phase_loss` needs, per frequency bin, the angle
difference of the two spectra, its absolute value, the weights and a sum, and in the backward
the derivative of each: about twenty small kernels as separate autograd ops, which makes the loss
launch-bound on a GPU. Here :func:`phase_forward` and :func:`phase_backward` are plain tensor
functions (the only statement of the phase distance and of its gradient in the package) and
:func:`phase_distance` is the one autograd node that calls them. The same two functions run
eagerly or through ``torch.compile`` (one kernel each instead of about ten); shapes are traced as
dynamic, so a new image size does not compile again.

Where it runs compiled: on CUDA by default; on a CPU the FFTs dominate and compiling would only
add start-up time. No GPU measurement of the compiled bodies against the eager ones exists yet
(the benchmarks so far ran on CPUs), so ``ERL_LOSSES_FUSED_PHASE`` keeps the eager path one
switch away: ``auto`` (default: compiled on CUDA, eager elsewhere), ``eager`` or ``off`` (never
compile; the values are the same).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any

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


def _nonfinite_as_nan(p_re: Tensor, t_re: Tensor) -> Tensor:
    """``(B,)`` zeros, NaN for a sample whose prediction or target holds NaN or inf.

    A non-finite pixel makes its channel's DC bin (the pixel sum) non-finite, and ``0 * inf`` is
    NaN. The angle of an infinite bin is finite (``atan2(inf, inf) = pi / 4``), so without this
    term an ``inf`` pixel would give a finite, wrong loss.
    """
    return (p_re[:, :, 0, 0] + t_re[:, :, 0, 0]).sum(dim=1) * 0.0


def phase_forward(
    p_re: Tensor, p_im: Tensor, t_re: Tensor, t_im: Tensor, weights: Tensor, mode: str,
    floor2: float,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Per-sample weighted phase distance of two half spectra, and the sign its backward needs.

    Args:
        p_re, p_im, t_re, t_im: contiguous ``(B, C, H, W // 2 + 1)`` planes of the prediction's
            and the target's spectrum.
        weights: ``(W // 2 + 1,)`` column multiplicities.
        mode: ``"paper"``: ``|angle(p) - angle(t)|``; ``"wrapped"``: the angular distance
            ``|angle(p conj(t))|`` weighted by the target's ``power / (power + floor2)``.
        floor2: the power floor of ``"wrapped"``.

    Returns:
        ``(B,)`` weighted sums (NaN for a sample with a non-finite input), and the sign of the
        signed angle difference (kept so that the backward needs no ``atan2``, the most
        expensive op here on a CPU).
    """
    if mode == "paper":
        diff = torch.atan2(p_im, p_re) - torch.atan2(t_im, t_re)
        sums, sign = (diff.abs() * weights).sum(dim=(1, 2, 3)), diff.sign()
    else:
        # angle(p * conj(t)) is the signed difference, already in (-pi, pi]; written out in real
        # arithmetic so that identical inputs give exactly 0.
        cross, dot = p_im * t_re - p_re * t_im, p_re * t_re + p_im * t_im
        power = t_re * t_re + t_im * t_im
        angle = torch.atan2(cross, dot)
        dist = angle.abs() * (power / (power + floor2))
        sums, sign = (dist * weights).sum(dim=(1, 2, 3)), angle.sign()
    return sums + _nonfinite_as_nan(p_re, t_re), sign


def phase_backward(
    grad: Tensor, sign: Tensor, p_re: Tensor, p_im: Tensor, t_re: Tensor, t_im: Tensor,
    weights: Tensor, mode: str, eps2: float, floor2: float, target_grad: bool,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:  # fmt: skip
    """Gradient of :func:`phase_forward`'s sums for the four planes (the target's only if
    ``target_grad``; the ``"wrapped"`` power weight is treated as a constant).

    The angle gradient ``(x, -y) / r^2`` clamps ``r^2`` at ``eps2``, which keeps exact zeros of
    the spectrum finite and leaves every other bin alone. A sample with a non-finite input gets
    NaN gradients everywhere, like its loss.
    """
    grad = grad + _nonfinite_as_nan(p_re, t_re)
    g = grad[:, None, None, None].expand_as(p_re) * weights
    if mode == "paper":
        g = g * sign
        r2 = (p_re * p_re + p_im * p_im).clamp_min(eps2)
        if not target_grad:
            return -g * p_im / r2, g * p_re / r2, None, None
        r2_t = (t_re * t_re + t_im * t_im).clamp_min(eps2)
        return -g * p_im / r2, g * p_re / r2, g * t_im / r2_t, -g * t_re / r2_t
    cross, dot = p_im * t_re - p_re * t_im, p_re * t_re + p_im * t_im
    power = t_re * t_re + t_im * t_im
    g = g * (power / (power + floor2)) * sign
    r2 = (dot * dot + cross * cross).clamp_min(eps2)
    g_cross, g_dot = g * dot / r2, -g * cross / r2
    g_p = g_cross * -t_im + g_dot * t_re, g_cross * t_re + g_dot * t_im
    if not target_grad:
        return *g_p, None, None
    return *g_p, g_cross * p_im + g_dot * p_re, g_cross * -p_re + g_dot * p_im


@functools.cache
def _compiled(body: Callable[..., Any]) -> Callable[..., Any]:
    return torch.compile(body, dynamic=True)


_compile_failed: list[bool] = []


def _call(body: Callable[..., Any], device: torch.device, *args: object) -> Any:
    """``body(*args)``, through ``torch.compile`` on CUDA under the ``auto`` setting.

    A compiler failure (no Triton, an unsupported GPU) warns once and runs the eager body from
    then on: the same values with more kernels.
    """
    setting = fused_phase_setting()  # read first: a bad value is an error on every device
    compile_here = (
        device.type == "cuda" and setting == "auto" and not _compile_failed and not is_compiling()
    )
    if not compile_here:
        return body(*args)
    try:
        return _compiled(body)(*args)
    except Exception as err:  # the compiler's errors have no common base class
        _compile_failed.append(True)
        warnings.warn(
            f"torch.compile of the phase loss's element-wise bodies failed "
            f"({type(err).__name__}: {err}); running them eagerly (same values, slower on a GPU)",
            RuntimeWarning,
            stacklevel=3,
        )
        return body(*args)


class _PhaseDistance(torch.autograd.Function):
    """:func:`phase_forward` and :func:`phase_backward` as one autograd node."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, p_re: Tensor, p_im: Tensor, t_re: Tensor, t_im: Tensor, weights: Tensor, mode: str,
        eps2: float, floor2: float,
    ) -> Tensor:  # fmt: skip
        sums, sign = _call(
            phase_forward, p_re.device, p_re, p_im, t_re, t_im, weights, mode, floor2
        )
        ctx.save_for_backward(sign, p_re, p_im, t_re, t_im, weights)
        ctx.mode, ctx.eps2, ctx.floor2 = mode, eps2, floor2
        return sums

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        sign, p_re, p_im, t_re, t_im, weights = ctx.saved_tensors
        target_grad = bool(ctx.needs_input_grad[2] or ctx.needs_input_grad[3])
        grads = _call(
            phase_backward, p_re.device, grad.contiguous(), sign, p_re, p_im, t_re, t_im,
            weights, ctx.mode, ctx.eps2, ctx.floor2, target_grad,
        )  # fmt: skip
        return *grads, None, None, None, None


def phase_distance(
    p_re: Tensor, p_im: Tensor, t_re: Tensor, t_im: Tensor, weights: Tensor, mode: str,
    eps2: float, floor2: float = 0.0,
) -> Tensor:  # fmt: skip
    """``(B,)`` weighted phase-distance sums of two half spectra (divide by ``C * H * W`` for the
    mean), with gradients for every plane that requires one.

    Args:
        p_re, p_im, t_re, t_im, weights, mode, floor2: see :func:`phase_forward`.
        eps2: the squared-radius floor of the angle gradient (:func:`phase_backward`):
            ``1e-30`` for ``"paper"``, ``amp_floor ** 4`` for ``"wrapped"``.
    """
    return _PhaseDistance.apply(p_re, p_im, t_re, t_im, weights, mode, eps2, floor2)
