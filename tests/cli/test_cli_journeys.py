"""The user journeys of the command line: fast argument errors, a missing ``--data``, the paired
(LOL-style) protocol of ``erl eval``, and ``erl enhance`` on photos (tiles, EXIF orientation)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from erl_losses.cli import main
from erl_losses.cli._args import NET_NAMES, int_at_least
from erl_losses.evaluation.inference import enhance, enhance_images

# Runs the CLI with torch unimportable: an import of torch would end in a traceback, not exit 2.
_NO_TORCH = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Block())
from erl_losses.cli import main

sys.exit(main(sys.argv[1:]))
"""

BAD_ARGUMENTS = [
    ("demo --steps 0", "argument --steps: Expected a positive int, got 0"),
    ("demo --stpes 3", "unrecognized arguments: --stpes"),
    ("eval --net eclnett --weights w --data d", "argument --net: Expected one of"),
    ("eval --protocol lol --pred p --gt g", "argument --protocol: invalid choice"),
    ("enhance a.jpg --net ECLNet --weights w --out o --tile -1", "Expected an int >= 0"),
    ("eval --net ECLNet --weights {w} --data /no/such/dir", "no such folder: /no/such/dir"),
    ("enhance a.jpg --net ECLNet --weights /no/w.safetensors --out o", "no such file"),
]


