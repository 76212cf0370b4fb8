"""Tiny pretext runs shared by the pretext tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from erl_losses.pretext import PretextRecipe, pretrain_bcm
from tests._helpers import TINY_SAVED_BCM as TINY
from tests._helpers import NoiseImages

__all__ = ["TINY", "_equal", "_recipe", "_run", "cli_argv", "write_jpeg_folder"]


def _recipe(**kw: object) -> PretextRecipe:
    base: dict[str, object] = {
        "stage1_steps": 4,
        "stage2_steps": 4,
        "stage1_batch_size": 2,
        "batch_size": 3,
        "crop_size": 16,
        "seed": 7,
    }
    base.update(kw)
    return PretextRecipe(**base)  # type: ignore[arg-type]


def _run(out: Path, recipe: PretextRecipe | None = None, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("images", NoiseImages())
    kw.setdefault("evaluate", False)
    return pretrain_bcm(
        recipe or _recipe(),
        out,
        bcm_config=TINY,
        progress=False,
        **kw,  # type: ignore[arg-type]
    )


def cli_argv(images: Path, out: Path, *, stage1_steps: int, stage2_steps: int) -> list[str]:
    """``erl pretrain`` arguments of a tiny run on an image folder."""
    return [
        "pretrain", "--images", str(images), "--out", str(out), "--no-progress",
        "--bcm-config", json.dumps(TINY), "--stage1-steps", str(stage1_steps),
        "--stage2-steps", str(stage2_steps), "--stage1-batch-size", "2", "--batch-size", "2",
        "--crop-size", "16",
    ]  # fmt: skip


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def write_jpeg_folder(folder: Path, count: int = 6, *, corrupt: bool = False) -> Path:
    """``count`` small smooth-noise JPEGs of a few sizes, one in a nested folder, plus (with
    ``corrupt``) a truncated ``broken.jpg`` and a macOS-style hidden ``._img0.jpg``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    (folder / "nested").mkdir(parents=True)
    for i in range(count):
        low = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = Image.fromarray(low).resize((64 + 8 * i, 48 + 4 * i), Image.BICUBIC)
        where = folder / "nested" if i == count - 1 else folder
        image.save(where / f"img{i}.jpg", quality=90)
    if corrupt:
        whole = (folder / "img0.jpg").read_bytes()
        (folder / "broken.jpg").write_bytes(whole[: len(whole) // 2])
        (folder / "._img0.jpg").write_bytes(b"AppleDouble")
    return folder
