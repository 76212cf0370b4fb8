"""The figures of ``erl demo``: ``curves.png``, ``grid.png`` and ``attention.png``.

Demo code: it reads a :class:`~erl_losses.demo.DemoResult` and draws through the generic
primitives of :mod:`erl_losses.plots`, which never import the demo.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erl_losses.plots import plot_attention, plot_curves, plot_grid

if TYPE_CHECKING:
    from erl_losses.demo import DemoData, DemoResult

__all__ = ["draw_demo_figures"]


def draw_demo_figures(result: DemoResult, data: DemoData, pred_dirs: Mapping[str, Path]) -> None:
    """``curves.png``, ``grid.png`` and ``attention.png`` into the result's folder."""
    import numpy as np

    from erl_losses.data import MSEC_LEVELS, read_image
    from erl_losses.demo import ROWS, RUNS

    files, labels = result.files, result.labels
    curves = {labels[k]: result.runs[k].curve for k in RUNS}
    levels = {}
    if result.input_curve_psnr is not None:
        levels["input (no correction)"] = result.input_curve_psnr
    plot_curves(
        curves,
        files["curves"],
        f"{result.net} on the synthetic set, seed {result.seed}",
        levels=levels,
    )

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
