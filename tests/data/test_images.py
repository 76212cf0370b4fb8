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
    """`erl pretrain --images`: a 16-bit grey PNG reads as its values, not as 255 everywhere."""
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


def test_folder_trees_several_folders_and_hidden_files(tmp_path):
    from PIL import Image

    root = write_image_folder(tmp_path / "gt")
    (root / "part2" / "deeper").mkdir(parents=True)
    Image.new("RGB", (20, 24), (10, 20, 30)).save(root / "part2" / "deeper" / "z.JPG")
    (root / ".thumbs").mkdir()
    Image.new("RGB", (20, 24)).save(root / ".thumbs" / "t.png")
    (root / "._img0.png").write_bytes(b"AppleDouble")
    images = FolderImages([root, root / "part2"])  # the nested folder listed once
    names = [p.relative_to(root).as_posix() for p in images.files]
    assert names == ["img0.png", "img1.png", "img2.png", "part2/deeper/z.JPG"]
    assert FolderImages(root, recursive=False).files == images.files[:3]
    assert images.provenance()["folder"] == [str(root), str(root / "part2")]


def test_large_jpegs_decode_with_draft_close_to_a_full_decode(tmp_path):
    from PIL import Image

    from erl_losses.data.images import decode_image

    rng = np.random.default_rng(0)
    low = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    path = tmp_path / "big.jpg"
    low.resize((1600, 1200), Image.BICUBIC).save(path, quality=95)
    with Image.open(path) as probe:
        probe.draft("RGB", (200, 150))
        assert probe.size == (200, 150)  # decoded at 1/8 scale, never at full size
    drafted = decode_image(path, max_side=200)
    assert drafted.shape == (3, 150, 200)
    full = torch.nn.functional.interpolate(
        decode_image(path)[None].float(), (150, 200), mode="area"
    )
    assert float((drafted.float() - full[0]).abs().mean()) < 2.0  # grey levels of 255
    assert decode_image(path).shape == (3, 1200, 1600)


def test_scan_caches_resized_images_by_content_and_skips_broken_files(tmp_path):
    import shutil
    import warnings

    from erl_losses.data.image_cache import entry_path

    folder = write_image_folder(tmp_path / "gt")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    images = FolderImages(folder, max_side=32, cache_dir=tmp_path / "cache")
    with pytest.warns(UserWarning, match=r"Skipping 1 of 4 .*broken\.png"):
        report = images.scan()
    assert len(images) == 3 and report.cached == 0 and len(report.entries) == 3
    assert [p.name for p, _ in images.skipped] == ["broken.png"]
    assert all(e.is_file() for e in report.entries)
    assert images.get(1, 20).shape == (3, 23, 32)  # from the cache: 31 x 44 -> 23 x 32
    # a copy under another name is the same content: found in the cache, not decoded again
    shutil.copy(folder / "img0.png", folder / "copy.png")
    again = FolderImages(folder, max_side=32, cache_dir=tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        second = again.scan()
    assert second.cached == 4 and not second.decode_seconds
    assert entry_path(tmp_path / "cache", "ab" * 32, 32).parent.name == "ab"
    # without max_side nothing is cached (full-size images would fill the disk)
    plain = FolderImages(folder, cache_dir=tmp_path / "cache2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert plain.scan().entries == [] and not (tmp_path / "cache2").exists()
