"""Constants and small helpers shared by the tests (importable as ``tests._helpers``; pytest's
pythonpath is "."). Heavy imports stay inside the helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A miniature BCM with every part of the real one (stride-2 encoder, grid pooling, 2 attention
# layers, decoder) but a fraction of its cost; hypothesis tests build many of these batches.
TINY_BCM = dict(channels=8, feat_channels=4, grid=4, d_model=16, num_heads=2, num_layers=2)

# A full config (every constructor argument) of the smallest BCM that the zoo and pretext tests
# save, load and train: weights of a few kB, 32 px working resolution.
TINY_SAVED_BCM = {
    "in_channels": 3,
    "channels": 4,
    "feat_channels": 2,
    "grid": 4,
    "d_model": 8,
    "num_heads": 2,
    "num_layers": 1,
    "ff_mult": 1,
    "work_size": 32,
}


def erl_model_opt(models_dir: object, train: dict, **top: object) -> dict:
    """A minimal in-memory option dict of a CPU ``ERLModel`` (tiny ECLNet, Adam, MultiStepLR):
    ``train`` adds to the ``train`` section, ``top`` overrides top-level keys."""
    return {
        "name": "unit",
        "model_type": "ERLModel",
        "num_gpu": 0,
        "is_train": True,
        "dist": False,
        "rank": 0,
        "world_size": 1,
        "network_g": {"type": "ECLNet", "nc": 4, "num_blocks": 1},
        "path": {"models": str(models_dir)},
        "train": {
            "optim_g": {"type": "Adam", "lr": 1e-3},
            "scheduler": {"type": "MultiStepLR", "milestones": [10], "gamma": 0.5},
            **train,
        },
        **top,
    }


def quality_job_failing_on_seed_1(job: object) -> dict:
    """A stand-in for ``benchmarks/quality._run_job`` (importable by spawned workers): seed 1
    raises, the others return a minimal run."""
    if job.seed == 1:  # type: ignore[attr-defined]
        raise RuntimeError("run failed on purpose")
    return {"key": job.key, "groups": {"Average": {"psnr": 20.0}}, "seconds": 0.0}  # type: ignore[attr-defined]


class NoiseImages:
    """An in-memory image source of smooth random colour images."""

    def __init__(self, count: int = 3, size: int = 40) -> None:
        import torch

        gen = torch.Generator().manual_seed(123)
        low = torch.rand(count, 3, 5, 5, generator=gen)
        smooth = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")
        self.images = [(img * 255).round().to(torch.uint8) for img in smooth]

    def __len__(self) -> int:
        return len(self.images)

    def get(self, index: int, crop: int) -> Any:
        return self.images[index]

    def provenance(self) -> dict[str, str]:
        return {"kind": "test-noise"}


def write_image_folder(folder: Path, count: int = 3) -> Path:
    """``count`` random 8-bit PNGs of slightly different sizes, plus a non-image file."""
    import numpy as np
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (30 + i, 44, 3), dtype=np.uint8)).save(
            folder / f"img{i}.png"
        )
    (folder / "notes.txt").write_text("not an image")
    return folder
