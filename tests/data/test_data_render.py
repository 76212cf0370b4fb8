"""The bundled photos, their split, and the physics of the synthetic exposure renderer."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from PIL import Image

from erl_losses.data.levels import MSEC_LEVELS
from erl_losses.data.photos import HELD_OUT, list_photos, load_photo, split_photos
from erl_losses.data.render import (
    linear_to_srgb,
    render_dataset,
    render_exposures,
    srgb_to_linear,
    tone_curve,
)

PHOTOS_UNDER_TEST = ("astronaut", "chelsea", "coffee")


@pytest.fixture(scope="module")
def renders() -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    return {
        name: (load_photo(name), render_exposures(load_photo(name))) for name in PHOTOS_UNDER_TEST
    }


def test_photo_split_is_fixed_and_disjoint() -> None:
    train, test = split_photos()
    assert test == ["chelsea", "coffee", "china"] == list(HELD_OUT)
    assert not set(train) & set(test)
    assert sorted(train + test) == sorted(list_photos())
    # The two views of the same scene stay on one side.
    assert {"motorcycle_left", "motorcycle_right"} <= set(train)


@pytest.mark.parametrize("name", list_photos())
def test_every_photo_loads_offline_as_rgb_uint8(name: str) -> None:
    photo = load_photo(name)
    assert photo.dtype == np.uint8
    assert photo.ndim == 3
    assert photo.shape[2] == 3
    assert min(photo.shape[:2]) >= 300
    assert photo.std() > 20  # a real picture, not a constant


def test_unknown_photo_is_rejected() -> None:
    with pytest.raises(ValueError, match="Expected name to be one of"):
        load_photo("eagle")


def test_srgb_eotf_reference_values_and_round_trip() -> None:
    # IEC 61966-2-1: 0.5 encoded is 0.21404 linear; the segments meet at 0.04045 / 0.0031308.
    assert srgb_to_linear(np.array(0.5)) == pytest.approx(0.214041, abs=1e-6)
    assert srgb_to_linear(np.array(0.04045)) == pytest.approx(0.04045 / 12.92)
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)


def test_tone_curve_is_identity_below_the_knee_and_a_c1_shoulder_to_white() -> None:
    knee = 0.9
    x = np.linspace(0, 3, 30001)
    y = tone_curve(x, knee=knee)
    below = x <= knee
    np.testing.assert_array_equal(y[below], x[below])
    assert np.all(np.diff(y) >= 0)
    assert y.max() == 1.0
    assert np.all(y[x >= 2 - knee] == 1.0)
    slope = np.gradient(y, x)
    at_knee = np.searchsorted(x, knee)
    assert slope[at_knee + 2] == pytest.approx(1.0, abs=1e-2)
    with pytest.raises(ValueError, match="Expected knee"):
        tone_curve(x, knee=0.0)


def test_ev0_re_renders_close_to_the_source(renders) -> None:
    for source, levels in renders.values():
        diff = np.abs(levels["0"].astype(int) - source.astype(int))
        assert diff.max() <= 3  # only the shoulder above linear 0.9 moves values
        mse = np.mean(diff.astype(float) ** 2)
        assert mse == 0 or 10 * np.log10(255**2 / mse) > 45


def test_mean_brightness_is_monotone_over_levels(renders) -> None:
    for source, levels in renders.values():
        means = [levels[level].mean() for level in MSEC_LEVELS]
        assert all(a < b for a, b in itertools.pairwise(means)), means
        assert levels["N1"].mean() < source.mean() < levels["P1"].mean()


def test_under_exposed_is_darker_everywhere_and_over_exposed_clips_more(renders) -> None:
    for source, levels in renders.values():
        for level in ("N1.5", "N1"):
            assert np.all(levels[level] <= source)
        clipped = {level: np.mean(levels[level] == 255) for level in MSEC_LEVELS}
        assert clipped["N1.5"] <= clipped["N1"] <= clipped["0"] <= np.mean(source == 255) + 1e-12
        assert clipped["P1.5"] > clipped["P1"] > clipped["0"]
        assert clipped["P1.5"] > 0.01


def test_render_exposures_validates_input() -> None:
    with pytest.raises(ValueError, match="Expected img to be"):
        render_exposures(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="Expected levels"):
        render_exposures(np.zeros((8, 8, 3), np.uint8), levels=("P2",))


def _render_small(out, seed=0, **kw):
    return render_dataset(
        out,
        crop_size=32,
        crops_per_photo=2,
        seed=seed,
        train_photos=["astronaut", "rocket"],
        test_photos=["chelsea"],
        **kw,
    )


def test_render_dataset_writes_the_msec_layout(tmp_path) -> None:
    result = _render_small(tmp_path)
    assert result.stems == {
        "train": ["astronaut_c00", "astronaut_c01", "rocket_c00", "rocket_c01"],
        "test": ["chelsea_c00", "chelsea_c01"],
    }
    for split in ("train", "test"):
        gts = sorted(p.name for p in (tmp_path / split / "GT_IMAGES").iterdir())
        inputs = sorted(p.name for p in (tmp_path / split / "INPUT_IMAGES").iterdir())
        assert gts == sorted(f"{s}.png" for s in result.stems[split])
        assert inputs == sorted(f"{s}_{lv}.png" for s in result.stems[split] for lv in MSEC_LEVELS)
        assert result.count(split) == len(inputs)
    with Image.open(tmp_path / "test" / "INPUT_IMAGES" / "chelsea_c00_P1.png") as image:
        assert image.size == (32, 32)
        assert image.mode == "RGB"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {r["photo"] for r in manifest["splits"]["test"]} == {"chelsea"}
    assert manifest["seed"] == 0


def test_render_dataset_is_deterministic_and_seeded(tmp_path) -> None:
    _render_small(tmp_path / "a", seed=3)
    _render_small(tmp_path / "b", seed=3)
    _render_small(tmp_path / "c", seed=4)
    name = "train/INPUT_IMAGES/rocket_c01_N1.png"
    a, b, c = ((tmp_path / d / name).read_bytes() for d in "abc")
    assert a == b
    assert a != c


def test_render_dataset_split_has_no_shared_photo(tmp_path) -> None:
    result = render_dataset(tmp_path, crop_size=32, crops_per_photo=1)
    train_photos = {s.rsplit("_", 1)[0] for s in result.stems["train"]}
    test_photos = {s.rsplit("_", 1)[0] for s in result.stems["test"]}
    assert test_photos == set(HELD_OUT)
    assert not train_photos & test_photos


def test_render_dataset_errors(tmp_path) -> None:
    _render_small(tmp_path)
    with pytest.raises(ValueError, match="overwrite"):
        _render_small(tmp_path)
    _render_small(tmp_path, overwrite=True)
    with pytest.raises(ValueError, match="Expected disjoint"):
        render_dataset(tmp_path / "x", train_photos=["chelsea"], test_photos=["chelsea"])
    with pytest.raises(ValueError, match="short side"):
        render_dataset(tmp_path / "y", crop_size=400, test_photos=["chelsea"], split="test")
    with pytest.raises(ValueError, match="Expected crop_size"):
        render_dataset(tmp_path / "z", crop_size=2)
