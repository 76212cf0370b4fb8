"""Colour helpers of the synthetic renderer: the sRGB transfer curves and Rec. 709 luminance.

All functions take and return float64 numpy arrays; images are ``(H, W, 3)`` RGB.
"""

from __future__ import annotations

import numpy as np

__all__ = ["REC709", "linear_to_srgb", "luminance", "srgb_to_linear"]

#: Rec. 709 / sRGB luminance weights of linear R, G, B.
REC709: np.ndarray = np.array([0.2126, 0.7152, 0.0722])


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB EOTF (IEC 61966-2-1): encoded values in [0, 1] -> linear light in [0, 1].

    Piecewise: ``c / 12.92`` up to 0.04045, ``((c + 0.055) / 1.055) ** 2.4`` above. Inputs are
    clipped to [0, 1] first.
    """
    c = np.clip(np.asarray(srgb, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Inverse sRGB EOTF: linear light in [0, 1] -> encoded values in [0, 1] (clips first)."""
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luminance of ``(..., 3)`` RGB values (linear or encoded); shape ``(...)``."""
    return np.asarray(rgb, dtype=np.float64) @ REC709
