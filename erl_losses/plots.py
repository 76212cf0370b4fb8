"""Figure primitives (needs matplotlib, in the ``data`` extra): curves, image grids, attention.

Each function draws one figure with matplotlib's object API (no pyplot state, safe in worker
processes and tests) and saves it as a PNG. They know nothing of the demo: ``erl demo``'s
figures are assembled in :mod:`erl_losses.demo_figures`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_attention", "plot_curves", "plot_grid"]


def _figure(**kwargs: Any) -> Any:
    from erl_losses._extras import require

    figure = require("matplotlib.figure", "data")
    return figure.Figure(layout="constrained", **kwargs)


def plot_curves(
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    path: str | Path,
    title: str,
    *,
    levels: Mapping[str, float] | None = None,
) -> None:
    """Held-out PSNR (dB) against the iteration, one line per run.

    Args:
        curves: run label -> ``[{"step", "psnr"}]`` (:attr:`erl_losses.training.TrainResult.curve`).
        path: the PNG to write.
        title: the figure's title.
        levels: label -> PSNR drawn as a horizontal dashed line (e.g. the uncorrected input's
            PSNR on the same crops: the level a net must beat).
    """
    fig = _figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for (label, curve), style in zip(curves.items(), ("o-", "s-", "^-", "d-"), strict=False):
        ax.plot([p["step"] for p in curve], [p["psnr"] for p in curve], style, label=label)
    for (label, value), colour in zip((levels or {}).items(), ("0.35", "0.6"), strict=False):
        ax.axhline(
            value, color=colour, linestyle="--", linewidth=1.2, label=f"{label}: {value:.2f} dB"
        )
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
    import numpy as np

    attention = np.asarray(attention, dtype=float)
    count = len(labels)
    uniform = 1.0 / count
    fig = _figure(figsize=(1.5 + 0.8 * count, 1.2 + 0.8 * count))
    grid = fig.add_gridspec(2, count, height_ratios=[1, 0.8 * count])
    for k in range(count):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(thumbs[k])
        ax.set_title(labels[k], fontsize=7)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    # A light colour map centred on the uniform weight 1/B: white = no preference, red = the
    # query attends more than uniformly, blue = less; dark text stays legible on every cell.
    spread = max(float(np.abs(attention - uniform).max()), 0.05 * uniform)
    image = ax.imshow(
        attention, cmap="RdBu_r", vmin=uniform - 1.6 * spread, vmax=uniform + 1.6 * spread
    )
    ax.set_xticks(range(count), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(count), labels, fontsize=7)
    ax.set_xlabel("attended sample j")
    ax.set_ylabel("query sample i")
    for i in range(count):
        for j in range(count):
            ax.text(j, i, f"{attention[i, j]:.3f}", ha="center", va="center", fontsize=7,
                    color="0.1")  # fmt: skip
    bar = fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    bar.ax.axhline(uniform, color="k", linewidth=1.5)  # the uniform weight 1/B
    fig.suptitle(f"{title}\n(white = uniform 1/B = {uniform:.3f}: no sample preferred)", fontsize=9)
    fig.savefig(path, dpi=110)
