"""The figures of ``erl demo`` (needs matplotlib, in the ``data`` extra).

Each function draws one figure with matplotlib's object API (no pyplot state, safe in worker
processes and tests) and saves it as a PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from erl_losses.demo import DemoData, DemoResult

__all__ = ["draw_demo_figures", "plot_attention", "plot_curves", "plot_grid"]


def _figure(**kwargs: Any) -> Any:
    from erl_losses._extras import require

    figure = require("matplotlib.figure", "data")
    return figure.Figure(layout="constrained", **kwargs)


def plot_curves(
    curves: Mapping[str, Sequence[Mapping[str, float]]], path: str | Path, title: str
) -> None:
    """Held-out PSNR (dB) against the iteration, one line per run.

    Args:
        curves: run label -> ``[{"step", "psnr"}]`` (:attr:`erl_losses.training.TrainResult.curve`).
        path: the PNG to write.
        title: the figure's title.
    """
    fig = _figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for (label, curve), style in zip(curves.items(), ("o-", "s-", "^-", "d-"), strict=False):
        ax.plot([p["step"] for p in curve], [p["psnr"] for p in curve], style, label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR on held-out crops (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)


def plot_grid(
    rows: Mapping[str, Mapping[str, Any]],
    titles: Mapping[str, Mapping[str, str]],
    path: str | Path,
    title: str,
) -> None:
    """A grid of images: one row per exposure level, one column per method.

    Args:
        rows: level -> column label -> ``(H, W, 3)`` ``uint8`` image; every row has the same
            columns, in display order.
        titles: level -> column label -> the title above that image.
        path: the PNG to write.
        title: the figure's title.
    """
    columns = list(next(iter(rows.values())))
    fig = _figure(figsize=(2.2 * len(columns), 2.3 * len(rows)))
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for r, (level, images) in enumerate(rows.items()):
        for c, column in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(images[column])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(titles[level][column], fontsize=8)
            if c == 0:
                ax.set_ylabel(f"EV {level}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)


def plot_attention(
    attention: Any, thumbs: Any, labels: Sequence[str], path: str | Path, title: str
) -> None:
    """A ``(B, B)`` batch-attention matrix under thumbnails of the batch's samples.

    Args:
        attention: ``(B, B)`` array, row ``i`` the weights query sample ``i`` gives each sample.
        thumbs: ``(B, H, W, 3)`` ``uint8`` images of the samples.
        labels: ``B`` short labels (e.g. scene and level).
        path: the PNG to write.
        title: the figure's title.
    """
    count = len(labels)
    fig = _figure(figsize=(1.5 + 0.8 * count, 1.2 + 0.8 * count))
    grid = fig.add_gridspec(2, count, height_ratios=[1, 0.8 * count])
    for k in range(count):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(thumbs[k])
        ax.set_title(labels[k], fontsize=7)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    image = ax.imshow(attention, cmap="viridis", vmin=0.0)
    ax.set_xticks(range(count), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(count), labels, fontsize=7)
    ax.set_xlabel("attended sample j")
    ax.set_ylabel("query sample i")
    for i in range(count):
        for j in range(count):
            ax.text(j, i, f"{attention[i, j]:.2f}", ha="center", va="center", fontsize=6, color="w")
    fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)


def draw_demo_figures(result: DemoResult, data: DemoData, pred_dirs: Mapping[str, Path]) -> None:
    """``curves.png``, ``grid.png`` and ``attention.png`` into the result's folder."""
    import numpy as np

    from erl_losses.data import MSEC_LEVELS, read_image
    from erl_losses.demo import ROWS, RUNS

    files, labels = result.files, result.labels
    curves = {labels[k]: result.runs[k].curve for k in RUNS}
    plot_curves(curves, files["curves"], f"{result.net} on the synthetic set, seed {result.seed}")

    scores = {k: {Path(s.name).stem: s.psnr for s in result.reports[k].images} for k in ROWS}
    scene = sorted(name.rpartition("_")[0] for name in scores["erl"])[0]
    rows: dict[str, dict[str, Any]] = {}
    titles: dict[str, dict[str, str]] = {}
    gt = read_image(data.test_dir / "GT_IMAGES" / f"{scene}.png")
    for level in MSEC_LEVELS:
        name = f"{scene}_{level}"
        rows[level] = {
            "input": read_image(data.test_dir / "INPUT_IMAGES" / f"{name}.png"),
            **{k: read_image(pred_dirs[k] / f"{name}.png") for k in RUNS},
            "gt": gt,
        }
        titles[level] = {k: f"{labels[k]}\n{scores[k][name]:.2f} dB" for k in ROWS}
        titles[level]["gt"] = "GT"
    plot_grid(rows, titles, files["grid"], f"Held-out scene {scene}: one row per exposure level")

    attention = result.attention
    picks = attention["indices"]
    labels_ = [f"{n.split('_')[0]}\n{lv}" for n, lv in zip(
        attention["samples"], attention["levels"], strict=True)]  # fmt: skip
    bcm_name = result.bcm.get("name") or Path(result.bcm.get("path", "BCM")).stem
    plot_attention(
        np.asarray(attention["matrix"]),
        data.test.lq[picks].permute(0, 2, 3, 1).cpu().numpy(),
        labels_,
        files["attention"],
        f"{bcm_name}: (B, B) attention of t_e (last layer, mean of heads), mixed test batch",
    )
