"""Pieces shared by every training loop of the package (the pretext trainer and `erl demo`).

One learning-rate schedule lives here: linear warm-up, then cosine decay to a floor, built on
``torch.optim.lr_scheduler.LambdaLR`` so that its state saves and resumes with the optimiser.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from erl_losses._validation import check_positive_int

__all__ = ["warmup_cosine", "warmup_cosine_factor"]


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
