"""The camera branch of the synthetic renderer: how a mis-exposed input is made from a raw scene.

One call of :func:`camera_render` is one shot of the scene at a relative exposure ``EV``:

1. as-shot white balance with an error (:func:`white_balance`): per-channel gains drawn once per
   scene, so every exposure of a scene carries the same colour cast;
2. exposure ``2 ** EV`` and the sensor's clip at 1 (:func:`expose`);
3. the camera's filmic tone curve (:func:`filmic_shoulder`): lifts the mid-tones and rolls the
   highlights off to white;
4. sRGB encoding and the camera's contrast S-curve on the encoded values (:func:`s_curve`,
   strength :data:`CAMERA_CONTRAST`): deepens the shadows, so an under-exposed shot is as dark as
   MSEC's (real N1.5 inputs average a luma of about 45 of 255);
5. 8-bit quantisation and a mild JPEG round trip (:func:`jpeg_round_trip`, quality 88-95, as in
   the in-camera JPEGs of MSEC's inputs).

The random parts (white-balance error, JPEG quality) live in :class:`CameraParams`, drawn by
:func:`draw_camera_params`. This is our emulation, not the MSEC pipeline (Afifi et al. render
MIT-Adobe FiveK raws with an emulated camera ISP); the same structure, simplified.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from erl_losses.data.colour import linear_to_srgb

__all__ = [
    "CameraParams",
    "camera_render",
    "draw_camera_params",
    "expose",
    "filmic_shoulder",
    "invert_tone_curve",
    "jpeg_round_trip",
    "s_curve",
    "white_balance",
]

#: Standard deviation (stops) of the as-shot white-balance error of the red and blue channels.
WB_ERROR_STOPS = 0.12
#: Range of the in-camera JPEG quality (inclusive).
JPEG_QUALITY = (88, 95)
#: Strength of the camera's filmic shoulder (see :func:`filmic_shoulder`).
CAMERA_SHOULDER = 3.0
#: Strength of the camera's contrast S-curve on encoded values (see :func:`s_curve`).
CAMERA_CONTRAST = 0.6


@dataclass(frozen=True)
class CameraParams:
    """The per-scene random settings of the camera.

    Attributes:
        wb_gains: as-shot white-balance gains of (R, G, B), G = 1; each of R and B is
            ``2 ** e`` with ``e`` about N(0, 0.12) clipped to +-0.3 stops.
        jpeg_quality: in-camera JPEG quality, an int in [88, 95].
        shoulder: filmic shoulder strength, see :func:`filmic_shoulder`.
        contrast: strength of the contrast S-curve on the encoded values, see :func:`s_curve`.
    """

    wb_gains: tuple[float, float, float]
    jpeg_quality: int
    shoulder: float = CAMERA_SHOULDER
    contrast: float = CAMERA_CONTRAST


def draw_camera_params(rng: np.random.Generator) -> CameraParams:
    """Draws one scene's :class:`CameraParams` (three draws from ``rng``, always the same count)."""
    red, blue = np.clip(rng.normal(0.0, WB_ERROR_STOPS, size=2), -0.3, 0.3)
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    return CameraParams(wb_gains=(2.0**red, 1.0, 2.0**blue), jpeg_quality=quality)


def white_balance(raw: np.ndarray, gains: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """Multiplies each channel of ``(H, W, 3)`` linear ``raw`` by its gain (no clipping)."""
    return np.asarray(raw, dtype=np.float64) * np.asarray(gains, dtype=np.float64)


def expose(raw: np.ndarray, ev: float) -> np.ndarray:
    """Scales linear ``raw`` by ``2 ** ev`` and clips at the sensor's white level 1.

    Returns:
        Float64 array in [0, 1], ``raw``'s shape.
    """
    return np.clip(np.asarray(raw, dtype=np.float64) * 2.0**ev, 0.0, 1.0)


def filmic_shoulder(x: np.ndarray, strength: float = CAMERA_SHOULDER) -> np.ndarray:
    """A camera tone curve on linear values in [0, 1]: ``(1 + a) x / (x + a)`` with ``a = strength``.

    Maps 0 -> 0 and 1 -> 1, slope ``(1 + a) / a`` at black (mid-tones lifted: 0.18 -> 0.23 at
    ``a = 3``) and ``a / (1 + a)`` at white (a soft shoulder instead of a hard clip). Larger
    ``a`` is closer to the identity.

    Args:
        x: linear values, any shape; clipped to [0, 1].
        strength: ``a > 0``.

    Returns:
        Float64 array of ``x``'s shape in [0, 1], monotone in ``x``.
    """
    if not strength > 0:
        raise ValueError(f"Expected strength > 0, got {strength}")
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return (1.0 + strength) * x / (x + strength)


def s_curve(encoded: np.ndarray, strength: float) -> np.ndarray:
    """A contrast S-curve on encoded values in [0, 1]: ``x - k sin(2 pi x) / (2 pi)``.

    Fixes 0, 0.5 and 1; slope ``1 + k`` at mid-grey and ``1 - k`` at the ends, monotone for
    ``k = strength`` in [0, 1).
    """
    x = np.clip(np.asarray(encoded, dtype=np.float64), 0.0, 1.0)
    return x - strength * np.sin(2.0 * np.pi * x) / (2.0 * np.pi)


def invert_tone_curve(
    encoded: np.ndarray, shoulder: float = CAMERA_SHOULDER, contrast: float = CAMERA_CONTRAST
) -> np.ndarray:
    """Linear values the camera's tone curve maps to ``encoded``: the raw behind a finished photo.

    Inverts :func:`s_curve` (by interpolation), the sRGB encoding and :func:`filmic_shoulder`
    (``x = a y / (1 + a - y)``), so ``camera_render`` at 0 EV (no white-balance error) gives
    the encoded values back up to quantisation and JPEG. Float64 in [0, 1], ``encoded``'s shape.
    """
    from erl_losses.data.colour import srgb_to_linear

    grid = np.linspace(0.0, 1.0, 4097)
    y = np.interp(np.clip(encoded, 0.0, 1.0), s_curve(grid, contrast), grid)
    y = srgb_to_linear(y)
    return np.clip(shoulder * y / (1.0 + shoulder - y), 0.0, 1.0)


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encodes an ``(H, W, 3)`` uint8 image as JPEG (4:4:4, Pillow) and decodes it again.

    Deterministic for a given Pillow/libjpeg build. ``quality`` in [1, 95].
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality), subsampling=0)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def camera_render(raw: np.ndarray, ev: float, params: CameraParams) -> np.ndarray:
    """One in-camera JPEG of the linear scene ``raw`` at relative exposure ``ev``.

    Args:
        raw: ``(H, W, 3)`` linear scene radiance, >= 0 (values above 1 clip at EV 0).
        ev: relative exposure in stops (MSEC: -1.5 ... +1.5).
        params: the scene's camera settings.

    Returns:
        ``(H, W, 3)`` uint8 sRGB image.
    """
    exposed = expose(white_balance(raw, params.wb_gains), ev)
    encoded = s_curve(linear_to_srgb(filmic_shoulder(exposed, params.shoulder)), params.contrast)
    quantised = np.round(encoded * 255.0).astype(np.uint8)
    return jpeg_round_trip(quantised, params.jpeg_quality)
