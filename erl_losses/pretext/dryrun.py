"""``erl pretrain --dry-run``: what a run would read and how long an epoch would take.

Nothing is trained and nothing is written (not even the image cache): every file is decoded once
(to count the decodable ones and time the decode), and a few training steps of the BCM on random
batches of the recipe's sizes time the model on the chosen device. An epoch is one pass over the
images: ``len(images) / batch_size`` steps of a stage.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from erl_losses.data.images import FolderImages, PhotoImages
from erl_losses.modules.bcm import BatchCorrelationModule
from erl_losses.pretext.data import default_workers
from erl_losses.pretext.recipe import PretextRecipe

__all__ = ["estimate_run", "format_estimate"]


def _size(image: torch.Tensor) -> tuple[int, int]:
    return int(image.shape[2]), int(image.shape[1])


def _time_steps(
    recipe: PretextRecipe, bcm_config: dict[str, Any] | None, device: torch.device, repeats: int
) -> dict[int, float]:
    """Seconds per optimiser step of each stage that runs, on random batches."""
    from erl_losses.pretext.stages import stage_loss

    bcm = BatchCorrelationModule(**(bcm_config or {})).to(device).train()
    crops = recipe.crop_sizes(bcm)
    batches = (recipe.stage1_batch_size, recipe.batch_size)
    out: dict[int, float] = {}
    for stage in (1, 2):
        if recipe.stage_steps[stage - 1] == 0:
            continue
        optimizer = torch.optim.Adam(bcm.pretext_parameters(stage), lr=1e-4)
        x = torch.rand(batches[stage - 1], 3, crops[stage - 1], crops[stage - 1], device=device)
        times = []
        for i in range(repeats + 1):  # the first step pays one-time costs
            start = time.perf_counter()
            loss = stage_loss(bcm, recipe, stage, x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                times.append(time.perf_counter() - start)
        out[stage] = statistics.median(times)
    return out


def estimate_run(
    recipe: PretextRecipe,
    *,
    images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    max_side: int | None = None,
    bcm_config: dict[str, Any] | None = None,
    workers: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    repeats: int = 3,
    progress: bool = True,
) -> dict[str, Any]:
    """Scans the images and times the model; returns the figures ``--dry-run`` prints.

    Returns:
        a dict: ``files`` (listed), ``decodable``, ``skipped`` (``[(path, reason)]``),
        ``sizes`` (``min``/``median``/``max`` width x height and megapixels), ``file_mb``,
        ``cache_mb`` (what the cache of resized images holds), ``cached`` (already in it),
        ``decode_ms`` (median decode + resize per image), ``workers``, ``cache_build_s`` (the
        one-time decode of the files not cached yet), ``step_s`` (``{stage: seconds}``),
        ``data_step_s`` (decode time per step without a cache, per worker share),
        ``epoch_s`` (``{stage: seconds per epoch}``) and ``run_s`` (both stages, with the cache
        build).
    """
    from erl_losses._runtime import resolve_device

    device = resolve_device(device)
    out: dict[str, Any] = {"device": str(device)}
    if images is None:
        source: Any = PhotoImages(max_side=max_side)
        full = PhotoImages()
        sizes = [_size(full.get(i, 1)) for i in range(len(full))]
        resized = [_size(source.get(i, 1)) for i in range(len(source))]
        out.update(files=len(source), decodable=len(source), skipped=[], file_mb=0.0, cached=0)
        out["kind"] = "bundled photos"
        decode, build, workers_used = [], 0.0, 0
    else:
        folder = FolderImages(images, max_side=max_side, cache_dir=cache_dir)
        workers_used = default_workers(folder) if workers is None else workers
        report = folder.scan(
            workers=workers_used, cache=cache, write=False, progress=progress, warn=False
        )
        sizes, resized, decode = report.sizes, report.resized, report.decode_seconds
        out.update(
            files=report.listed, decodable=len(report.usable),
            skipped=[(str(p), r) for p, r in report.skipped],
            file_mb=report.file_bytes / 1e6, cached=report.cached, kind="folder",
        )  # fmt: skip
        build = sum(decode) / max(1, workers_used) if cache and max_side is not None else 0.0
        source = folder
    areas = sorted(w * h for w, h in sizes)
    by_area = sorted(sizes, key=lambda s: s[0] * s[1])
    out["sizes"] = {
        "min": by_area[0], "median": by_area[len(by_area) // 2], "max": by_area[-1],
        "megapixels_median": areas[len(areas) // 2] / 1e6,
    }  # fmt: skip
    out["cache_mb"] = sum(3 * w * h for w, h in resized) / 1e6
    out["decode_ms"] = 1e3 * statistics.median(decode) if decode else 0.0
    out["workers"] = workers_used
    out["cache_build_s"] = build
    steps = _time_steps(recipe, bcm_config, device, repeats)
    out["step_s"] = steps
    cached_reads = images is None or (cache and max_side is not None)
    batches = {1: recipe.stage1_batch_size, 2: recipe.batch_size}
    per_crop = 0.0 if cached_reads else (out["decode_ms"] / 1e3) / max(1, workers_used)
    out["data_step_s"] = {s: per_crop * batches[s] for s in steps}
    n = len(source)
    out["epoch_s"] = {s: (n / batches[s]) * max(steps[s], out["data_step_s"][s]) for s in steps}
    out["run_s"] = build + sum(
        recipe.stage_steps[s - 1] * max(steps[s], out["data_step_s"][s]) for s in steps
    )
    return out


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def format_estimate(est: dict[str, Any], recipe: PretextRecipe) -> str:
    """The ``--dry-run`` report, one figure per line."""
    size = est["sizes"]
    lines = [
        f"images:        {est['files']} files, {est['decodable']} decodable, "
        f"{len(est['skipped'])} skipped",
    ]
    lines += [f"  skipped:     {path} ({reason})" for path, reason in est["skipped"][:20]]
    lines += [
        f"sizes:         min {size['min'][0]}x{size['min'][1]}, median {size['median'][0]}x"
        f"{size['median'][1]} ({size['megapixels_median']:.1f} MP), max {size['max'][0]}x"
        f"{size['max'][1]}; {est['file_mb']:.0f} MB on disk",
        f"cache:         {est['cache_mb']:.0f} MB of resized images, {est['cached']} already "
        f"cached; building it takes ~{_duration(est['cache_build_s'])} once "
        f"({est['decode_ms']:.0f} ms per image, {est['workers']} workers)",
    ]
    batches = {1: recipe.stage1_batch_size, 2: recipe.batch_size}
    for stage, seconds in est["step_s"].items():
        data = est["data_step_s"][stage]
        bound = " (data-bound: set --max-side to cache)" if data > seconds else ""
        lines.append(
            f"stage {stage}:       {seconds * 1e3:.0f} ms/step on {est['device']} (batch "
            f"{batches[stage]}), epoch ~{_duration(est['epoch_s'][stage])}{bound}"
        )
    lines.append(f"whole run:     ~{_duration(est['run_s'])} ({sum(recipe.stage_steps)} steps)")
    return "\n".join(lines)
