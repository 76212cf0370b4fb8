"""Independent statements of the paper's equations, the references of the phase tests: numpy for
values, plain torch autograd ops for gradients."""

from __future__ import annotations

import numpy as np
import torch


def numpy_fft2(x: np.ndarray) -> np.ndarray:
    """Full 2-D spectrum whose self-conjugate bins are exactly real (phase 0 or pi).

    Those bins are real in exact arithmetic; the sign of their rounding-noise imaginary part
    would decide between pi and -pi, so both implementations pin it to +0.
    """
    spec = np.fft.fft2(x)
    height, width = x.shape[-2:]
    for row in {0, height // 2} if height % 2 == 0 else {0}:
        for col in {0, width // 2} if width % 2 == 0 else {0}:
            spec[..., row, col] = spec[..., row, col].real
    return spec


def numpy_paper(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Eq. 3 on the full spectrum, per sample, independently of the torch code."""
    diff = np.abs(np.angle(numpy_fft2(pred)) - np.angle(numpy_fft2(target)))
    return diff.mean(axis=(1, 2, 3))


def numpy_wrapped(pred: np.ndarray, target: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    fp = np.fft.fft2(pred, norm="ortho")
    ft = np.fft.fft2(target, norm="ortho")
    dist = np.abs(np.angle(fp * np.conj(ft)))
    power = np.abs(ft) ** 2
    return (dist * power / (power + floor**2)).mean(axis=(1, 2, 3))


def torch_full_spectrum_phase(
    pred: torch.Tensor, target: torch.Tensor, mode: str = "paper", floor: float = 1e-3
) -> torch.Tensor:
    """Per-sample eq. 3 (or the wrapped, power-weighted variant) as plain autograd ops on the
    full ``fft2`` spectrum: the gradient reference of the library's half-spectrum node."""
    fp, ft = torch.fft.fft2(pred, norm="ortho"), torch.fft.fft2(target, norm="ortho")
    if mode == "paper":
        dist = (torch.atan2(fp.imag, fp.real) - torch.atan2(ft.imag, ft.real)).abs()
    else:
        cross = fp.imag * ft.real - fp.real * ft.imag
        dot = fp.real * ft.real + fp.imag * ft.imag
        power = (ft.real**2 + ft.imag**2).detach()
        dist = torch.atan2(cross, dot).abs() * power / (power + floor**2)
    return dist.mean(dim=(1, 2, 3))
