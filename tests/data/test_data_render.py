"""The bundled photos, their split, and the synthetic renderer (camera inputs, expert-retouch GT)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from erl_losses.data.camera import (
    CameraParams,
    camera_render,
    filmic_shoulder,
    invert_tone_curve,
    jpeg_round_trip,
)
from erl_losses.data.colour import linear_to_srgb, luminance, srgb_to_linear
from erl_losses.data.levels import MSEC_LEVELS
from erl_losses.data.photos import HELD_OUT, list_photos, load_photo, split_photos
from erl_losses.data.render import render_dataset, render_exposures, render_scene
from erl_losses.data.retouch import (
    ExpertStyle,
    auto_exposure_gain,
    expert_retouch,
    local_tone_map,
    neutral_gains,
    s_curve,
)

#: Calibration targets, from how far MSEC's inputs are from expert C (mean input PSNR vs GT over
#: the default set, dB; docs/renderer.md).
CALIBRATION = {"N1.5": (11, 16), "N1": (13, 20), "0": (18, 22), "P1": (13, 20), "P1.5": (11, 16)}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    return np.ascontiguousarray(load_photo("coffee")[100:196, 200:296])


@pytest.fixture(scope="module")
def default_set(tmp_path_factory):
    """The default set (10 photos x 4 crops x 128 px, seed 0), rendered once."""
    root = tmp_path_factory.mktemp("default-set")
    return render_dataset(root)


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
    assert luminance(np.ones(3)) == pytest.approx(1.0)


def test_filmic_shoulder_fixes_black_and_white_and_lifts_mid_tones() -> None:
    x = np.linspace(0, 1, 10001)
    y = filmic_shoulder(x, 3.0)
    assert y[0] == 0.0
    assert y[-1] == pytest.approx(1.0)
    assert np.all(np.diff(y) > 0)
    assert np.all(y >= x)
    slope = np.gradient(y, x)
    assert slope[0] == pytest.approx(4 / 3, rel=1e-3)
    assert slope[-1] == pytest.approx(3 / 4, rel=1e-3)
    with pytest.raises(ValueError, match="Expected strength > 0"):
        filmic_shoulder(x, 0.0)


def test_s_curve_fixes_ends_and_mid_grey_and_is_monotone() -> None:
    x = np.linspace(0, 1, 10001)
    y = s_curve(x, 0.35)
    np.testing.assert_allclose(y[[0, 5000, -1]], [0.0, 0.5, 1.0], atol=1e-12)
    assert np.all(np.diff(y) > 0)
    assert np.gradient(y, x)[5000] == pytest.approx(1.35, rel=1e-3)


def test_expert_undoes_the_as_shot_cast_and_keeps_a_warm_scene_warm() -> None:
    np.testing.assert_allclose(neutral_gains((2.0, 1.0, 0.5), 1.0), [0.5, 1.0, 2.0])
    np.testing.assert_allclose(neutral_gains((2.0, 1.0, 0.5), 0.0), np.ones(3))
    rng = np.random.default_rng(0)
    warm = rng.uniform(0.05, 0.5, (32, 32, 1)) * np.array([1.0, 0.8, 0.5])
    gains = (2.0**0.2, 1.0, 2.0**-0.2)
    neutral = expert_retouch(warm).reshape(-1, 3).mean(axis=0)
    shot = expert_retouch(np.clip(warm * gains, 0, 1), as_shot_gains=gains)
    np.testing.assert_allclose(shot.reshape(-1, 3).mean(axis=0), neutral, atol=1.0)
    assert neutral[0] > neutral[1] > neutral[2]


def test_inverting_the_tone_curve_gives_the_photo_back_at_0ev(crop) -> None:
    params = CameraParams(wb_gains=(1.0, 1.0, 1.0), jpeg_quality=95)
    again = camera_render(invert_tone_curve(crop / 255.0), 0.0, params)
    assert _psnr(again, crop) > 35
    under = camera_render(invert_tone_curve(crop / 255.0), -1.5, params)
    assert under.mean() < 0.6 * crop.mean()


def test_auto_exposure_moves_the_key_towards_mid_grey_within_its_caps() -> None:
    style = ExpertStyle()
    dark = np.full((8, 8, 3), 0.02)
    bright = np.full((8, 8, 3), 0.6)
    assert 1 < auto_exposure_gain(dark, style) <= 2**style.max_brighten_stops + 1e-9
    assert 2**-style.max_darken_stops - 1e-9 <= auto_exposure_gain(bright, style) < 1
    at_target = np.full((8, 8, 3), style.target_key - 1e-4)
    assert auto_exposure_gain(at_target, style) == pytest.approx(1.0)


def test_local_tone_map_is_the_identity_without_compression_or_boost() -> None:
    raw = np.random.default_rng(1).uniform(0.01, 1, (24, 24, 3))
    same = local_tone_map(raw, base_contrast=1.0, detail_boost=1.0, sigma=3.0)
    np.testing.assert_allclose(same, raw, rtol=1e-10)
    flat = local_tone_map(raw, base_contrast=0.5, detail_boost=1.0, sigma=3.0)
    assert np.std(np.log(luminance(flat))) < np.std(np.log(luminance(raw)))


def test_jpeg_round_trip_is_deterministic_and_mild(crop) -> None:
    a = jpeg_round_trip(crop, 90)
    assert a.dtype == np.uint8
    assert a.shape == crop.shape
    np.testing.assert_array_equal(a, jpeg_round_trip(crop, 90))
    assert _psnr(a, crop) > 35


def test_camera_render_brightens_with_ev_and_clips(crop) -> None:
    scene = srgb_to_linear(crop / 255.0)
    params = CameraParams(wb_gains=(1.0, 1.0, 1.0), jpeg_quality=95)
    means = [camera_render(scene, ev, params).mean() for ev in (-1.5, -1, 0, 1, 1.5)]
    assert means == sorted(means)
    white = camera_render(np.full((16, 16, 3), 4.0), 0.0, params)
    assert white.min() >= 254


def test_render_scene_is_deterministic_per_seed_and_gt_is_independent_of_ev(crop) -> None:
    a = render_scene(crop, seed=7)
    b = render_scene(crop, seed=7)
    c = render_scene(crop, seed=8)
    np.testing.assert_array_equal(a.gt, b.gt)
    for level in MSEC_LEVELS:
        np.testing.assert_array_equal(a.inputs[level], b.inputs[level])
    assert not np.array_equal(a.gt, c.gt) or a.camera != c.camera
    under = render_scene(crop, seed=7, levels=("N1.5",))
    over = render_scene(crop, seed=7, levels=("P1.5", "0"))
    np.testing.assert_array_equal(under.gt, a.gt)
    np.testing.assert_array_equal(over.gt, a.gt)
    np.testing.assert_array_equal(over.inputs["0"], a.inputs["0"])
    assert list(over.inputs) == ["P1.5", "0"]
    for image in (a.gt, *a.inputs.values()):
        assert image.dtype == np.uint8
        assert image.shape == crop.shape
    means = [a.inputs[level].mean() for level in MSEC_LEVELS]
    assert means == sorted(means)
    exposures = render_exposures(crop, seed=7, levels=("N1",))
    np.testing.assert_array_equal(exposures["N1"], a.inputs["N1"])


def test_even_the_0ev_input_differs_from_the_gt(crop) -> None:
    rendered = render_scene(crop, seed=0)
    assert _psnr(rendered.inputs["0"], rendered.gt) < 30


def test_render_scene_validates_input() -> None:
    with pytest.raises(ValueError, match="Expected img to be"):
        render_scene(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="Expected levels"):
        render_exposures(np.zeros((8, 8, 3), np.uint8), levels=("P2",))


@pytest.mark.slow
def test_default_set_meets_the_calibration_per_level(default_set) -> None:
    means = {level: np.mean(v) for level, v in default_set.psnr_by_level().items()}
    for level, (low, high) in CALIBRATION.items():
        assert low <= means[level] <= high, (level, means)
    assert max(means, key=means.get) == "0"
    assert means["N1.5"] < means["N1"] < means["0"] > means["P1"] > means["P1.5"]


@pytest.mark.slow
def test_recorded_psnrs_match_the_written_files(default_set) -> None:
    root = default_set.root / "test"
    stem = default_set.stems["test"][1]
    with Image.open(root / "GT_IMAGES" / f"{stem}.png") as gt_file:
        gt = np.asarray(gt_file)
    for level in MSEC_LEVELS:
        with Image.open(root / "INPUT_IMAGES" / f"{stem}_{level}.png") as lq_file:
            lq = np.asarray(lq_file)
        assert default_set.input_psnr["test"][level][1] == pytest.approx(_psnr(lq, gt), abs=1e-9)
    manifest = json.loads((default_set.root / "manifest.json").read_text())
    record = manifest["splits"]["test"][1]
    assert record["stem"] == stem
    assert 88 <= record["camera"]["jpeg_quality"] <= 95
    assert abs(record["scene_stops"]) <= 0.5


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
    gt = "train/GT_IMAGES/rocket_c01.png"
    assert (tmp_path / "a" / gt).read_bytes() == (tmp_path / "b" / gt).read_bytes()


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
    with pytest.raises(ValueError, match="Expected `crop_size` to be an int >= 8, got 2"):
        render_dataset(tmp_path / "z", crop_size=2)
    with pytest.raises(
        ValueError, match="Expected `crops_per_photo` to be a positive int, got True"
    ):
        render_dataset(tmp_path / "z", crops_per_photo=True)


def test_preview_grid_has_a_row_per_scene_and_a_column_per_level_plus_gt(tmp_path) -> None:
    from erl_losses.cli.render import format_psnr_table, write_preview

    result = _render_small(tmp_path)
    write_preview(result, str(tmp_path / "preview.png"))
    with Image.open(tmp_path / "preview.png") as image:
        assert image.size == (6 * 36, 2 * 36)  # 32 px scenes with a 2 px border; 2 test scenes
    table = format_psnr_table(result.psnr_by_level())
    assert table.count("\n") == 1 + len(MSEC_LEVELS)
    assert "| 0 |" in table
