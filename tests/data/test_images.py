"""Training image sources: bundled photos, image folders (8- and 16-bit), seeded crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from erl_losses.data.images import FolderImages, PhotoImages, RandomCrops
from tests._helpers import NoiseImages, write_image_folder


def test_folder_images(tmp_path):
    images = FolderImages(write_image_folder(tmp_path / "gt"), max_side=32)
    assert len(images) == 3
    image = images.get(0, 20)
    assert image.dtype == torch.uint8 and image.shape[0] == 3 and max(image.shape[1:]) == 32
    assert images.get(0, 40).shape[1] >= 40  # upscaled to hold a crop
    assert images.provenance()["num_images"] == 3
    with pytest.raises(ValueError, match="image files"):
        FolderImages(write_image_folder(tmp_path / "empty", count=0))
    with pytest.raises(FileNotFoundError, match="directory"):
        FolderImages(tmp_path / "nope")


def test_folder_images_reads_16bit_grey_as_its_values_not_white(tmp_path):
    """Issue 13.6 for `erl pretrain --images`: 16-bit PNGs used to read as 255 everywhere."""
    from PIL import Image

    folder = tmp_path / "deep"
    folder.mkdir()
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "ramp.png")
    image = FolderImages(folder).get(0, 16)
    expected = np.round(ramp / 65535 * 255).astype(np.uint8)
    assert image.shape == (3, 32, 32)
    assert torch.equal(image[0], torch.from_numpy(expected))
    assert int(image.min()) == 0 and 120 < float(image.float().mean()) < 135


def test_a_corrupt_image_names_the_file(tmp_path):
    folder = write_image_folder(tmp_path / "gt", count=1)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    images = FolderImages(folder)
    with pytest.raises(ValueError, match=r"broken\.png"):
        images.get(0, 16)


def test_random_crops_are_seeded_and_resumable():
    a = RandomCrops(NoiseImages(), seed=3).sample(4, 16)
    b = RandomCrops(NoiseImages(), seed=3).sample(4, 16)
    c = RandomCrops(NoiseImages(), seed=4).sample(4, 16)
    assert a.shape == (4, 3, 16, 16) and a.dtype == torch.float32
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    crops = RandomCrops(NoiseImages(), seed=5)
    crops.sample(2, 16)
    state = crops.state()
    after = crops.sample(2, 16)
    again = RandomCrops(NoiseImages(), seed=0)
    again.set_state(state)
    assert torch.equal(again.sample(2, 16), after)


def test_photo_images_default_to_the_pretext_train_split():
    from erl_losses.data.photos import split_photos

    images = PhotoImages(max_side=64)
    train, held_out = split_photos()
    assert images.names == train and not set(images.names) & set(held_out)
    assert max(images.get(0, 32).shape[1:]) == 64
    assert images.provenance()["kind"] == "bundled-photos"
    with pytest.raises(ValueError, match="at least one photo"):
        PhotoImages([])
