"""Fourier phase loss (ERL paper, eq. 3) on the half spectrum of real images."""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from erl_losses._reduction import Reduction, check_reduction, reduce
from erl_losses._validation import (
    check_choice,
    check_finite,
    check_image,
    check_pair,
    is_compiling,
)
from erl_losses.functional.phase_fused import phase_distance

PHASE_MODES: tuple[str, ...] = ("paper", "wrapped")

# Squared-radius floor of the angle gradient in "paper" mode: it only keeps exact zeros of the
# spectrum from producing inf/NaN; the value of eq. 3 is untouched.
_PAPER_EPS2 = 1e-30


class _SafeAtan2(torch.autograd.Function):
    """``atan2(y, x)`` whose gradient is bounded where the point is (almost) the origin.

    The true gradient ``(x, -y) / (x^2 + y^2)`` is infinite at the origin, where the angle is
    undefined; clamping the squared radius at ``eps2`` keeps it finite and leaves the value alone.
    """

    @staticmethod
    def forward(ctx, y: Tensor, x: Tensor, eps2: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(y, x)
        ctx.eps2 = eps2
        return torch.atan2(y, x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        y, x = ctx.saved_tensors
        r2 = (x * x + y * y).clamp_min(ctx.eps2)
        return grad * x / r2, -grad * y / r2, None


def safe_angle(z: Tensor, eps: float = 1e-15) -> Tensor:
    """Phase of a complex tensor in ``(-pi, pi]`` with a gradient bounded by ``1 / eps``."""
    return _SafeAtan2.apply(z.imag.contiguous(), z.real.contiguous(), eps * eps)


def rfft_column_weights(width: int, device: torch.device | None = None) -> Tensor:
    """Multiplicity of each ``rfft`` column in the full spectrum of a real signal of ``width``.

    Column 0 (and column ``width / 2`` for even widths) appears once in the full spectrum, every
    other column twice (itself and its complex conjugate), so a weighted sum over the
    ``width // 2 + 1`` columns equals the sum over all ``width`` columns.

    Returns:
        A ``(width // 2 + 1,)`` float32 tensor of 1s and 2s.
    """
    weights = torch.full((width // 2 + 1,), 2.0, device=device)
    weights[0] = 1.0
    if width % 2 == 0:
        weights[-1] = 1.0
    return weights


def real_bins_mask(height: int, width: int, device: torch.device | None = None) -> Tensor:
    """Mask ``(H, W // 2 + 1)`` of the self-conjugate bins of a real image's ``rfft2``.

    These bins (DC and the Nyquist row/column) are real: their phase is 0 or pi, and the sign of
    their rounding-noise imaginary part would otherwise flip pi to -pi, a 2 pi jump in eq. 3.
    """
    mask = torch.zeros(height, width // 2 + 1, dtype=torch.bool, device=device)
    rows = [0] + ([height // 2] if height % 2 == 0 else [])
    cols = [0] + ([width // 2] if width % 2 == 0 else [])
    for row in rows:
        mask[row, cols] = True
    return mask


# Constants built once per (size, device): on a GPU the loss is launch-bound, and building them
# anew took as long as the FFTs.
_cached_column_weights = functools.lru_cache(maxsize=64)(rfft_column_weights)
_cached_real_bins = functools.lru_cache(maxsize=64)(real_bins_mask)


def _constants(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Column weights and real-bin mask: cached in eager mode; built inline under
    ``torch.compile``, which folds them into the graph (and warns about traced caches)."""
    if is_compiling():
        return rfft_column_weights(width, device), real_bins_mask(height, width, device)
    return _cached_column_weights(width, device), _cached_real_bins(height, width, device)


def _spectrum_parts(x: Tensor, real_bins: Tensor) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of the orthonormal ``rfft2`` of a real batch, both contiguous,
    with the self-conjugate bins (``real_bins``) made exactly real.

    One copy into contiguous planes: ``atan2`` and the element-wise arithmetic on the strided
    ``.real``/``.imag`` views of a complex tensor take a slow path (about 6x slower on CPU).
    """
    spec = torch.fft.rfft2(x, norm="ortho")
    parts = torch.view_as_real(spec).movedim(-1, 0).contiguous()
    return parts[0], parts[1].masked_fill(real_bins, 0.0)


def phase_loss(
    pred: Tensor,
    target: Tensor,
    mode: str = "paper",
    reduction: Reduction = "mean",
    amp_floor: float = 1e-3,
    check_nonfinite: bool = False,
) -> Tensor:
    r"""Mean absolute difference of the Fourier phase of two image batches.

    The paper's pretext objective (eq. 3): :math:`L = \mathrm{mean}\,|P(F(x)) - P(F(y))|`, with
    ``F`` the 2-D Fourier transform of each channel and ``P`` the phase. The phase carries the
    content of an image and the amplitude its exposure (FECNet), so this term asks for the same
    content whatever the brightness: a positive gain applied to ``pred`` leaves it unchanged.

    The spectrum of a real image is conjugate-symmetric, so the loss is computed on ``rfft2``
    (about half the work) with each column weighted by how often it appears in the full spectrum;
    the value equals the full-spectrum mean. The FFT always runs in float32, also under autocast
    (cuFFT's half precision supports only power-of-two sizes). The element-wise part after the
    FFTs is one autograd node (:func:`erl_losses.functional.phase_fused.phase_distance`),
    ``torch.compile``d on CUDA, where the first call compiles (seconds; not yet measured against
    the eager bodies on a GPU); ``ERL_LOSSES_FUSED_PHASE=eager`` never compiles.

    Non-finite inputs never give a finite loss: a sample whose ``pred`` or ``target`` holds NaN
    or inf has a NaN loss and NaN gradients (no device sync); ``check_nonfinite=True`` raises
    instead.

    Args:
        pred: predicted images, shape ``(B, C, H, W)``, any channel count, floating point.
        target: reference images, the same shape and device as ``pred``.
        mode: ``"paper"`` is eq. 3 exactly: the L1 distance of the two angles in
            ``(-pi, pi]``, so the distance lies in ``[0, 2 pi)`` and equals
            ``np.abs(np.angle(np.fft.fft2(pred)) - np.angle(np.fft.fft2(target))).mean()``.
            ``"wrapped"`` uses the angular distance, wrapped to ``[0, pi]`` (phases ``pi - e``
            and ``-pi + e`` are ``2 e`` apart, not ``2 pi - 2 e``), and weights each frequency by
            ``a^2 / (a^2 + amp_floor^2)`` with ``a`` the target's amplitude, so frequencies where
            the target has (almost) no energy -- flat, black or clipped images, whose phase is
            noise -- count for nothing. Gradients are finite everywhere.
        reduction: ``"mean"`` (over the batch), ``"sum"`` or ``"none"``, which returns the
            ``(B,)`` per-image losses.
        amp_floor: amplitude below which a frequency is ignored in ``"wrapped"`` mode, in units of
            the orthonormal FFT of images in ``[0, 1]`` (``1e-3`` is about 8-bit quantisation
            noise).
        check_nonfinite: raise ``ValueError`` if an input holds NaN or inf (syncs the GPU).

    Returns:
        The loss in radians, float32: a scalar, or shape ``(B,)`` for ``reduction="none"``.

    Example:
        >>> pred = torch.rand(2, 3, 37, 50, requires_grad=True)
        >>> target = torch.rand(2, 3, 37, 50)
        >>> loss = phase_loss(pred, target, mode="wrapped")
        >>> loss.backward()
        >>> bool(torch.isfinite(pred.grad).all())
        True
    """
    check_choice(mode, "mode", PHASE_MODES)
    reduction = check_reduction(reduction)
    check_image(pred, "pred")
    check_image(target, "target")
    check_pair(pred, target)
    if check_nonfinite:
        check_finite(pred, "pred")
        check_finite(target, "target")

    height, width = pred.shape[-2:]
    with torch.autocast(device_type=pred.device.type, enabled=False):
        columns, real_bins = _constants(height, width, pred.device)
        p_re, p_im = _spectrum_parts(pred.float(), real_bins)
        t_re, t_im = _spectrum_parts(target.float(), real_bins)
        eps2 = _PAPER_EPS2 if mode == "paper" else amp_floor**4
        sums = phase_distance(p_re, p_im, t_re, t_im, columns, mode, eps2, amp_floor**2)
        per_sample = sums / (pred.shape[1] * height * width)
    return reduce(per_sample, reduction)
