"""Exposure data (needs the ``data`` extra: numpy, pillow, scikit-image, scikit-learn, matplotlib).

* :mod:`.photos`: natural photos bundled in installed packages and their fixed train/test split.
* :mod:`.render`: the synthetic exposure renderer (camera inputs, expert-retouch GT) writing the
  MSEC layout; its branches live in :mod:`.camera` and :mod:`.retouch`.
* :mod:`.io`: reading (8- and 16-bit), writing and listing image files.
* :mod:`.datasets`: :class:`MSECDataset` and :class:`SICEDataset` (no torchvision).
* :mod:`.sampler`: :class:`MixedExposureBatchSampler`, every batch mixes under and over exposure.
* :mod:`.pairs`: :class:`PairBank`, a rendered split in memory, cropped on the training device.
"""

from erl_losses.data.datasets import MSECDataset, SICEDataset
from erl_losses.data.io import IMAGE_EXTENSIONS, list_images, read_image, write_png
from erl_losses.data.levels import GROUPS, LEVEL_EV, LEVELS, MSEC_LEVELS, SICE_LEVELS, group_of
from erl_losses.data.pairs import PairBank
from erl_losses.data.photos import HELD_OUT, PRETEXT_TRAIN, list_photos, load_photo, split_photos
from erl_losses.data.render import (
    RenderedScene,
    RenderedSet,
    linear_to_srgb,
    render_dataset,
    render_exposures,
    render_scene,
    srgb_to_linear,
)
from erl_losses.data.sampler import MixedExposureBatchSampler

__all__ = [
    "GROUPS",
    "HELD_OUT",
    "IMAGE_EXTENSIONS",
    "LEVELS",
    "LEVEL_EV",
    "MSEC_LEVELS",
    "PRETEXT_TRAIN",
    "SICE_LEVELS",
    "MSECDataset",
    "MixedExposureBatchSampler",
    "PairBank",
    "RenderedScene",
    "RenderedSet",
    "SICEDataset",
    "group_of",
    "linear_to_srgb",
    "list_images",
    "list_photos",
    "load_photo",
    "read_image",
    "render_dataset",
    "render_exposures",
    "render_scene",
    "split_photos",
    "srgb_to_linear",
    "write_png",
]
