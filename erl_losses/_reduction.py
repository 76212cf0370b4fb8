"""The one reduction contract of every loss in the package."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from erl_losses._validation import check_choice

Reduction = Literal["none", "mean", "sum"]
REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")


def check_reduction(reduction: object) -> Reduction:
    """Returns ``reduction`` if it is ``"none"``, ``"mean"`` or ``"sum"``, else raises."""
    return check_choice(reduction, "reduction", REDUCTIONS)  # type: ignore[return-value]


def reduce(per_sample: Tensor, reduction: Reduction) -> Tensor:
    """Reduces a ``(B,)`` tensor of per-sample losses.

    ``"none"`` returns it unchanged, ``"mean"`` averages over the batch and ``"sum"`` adds up.
    """
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample
