"""8-bit PSNR and SSIM from maintained code, as the exposure-correction literature computes them.

Both metrics take ``uint8`` ``(H, W, 3)`` RGB images (MAX = 255, all channels, no border crop,
no Y channel), matching ``tensor2img`` + ``calculate_psnr`` of the Huang et al. repos and BasicSR.

Backends (both compute the same definitions; tests pin them against each other):

* ``'basicsr'``: ``basicsr.metrics.calculate_psnr`` / ``calculate_ssim`` (SSIM: the Wang et al.
  11x11 Gaussian window, sigma 1.5, per channel, averaged), the code of the papers' tables.
  basicsr 1.4.2 cannot be imported with torchvision >= 0.17 as it is; the adapter's
  ``torchvision.transforms.functional_tensor`` alias
  (:func:`erl_losses._torchvision_alias.install_torchvision_alias`) is applied first.
* ``'skimage'``: scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity(
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
  channel_axis=-1)``.

``backend=None`` (``erl eval --metrics auto``) is decided by what is installed, never by what
was imported before: ``'basicsr'`` when the basicsr package is installed (the ``basicsr``
extra), else ``'skimage'``. An installed basicsr that fails to import for another reason gives
``'skimage'`` with a warning naming the error. Every report names its backend.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import warnings
from typing import Literal

import numpy as np

__all__ = ["backend_label", "metric_backend", "psnr_uint8", "ssim_uint8"]

Backend = Literal["basicsr", "skimage"]


#: Why basicsr's metrics are unavailable, once :func:`_basicsr_available` has found out.
_UNAVAILABLE: dict[str, str] = {}


@functools.cache
def _basicsr_available() -> bool:
    """Whether ``basicsr.metrics`` imports (with the torchvision alias); probed once."""
    if importlib.util.find_spec("basicsr") is None:
        _UNAVAILABLE["reason"] = 'basicsr is not installed (pip install "erl-losses[basicsr]")'
        return False
    from erl_losses._torchvision_alias import install_torchvision_alias

    install_torchvision_alias()
    try:
        from basicsr.metrics import calculate_psnr, calculate_ssim  # noqa: F401
    except Exception as err:  # basicsr's package import can fail in many ways (cv2, numpy ABI)
        _UNAVAILABLE["reason"] = f"basicsr is installed but fails to import: {err!r}"
        warnings.warn(
            f"{_UNAVAILABLE['reason']}; PSNR/SSIM use scikit-image", RuntimeWarning, stacklevel=3
        )
        return False
    return True


def metric_backend(backend: str | None = None) -> Backend:
    """The metric backend to use: ``backend`` if given, else ``'basicsr'`` when basicsr is
    installed and imports, else ``'skimage'`` (see the module docstring).

    Raises:
        ValueError: unknown backend, or ``'basicsr'`` requested but not importable (the message
            says why).
    """
    if backend is None:
        return "basicsr" if _basicsr_available() else "skimage"
    if backend not in ("basicsr", "skimage"):
        raise ValueError(f"Expected backend 'basicsr', 'skimage' or None, got {backend!r}")
    if backend == "basicsr" and not _basicsr_available():
        reason = _UNAVAILABLE.get("reason", "an ImportError")
        raise ValueError(f"Expected an importable basicsr for backend='basicsr', got: {reason}")
    return backend  # type: ignore[return-value]


def backend_label(backend: str) -> str:
    """``backend`` with the version of the package behind it, e.g. ``'basicsr 1.4.2'``, for the
    line every printed table carries."""
    from erl_losses._validation import check_choice

    check_choice(backend, "backend", ("basicsr", "skimage"))
    package = {"basicsr": "basicsr", "skimage": "scikit-image"}[backend]
    try:
        return f"{backend} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return backend


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
