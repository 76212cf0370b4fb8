"""``erl demo``: ERL vs a plain L1 baseline on a synthetic MSEC-like set, in minutes on a CPU.

What :func:`run_demo` does, with no network:

1. renders a small MSEC-like set (:func:`erl_losses.data.render_dataset`) from the photos bundled
   in installed packages, split by photo: the test photos are
   :data:`erl_losses.data.HELD_OUT`, which the zoo's BCMs never saw;
2. trains a reference net (ECLNet by default, the fastest; FECNet optional) twice, with identical
   seeds, initial weights, batches and iterations: ``L1`` alone, and ``L1 + alpha * relation``
   (paper eq. 5, ``alpha = 0.1``) with the zoo's default BCM. Every batch comes from
   :class:`~erl_losses.data.MixedExposureBatchSampler`, so it mixes under- and over-exposure;
3. logs PSNR on held-out crops every few steps (the training curves of the paper's fig. 7);
4. runs both nets over the full-size test images and scores them with the MSEC protocol
   (:func:`erl_losses.evaluation.evaluate_folders`), giving the paper's table-1 row layout
   (Under / Over / Average PSNR and SSIM);
5. writes ``results.json``, ``table.md``, ``curves.png``, ``grid.png`` (one row per exposure
   level: input / baseline / ERL / GT) and ``attention.png`` (the BCM's ``(B, B)`` batch
   attention on a mixed batch) into the output folder.

The training helpers (:class:`PairBank`, :func:`train_net`, :func:`evaluate_bank`) are also what
``benchmarks/quality.py`` runs, so the demo and the benchmark measure the same thing.

This is a synthetic stand-in, not the paper's protocol: a few hundred steps on crops of ten
photos instead of MSEC/SICE for 100k+ iterations. Expect differences of a few hundredths to
tenths of a dB either way; the benchmark reports the spread over seeds.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from erl_losses._version import __version__

__all__ = [
    "NETS",
    "PRESETS",
    "DemoSettings",
    "PairBank",
    "TrainResult",
    "evaluate_bank",
    "format_table",
    "load_relation",
    "resolve_device",
    "run_demo",
    "train_net",
]

#: ``--net`` choices -> :data:`erl_losses.archs.ARCHS` names.
NETS: dict[str, str] = {"eclnet": "ECLNet", "fecnet": "FECNet"}

#: Table rows: label in the JSON -> row name of :meth:`EvaluationReport.by_group`.
_GROUPS: tuple[str, ...] = ("Under", "Over", "Average")


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and optimisation settings of a demo run.

    Args:
        steps: optimiser steps of each of the two trainings.
        batch_size: samples per mini-batch (paper: 4); >= 2, every batch mixes under and over.
        crop_size: side of the random training crops and of the held-out curve crops.
        render_size: side of the rendered images (train and test).
        train_crops: rendered crops per training photo (x 5 exposure levels).
        test_crops: rendered crops per held-out photo (x 5 exposure levels).
        lr: peak Adam learning rate (betas 0.9, 0.99 as the paper); cosine decay to 5 %.
        alpha: weight of the relation term (paper: 0.1).
        curve_points: held-out PSNR evaluations during training (plus one at step 0).
    """

    steps: int = 400
    batch_size: int = 4
    crop_size: int = 64
    render_size: int = 128
    train_crops: int = 6
    test_crops: int = 2
    lr: float = 2e-3
    alpha: float = 0.1
    curve_points: int = 10

    def __post_init__(self) -> None:
        for name in ("steps", "train_crops", "test_crops", "curve_points"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected `{name}` to be an int >= 1, got {value!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ValueError(f"Expected `batch_size` to be an int >= 2, got {self.batch_size!r}")
        if self.batch_size < 2:
            raise ValueError(
                "Expected `batch_size` to be an int >= 2 (the relation needs other samples), "
                f"got {self.batch_size!r}"
            )
        for name in ("crop_size", "render_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 16:
                raise ValueError(f"Expected `{name}` to be an int >= 16, got {value!r}")
        if self.crop_size > self.render_size:
            raise ValueError(
                f"Expected `crop_size` <= `render_size` ({self.render_size}), got {self.crop_size}"
            )
        if not self.lr > 0:
            raise ValueError(f"Expected `lr` > 0, got {self.lr!r}")
        if not self.alpha >= 0:
            raise ValueError(f"Expected `alpha` >= 0, got {self.alpha!r}")


#: ``run_demo(quick=False)`` and ``run_demo(quick=True)``.
PRESETS: dict[str, DemoSettings] = {
    "full": DemoSettings(),
    "quick": DemoSettings(
        steps=120, crop_size=48, render_size=96, train_crops=3, test_crops=1, curve_points=6
    ),
}


# ---------------------------------------------------------------------------------------------
# Device, BCM
# ---------------------------------------------------------------------------------------------
def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; an explicit CUDA device must be available.

    Raises:
        ValueError: an unknown device string, or CUDA requested without an available GPU.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"Expected device 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"Expected an available CUDA device for device={device!r}, got "
            "torch.cuda.is_available() == False (use device='cpu')"
        )
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"Expected device 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return resolved


def load_relation(
    bcm: Any = None, device: torch.device | str = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """The :class:`~erl_losses.SampleRelationLoss` for ``bcm`` and a JSON-ready description.

    Args:
        bcm: ``None`` (the zoo's default BCM), a zoo name, a safetensors path, or a
            :class:`~erl_losses.BatchCorrelationModule`.
        device: where the loss runs.

    Raises:
        erl_losses.zoo.WeightsUnavailableError: the BCM is neither shipped, cached nor
            downloadable (the message says which file to put where).
    """
    from erl_losses import BatchCorrelationModule, SampleRelationLoss

    info: dict[str, Any]
    if isinstance(bcm, BatchCorrelationModule):
        module, info = bcm, {"source": "module"}
    elif bcm is None or isinstance(bcm, (str, os.PathLike)):
        from erl_losses import zoo

        module = zoo.load_bcm(bcm)
        if bcm is None:
            info = {"source": "zoo", "name": zoo.default_name()}
        elif isinstance(bcm, str) and bcm in zoo.names():
            info = {"source": "zoo", "name": bcm}
        else:
            info = {"source": "file", "path": str(bcm)}
        if info["source"] == "zoo":
            spec = zoo.get_spec(info["name"])
            info.update(version=spec.version, sha256=spec.sha256, file=spec.file)
    else:
        raise TypeError(
            "Expected `bcm` to be None, a zoo name, a path or a BatchCorrelationModule, got "
            f"{type(bcm).__name__}"
        )
    info["config"] = module.config
    return SampleRelationLoss(module).to(device), info


# ---------------------------------------------------------------------------------------------
# Data: an in-memory copy of a rendered split, cropped on the training device
# ---------------------------------------------------------------------------------------------
@dataclass
class PairBank:
    """All input/GT pairs of one split as ``uint8`` tensors, for fast, seeded batches.

    Attributes:
        lq, gt: ``(N, 3, H, W)`` ``uint8`` on ``device``.
        levels, groups, names: per sample (``names`` are the input file stems).
    """

    lq: Tensor
    gt: Tensor
    levels: list[str]
    groups: list[str]
    names: list[str]

    @classmethod
    def from_msec(
        cls, root: str | Path, split: str, device: torch.device | str = "cpu"
    ) -> PairBank:
        """Reads a split written by :func:`~erl_losses.data.render_dataset` (all images one size).

        Raises:
            ValueError: images of different sizes.
        """
        from erl_losses.data import MSECDataset, read_image

        dataset = MSECDataset(root, split=split)
        lq = [read_image(lq_path) for lq_path, _, _ in dataset.pairs]
        gt = [read_image(gt_path) for _, gt_path, _ in dataset.pairs]
        shapes = sorted({a.shape for a in lq + gt})
        if len(shapes) != 1:
            raise ValueError(f"Expected images of one size in {dataset.root}, got {shapes}")

        def stack(arrays: list[np.ndarray]) -> Tensor:
            return torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy()).to(device)

        return cls(
            lq=stack(lq),
            gt=stack(gt),
            levels=dataset.levels,
            groups=dataset.groups,
            names=[Path(p).stem for p, _, _ in dataset.pairs],
        )

    def __len__(self) -> int:
        return len(self.levels)

    @property
    def device(self) -> torch.device:
        return self.lq.device

    def batch(
        self, indices: Sequence[int], crop: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Float ``(B, 3, crop, crop)`` input and GT: a random crop per sample, the same place in
        both, then random horizontal / vertical flips (``generator`` lives on the CPU)."""
        height, width = self.lq.shape[-2:]
        count = len(indices)
        tops = torch.randint(0, height - crop + 1, (count,), generator=generator).tolist()
        lefts = torch.randint(0, width - crop + 1, (count,), generator=generator).tolist()
        flips = (torch.rand(count, 2, generator=generator) < 0.5).tolist()
        lq, gt = [], []
        for i, top, left, (flip_h, flip_v) in zip(indices, tops, lefts, flips, strict=True):
            pair = torch.stack([self.lq[i], self.gt[i]])[..., top : top + crop, left : left + crop]
            dims = [3] * flip_h + [2] * flip_v
            if dims:
                pair = pair.flip(dims)
            lq.append(pair[0])
            gt.append(pair[1])
        return torch.stack(lq).float().div_(255.0), torch.stack(gt).float().div_(255.0)

    def center_crops(self, crop: int) -> tuple[Tensor, Tensor]:
        """Float center crops of every sample (the held-out curve set)."""
        height, width = self.lq.shape[-2:]
        top, left = (height - crop) // 2, (width - crop) // 2
        window = (..., slice(top, top + crop), slice(left, left + crop))
        return self.lq[window].float().div(255.0), self.gt[window].float().div(255.0)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """One training run.

    Attributes:
        net: the trained net (eval mode, on the training device).
        curve: ``[{"step", "psnr"}]``, mean held-out PSNR (dB) before step 1 and every few steps.
        losses: ``[{"step", "l1", "relation"}]`` averaged over each curve interval.
        seconds: wall time of the training loop (curve evaluations included).
    """

    net: nn.Module
    curve: list[dict[str, float]] = field(default_factory=list)
    losses: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _lr_at(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over 5 % of the steps, then cosine decay to 5 % of the peak."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))


@torch.no_grad()
def _mean_psnr(net: nn.Module, lq: Tensor, gt: Tensor, chunk: int = 32) -> float:
    """Mean per-image PSNR (dB) of 8-bit-quantised predictions, as the protocol quantises."""
    was_training = net.training
    net.eval()
    values = []
    for start in range(0, len(lq), chunk):
        pred = net(lq[start : start + chunk]).clamp(0, 1).mul(255).round().div(255)
        mse = (pred - gt[start : start + chunk]).pow(2).flatten(1).mean(1).clamp_min(1e-10)
        values.append(-10.0 * torch.log10(mse))
    net.train(was_training)
    return float(torch.cat(values).mean())


def _curve_steps(steps: int, points: int) -> list[int]:
    return sorted({0, *(round(steps * k / points) for k in range(1, points + 1))})


def train_net(
    net_name: str,
    bank: PairBank,
    *,
    steps: int,
    batch_size: int = 4,
    crop_size: int = 64,
    lr: float = 2e-3,
    relation: nn.Module | None = None,
    alpha: float = 0.1,
    seed: int = 0,
    curve_set: tuple[Tensor, Tensor] | None = None,
    curve_points: int = 10,
    progress: bool = True,
    desc: str = "train",
    position: int | None = None,
) -> TrainResult:
    """Trains one reference net with ``L1`` (+ ``alpha * relation`` when ``relation`` is given).

    Two calls with the same ``seed`` start from the same weights and see the same batches in the
    same order (the sampler, the crops and the flips are seeded, and the relation term draws no
    random numbers), so they differ only by the loss.

    Args:
        net_name: an :data:`erl_losses.archs.ARCHS` name (``"ECLNet"``, ``"FECNet"``, ...).
        bank: the training pairs (their device is the training device).
        steps: optimiser steps (Adam, betas 0.9/0.99, warm-up + cosine learning rate).
        batch_size: samples per batch, from :class:`~erl_losses.data.MixedExposureBatchSampler`.
        crop_size: random crop side.
        lr: peak learning rate.
        relation: a :class:`~erl_losses.SampleRelationLoss` on the bank's device, or ``None``
            for the baseline.
        alpha: weight of the relation term.
        seed: seeds the net initialisation, the sampler and the crops.
        curve_set: ``(lq, gt)`` float tensors for the held-out PSNR curve (``None``: no curve).
        curve_points: curve evaluations after step 0.
        progress: draw a tqdm bar.
        desc, position: the bar's label and line.

    Returns:
        A :class:`TrainResult` with the net in eval mode.
    """
    from tqdm.auto import tqdm

    from erl_losses.archs import build_arch
    from erl_losses.data import MixedExposureBatchSampler

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"Expected `steps` to be an int >= 1, got {steps!r}")
    if crop_size > min(bank.lq.shape[-2:]):
        raise ValueError(
            f"Expected `crop_size` <= the images' size {tuple(bank.lq.shape[-2:])}, got {crop_size}"
        )
    device = bank.device
    torch.manual_seed(seed)
    net = build_arch(net_name).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.99))
    sampler = MixedExposureBatchSampler(bank.groups, batch_size, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    checkpoints = set(_curve_steps(steps, curve_points)) if curve_set is not None else set()
    result = TrainResult(net=net)
    sums = {"l1": 0.0, "relation": 0.0}
    count = 0
    start = time.perf_counter()
    if 0 in checkpoints:
        result.curve.append({"step": 0, "psnr": _mean_psnr(net, *curve_set)})  # type: ignore[misc]
    batches = iter(sampler)
    bar = tqdm(
        range(1, steps + 1),
        desc=desc,
        disable=not progress,
        dynamic_ncols=True,
        position=position,
        leave=True,
    )
    for step in bar:
        indices = next(batches, None)
        if indices is None:  # a new epoch: the sampler reshuffles on each iter()
            batches = iter(sampler)
            indices = next(batches)
        lq, gt = bank.batch(indices, crop_size, generator)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step - 1, steps, lr)
        pred = net(lq)
        l1 = (pred - gt).abs().mean()
        loss = l1
        if relation is not None:
            rel = relation(pred, gt)
            loss = l1 + alpha * rel
            sums["relation"] += float(rel.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums["l1"] += float(l1.detach())
        count += 1
        if step in checkpoints:
            psnr = _mean_psnr(net, *curve_set)  # type: ignore[misc]
            result.curve.append({"step": step, "psnr": psnr})
            result.losses.append({"step": step, **{k: v / count for k, v in sums.items()}})
            sums = dict.fromkeys(sums, 0.0)
            count = 0
            bar.set_postfix(l1=f"{result.losses[-1]['l1']:.4f}", psnr=f"{psnr:.2f}")
    bar.close()
    result.seconds = time.perf_counter() - start
    net.eval()
    return result


@torch.no_grad()
def evaluate_bank(net: nn.Module, bank: PairBank, method: str, chunk: int = 16) -> Any:
    """Scores ``net`` on every pair of ``bank`` at full size with the protocol's metrics.

    Predictions are quantised like :func:`erl_losses.evaluation.run_net_on_dataset` writes them
    (clamp, x 255, round, ``uint8``) and scored with the same PSNR/SSIM functions as
    :func:`erl_losses.evaluation.evaluate_folders`, without writing files.

    Returns:
        An :class:`~erl_losses.evaluation.EvaluationReport` (``protocol="msec"``).
    """
    from erl_losses.data import group_of
    from erl_losses.evaluation import (
        EvaluationReport,
        ImageScore,
        metric_backend,
        psnr_uint8,
        ssim_uint8,
    )

    backend = metric_backend()
    was_training = net.training
    net.eval()
    scores = []
    for start in range(0, len(bank), chunk):
        lq = bank.lq[start : start + chunk].float().div(255.0)
        pred = net(lq).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        gt = bank.gt[start : start + chunk].permute(0, 2, 3, 1).cpu().numpy()
        for k in range(len(pred)):
            i = start + k
            name = bank.names[i]
            scores.append(
                ImageScore(
                    name=f"{name}.png",
                    scene=name.rpartition("_")[0],
                    level=bank.levels[i],
                    group=group_of(bank.levels[i]),
                    psnr=psnr_uint8(pred[k], gt[k], backend=backend),
                    ssim=ssim_uint8(pred[k], gt[k], backend=backend),
                )
            )
    net.train(was_training)
    return EvaluationReport(protocol="msec", backend=backend, method=method, images=scores)


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------
def format_table(rows: dict[str, dict[str, dict[str, float]]], *, delta: bool = True) -> str:
    """The paper's table-1 layout as markdown.

    Args:
        rows: method label -> ``{"Under" | "Over" | "Average": {"psnr", "ssim"}}``.
        delta: add a last row "ERL - baseline" from the last two rows.
    """
    head = "| Method | " + " | ".join(f"{g} PSNR | {g} SSIM" for g in _GROUPS) + " |"
    lines = [head, "|---" * (1 + 2 * len(_GROUPS)) + "|"]
    for label, groups in rows.items():
        cells = [f"{groups[g]['psnr']:.2f} | {groups[g]['ssim']:.4f}" for g in _GROUPS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if delta and len(rows) >= 2:
        base, erl = list(rows.values())[-2:]
        cells = [
            f"{erl[g]['psnr'] - base[g]['psnr']:+.2f} | {erl[g]['ssim'] - base[g]['ssim']:+.4f}"
            for g in _GROUPS
        ]
        lines.append("| ERL - baseline | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _level_table(reports: dict[str, Any]) -> str:
    """PSNR per exposure level (columns) for each report (rows), as markdown."""
    levels = list(next(iter(reports.values())).by_level())
    lines = [
        "| PSNR per level | " + " | ".join(f"EV {level}" for level in levels) + " |",
        "|---" * (1 + len(levels)) + "|",
    ]
    for report in reports.values():
        by_level = report.by_level()
        lines.append(
            f"| {report.method} | "
            + " | ".join(f"{by_level[level].psnr:.2f}" for level in levels)
            + " |"
        )
    return "\n".join(lines)


def _groups(report: Any) -> dict[str, dict[str, float]]:
    return {
        row: {"psnr": s.psnr, "ssim": s.ssim, "count": s.count}
        for row, s in report.by_group().items()
    }


def _plot_curves(
    runs: dict[str, TrainResult], labels: dict[str, str], path: Path, title: str
) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for key, style in (("baseline", "o-"), ("erl", "s-")):
        curve = runs[key].curve
        ax.plot([p["step"] for p in curve], [p["psnr"] for p in curve], style, label=labels[key])
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR on held-out crops (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)


def _plot_grid(
    test_dir: Path,
    pred_dirs: dict[str, Path],
    scene: str,
    levels: Sequence[str],
    scores: dict[str, dict[str, float]],
    labels: dict[str, str],
    path: Path,
) -> None:
    from matplotlib.figure import Figure

    from erl_losses.data import read_image

    columns = ["input", "baseline", "erl", "gt"]
    fig = Figure(figsize=(2.2 * len(columns), 2.3 * len(levels)), layout="constrained")
    axes = fig.subplots(len(levels), len(columns), squeeze=False)
    gt = read_image(test_dir / "GT_IMAGES" / f"{scene}.png")
    for r, level in enumerate(levels):
        name = f"{scene}_{level}"
        images = {
            "input": read_image(test_dir / "INPUT_IMAGES" / f"{name}.png"),
            "baseline": read_image(pred_dirs["baseline"] / f"{name}.png"),
            "erl": read_image(pred_dirs["erl"] / f"{name}.png"),
            "gt": gt,
        }
        for c, column in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(images[column])
            ax.set_xticks([])
            ax.set_yticks([])
            title = labels.get(column, column.upper() if column == "gt" else column)
            if column in scores:
                title += f"\n{scores[column][name]:.2f} dB"
            ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(f"EV {level}", fontsize=9)
    fig.suptitle(f"Held-out scene {scene}: one row per exposure level", fontsize=10)
    fig.savefig(path, dpi=110)


def _plot_attention(
    attention: np.ndarray, thumbs: np.ndarray, labels: list[str], path: Path, title: str
) -> None:
    from matplotlib.figure import Figure

    count = len(labels)
    fig = Figure(figsize=(1.5 + 0.8 * count, 1.2 + 0.8 * count), layout="constrained")
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


def _mixed_batch(bank: PairBank, size: int) -> list[int]:
    """``size`` indices alternating under / over exposure, evenly spread over the bank (so that
    several scenes and levels appear)."""
    pools = [
        [i for i, g in enumerate(bank.groups) if g == "under"],
        [i for i, g in enumerate(bank.groups) if g == "over"],
    ]
    counts = [size - size // 2, size // 2]  # even positions (under) get the odd one
    picks = [
        [pool[k * len(pool) // n] for k in range(n)] for pool, n in zip(pools, counts, strict=True)
    ]
    return [picks[k % 2][k // 2] for k in range(size)]


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, {os.cpu_count()} CPU cores"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (CPU run)"


# ---------------------------------------------------------------------------------------------
# The demo
# ---------------------------------------------------------------------------------------------
def run_demo(
    out_dir: str | os.PathLike[str] = "erl-demo",
    *,
    quick: bool = False,
    device: str | torch.device | None = None,
    seed: int = 0,
    net: str = "eclnet",
    steps: int | None = None,
    bcm: Any = None,
    settings: DemoSettings | None = None,
    threads: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Runs the demo and writes its files into ``out_dir``; returns the results dict.

    Args:
        out_dir: output folder (created; its ``data/`` and ``predictions/`` are replaced).
        quick: the small preset (:data:`PRESETS` ``"quick"``, ~1 minute on a 2-core CPU).
        device: ``None`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        seed: seeds the rendering crops, the net initialisation and the batches (both runs).
        net: ``"eclnet"`` (default) or ``"fecnet"``.
        steps: overrides the preset's optimiser steps.
        bcm: the BCM of the relation term: ``None`` (the zoo's default), a zoo name, a
            safetensors path or a :class:`~erl_losses.BatchCorrelationModule`.
        settings: replaces the preset entirely (``steps`` still overrides its steps).
        threads: torch intra-op threads on the CPU (``None``: 1, which is the fastest for these
            small nets on a busy 2-core machine; the previous setting is restored afterwards).
        progress: draw tqdm bars.
        echo: where the table and file list are printed (``None``: silent).

    Returns:
        The dict written to ``results.json``: ``runs.baseline`` / ``runs.erl`` (table-1 groups,
        per-level rows, training curve, losses, seconds), ``input`` (the uncorrected inputs),
        ``delta`` (ERL - baseline per group), ``table`` (markdown), ``settings``, ``bcm``,
        ``files`` and timings.

    Raises:
        ValueError: bad arguments (unknown net, device, steps).
        erl_losses.zoo.WeightsUnavailableError: no default BCM available (pass ``bcm``).
    """
    from tqdm.auto import tqdm

    from erl_losses.data import MSEC_LEVELS, render_dataset
    from erl_losses.evaluation import evaluate_folders, run_net_on_dataset

    if net not in NETS:
        raise ValueError(f"Expected net to be one of {sorted(NETS)}, got {net!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"Expected seed to be an int >= 0, got {seed!r}")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ValueError(f"Expected threads to be None or an int >= 1, got {threads!r}")
    base = settings if settings is not None else PRESETS["quick" if quick else "full"]
    if not isinstance(base, DemoSettings):
        raise TypeError(f"Expected settings to be a DemoSettings, got {type(base).__name__}")
    cfg = replace(base, steps=steps) if steps is not None else base
    torch_device = resolve_device(device)
    arch = NETS[net]
    say = echo or (lambda _text: None)
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    if torch_device.type == "cpu":
        torch.set_num_threads(threads or 1)
    try:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        relation, bcm_info = load_relation(bcm, torch_device)

        stage = tqdm(total=5, desc="demo", disable=not progress, dynamic_ncols=True, leave=True)
        stage.set_postfix_str("rendering the synthetic set")
        data_dir = out / "data"
        if data_dir.exists():
            shutil.rmtree(data_dir)
        rendered = {}
        for split, crops in (("train", cfg.train_crops), ("test", cfg.test_crops)):
            rendered[split] = render_dataset(
                data_dir, crop_size=cfg.render_size, crops_per_photo=crops, seed=seed, split=split
            )
        train_bank = PairBank.from_msec(data_dir, "train", torch_device)
        test_bank = PairBank.from_msec(data_dir, "test", torch_device)
        curve_set = test_bank.center_crops(cfg.crop_size)
        render_seconds = time.perf_counter() - started
        stage.update()

        labels = {"baseline": f"{arch} (L1)", "erl": f"{arch}+ERL (L1 + {cfg.alpha:g} relation)"}
        runs: dict[str, TrainResult] = {}
        for key in ("baseline", "erl"):
            stage.set_postfix_str(f"training {labels[key]}")
            runs[key] = train_net(
                arch,
                train_bank,
                steps=cfg.steps,
                batch_size=cfg.batch_size,
                crop_size=cfg.crop_size,
                lr=cfg.lr,
                relation=relation if key == "erl" else None,
                alpha=cfg.alpha,
                seed=seed,
                curve_set=curve_set,
                curve_points=cfg.curve_points,
                progress=progress,
                desc=f"{key:>8}",
            )
            stage.update()

        stage.set_postfix_str("evaluating (MSEC protocol)")
        test_dir = data_dir / "test"
        pred_root = out / "predictions"
        if pred_root.exists():
            shutil.rmtree(pred_root)
        reports = {
            "input": evaluate_folders(
                test_dir / "INPUT_IMAGES", test_dir, "msec", method="Input (no correction)"
            )
        }
        pred_dirs: dict[str, Path] = {}
        for key, run in runs.items():
            pred_dirs[key] = run_net_on_dataset(
                run.net, test_dir, pred_root / key, protocol="msec", split="test"
            ).pred_dir
            reports[key] = evaluate_folders(pred_dirs[key], test_dir, "msec", method=labels[key])
        stage.update()

        rows = {reports[k].method: _groups(reports[k]) for k in ("input", "baseline", "erl")}
        table = format_table(rows) + "\n\n" + _level_table(reports)
        per_image = {
            key: {Path(s.name).stem: s.psnr for s in reports[key].images}
            for key in ("input", "baseline", "erl")
        }

        # Figures
        files = {
            "results": out / "results.json",
            "table": out / "table.md",
            "curves": out / "curves.png",
            "grid": out / "grid.png",
            "attention": out / "attention.png",
        }
        _plot_curves(runs, labels, files["curves"], f"{arch} on the synthetic set, seed {seed}")
        scene = sorted({Path(s.name).stem.rpartition("_")[0] for s in reports["erl"].images})[0]
        _plot_grid(
            test_dir,
            pred_dirs,
            scene,
            MSEC_LEVELS,
            per_image,
            {"input": "input", "baseline": labels["baseline"], "erl": labels["erl"]},
            files["grid"],
        )
        picks = _mixed_batch(test_bank, 8 if len(test_bank) >= 8 else len(test_bank))
        with torch.no_grad():
            attention = relation.bcm.batch_attention(test_bank.lq[picks].float().div(255.0))
        attention_np = attention.float().cpu().numpy()
        pick_labels = [f"{test_bank.names[i].split('_')[0]}\n{test_bank.levels[i]}" for i in picks]
        thumbs = test_bank.lq[picks].permute(0, 2, 3, 1).cpu().numpy()
        bcm_name = bcm_info.get("name") or Path(bcm_info.get("path", "BCM")).stem
        _plot_attention(
            attention_np,
            thumbs,
            pick_labels,
            files["attention"],
            f"{bcm_name}: (B, B) attention of t_e (last layer, mean of heads), mixed test batch",
        )
        stage.update()
        stage.close()

        def delta(group: str, metric: str) -> float:
            return rows[labels["erl"]][group][metric] - rows[labels["baseline"]][group][metric]

        results: dict[str, Any] = {
            "erl_losses_version": __version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": _machine(torch_device),
            "device": str(torch_device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads() if torch_device.type == "cpu" else None,
            "net": arch,
            "seed": seed,
            "quick": quick,
            "settings": asdict(cfg),
            "bcm": bcm_info,
            "data": {
                "root": str(data_dir),
                "train_photos": rendered["train"].photos["train"],
                "test_photos": rendered["test"].photos["test"],
                "train_images": len(train_bank),
                "test_images": len(test_bank),
            },
            "table": table,
            "input": reports["input"].to_dict(),
            "runs": {
                key: {
                    "label": labels[key],
                    "loss": "L1" if key == "baseline" else f"L1 + {cfg.alpha:g} * relation",
                    "groups": rows[labels[key]],
                    "report": reports[key].to_dict(),
                    "curve": runs[key].curve,
                    "losses": runs[key].losses,
                    "train_seconds": runs[key].seconds,
                }
                for key in ("baseline", "erl")
            },
            "delta": {g: {"psnr": delta(g, "psnr"), "ssim": delta(g, "ssim")} for g in _GROUPS},
            "attention": {
                "samples": [test_bank.names[i] for i in picks],
                "groups": [test_bank.groups[i] for i in picks],
                "matrix": attention_np.round(5).tolist(),
            },
            "files": {k: str(v) for k, v in files.items()},
            "seconds": {
                "render": render_seconds,
                "total": time.perf_counter() - started,
            },
        }
        files["table"].write_text(
            f"{arch}, synthetic MSEC-like test set ({len(test_bank)} images of "
            f"{', '.join(results['data']['test_photos'])}), seed {seed}, {cfg.steps} steps, "
            f"{results['machine']}\n\n{table}\n"
        )
        files["results"].write_text(json.dumps(results, indent=2) + "\n")
    finally:
        torch.set_num_threads(previous_threads)

    say("")
    say(
        f"{arch}, {cfg.steps} steps x 2 runs, batch {cfg.batch_size}, crops {cfg.crop_size} px, "
        f"{results['device']}; held-out test set: {len(test_bank)} images "
        f"({', '.join(results['data']['test_photos'])}, 5 exposure levels)"
    )
    say("")
    say(table)
    say("")
    say(f"Wrote {out}/: " + ", ".join(Path(p).name for p in results["files"].values()))
    say(f"Total {results['seconds']['total']:.0f} s")
    return results
