"""The expert branch of the synthetic renderer: the ground truth, a retouch of the raw scene.

MSEC's ground truth is an expert's edit of the raw (MIT-Adobe FiveK, expert C), not the camera's
rendering; even the 0 EV input differs from it. :func:`expert_retouch` emulates such an edit with
fixed settings, so the result is a function of the image's own statistics (learnable from the
input) rather than of a random style:

1. white balance to the scene's true illuminant: the camera's as-shot error is undone
   (:func:`neutral_gains`). Not grey world, which would pull every warm scene (sunsets, indoor
   light, the bundled photos' average) towards blue, a habit an expert does not have;
2. a content-driven exposure change that moves the log-average luminance part of the way towards
   mid-grey (:func:`auto_exposure_gain`);
3. local tone mapping with a detail boost (:func:`local_tone_map`: base layer compressed to 0.75
   of its log contrast, detail x1.3);
4. a white point, a highlight roll-off and sRGB encoding, then an S-curve on the encoded values (:func:`s_curve`)
   and a saturation boost x1.15 (:func:`saturate`);
5. 8-bit quantisation (the GT is stored losslessly).

These are our choices, not a model of any particular expert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from erl_losses.data.camera import filmic_shoulder, s_curve
from erl_losses.data.colour import linear_to_srgb, luminance

__all__ = [
    "ExpertStyle",
    "auto_exposure_gain",
    "expert_retouch",
    "local_tone_map",
    "neutral_gains",
    "s_curve",
    "saturate",
    "white_level",
]

_EPS = 1e-4


@dataclass(frozen=True)
class ExpertStyle:
    """The expert's fixed settings (defaults are the renderer's calibration).

    Attributes:
        wb_strength: fraction (in stops) of the as-shot white-balance error removed, in [0, 1].
        target_key: log-average luminance aimed at, linear (0.18 = mid-grey).
        exposure_strength: fraction (in log space) of the way to ``target_key``, in [0, 1].
        max_darken_stops, max_brighten_stops: caps of the exposure change, stops (an expert
            darkens a bright, high-key picture far less than grey world would).
        base_contrast: log-contrast kept in the base layer, in (0, 1].
        detail_boost: gain on the detail layer, >= 1.
        base_sigma: Gaussian base-layer sigma as a fraction of the image's short side.
        white_percentile: luminance percentile set to white (see :func:`white_level`).
        shoulder: strength of the expert's highlight roll-off (the camera's curve, see
            :func:`~erl_losses.data.camera.filmic_shoulder`), > 0.
        s_curve: S-curve strength in [0, 1).
        saturation: saturation factor, >= 1 boosts.
    """

    wb_strength: float = 1.0
    target_key: float = 0.18
    exposure_strength: float = 0.7
    max_darken_stops: float = 0.5
    max_brighten_stops: float = 1.5
    base_contrast: float = 0.75
    detail_boost: float = 1.3
    base_sigma: float = 0.08
    white_percentile: float = 99.5
    shoulder: float = 2.0
    s_curve: float = 0.35
    saturation: float = 1.15


def neutral_gains(
    as_shot_gains: tuple[float, float, float] | np.ndarray, strength: float
) -> np.ndarray:
    """Per-channel gains undoing ``strength`` of the camera's as-shot white-balance error.

    ``as_shot_gains ** -strength``: 1 restores the scene's true illuminant (a neutral surface
    comes out neutral whatever the scene's average colour), 0 keeps the camera's cast. Unlike
    grey world it leaves a warm or cool scene's own colour alone.

    Returns:
        ``(3,)`` float64 gains.
    """
    return np.asarray(as_shot_gains, dtype=np.float64) ** -float(strength)


def auto_exposure_gain(raw: np.ndarray, style: ExpertStyle) -> float:
    """Linear gain taking the log-average luminance of ``raw`` part of the way to the target.

    ``2 ** clip(s * log2(target / key), -d, b)`` with ``key = exp(mean(log(Y + 1e-4)))``,
    ``s = style.exposure_strength``, ``d = style.max_darken_stops`` and
    ``b = style.max_brighten_stops``.
    """
    key = float(np.exp(np.mean(np.log(luminance(raw) + _EPS))))
    stops = style.exposure_strength * np.log2(style.target_key / key)
    return float(2.0 ** np.clip(stops, -style.max_darken_stops, style.max_brighten_stops))


def local_tone_map(
    raw: np.ndarray, *, base_contrast: float, detail_boost: float, sigma: float
) -> np.ndarray:
    """Base/detail tone mapping in log2 luminance, colours scaled by the luminance ratio.

    ``log Y = B + D`` with ``B`` a Gaussian blur of ``log Y`` (``sigma`` in pixels); the output
    luminance is ``2 ** (mean(B) + c (B - mean(B)) + d D)``: the large-scale contrast shrinks by
    ``c = base_contrast`` and local detail grows by ``d = detail_boost``.

    Args:
        raw: ``(H, W, 3)`` linear values >= 0.

    Returns:
        ``(H, W, 3)`` float64 linear values >= 0 (may exceed 1).
    """
    from scipy.ndimage import gaussian_filter

    lum = luminance(raw) + _EPS
    log_lum = np.log2(lum)
    base = gaussian_filter(log_lum, sigma=sigma, mode="reflect")
    anchor = float(base.mean())
    mapped = anchor + base_contrast * (base - anchor) + detail_boost * (log_lum - base)
    return np.asarray(raw, dtype=np.float64) * (2.0**mapped / lum)[..., None]


def white_level(linear: np.ndarray, percentile: float) -> float:
    """The expert's white point: the ``percentile`` of the luminance of ``linear``, at least 1.

    Dividing by it keeps the brightest part of a tone-mapped image (which may exceed 1) just
    below clipping without brightening images whose highlights are already below 1.
    """
    return max(1.0, float(np.percentile(luminance(linear), percentile)))


def saturate(encoded: np.ndarray, factor: float) -> np.ndarray:
    """Scales each pixel's distance from its grey (Rec. 709 weights) by ``factor``; clips to [0, 1]."""
    grey = luminance(encoded)[..., None]
    return np.clip(grey + factor * (np.asarray(encoded, dtype=np.float64) - grey), 0.0, 1.0)


def expert_retouch(
    raw: np.ndarray,
    style: ExpertStyle | None = None,
    *,
    as_shot_gains: tuple[float, float, float] | np.ndarray = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """The ground truth: the expert's edit of the linear raw ``(H, W, 3)`` (values in [0, 1]).

    ``as_shot_gains`` are the camera's white-balance gains the raw was shot with (its error
    against the true illuminant, :class:`~erl_losses.data.camera.CameraParams`); the expert
    undoes them (:func:`neutral_gains`).

    Returns:
        ``(H, W, 3)`` uint8 sRGB image.
    """
    style = style or ExpertStyle()
    raw = np.asarray(raw, dtype=np.float64)
    balanced = raw * neutral_gains(as_shot_gains, style.wb_strength)
    exposed = balanced * auto_exposure_gain(balanced, style)
    sigma = style.base_sigma * min(raw.shape[:2])
    mapped = local_tone_map(
        exposed, base_contrast=style.base_contrast, detail_boost=style.detail_boost, sigma=sigma
    )
    display = filmic_shoulder(mapped / white_level(mapped, style.white_percentile), style.shoulder)
    toned = saturate(s_curve(linear_to_srgb(display), style.s_curve), style.saturation)
    return np.round(toned * 255.0).astype(np.uint8)
