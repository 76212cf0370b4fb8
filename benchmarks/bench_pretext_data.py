"""Pretext data pipeline: a folder of 1,000 photo-sized JPEGs vs the bundled photos in memory.

Run as a script (about 10-15 minutes on a 2-core CPU, the first time a few more to generate the
folder)::

    python benchmarks/bench_pretext_data.py            # writes results/pretext_data_cpu.json

It generates (once, into ``--folder``, default ``/tmp/erl-bench-pretext-jpegs``) ``--count``
JPEGs of 3-4 MP whose content is photo-like for the encoder (a smooth colour field, hard-edged
shapes, lines, defocused regions and sensor-like grain, so the files have the size of real
photos: about 1-2 MB at quality 90), then measures, in one process:

- **decode**: ms per image of a full decode + area resize to ``--max-side`` vs a decode with
  Pillow's ``draft`` (what :func:`erl_losses.data.images.decode_image` does);
- **scan**: images/s of :meth:`FolderImages.scan` (decode + resize + write the cache) with 0, 1
  and 2 workers (on ``--scan-files`` files each; then the whole folder into the cache);
- **crops/s** of :class:`~erl_losses.pretext.data.CropStream` with 0, 1 and 2 workers, from the
  cache and without it (every crop decodes its image again);
- **pretext steps/s**: the stage-2 step (phase pretext, batch 4, 128 px crops, default BCM)
  fed from the in-memory bundled photos vs from the folder (0, 1, 2 workers), interleaved in
  rounds so that load drift hits every variant alike; the ratio is the target (<= 1.3).

It also states the GPU step time each crops/s figure keeps busy (``batch / crops_per_s``). The
load average is recorded beside each section: on a shared machine the absolute times move, the
ratios of one round much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_FOLDER = Path("/tmp/erl-bench-pretext-jpegs")
SIZES = ((2048, 1536), (2304, 1728), (2240, 1680), (1728, 2304))  # 3.1-4.0 MP, one portrait


def _photo(index: int, folder: str) -> int:
    """Writes ``img{index:05d}.jpg``; returns its size in bytes."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(index)
    width, height = SIZES[index % len(SIZES)]
    low = rng.random((height // 96 + 2, width // 96 + 2, 3)) ** 1.5 * 255
    image = Image.fromarray(low.astype(np.uint8)).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(20, 60))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1 = x0 + int(rng.integers(16, width // 3))
        y1 = y0 + int(rng.integers(16, height // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.random()
        if kind < 0.4:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind < 0.7:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 10)))
    box = (width // 4, height // 4, width // 2, height // 2)
    image.paste(image.crop(box).filter(ImageFilter.GaussianBlur(6)), box[:2])  # defocus
    grain = rng.integers(-7, 8, (height, width, 1), dtype=np.int16)
    pixels = np.clip(np.asarray(image, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
    path = Path(folder) / f"img{index:05d}.jpg"
    Image.fromarray(pixels).save(path, quality=90)
    return path.stat().st_size


def generate(folder: Path, count: int, processes: int = 2) -> dict[str, Any]:
    """The folder of ``count`` JPEGs, generated once (a marker file says it is complete)."""
    marker = folder / f".complete-{count}"
    if not marker.exists():
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with Pool(processes) as pool:
            pool.starmap(_photo, [(i, str(folder)) for i in range(count)], chunksize=8)
        marker.write_text(f"{time.perf_counter() - start:.0f} s\n")
    sizes = [p.stat().st_size for p in sorted(folder.glob("img*.jpg"))[:count]]
    return {
        "folder": str(folder),
        "count": len(sizes),
        "mean_mb": statistics.mean(sizes) / 1e6,
        "total_mb": sum(sizes) / 1e6,
        "pixels": [f"{w}x{h}" for w, h in SIZES],
    }


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bench_decode(files: list[Path], max_side: int) -> dict[str, Any]:
    """ms per image: full decode + area resize vs draft decode + area resize."""
    import torch

    from erl_losses.data.images import decode_image

    def full(path: Path) -> Any:
        image = decode_image(path)[None].float()
        scale = max_side / max(image.shape[-2:])
        size = (round(image.shape[-2] * scale), round(image.shape[-1] * scale))
        return torch.nn.functional.interpolate(image, size=size, mode="area")

    out: dict[str, Any] = {"load_before": _load()}
    for name, fn in (("full_decode_ms", full), ("draft_decode_ms", decode_image)):
        times = []
        for path in files:
            start = time.perf_counter()
            fn(path) if name.startswith("full") else fn(path, max_side)
            times.append(1e3 * (time.perf_counter() - start))
        out[name] = statistics.median(times)
    out["load_after"] = _load()
    return out


def bench_scan(folder: Path, files: int, max_side: int, cache_dir: Path) -> dict[str, Any]:
    """images/s of a scan (decode + resize, no cache writes) with 0, 1, 2 workers, then the
    whole folder into the cache (2 workers)."""
    from erl_losses.data.images import FolderImages

    out: dict[str, Any] = {"load_before": _load(), "files": files}
    for workers in (0, 1, 2):
        images = FolderImages(folder, max_side=max_side, cache_dir=cache_dir / "probe")
        images.files = images.files[workers * files : (workers + 1) * files]  # cold files each
        start = time.perf_counter()
        images.scan(workers=workers, write=False, warn=False)
        out[f"images_per_s_w{workers}"] = files / (time.perf_counter() - start)
    images = FolderImages(folder, max_side=max_side, cache_dir=cache_dir)
    start = time.perf_counter()
    report = images.scan(workers=2, warn=False)
    seconds = time.perf_counter() - start
    out.update(
        build_seconds=seconds, build_files=report.listed, build_cached_before=report.cached,
        cache_mb=report.cache_bytes / 1e6, load_after=_load(),
    )  # fmt: skip
    return out


def _crops_per_s(stream: Any, batches: int, batch: int, crop: int) -> tuple[float, float]:
    """(crops/s after the first batch, seconds to the first batch: worker start-up)."""
    start = time.perf_counter()
    iterator = stream.batches(2, batch, crop, batches)
    next(iterator)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in iterator:
        pass
    return (batches - 1) * batch / (time.perf_counter() - start), first


def bench_crops(folder: Path, max_side: int, cache_dir: Path, args: Any) -> dict[str, Any]:
    from erl_losses.data.images import FolderImages, PhotoImages
    from erl_losses.pretext.data import CropStream

    out: dict[str, Any] = {"load_before": _load(), "batch": 4, "crop": args.crop}
    cached = FolderImages(folder, max_side=max_side, cache_dir=cache_dir)
    cached.scan(workers=2, warn=False)
    plain = FolderImages(folder, max_side=max_side)
    plain.scan(workers=2, cache=False, warn=False)
    memory = PhotoImages()
    for name, source, batches in (
        ("memory", memory, args.crop_batches),
        ("cache", cached, args.crop_batches),
        ("no_cache", plain, args.nocache_batches),
    ):
        for workers in (0, 1, 2) if name != "memory" else (0,):
            stream = CropStream(source, seed=workers + 11, workers=workers)
            rate, first = _crops_per_s(stream, batches, 4, args.crop)
            out[f"{name}_w{workers}"] = {"crops_per_s": rate, "first_batch_s": first}
    out["load_after"] = _load()
    return out


def bench_steps(folder: Path, max_side: int, cache_dir: Path, args: Any) -> dict[str, Any]:
    """Stage-2 steps: bundled photos in memory vs the folder with 0, 1, 2 workers (cached),
    interleaved in rounds."""
    import torch

    from erl_losses import BatchCorrelationModule
    from erl_losses.data.images import FolderImages, PhotoImages
    from erl_losses.pretext.data import CropStream
    from erl_losses.pretext.recipe import PretextRecipe
    from erl_losses.pretext.stages import stage_loss

    recipe = PretextRecipe(crop_size=args.crop)
    torch.manual_seed(0)
    bcm = BatchCorrelationModule().train()
    optimizer = torch.optim.Adam(bcm.pretext_parameters(2), lr=1e-5)
    folder_images = FolderImages(folder, max_side=max_side, cache_dir=cache_dir)
    folder_images.scan(workers=2, warn=False)
    variants = {
        "memory": (PhotoImages(), 0),
        "folder_w0": (folder_images, 0),
        "folder_w1": (folder_images, 1),
        "folder_w2": (folder_images, 2),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    rounds: list[dict[str, float]] = []
    for r in range(args.rounds):
        medians = {}
        for name, (source, workers) in variants.items():
            stream = CropStream(source, seed=100 + r, workers=workers)
            batches = stream.batches(2, 4, args.crop, args.steps + 1)
            step_times = []
            for i in range(args.steps + 1):
                start = time.perf_counter()
                x = next(batches).float().div_(255.0)
                loss = stage_loss(bcm, recipe, 2, x)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if i:  # the first step waits for the workers to start
                    step_times.append(time.perf_counter() - start)
            batches.close()
            medians[name] = statistics.median(step_times)
            times[name] += step_times
        rounds.append(medians)
        print(f"  round {r}: " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in medians.items()))
    out: dict[str, Any] = {
        "batch": 4, "crop": args.crop, "steps_per_round": args.steps, "rounds": rounds,
        "threads": torch.get_num_threads(), "load": _load(),
    }  # fmt: skip
    for name in variants:
        out[f"{name}_ms"] = 1e3 * statistics.median(times[name])
        out[f"{name}_ratio"] = statistics.median(
            rnd[name] / rnd["memory"] for rnd in rounds
        )  # per round, then the median: drift cancels
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--scan-files", type=int, default=60)
    parser.add_argument("--crop-batches", type=int, default=300)
    parser.add_argument("--nocache-batches", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "pretext_data_cpu.json"
    )
    args = parser.parse_args(argv)
    import torch

    cache_dir = args.folder.parent / (args.folder.name + "-cache")
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "command": "python benchmarks/bench_pretext_data.py " + " ".join(argv or sys.argv[1:]),
        "max_side": args.max_side,
    }
    print("generating / checking the folder ...", flush=True)
    result["data"] = generate(args.folder, args.count)
    files = sorted(args.folder.glob("img*.jpg"))[: args.count]
    print("decode ...", flush=True)
    result["decode"] = bench_decode(files[-20:], args.max_side)
    print("scan ...", flush=True)
    result["scan"] = bench_scan(args.folder, args.scan_files, args.max_side, cache_dir)
    print("crops/s ...", flush=True)
    result["crops"] = bench_crops(args.folder, args.max_side, cache_dir, args)
    print("pretext steps ...", flush=True)
    result["steps"] = bench_steps(args.folder, args.max_side, cache_dir, args)
    result["gpu_step_kept_busy_ms"] = {
        key: 1e3 * 4 / value["crops_per_s"]
        for key, value in result["crops"].items()
        if isinstance(value, dict)
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
