"""Natural colour photos that ship inside installed packages, and their fixed train/test split.

No dataset can be downloaded in this workplace, so the synthetic exposure set
(:mod:`erl_losses.data.render`) is rendered from the handful of real colour photographs bundled
with scikit-image, scikit-learn and matplotlib. Every photo below was checked to load offline
(scikit-image 0.26, scikit-learn 1.9, matplotlib 3.11).

The split is by *source scene* and is fixed:

* ``HELD_OUT`` (test): ``chelsea`` (an animal, fur texture), ``coffee`` (indoor still life) and
  ``china`` (an outdoor scene with sky). These are reused by the demo and the benchmarks and must
  never be used to train a shipped model (e.g. the pretext-trained BCM).
* ``PRETEXT_TRAIN`` (train): every other photo. The two views of ``stereo_motorcycle`` show the
  same scene, so both sit on the training side.

An optional, larger pool of real photographs: the twelve nature photos of Debian's
``mate-backgrounds`` package (GPL-2+, ``apt-get install mate-backgrounds``; read from
``/usr/share/backgrounds/mate/nature`` or ``$ERL_MATE_PHOTOS``), named ``mate-<Stem>``
(:func:`debian_photos`). Nothing needs them; the quality protocol uses them for its validation and
test splits when they are installed, since three held-out photos are too few to tell scene
variation from an effect.

Deliberately left out: ``retina`` and ``hubble_deep_field`` (mostly black backgrounds, not
everyday scenes), ``colorwheel`` and ``logo`` (synthetic graphics), ``cat`` (the same image as
``chelsea``), grey-scale images, and ``eagle``/``lily``/``skin``, which need a download.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "DEBIAN_PREFIX",
    "HELD_OUT",
    "PHOTO_SOURCES",
    "PRETEXT_TRAIN",
    "debian_photo_dir",
    "debian_photos",
    "list_photos",
    "load_photo",
    "split_photos",
]


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _motorcycle(view: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return skimage.data.stereo_motorcycle()[view]

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


def _matplotlib(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import matplotlib.cbook

        from erl_losses.data.io import read_image

        return read_image(matplotlib.cbook.get_sample_data(filename, asfileobj=False))

    return load


#: Photo name -> (package that ships it, loader). Names are the keys used everywhere else.
_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "rocket": _skimage("rocket"),
    "motorcycle_left": _motorcycle(0),
    "motorcycle_right": _motorcycle(1),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
    "grace_hopper": _matplotlib("grace_hopper.jpg"),
}

#: Photo name -> the package it ships in (documentation and provenance in manifests).
PHOTO_SOURCES: dict[str, str] = {
    "astronaut": "scikit-image skimage.data.astronaut",
    "chelsea": "scikit-image skimage.data.chelsea",
    "coffee": "scikit-image skimage.data.coffee",
    "rocket": "scikit-image skimage.data.rocket",
    "motorcycle_left": "scikit-image skimage.data.stereo_motorcycle()[0]",
    "motorcycle_right": "scikit-image skimage.data.stereo_motorcycle()[1]",
    "immunohistochemistry": "scikit-image skimage.data.immunohistochemistry",
    "china": "scikit-learn sklearn.datasets.load_sample_image('china.jpg')",
    "flower": "scikit-learn sklearn.datasets.load_sample_image('flower.jpg')",
    "grace_hopper": "matplotlib sample data grace_hopper.jpg",
}

#: Held-out test photos: never train a shipped model on these.
HELD_OUT: tuple[str, ...] = ("chelsea", "coffee", "china")

#: Photos for training (including the BCM pretext task).
PRETEXT_TRAIN: tuple[str, ...] = tuple(name for name in _LOADERS if name not in HELD_OUT)


#: Name prefix of the optional Debian photos (``mate-Dune`` is ``<dir>/Dune.jpg``).
DEBIAN_PREFIX = "mate-"
#: Longest side (px) a Debian photo is downscaled to on load: the bundled photos' scale
#: (300-640 px), so that a crop of a few dozen pixels shows a scene rather than a texture patch.
DEBIAN_MAX_SIDE = 640


def debian_photo_dir() -> Path:
    """Where the optional Debian photos are read: ``$ERL_MATE_PHOTOS`` or the package's folder."""
    return Path(os.environ.get("ERL_MATE_PHOTOS") or "/usr/share/backgrounds/mate/nature")


def debian_photos() -> list[str]:
    """Names (``mate-<Stem>``) of the Debian photos installed here, sorted; ``[]`` if none."""
    folder = debian_photo_dir()
    if not folder.is_dir():
        return []
    return sorted(f"{DEBIAN_PREFIX}{p.stem}" for p in folder.glob("*.jpg") if p.is_file())


def _load_debian(name: str) -> np.ndarray:
    from PIL import Image

    from erl_losses.data.io import read_image

    path = debian_photo_dir() / f"{name[len(DEBIAN_PREFIX) :]}.jpg"
    if not path.is_file():
        raise ValueError(
            f"Expected photo {name!r} at {path} (apt-get install mate-backgrounds, or set "
            f"ERL_MATE_PHOTOS), got no such file"
        )
    image = read_image(path)
    h, w = image.shape[:2]
    if max(h, w) > DEBIAN_MAX_SIDE:
        scale = DEBIAN_MAX_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
    return image


def list_photos() -> list[str]:
    """Names of every bundled photo, in a fixed order (training photos first, then held-out)."""
    return [*PRETEXT_TRAIN, *HELD_OUT]


def split_photos() -> tuple[list[str], list[str]]:
    """The fixed split by source photo.

    Returns:
        ``(train_names, test_names)``: disjoint lists; ``test_names`` is :data:`HELD_OUT`.
    """
    return list(PRETEXT_TRAIN), list(HELD_OUT)


def load_photo(name: str) -> np.ndarray:
    """Loads one bundled photo offline.

    Args:
        name: one of :func:`list_photos`, or ``mate-<Stem>`` of :func:`debian_photos`.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB array (a fresh, writable copy).

    Raises:
        ValueError: when ``name`` is not a known photo.
    """
    if name.startswith(DEBIAN_PREFIX) and name not in _LOADERS:
        return _load_debian(name)
    if name not in _LOADERS:
        raise ValueError(f"Expected name to be one of {list_photos()}, got {name!r}")
    image = np.asarray(_LOADERS[name]())
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise RuntimeError(
            f"Expected photo {name!r} to load as (H, W, 3) uint8, got {image.shape} {image.dtype}"
        )
    return np.array(image, copy=True)
