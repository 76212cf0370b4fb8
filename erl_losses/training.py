"""Pieces shared by every training loop of the package (the pretext trainer, `erl demo`, the
quality benchmark).

* :func:`warmup_cosine`: the one learning-rate schedule, linear warm-up then cosine decay to a
  floor, built on ``torch.optim.lr_scheduler.LambdaLR`` so that its state saves and resumes with
  the optimiser.
* :func:`ema_model`: an exponential moving average of the weights
  (``torch.optim.swa_utils.AveragedModel``), which is what the short runs evaluate: the raw weights
  of a few hundred Adam steps swing by about 1 dB between checkpoints, the average much less.
* :func:`train_net`: trains a reference net on mixed-exposure batches with ``L1`` and optionally
  ``L1 + alpha * relation`` (paper eq. 5), seeded so that two runs differ only by the loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel

from erl_losses._validation import check_non_negative, check_positive_int
from erl_losses.functional import psnr

__all__ = [
    "DEFAULT_LR",
    "PairSource",
    "TrainResult",
    "curve_steps",
    "default_lr",
    "ema_decay_at",
    "ema_model",
    "quantised_psnr",
    "train_net",
    "warmup_cosine",
    "warmup_cosine_factor",
]


def warmup_cosine_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the peak learning rate at 0-based ``step`` of ``total``.

    Linear warm-up from ``1 / warmup`` to 1 over the first ``warmup`` steps, then cosine decay from
    1 to ``min_ratio`` at the last step; past ``total`` it stays at ``min_ratio``.
    """
    warmup = max(1, warmup)
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: Optimizer,
    total_steps: int,
    *,
    warmup_steps: int,
    min_ratio: float = 0.0,
    last_step: int = -1,
) -> LambdaLR:
    """A ``LambdaLR`` giving each param group ``base_lr * warmup_cosine_factor(step, ...)``.

    Call ``scheduler.step()`` after each ``optimizer.step()``. ``last_step`` resumes a run at a
    known step (the optimiser's groups must then hold ``initial_lr``, as after ``load_state_dict``
    of a saved scheduler, or pass a fresh optimiser and ``last_step=-1`` then ``step()`` forward).
    """
    total_steps = check_positive_int(total_steps, "total_steps")
    if warmup_steps < 0:
        raise ValueError(f"Expected warmup_steps >= 0, got {warmup_steps}")
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"Expected min_ratio in [0, 1], got {min_ratio}")
    return LambdaLR(
        optimizer,
        lambda step: warmup_cosine_factor(step, total_steps, warmup_steps, min_ratio),
        last_epoch=last_step,
    )


# ---------------------------------------------------------------------------------------------
# Exponential moving average of the weights
# ---------------------------------------------------------------------------------------------
def ema_decay_at(count: int, decay: float) -> float:
    """EMA decay after ``count`` averaged updates: ``min(decay, (1 + count) / (10 + count))``.

    The ramp (as TensorFlow's ``ExponentialMovingAverage(num_updates=...)``) keeps a short run's
    average from remembering its random initial weights: the window grows with the run, up to
    ``1 / (1 - decay)`` steps.
    """
    return min(decay, (1.0 + count) / (10.0 + count))


def ema_model(net: nn.Module, decay: float) -> AveragedModel:
    """An :class:`~torch.optim.swa_utils.AveragedModel` keeping an EMA of ``net``'s parameters.

    Call ``ema.update_parameters(net)`` after each optimiser step; ``ema.module`` is the averaged
    net (buffers are copied from ``net``, not averaged). The decay ramps up as
    :func:`ema_decay_at`.

    Raises:
        ValueError: ``decay`` outside ``[0, 1)``.
    """
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
        raise ValueError(f"Expected `ema_decay` in [0, 1), got {decay!r}")

    def lerp(averaged: list[Tensor], current: list[Tensor], count: Tensor | int) -> None:
        torch._foreach_lerp_(averaged, current, 1.0 - ema_decay_at(int(count), decay))

    return AveragedModel(net, multi_avg_fn=lerp)


