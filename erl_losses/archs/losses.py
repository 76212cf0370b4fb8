"""Each reference network's own training loss ``L_c``, as in its release.

All three modules share one API:

* ``loss(pred, aux, gt, ...) -> Tensor``: a scalar from outputs already computed with
  ``pred, aux = net(lq, return_aux=True)``. This is the form to use inside a training loop that
  also needs ``pred`` for other terms.
* ``loss.compute(net, lq, gt, ...) -> (loss, pred)``: runs the network itself (ECLNet's
  consistency term needs a second forward pass on an augmented input) and returns the loss and
  the prediction. It calls ``net(x, return_aux=True)``, so ``net`` may be wrapped in
  DistributedDataParallel (the call goes through the wrapper, as gradient sync needs).

ERL adds its sample-relation term to any of them, on the prediction only::

    loss, pred = criterion.compute(net, lq, gt)
    loss = loss + 0.1 * relation(pred, gt)      # L = L_c + 0.1 * relation(pred, gt)

where ``relation`` is :class:`erl_losses` ``SampleRelationLoss`` (a frozen batch-correlation
module); the auxiliary outputs never enter the relation term.

Images are (B, 3, H, W) with values in [0, 1]. Every loss is a mean-reduced scalar.
SSIM here is the standard differentiable Gaussian-window SSIM (11x11, sigma 1.5, C1 = 0.01^2,
C2 = 0.03^2, zero padding so that small 1/4-scale maps still work), used as a training loss
only; evaluation metrics live elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from erl_losses._validation import (
    check_image,
    check_non_negative,
    check_pair,
    check_positive_int,
    get_aux,
)

__all__ = [
    "DRBNLoss",
    "ECLNetLoss",
    "FECNetLoss",
    "exposure_mix_augment",
    "ssim",
]

_SSIM_C1 = 0.01**2
_SSIM_C2 = 0.03**2


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def _separable_blur(x: Tensor, window: Tensor) -> Tensor:
    """Depthwise Gaussian blur of (B, C, H, W) with zero padding, "same" size."""
    c, k = x.shape[1], window.numel()
    w = window.to(dtype=x.dtype, device=x.device)
    x = F.conv2d(x, w.view(1, 1, k, 1).expand(c, 1, k, 1), padding=(k // 2, 0), groups=c)
    return F.conv2d(x, w.view(1, 1, 1, k).expand(c, 1, 1, k), padding=(0, k // 2), groups=c)


def ssim(x: Tensor, y: Tensor, window: Tensor | None = None) -> Tensor:
    """Mean SSIM of two (B, C, H, W) batches in [0, 1] (data range 1); differentiable.

    Args:
        x, y: batches of the same shape.
        window: 1-D Gaussian window; defaults to 11 taps, sigma 1.5.

    Returns:
        Scalar mean SSIM over batch, channels and pixels; 1 when ``x == y``.
    """
    if window is None:
        window = _gaussian_1d()
    mu_x, mu_y = _separable_blur(x, window), _separable_blur(y, window)
    var_x = _separable_blur(x * x, window) - mu_x**2
    var_y = _separable_blur(y * y, window) - mu_y**2
    cov = _separable_blur(x * y, window) - mu_x * mu_y
    num = (2 * mu_x * mu_y + _SSIM_C1) * (2 * cov + _SSIM_C2)
    den = (mu_x**2 + mu_y**2 + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    return (num / den).mean()


class _SSIMWindow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        # A buffer so that `.to(device)` (BasicSR calls it on every loss) moves the window.
        self.register_buffer("window", _gaussian_1d(), persistent=False)

    def _one_minus_ssim(self, x: Tensor, y: Tensor) -> Tensor:
        return 1.0 - ssim(x, y, self.window)


def _check_pred_gt(pred: Tensor, gt: Tensor) -> None:
    check_image(pred, "pred", channels=3)
    check_image(gt, "gt", channels=3)
    check_pair(pred, gt, "pred", "gt")


class FECNetLoss(nn.Module):
    """FECNet's loss: pixel L1 on both stages plus Fourier amplitude and phase L1.

    ``L = L1(pred, gt) + amp_weight * L1(amp, gt)
    + amp_spectrum_weight * L1(|rfft2(amp)|, |rfft2(gt)|)
    + phase_weight * L1(angle(rfft2(pred)), angle(rfft2(gt)))``

    where ``amp = aux["amplitude"]`` from :meth:`FECNet.forward_with_aux`. Defaults are the
    release's (0.5, 0.1, 0.1); FFTs use ``norm="backward"`` as released. The phase L1 compares raw
    angles, so it has the release's 2*pi jumps where a phase wraps.

    Call ``loss(pred, aux, gt)`` or ``loss.compute(net, lq, gt)``; add ERL's term as
    ``L + 0.1 * relation(pred, gt)``. Returns a scalar; 0 when ``pred == amp == gt``.
    """

    def __init__(
        self,
        amp_weight: float = 0.5,
        amp_spectrum_weight: float = 0.1,
        phase_weight: float = 0.1,
    ) -> None:
        super().__init__()
        self.amp_weight = check_non_negative(amp_weight, "amp_weight")
        self.amp_spectrum_weight = check_non_negative(amp_spectrum_weight, "amp_spectrum_weight")
        self.phase_weight = check_non_negative(phase_weight, "phase_weight")

    def forward(self, pred: Tensor, aux: Mapping[str, Tensor], gt: Tensor) -> Tensor:
        """Args: ``pred``, ``gt`` (B, 3, H, W) in [0, 1]; ``aux`` from FECNet.forward_with_aux."""
        _check_pred_gt(pred, gt)
        amp = get_aux(aux, "amplitude", "FECNet")
        check_pair(amp, gt, "aux['amplitude']", "gt")
        # FFTs in float32 at least: half-precision cuFFT only takes power-of-two sizes.
        fft_dtype = torch.promote_types(pred.dtype, torch.float32)
        gt_f = torch.fft.rfft2(gt.to(fft_dtype), norm="backward")
        loss = F.l1_loss(pred, gt) + self.amp_weight * F.l1_loss(amp, gt)
        if self.amp_spectrum_weight:
            amp_f = torch.fft.rfft2(amp.to(fft_dtype), norm="backward")
            loss = loss + self.amp_spectrum_weight * F.l1_loss(amp_f.abs(), gt_f.abs())
        if self.phase_weight:
            pred_f = torch.fft.rfft2(pred.to(fft_dtype), norm="backward")
            loss = loss + self.phase_weight * F.l1_loss(pred_f.angle(), gt_f.angle())
        return loss

    def compute(self, net: nn.Module, lq: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
        """Run ``net(lq, return_aux=True)`` and return ``(loss, pred)``.

        ``net`` may be wrapped (DistributedDataParallel, DataParallel): it is called, so the
        call goes through the wrapper.
        """
        pred, aux = net(lq, return_aux=True)
        return self(pred, aux, gt), pred


def exposure_mix_augment(
    lq: Tensor,
    gt: Tensor,
    *,
    box_size: int = 100,
    blur_sigma: float = 3.0,
    blur_size: int = 51,
    alphas: Sequence[float] = tuple(0.10 + 0.02 * i for i in range(20)),
    generator: torch.Generator | None = None,
) -> Tensor:
    """ECLNet's consistency augmentation: blend a soft box of the input toward the ground truth.

    For each sample: draw a ``box_size`` square that fits inside the image (shrunk to the image
    if it is smaller), blur its binary mask with a Gaussian (``blur_size`` taps, ``blur_sigma``),
    draw ``alpha`` from ``alphas`` (the release's {0.10, 0.12, ..., 0.48}) and return
    ``m * ((1 - alpha) * lq + alpha * gt) + (1 - m) * lq``: the same scene with a locally
    different exposure, which the network's features should not react to.

    Differences from the release, which draws one box with its corner in [10, 270) and so needs
    patches of at least ~370 px: here the box and alpha are drawn per sample and the corner
    anywhere the box fits, so any patch size works.

    Args:
        lq, gt: (B, 3, H, W) in [0, 1], same shape.
        generator: optional ``torch.Generator`` (on CPU) for reproducible draws.

    Returns:
        (B, 3, H, W) in [0, 1]; no gradient flows to ``gt`` through the mask construction.
    """
    check_image(lq, "lq", channels=3)
    check_image(gt, "gt", channels=3)
    check_pair(lq, gt, "lq", "gt")
    check_positive_int(box_size, "box_size")
    check_positive_int(blur_size, "blur_size")
    if not alphas:
        raise ValueError("Expected `alphas` to be a non-empty sequence, got an empty one")
    b, _, h, w = lq.shape
    box_h, box_w = min(box_size, h), min(box_size, w)
    tops = torch.randint(0, h - box_h + 1, (b,), generator=generator).tolist()
    lefts = torch.randint(0, w - box_w + 1, (b,), generator=generator).tolist()
    picks = torch.randint(0, len(alphas), (b,), generator=generator).tolist()
    mask = torch.zeros(b, 1, h, w, dtype=lq.dtype, device=lq.device)
    for i, (top, left) in enumerate(zip(tops, lefts, strict=True)):
        mask[i, :, top : top + box_h, left : left + box_w] = 1.0
    mask = _separable_blur(mask, _gaussian_1d(blur_size, blur_sigma))
    alpha = torch.tensor([alphas[p] for p in picks], dtype=lq.dtype, device=lq.device)
    alpha = alpha.view(b, 1, 1, 1)
    return mask * ((1 - alpha) * lq + alpha * gt) + (1 - mask) * lq


class ECLNetLoss(_SSIMWindow):
    """ECLNet's loss: L1 + SSIM term + feature-consistency term.

    ``L = L1(pred, gt) + ssim_weight * (1 - SSIM(pred, gt))
    + consistency_weight * L1(feat(lq), feat(aug(lq)))``

    with ``feat = aux["feature"]`` from :meth:`ECLNet.forward_with_aux`. The release uses
    ``-SSIM``; ``1 - SSIM`` has the same gradient and is 0 at ``pred == gt``. Defaults are the
    release's (0.1, 0.02).

    The consistency term needs a second forward pass on :func:`exposure_mix_augment` ``(lq, gt)``;
    gradients flow through both passes, as released. Either

    * ``loss.compute(net, lq, gt)`` does both passes (when ``augment`` is true and
      ``consistency_weight > 0``), or
    * ``loss(pred, aux, gt, aug_aux=net(aug, return_aux=True)[1])`` with your own augmentation;
      without ``aug_aux`` the consistency term is left out.

    Add ERL's term as ``L + 0.1 * relation(pred, gt)``. Returns a scalar.
    """

    def __init__(
        self,
        ssim_weight: float = 0.1,
        consistency_weight: float = 0.02,
        augment: bool = True,
        box_size: int = 100,
    ) -> None:
        super().__init__()
        self.ssim_weight = check_non_negative(ssim_weight, "ssim_weight")
        self.consistency_weight = check_non_negative(consistency_weight, "consistency_weight")
        self.augment = bool(augment)
        self.box_size = check_positive_int(box_size, "box_size")

    def forward(
        self,
        pred: Tensor,
        aux: Mapping[str, Tensor],
        gt: Tensor,
        aug_aux: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """Args: ``pred``, ``gt`` (B, 3, H, W) in [0, 1]; ``aux`` and the optional ``aug_aux``
        from ECLNet.forward_with_aux on the input and on its augmented copy."""
        _check_pred_gt(pred, gt)
        loss = F.l1_loss(pred, gt)
        if self.ssim_weight:
            loss = loss + self.ssim_weight * self._one_minus_ssim(pred, gt)
        if aug_aux is not None and self.consistency_weight:
            feat = get_aux(aux, "feature", "ECLNet")
            feat_aug = get_aux(aug_aux, "feature", "ECLNet")
            check_pair(feat, feat_aug, "aux['feature']", "aug_aux['feature']")
            loss = loss + self.consistency_weight * F.l1_loss(feat, feat_aug)
        return loss

    def compute(
        self,
        net: nn.Module,
        lq: Tensor,
        gt: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Run ``net`` on ``lq`` (and on its augmented copy) and return ``(loss, pred)``."""
        pred, aux = net(lq, return_aux=True)
        aug_aux = None
        if self.augment and self.consistency_weight:
            aug = exposure_mix_augment(lq, gt, box_size=self.box_size, generator=generator)
            aug_aux = net(aug, return_aux=True)[1]
        return self(pred, aux, gt, aug_aux), pred


class DRBNLoss(_SSIMWindow):
    """DRBN / DRBN-ENC loss: SSIM loss at full, 1/2 and 1/4 scale, optional ENC distillation.

    ``L = w1 * (1 - SSIM(pred, gt)) + w2 * (1 - SSIM(half, gt[..., ::2, ::2]))
    + w4 * (1 - SSIM(quarter, gt[..., ::4, ::4]))
    [+ distill_weight * (L1(inst, inst_T) + L1(enc, enc_T))]``

    with ``half``/``quarter`` (and for DRBN-ENC ``inst_feat``/``enc_feat``) from
    :meth:`DRBN.forward_with_aux`. As released: the ground truth is subsampled by striding (not
    blurred), there is no L1 term, and the release's ``-SSIM`` differs from ``1 - SSIM`` only by
    a constant. The distillation term (DRBN-ENC's MSEC fine-tuning, weight 0.1) compares the
    first unit's ENC features with those of a frozen teacher run on ``gt``; it is added only when
    ``teacher_aux`` is given, and needs ``DRBN_ENC(variant="msec")`` (the SICE variant returns no
    ENC features, as released).

    Call ``loss(pred, aux, gt)`` or ``loss.compute(net, lq, gt, teacher=None)``; add ERL's term as
    ``L + 0.1 * relation(pred, gt)``. Returns a scalar; 0 when every scale equals the GT.
    """

    def __init__(
        self, scale_weights: Sequence[float] = (1.0, 1.0, 1.0), distill_weight: float = 0.1
    ) -> None:
        super().__init__()
        if len(scale_weights) != 3:
            raise ValueError(
                f"Expected `scale_weights` to have 3 entries (full, 1/2, 1/4), got {scale_weights!r}"
            )
        self.scale_weights = tuple(
            check_non_negative(w, f"scale_weights[{i}]") for i, w in enumerate(scale_weights)
        )
        self.distill_weight = check_non_negative(distill_weight, "distill_weight")

    def forward(
        self,
        pred: Tensor,
        aux: Mapping[str, Tensor],
        gt: Tensor,
        teacher_aux: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """Args: ``pred``, ``gt`` (B, 3, H, W) in [0, 1]; ``aux`` from DRBN.forward_with_aux;
        ``teacher_aux``: a frozen DRBN-ENC's ``teacher(gt, return_aux=True)[1]`` (optional)."""
        _check_pred_gt(pred, gt)
        targets = (gt, gt[..., ::2, ::2], gt[..., ::4, ::4])
        outputs = (pred, get_aux(aux, "half", "DRBN"), get_aux(aux, "quarter", "DRBN"))
        names = ("pred", "aux['half']", "aux['quarter']")
        loss = pred.new_zeros(())
        for w, out, target, name in zip(self.scale_weights, outputs, targets, names, strict=True):
            check_pair(out, target, name, "gt (subsampled)")
            if w:
                loss = loss + w * self._one_minus_ssim(out, target)
        if teacher_aux is not None and self.distill_weight:
            for key in ("inst_feat", "enc_feat"):
                feat = get_aux(aux, key, "DRBN_ENC(variant='msec')")
                feat_t = get_aux(teacher_aux, key, "DRBN_ENC(variant='msec')")
                check_pair(feat, feat_t, f"aux[{key!r}]", f"teacher_aux[{key!r}]")
                loss = loss + self.distill_weight * F.l1_loss(feat, feat_t.detach())
        return loss

    def compute(
        self,
        net: nn.Module,
        lq: Tensor,
        gt: Tensor,
        teacher: nn.Module | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Run ``net`` on ``lq`` (and a frozen ``teacher`` on ``gt``); return ``(loss, pred)``."""
        pred, aux = net(lq, return_aux=True)
        teacher_aux = None
        if teacher is not None:
            with torch.no_grad():
                teacher_aux = teacher(gt, return_aux=True)[1]
        return self(pred, aux, gt, teacher_aux), pred
