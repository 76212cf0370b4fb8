"""``erl render``: write the synthetic exposure set (MSEC layout) from bundled photos."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from erl_losses.cli._args import int_at_least

if TYPE_CHECKING:
    from erl_losses.data.render import RenderedSet


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``render`` sub-command."""
    parser = subparsers.add_parser(
        "render",
        help="render the synthetic exposure set (MSEC layout) from photos bundled in packages",
        description=(
            "Takes random crops of each bundled photo (scikit-image, scikit-learn, matplotlib) as "
            "linear scenes; writes an emulated camera's JPEGs at -1.5, -1, 0, +1 and +1.5 EV to "
            "OUT/{train,test}/INPUT_IMAGES/<stem>_<level>.png and an emulated expert retouch of "
            "the same scene to OUT/{train,test}/GT_IMAGES/<stem>.png, split by source photo; "
            "prints the input PSNR against the GT per level."
        ),
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--crop-size", type=int_at_least(1), default=128, help="square crop side (px)"
    )
    parser.add_argument(
        "--crops-per-photo", type=int_at_least(1), default=4, help="crops per photo"
    )
    parser.add_argument(
        "--seed", type=int_at_least(0), default=0, help="random seed of the crops and scenes"
    )
    parser.add_argument(
        "--split", choices=("train", "test", "both"), default="both", help="split(s) to write"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the images of an existing set"
    )
    parser.add_argument(
        "--preview",
        default=None,
        metavar="IMAGE",
        help="also write a preview grid: one row per scene (up to 3 of the last split written), "
        "columns N1.5, N1, 0, P1, P1.5 and GT (.png or .jpg)",
    )
    parser.set_defaults(func=run)


def format_psnr_table(psnr_by_level: dict[str, list[float]]) -> str:
    """A markdown table of input PSNR vs GT per level: mean, SD, min, max and count (dB)."""
    import numpy as np

    lines = ["| level | mean | SD | min | max | n |", "|---|---|---|---|---|---|"]
    for level, values in psnr_by_level.items():
        v = np.asarray(values, dtype=np.float64)
        sd = v.std(ddof=1) if v.size > 1 else float("nan")
        lines.append(
            f"| {level} | {v.mean():.2f} | {sd:.2f} | {v.min():.2f} | {v.max():.2f} | {v.size} |"
        )
    return "\n".join(lines)


def write_preview(result: RenderedSet, path: str, rows: int = 3) -> None:
    """Writes a grid of the last split's first ``rows`` scenes: the five inputs, then the GT."""
    import numpy as np
    from PIL import Image

    from erl_losses.data.io import read_image

    split = list(result.stems)[-1]
    folder = result.root / split
    grid = []
    for stem in result.stems[split][:rows]:
        images = [read_image(folder / "INPUT_IMAGES" / f"{stem}_{lv}.png") for lv in result.levels]
        images.append(read_image(folder / "GT_IMAGES" / f"{stem}.png"))
        padded = [np.pad(im, ((2, 2), (2, 2), (0, 0)), constant_values=255) for im in images]
        grid.append(np.concatenate(padded, axis=1))
    Image.fromarray(np.concatenate(grid, axis=0)).save(path, quality=90)


def run(args: argparse.Namespace) -> int:
    """Renders the set and prints one line per split and the per-level input PSNR table."""
    from erl_losses.data.render import render_dataset

    result = render_dataset(
        args.out,
        crop_size=args.crop_size,
        crops_per_photo=args.crops_per_photo,
        seed=args.seed,
        split=args.split,
        overwrite=args.overwrite,
    )
    for split, stems in result.stems.items():
        print(
            f"{split}: {len(stems)} GT images, {result.count(split)} inputs from "
            f"{len(result.photos[split])} photos ({', '.join(result.photos[split])}) -> "
            f"{result.root / split}"
        )
    print("\ninput PSNR vs GT (dB, 8-bit), all splits written:")
    print(format_psnr_table(result.psnr_by_level()))
    if args.preview:
        write_preview(result, args.preview)
        print(f"preview: {args.preview}")
    return 0