# ---------------------------------------------------------------------------------------------
# Training a reference net
# ---------------------------------------------------------------------------------------------
#: Peak Adam learning rate per net for the short synthetic runs (demo, quality benchmark), chosen
#: on held-out curves (docs/demo.md): the highest rate whose curve rose steadily. Our choice, not
#: the paper's (its nets train for 100k+ iterations with their own schedules).
DEFAULT_LR: dict[str, float] = {"ECLNet": 4e-3, "FECNet": 1e-3}


def default_lr(net_name: str) -> float:
    """The net's :data:`DEFAULT_LR`; 1e-3 for a net without one."""
    return DEFAULT_LR.get(net_name, 1e-3)


class PairSource(Protocol):
    """What :func:`train_net` trains on (:class:`erl_losses.data.PairBank` is one)."""

    groups: list[str]

    @property
    def device(self) -> torch.device: ...

    @property
    def image_size(self) -> tuple[int, int]: ...

    def batch(
        self, indices: Sequence[int], crop: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]: ...


@dataclass
class TrainResult:
    """One training run.

    Attributes:
        net: the evaluated net, in eval mode on the training device: the EMA of the weights when
            ``ema_decay`` was given, else the last weights.
        curve: ``[{"step", "psnr"}]``, mean held-out PSNR (dB) of ``net`` before step 1 and every
            few steps.
        losses: ``[{"step", "l1", "relation"}]``, training losses averaged over each interval.
        seconds: wall time of the training loop (curve evaluations included).
    """

    net: nn.Module
    curve: list[dict[str, float]] = field(default_factory=list)
    losses: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


@torch.no_grad()
def quantised_psnr(net: nn.Module, lq: Tensor, gt: Tensor, chunk: int = 32) -> float:
    """Mean per-image PSNR (dB) of ``net(lq)`` against ``gt`` (``(N, 3, H, W)`` in [0, 1]), the
    predictions clamped and rounded to 8 bits as the evaluation protocol writes them."""
    was_training = net.training
    net.eval()
    values = []
    for start in range(0, len(lq), chunk):
        pred = net(lq[start : start + chunk]).clamp(0, 1).mul(255).round().div(255)
        values.append(psnr(pred, gt[start : start + chunk]))
    net.train(was_training)
    return float(torch.cat(values).mean())


def curve_steps(steps: int, points: int) -> list[int]:
    """Step 0 and ``points`` steps spread evenly up to ``steps`` (where the curve is measured)."""
    return sorted({0, *(round(steps * k / points) for k in range(1, points + 1))})