@pytest.mark.parametrize(("command", "message"), BAD_ARGUMENTS)
def test_argument_errors_come_before_torch_in_under_a_second(command, message, tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    argv = command.format(w=weights).split()
    done = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and message in done.stderr, done.stderr

    # The console script as a user runs it, less the interpreter's own start-up: the best of
    # three of each, on a machine that may be busy.
    def best_of_three(args: list[str]) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([sys.executable, *args], capture_output=True, cwd=tmp_path)
            times.append(time.perf_counter() - start)
        return min(times)

    best = best_of_three(["-m", "erl_losses", *argv]) - best_of_three(["-c", "pass"])
    assert best < 1.0, f"{command}: {best:.2f} s"


def test_the_torch_free_checks_agree_with_the_api() -> None:
    import argparse

    from erl_losses._validation import check_int
    from erl_losses.archs import ARCHS

    assert tuple(sorted(ARCHS)) == NET_NAMES
    for minimum in (0, 1):
        for text in ("0", "-1", "x", "1.5"):
            try:
                value: object = int(text)
            except ValueError:
                value = text
            if isinstance(value, int) and value >= minimum:
                assert int_at_least(minimum)(text) == check_int(value, None, minimum=minimum)
                continue
            with pytest.raises(ValueError) as api:
                check_int(value, None, minimum=minimum)
            with pytest.raises(argparse.ArgumentTypeError) as cli:
                int_at_least(minimum)(text)
            assert str(cli.value) == str(api.value)


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def lol(tmp_path: Path) -> Path:
    """LOL-style flat folders: Test/input/<name>.png with Test/target/<name>.png."""
    rng = np.random.default_rng(0)
    root = tmp_path / "LOLv1"
    for name in ("1", "22", "333"):
        gt = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        _save(root / "Test" / "target" / f"{name}.png", gt)
        _save(root / "Test" / "input" / f"{name}.png", (gt // 4).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def eclnet_file(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    from erl_losses.archs import build_arch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "eclnet.safetensors"
    save_file(build_arch("ECLNet").state_dict(), str(path))
    return path


def test_eval_paired_predictions(lol: Path, tmp_path: Path, capsys) -> None:
    split = lol / "Test"
    json_path = tmp_path / "r.json"
    argv = ["eval", "--protocol", "paired", "--pred", str(split / "input"), "--gt", str(split)]
    assert main([*argv, "--json", str(json_path)]) == 0
    out = capsys.readouterr().out
    assert "| Method | Average PSNR | Average SSIM |" in out and "Level" not in out
    import json

    report = json.loads(json_path.read_text())
    assert report["summary"]["Average"]["count"] == 3
    assert {image["level"] for image in report["images"]} == {"paired"}
    # A GT without its prediction: strict by default, --partial evaluates the present ones.
    (split / "input" / "333.png").unlink()
    assert main(argv) == 2
    assert "Expected a prediction for every GT image, got 1 missing: 333.png" in (
        capsys.readouterr().err
    )
    assert main([*argv, "--partial"]) == 0


def test_eval_paired_runs_a_net_on_low_high_folders(eclnet_file, lol, tmp_path, capsys) -> None:
    # LOL's own names: eval15/low + eval15/high, found from the root with --split test.
    (lol / "Test").rename(lol / "eval15")
    (lol / "eval15" / "input").rename(lol / "eval15" / "low")
    (lol / "eval15" / "target").rename(lol / "eval15" / "high")
    out = tmp_path / "pred"
    argv = ["eval", "--protocol", "paired", "--net", "eclnet", "--weights", str(eclnet_file)]
    assert main([*argv, "--data", str(lol), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["1.png", "22.png", "333.png"]
    assert "| ECLNet |" in capsys.readouterr().out
    assert main([*argv, "--data", str(tmp_path)]) == 2
    assert "Expected an input and a GT folder (low/ + high/" in capsys.readouterr().err


def test_eval_names_a_missing_data_folder(eclnet_file, capsys) -> None:
    argv = ["eval", "--net", "ECLNet", "--weights", str(eclnet_file), "--data", "/no/such/dir"]
    assert main(argv) == 2
    assert "Expected --data to be a folder, got no such folder: /no/such/dir" in (
        capsys.readouterr().err
    )


class _Local(torch.nn.Module):
    """A net whose output at a pixel depends only on a 5 x 5 neighbourhood."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 5, padding=2, padding_mode="replicate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))


def test_tiles_blend_into_the_whole_image_result() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    net = _Local().eval()
    whole = enhance(net, image).astype(int)
    tiled = enhance(net, image, tile=40, overlap=8).astype(int)
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).max() <= 1  # rounding only: the overlap hides every seam


def test_enhance_tiles_a_photo_with_a_progress_bar(eclnet_file, tmp_path, capfd) -> None:
    rng = np.random.default_rng(2)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "out"
    argv = ["enhance", str(photo), "--net", "ECLNet", "--weights", str(eclnet_file)]
    assert main([*argv, "--out", str(out), "--tile", "64", "--overlap", "16"]) == 0
    captured = capfd.readouterr()
    assert "photo.jpg 150x100" in captured.err and "6/6" in captured.err  # 2 x 3 tiles
    with Image.open(out / "photo.png") as result:
        assert result.size == (150, 100)
    assert main([*argv, "--out", str(out), "--tile", "16", "--overlap", "16"]) == 2
    assert "Expected --overlap < --tile (16), got 16" in capfd.readouterr().err


def test_enhance_keeps_the_exif_orientation(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    stored = Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a portrait phone photo stored sideways
    photo = tmp_path / "portrait.jpg"
    stored.save(photo, exif=exif, quality=100)
    identity = torch.nn.Identity()
    [written] = enhance_images(identity, [photo], tmp_path / "out")
    with Image.open(photo) as original, Image.open(written) as result:
        upright = np.asarray(ImageOps.exif_transpose(original).convert("RGB"))
        assert result.size == (20, 40)  # portrait, as a viewer shows the photo
        np.testing.assert_array_equal(np.asarray(result), upright)


@pytest.mark.slow
def test_enhance_a_full_size_camera_photo(tmp_path: Path) -> None:
    """A 3504 x 2336 JPEG (the largest MSEC photos) through the default 2048 px tiles."""
    y, x = np.mgrid[0:2336, 0:3504]
    image = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    photo = tmp_path / "IMG_0001.JPG"
    Image.fromarray(image).save(photo, quality=90)
    net = _Local().eval()
    [written] = enhance_images(net, [photo], tmp_path / "out", progress=False)
    with Image.open(written) as result:
        assert result.size == (3504, 2336)


def test_module_entry_point_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "erl_losses", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert done.returncode == 0 and done.stdout.startswith("erl-losses ")
