"""MSEC / SICE readers on the rendered set and on hand-made copies of the real layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from erl_losses.data import MixedExposureBatchSampler, MSECDataset, SICEDataset, render_dataset
from erl_losses.data.levels import MSEC_LEVELS


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rendered")
    render_dataset(
        root, crop_size=32, crops_per_photo=2, train_photos=["astronaut"], test_photos=["coffee"]
    )
    return root


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _random_image(rng: np.random.Generator, h: int = 20, w: int = 24) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_msec_dataset_items(rendered: Path) -> None:
    ds = MSECDataset(rendered, "test")
    assert len(ds) == 2 * 5
    assert ds.gt_dir == rendered / "test" / "GT_IMAGES"
    item = ds[0]
    assert set(item) == {"lq", "gt", "level", "group", "lq_path", "gt_path"}
    for key in ("lq", "gt"):
        assert item[key].shape == (3, 32, 32)
        assert item[key].dtype == torch.float32
        assert 0.0 <= item[key].min() <= item[key].max() <= 1.0
    for index in range(len(ds)):
        it = ds[index]
        scene, level = Path(it["lq_path"]).stem.rsplit("_", 1)
        assert Path(it["gt_path"]).stem == scene
        assert it["level"] == level
        assert it["group"] == ("under" if level in ("N1.5", "N1") else "over")
    assert ds.groups.count("under") == 4
    assert ds.groups.count("over") == 6
    # The rendered under-exposed input is darker than its GT.
    under = next(ds[i] for i in range(len(ds)) if ds.levels[i] == "N1.5")
    assert under["lq"].mean() < under["gt"].mean()


def test_msec_dataset_level_filter(rendered: Path) -> None:
    ds = MSECDataset(rendered, "train", levels=("N1.5", "P1.5"))
    assert sorted(set(ds.levels)) == ["N1.5", "P1.5"]
    assert len(ds) == 4
    with pytest.raises(ValueError, match="Expected levels"):
        MSECDataset(rendered, "train", levels=("P2",))


def test_msec_real_layout_case_insensitive_and_expert_gt(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = tmp_path / "testing"
    for scene in ("a0001-jmac_DSC1459", "a0002-x"):
        gt = _random_image(rng)
        _write(base / "expert_c_testing_set" / f"{scene}.jpg", gt)
        _write(base / "expert_a_testing_set" / f"{scene}.jpg", gt)
        for level in MSEC_LEVELS:
            _write(base / "INPUT_IMAGES" / f"{scene}_{level}.JPG", _random_image(rng))
    ds = MSECDataset(tmp_path, "test")
    assert len(ds) == 10
    assert ds.gt_dir.name == "expert_c_testing_set"
    assert MSECDataset(tmp_path, "test", expert="a").gt_dir.name == "expert_a_testing_set"
    assert Path(ds[0]["gt_path"]).suffix == ".jpg"
    assert Path(ds[0]["lq_path"]).suffix == ".JPG"


def test_msec_missing_gt_lists_every_missing_input(rendered: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _write(tmp_path / "train" / "GT_IMAGES" / "s1.png", _random_image(rng))
    for name in ("s1_N1", "s2_P1", "s3_0"):
        _write(tmp_path / "train" / "INPUT_IMAGES" / f"{name}.png", _random_image(rng))
    with pytest.raises(ValueError, match="got 2 missing") as info:
        MSECDataset(tmp_path, "train")
    assert "s2_P1.png" in str(info.value)
    assert "s3_0.png" in str(info.value)


def test_msec_unrecognised_names_and_missing_folders(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    _write(tmp_path / "train" / "GT_IMAGES" / "s1.png", _random_image(rng))
    _write(tmp_path / "train" / "INPUT_IMAGES" / "s1_P3.png", _random_image(rng))
    with pytest.raises(ValueError, match="Expected input names"):
        MSECDataset(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="for split 'valid'"):
        MSECDataset(tmp_path, "valid")
    with pytest.raises(ValueError, match="Expected split"):
        MSECDataset(tmp_path, "dev")


def test_paired_crop_and_flips_stay_aligned(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    image = _random_image(rng, 40, 50)
    _write(tmp_path / "GT_IMAGES" / "s.png", image)
    for level in MSEC_LEVELS:
        _write(tmp_path / "INPUT_IMAGES" / f"s_{level}.png", image)
    ds = MSECDataset(tmp_path, split=None, crop=16, augment=True)
    seen = set()
    for _ in range(20):
        item = ds[0]
        assert item["lq"].shape == (3, 16, 16)
        torch.testing.assert_close(item["lq"], item["gt"], rtol=0, atol=0)
        seen.add(item["lq"].sum().item())
    assert len(seen) > 1  # crops and flips are random
    with pytest.raises(ValueError, match="Expected crop <= image size"):
        MSECDataset(tmp_path, split=None, crop=64)[0]


def _sice(root: Path, ids=(4, 38, 40), missing_mid=()) -> None:
    rng = np.random.default_rng(4)
    for split in ("train", "test"):
        for i in ids:
            if i not in missing_mid:
                _write(root / "SICEV2" / split / "mid" / f"{i}.JPG", _random_image(rng))
            _write(root / "SICEV2" / split / "low" / f"{i}.JPG", _random_image(rng))
            _write(root / "SICEV2" / split / "over" / f"{i}.JPG", _random_image(rng))


def test_sice_dataset(tmp_path: Path) -> None:
    _sice(tmp_path)
    ds = SICEDataset(tmp_path, "test")  # the parent of SICEV2 works too
    assert len(ds) == 6
    assert sorted(ds.groups) == ["over"] * 3 + ["under"] * 3
    assert set(ds.levels) == {"low", "over"}
    for index in range(len(ds)):
        item = ds[index]
        assert Path(item["gt_path"]).parent.name == "mid"
        assert Path(item["gt_path"]).name == Path(item["lq_path"]).name
        assert item["group"] == {"low": "under", "over": "over"}[item["level"]]
    assert len(SICEDataset(tmp_path / "SICEV2", "train", levels=("low",))) == 3


def test_sice_missing_mid_is_listed(tmp_path: Path) -> None:
    _sice(tmp_path, missing_mid=(38,))
    with pytest.raises(
        ValueError, match=r"got 2 missing: low/38\.JPG -> 38\.\*, over/38\.JPG -> 38\.\*"
    ):
        SICEDataset(tmp_path, "train")


def test_dataloader_with_the_mixed_sampler(rendered: Path) -> None:
    ds = MSECDataset(rendered, "train", crop=16, augment=True)
    sampler = MixedExposureBatchSampler(ds.groups, batch_size=3, seed=0)
    batches = list(DataLoader(ds, batch_sampler=sampler))
    assert len(batches) == len(sampler)
    for batch in batches:
        assert batch["lq"].shape == (3, 3, 16, 16)
        assert set(batch["group"]) == {"under", "over"}


def test_16bit_grey_and_colour_inputs_read_as_their_values(tmp_path: Path) -> None:
    """16-bit grey and colour PNGs read as their values (not clipped to white, low byte kept)."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(5)
    gt = _random_image(rng, 16, 16)
    _write(tmp_path / "train" / "GT_IMAGES" / "s.png", gt)
    colour = rng.integers(0, 65536, (16, 16, 3), dtype=np.uint16)
    (tmp_path / "train" / "INPUT_IMAGES").mkdir()
    assert cv2.imwrite(str(tmp_path / "train" / "INPUT_IMAGES" / "s_N1.png"), colour[..., ::-1])
    grey = rng.integers(0, 65536, (16, 16), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "train" / "INPUT_IMAGES" / "s_P1.png")
    ds = MSECDataset(tmp_path, "train")
    by_level = {ds[i]["level"]: ds[i]["lq"] for i in range(len(ds))}
    expected_colour = torch.from_numpy(colour.astype(np.float32) / 65535).permute(2, 0, 1)
    torch.testing.assert_close(by_level["N1"], expected_colour, rtol=0, atol=1e-6)
    expected_grey = torch.from_numpy(grey.astype(np.float32) / 65535).expand(3, -1, -1)
    torch.testing.assert_close(by_level["P1"], expected_grey, rtol=0, atol=1e-6)
    assert float(by_level["P1"].min()) < 0.1  # not white