def _endless_batches(
    source: PairSource, batch_size: int, crop: int, seed: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """Mixed-exposure batches forever; the sampler reshuffles on each epoch, all seeded."""
    from erl_losses.data.sampler import MixedExposureBatchSampler

    sampler = MixedExposureBatchSampler(source.groups, batch_size, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    while True:
        for indices in sampler:
            yield source.batch(indices, crop, generator)


def _check_train_args(
    source: PairSource, net_name: str, steps: int, crop_size: int, lr: float | None
) -> float:
    """Raises on a bad argument; returns the learning rate (``None``: the net's default)."""
    lr = default_lr(net_name) if lr is None else lr
    check_positive_int(steps, "steps")
    if crop_size > min(source.image_size):
        raise ValueError(
            f"Expected `crop_size` <= the images' size {source.image_size}, got {crop_size}"
        )
    if not lr > 0:
        raise ValueError(f"Expected `lr` > 0, got {lr!r}")
    return lr


def _train_step(
    net: nn.Module,
    optimizer: Optimizer,
    batch: tuple[Tensor, Tensor],
    relation: nn.Module | None,
    alpha: float,
) -> dict[str, float]:
    """One optimiser step on ``L1 (+ alpha * relation)``; returns both terms' values."""
    lq, gt = batch
    pred = net(lq)
    l1 = (pred - gt).abs().mean()
    loss, rel = l1, 0.0
    if relation is not None:
        term = relation(pred, gt)
        loss = l1 + alpha * term
        rel = float(term.detach())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"l1": float(l1.detach()), "relation": rel}


def train_net(
    net_name: str,
    source: PairSource,
    *,
    steps: int,
    batch_size: int = 4,
    crop_size: int = 64,
    lr: float | None = None,
    relation: nn.Module | None = None,
    alpha: float = 0.1,
    seed: int = 0,
    ema_decay: float | None = 0.999,
    curve_set: tuple[Tensor, Tensor] | None = None,
    curve_points: int = 10,
    progress: bool = True,
    desc: str = "train",
    position: int | None = None,
) -> TrainResult:
    """Trains one reference net with ``L1`` (+ ``alpha * relation`` when ``relation`` is given).

    Two calls with the same ``seed`` start from the same weights and see the same batches in the
    same order (the sampler, the crops and the flips are seeded, and the relation term draws no
    random numbers), so they differ only by the loss. Adam (betas 0.9/0.99 as the paper), the
    learning rate warms up over 5 % of the steps and decays (cosine) to 5 % of ``lr``.

    Args:
        net_name: an :data:`erl_losses.archs.ARCHS` name (``"ECLNet"``, ``"FECNet"``, ...).
        source: the training pairs (e.g. :class:`erl_losses.data.PairBank`) on their device.
        steps, batch_size, crop_size, lr: optimiser steps, samples per mixed-exposure batch
            (:class:`~erl_losses.data.MixedExposureBatchSampler`), crop side (px), peak rate
            (``None``: the net's :data:`DEFAULT_LR`, else 1e-3).
        relation, alpha: a :class:`~erl_losses.SampleRelationLoss` on the source's device and
            its weight, or ``None`` for the baseline.
        seed: seeds the net initialisation, the sampler and the crops.
        ema_decay: evaluate (and return) an EMA of the weights (:func:`ema_model`); ``None``:
            the last weights.
        curve_set, curve_points: ``(lq, gt)`` float tensors for the held-out PSNR curve
            (``None``: no curve) and how many evaluations after step 0.
        progress, desc, position: draw a tqdm bar, its label and line.

    Returns:
        A :class:`TrainResult` with the evaluated net in eval mode.
    """
    from tqdm.auto import tqdm

    from erl_losses.archs import build_arch

    lr = _check_train_args(source, net_name, steps, crop_size, lr)
    alpha = check_non_negative(alpha, "alpha")
    torch.manual_seed(seed)
    net = build_arch(net_name).to(source.device).train()
    ema = ema_model(net, ema_decay) if ema_decay is not None else None
    evaluated = ema.module if ema is not None else net
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.99))
    scheduler = warmup_cosine(optimizer, steps, warmup_steps=max(1, steps // 20), min_ratio=0.05)
    checkpoints = set(curve_steps(steps, curve_points)) if curve_set is not None else set()
    result = TrainResult(net=evaluated)
    sums, count, start = {"l1": 0.0, "relation": 0.0}, 0, time.perf_counter()
    if 0 in checkpoints:
        result.curve.append({"step": 0, "psnr": quantised_psnr(evaluated, *curve_set)})
    batches = _endless_batches(source, batch_size, crop_size, seed)
    bar = tqdm(range(1, steps + 1), desc=desc, disable=not progress, dynamic_ncols=True,
               position=position, leave=True)  # fmt: skip
    for step in bar:
        losses = _train_step(net, optimizer, next(batches), relation, alpha)
        scheduler.step()
        if ema is not None:
            ema.update_parameters(net)
        sums = {k: sums[k] + losses[k] for k in sums}
        count += 1
        if step in checkpoints:
            psnr = quantised_psnr(evaluated, *curve_set)  # type: ignore[misc]
            result.curve.append({"step": step, "psnr": psnr})
            result.losses.append({"step": step, **{k: v / count for k, v in sums.items()}})
            sums, count = dict.fromkeys(sums, 0.0), 0
            bar.set_postfix(l1=f"{result.losses[-1]['l1']:.4f}", psnr=f"{psnr:.2f}")
    bar.close()
    result.seconds = time.perf_counter() - start
    evaluated.eval()
    return result
