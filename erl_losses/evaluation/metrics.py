"""8-bit PSNR and SSIM from maintained code, as the exposure-correction literature computes them.

Both metrics take ``uint8`` ``(H, W, 3)`` RGB images (MAX = 255, all channels, no border crop,
no Y channel), matching ``tensor2img`` + ``calculate_psnr`` of the Huang et al. repos and BasicSR.

Backend: ``basicsr.metrics.calculate_psnr`` / ``calculate_ssim`` when basicsr imports (its SSIM is
the Wang et al. 11x11 Gaussian window, sigma 1.5, per channel, averaged); otherwise scikit-image's
``peak_signal_noise_ratio`` and ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255, channel_axis=-1)``, the same definition. basicsr 1.4.2
fails to import with torchvision >= 0.17 (``torchvision.transforms.functional_tensor`` was
removed), in which case scikit-image is used.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np

__all__ = ["metric_backend", "psnr_uint8", "ssim_uint8"]

Backend = Literal["basicsr", "skimage"]


@functools.cache
def _basicsr_available() -> bool:
    try:
        from basicsr.metrics import calculate_psnr, calculate_ssim  # noqa: F401
    except Exception:  # basicsr's package import can fail in many ways (torchvision, cv2)
        return False
    return True


def metric_backend(backend: str | None = None) -> Backend:
    """The metric backend in use: ``backend`` if given, else ``'basicsr'`` when importable, else
    ``'skimage'``.

    Raises:
        ValueError: unknown backend, or ``'basicsr'`` requested but not importable.
    """
    if backend is None:
        return "basicsr" if _basicsr_available() else "skimage"
    if backend not in ("basicsr", "skimage"):
        raise ValueError(f"Expected backend 'basicsr', 'skimage' or None, got {backend!r}")
    if backend == "basicsr" and not _basicsr_available():
        raise ValueError("Expected an importable basicsr for backend='basicsr', got an ImportError")
    return backend  # type: ignore[return-value]


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    for name, img in (("pred", pred), ("gt", gt)):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"Expected {name} to be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    if pred.shape != gt.shape:
        raise ValueError(f"Expected pred and gt of the same shape, got {pred.shape} and {gt.shape}")
    return pred, gt


def psnr_uint8(pred: np.ndarray, gt: np.ndarray, *, backend: str | None = None) -> float:
    """PSNR in dB of two ``(H, W, 3)`` ``uint8`` images with MAX = 255; ``inf`` when identical."""
    pred, gt = _check_pair(pred, gt)
    if metric_backend(backend) == "basicsr":
        from basicsr.metrics import calculate_psnr

        return float(calculate_psnr(pred, gt, crop_border=0, input_order="HWC"))
    from skimage.metrics import peak_signal_noise_ratio

    if np.array_equal(pred, gt):
        return float("inf")
    return float(peak_signal_noise_ratio(gt, pred, data_range=255))


def ssim_uint8(pred: np.ndarray, gt: np.ndarray, *, backend: str | None = None) -> float:
    """SSIM (Wang et al. 2004, Gaussian window sigma 1.5) of two ``(H, W, 3)`` ``uint8`` images,
    computed per channel and averaged; images must be at least 7 x 7."""
    pred, gt = _check_pair(pred, gt)
    if min(pred.shape[:2]) < 7:
        raise ValueError(f"Expected images of at least 7 x 7 for SSIM, got {pred.shape[:2]}")
    if metric_backend(backend) == "basicsr":
        from basicsr.metrics import calculate_ssim

        return float(calculate_ssim(pred, gt, crop_border=0, input_order="HWC"))
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            gt,
            pred,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1,
        )
    )
