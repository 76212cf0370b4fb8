"""Tiny pretext runs shared by the pretext tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from erl_losses.pretext import PretextRecipe, pretrain_bcm
from tests._helpers import TINY_SAVED_BCM as TINY
from tests._helpers import NoiseImages

__all__ = ["TINY", "_equal", "_recipe", "_run", "cli_argv"]


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
