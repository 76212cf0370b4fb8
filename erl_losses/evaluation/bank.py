"""Scoring a net on an in-memory pair set, and the paper's table-1 layout as markdown.

:func:`evaluate_bank` gives the same numbers as writing the predictions with
:func:`~erl_losses.evaluation.run_net_on_dataset` and scoring them with
:func:`~erl_losses.evaluation.evaluate_folders`, without touching the disk (the quality benchmark
scores hundreds of runs this way).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from erl_losses.data.levels import group_of
from erl_losses.data.pairs import PairBank
from erl_losses.evaluation.metrics import backend_label, metric_backend, psnr_uint8, ssim_uint8
from erl_losses.evaluation.protocol import EvaluationReport, ImageScore

__all__ = ["TABLE_GROUPS", "evaluate_bank", "format_table", "group_rows", "level_table"]

#: The row groups of table 1 (Huang et al., CVPR 2023), in the paper's column order.
TABLE_GROUPS: tuple[str, ...] = ("Under", "Over", "Average")

#: method label -> group -> ``{"psnr", "ssim", ...}``.
Rows = Mapping[str, Mapping[str, Mapping[str, float]]]


@torch.no_grad()
def evaluate_bank(net: nn.Module, bank: PairBank, method: str, chunk: int = 16) -> EvaluationReport:
    """Scores ``net`` on every pair of ``bank`` at full size with the protocol's metrics.

    Predictions are quantised as :func:`~erl_losses.evaluation.run_net_on_dataset` writes them
    (clamp to [0, 1], x 255, round, ``uint8``) and scored with the PSNR/SSIM functions of
    :func:`~erl_losses.evaluation.evaluate_folders`.

    Args:
        net: maps ``(B, 3, H, W)`` in [0, 1] to the same shape; runs on ``bank.device``.
        bank: the pairs to score.
        method: the report's method label.
        chunk: images per forward pass.

    Returns:
        An :class:`~erl_losses.evaluation.EvaluationReport` (``protocol="msec"``).
    """
    backend = metric_backend()
    was_training = net.training
    net.eval()
    scores = []
    for start in range(0, len(bank), chunk):
        lq = bank.lq[start : start + chunk].float().div(255.0)
        pred = net(lq).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        gt = bank.gt[start : start + chunk].permute(0, 2, 3, 1).cpu().numpy()
        for k in range(len(pred)):
            name, level = bank.names[start + k], bank.levels[start + k]
            scores.append(
                ImageScore(
                    name=f"{name}.png",
                    scene=name.rpartition("_")[0],
                    level=level,
                    group=group_of(level),
                    psnr=psnr_uint8(pred[k], gt[k], backend=backend),
                    ssim=ssim_uint8(pred[k], gt[k], backend=backend),
                )
            )
    net.train(was_training)
    return EvaluationReport(protocol="msec", backend=backend, method=method, images=scores)


def group_rows(report: EvaluationReport) -> dict[str, dict[str, float]]:
    """``{"Under" | "Over" | "Average": {"psnr", "ssim", "count"}}`` of one report."""
    return {
        row: {"psnr": s.psnr, "ssim": s.ssim, "count": s.count}
        for row, s in report.by_group().items()
    }


def format_table(rows: Rows, *, delta: bool = True) -> str:
    """The paper's table-1 layout (PSNR in dB, SSIM) as markdown.

    Args:
        rows: method label -> ``{"Under" | "Over" | "Average": {"psnr", "ssim"}}``.
        delta: add a last row "ERL - baseline" from the last two rows.
    """
    head = "| Method | " + " | ".join(f"{g} PSNR | {g} SSIM" for g in TABLE_GROUPS) + " |"
    lines = [head, "|---" * (1 + 2 * len(TABLE_GROUPS)) + "|"]
    for label, groups in rows.items():
        cells = [f"{groups[g]['psnr']:.2f} | {groups[g]['ssim']:.4f}" for g in TABLE_GROUPS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if delta and len(rows) >= 2:
        base, erl = list(rows.values())[-2:]
        cells = [
            f"{erl[g]['psnr'] - base[g]['psnr']:+.2f} | {erl[g]['ssim'] - base[g]['ssim']:+.4f}"
            for g in TABLE_GROUPS
        ]
        lines.append("| ERL - baseline | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def level_table(reports: Mapping[str, EvaluationReport]) -> str:
    """PSNR (dB) per exposure level (columns) for each report (rows, by method), as markdown,
    followed by the line naming the metric backend (with its version)."""
    levels = list(next(iter(reports.values())).by_level())
    lines = [
        "| PSNR per level | " + " | ".join(f"EV {level}" for level in levels) + " |",
        "|---" * (1 + len(levels)) + "|",
    ]
    for report in reports.values():
        by_level = report.by_level()
        cells = " | ".join(f"{by_level[level].psnr:.2f}" for level in levels)
        lines.append(f"| {report.method} | {cells} |")
    backends = sorted({backend_label(report.backend) for report in reports.values()})
    lines += ["", f"PSNR/SSIM computed with {' and '.join(backends)}."]
    return "\n".join(lines)
