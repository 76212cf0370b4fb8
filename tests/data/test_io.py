"""erl_losses.data.io: one reader (8- and 16-bit), one PNG writer, one extension list."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image

from erl_losses.data.io import (
    IMAGE_EXTENSIONS,
    format_names,
    image_to_float,
    image_to_uint8,
    list_images,
    missing_files,
    read_image,
    write_png,
)


@pytest.fixture
def ramp16() -> np.ndarray:
    """(6, 7, 3) uint16 with distinct values that use the low byte."""
    return (np.arange(6 * 7 * 3, dtype=np.uint32).reshape(6, 7, 3) * 811 % 65536).astype(np.uint16)


def test_8bit_png_round_trips_as_uint8(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 9, 3), dtype=np.uint8)
    path = write_png(tmp_path / "a.png", image)
    out = read_image(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, image)


def test_16bit_grey_png_is_scaled_not_white(tmp_path, ramp16):
    # Pillow's convert("RGB") clips 16-bit grey to 255; read_image scales it.
    grey = ramp16[..., 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.dtype == np.float32 and out.shape == (6, 7, 3)
    np.testing.assert_allclose(out[..., 1], grey / 65535.0, atol=1e-7)
    assert out.min() < 0.5


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_colour_keeps_the_low_byte(tmp_path, ramp16, suffix):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / f"c{suffix}"
    assert cv2.imwrite(str(path), ramp16[..., ::-1])  # OpenCV writes BGR
    out = read_image(path)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out * 65535.0, ramp16.astype(np.float64), atol=0.02)


def test_grey_and_rgba_8bit_become_rgb(tmp_path):
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5)
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 2], grey)
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png")[0, 0].tolist() == [200, 0, 0]


@pytest.mark.parametrize("content", [b"", b"not an image at all"])
def test_non_images_raise_value_error_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"bad\.png"):
        read_image(path)


def test_truncated_image_raises_value_error_naming_the_file(tmp_path):
    rng = np.random.default_rng(1)
    write_png(tmp_path / "full.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.png"):
        read_image(tmp_path / "cut.png")


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        read_image(tmp_path / "nope.png")


def test_conversions():
    u8 = np.array([[[0, 128, 255]]], np.uint8)
    np.testing.assert_allclose(image_to_float(u8), u8 / 255.0)
    f = np.array([[[0.0, 0.5, 1.2]]], np.float32)
    np.testing.assert_array_equal(image_to_uint8(f), [[[0, 128, 255]]])
    assert image_to_uint8(u8) is u8
    with pytest.raises(TypeError, match="dtype"):
        image_to_float(np.zeros((1, 1, 3), np.int64))


def test_write_png_rejects_floats(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "x.png", np.zeros((2, 2, 3), np.float32))


def test_extensions_and_listing(tmp_path):
    assert ".webp" in IMAGE_EXTENSIONS and len(set(IMAGE_EXTENSIONS)) == len(IMAGE_EXTENSIONS)
    write_png(tmp_path / "b.png", np.zeros((2, 2, 3), np.uint8))
    Image.new("RGB", (2, 2)).save(tmp_path / "a.WEBP")
    (tmp_path / "notes.txt").write_text("x")
    assert sorted(list_images(tmp_path)) == ["a", "b"]
    assert read_image(tmp_path / "a.WEBP").shape == (2, 2, 3)
    Image.new("RGB", (2, 2)).save(tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="one image per name"):
        list_images(tmp_path)


def test_missing_files_and_format_names(tmp_path):
    (tmp_path / "here.png").write_bytes(b"x")
    assert missing_files([tmp_path / "here.png", tmp_path / "gone.png", tmp_path]) == [
        tmp_path / "gone.png",
        tmp_path,
    ]
    assert format_names(["a", "b"]) == "a, b"
    assert format_names([str(i) for i in range(25)], limit=3) == "0, 1, 2, ... (22 more)"
