"""Module form of :func:`erl_losses.functional.phase_loss`."""

from __future__ import annotations

from torch import Tensor, nn

from erl_losses._reduction import Reduction, check_reduction
from erl_losses._validation import check_choice
from erl_losses.functional.phase import PHASE_MODES, phase_loss


class PhaseLoss(nn.Module):
    """Fourier phase L1 loss (ERL eq. 3); see :func:`erl_losses.functional.phase_loss`.

    Args:
        mode: ``"paper"`` (eq. 3 exactly) or ``"wrapped"`` (angular distance in ``[0, pi]``,
            amplitude-weighted, finite gradients everywhere).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-image ``(B,)`` losses).
        amp_floor: amplitude under which ``"wrapped"`` ignores a frequency.
        check_nonfinite: raise on NaN/inf inputs.

    Shape:
        ``pred``, ``target``: ``(B, C, H, W)``; output: scalar, or ``(B,)`` for ``"none"``.
    """

    is_differentiable = True
    higher_is_better = False

    def __init__(
        self,
        mode: str = "paper",
        reduction: Reduction = "mean",
        amp_floor: float = 1e-3,
        check_nonfinite: bool = False,
    ) -> None:
        super().__init__()
        self.mode = check_choice(mode, "mode", PHASE_MODES)
        self.reduction = check_reduction(reduction)
        if not amp_floor > 0:
            raise ValueError(f"Expected `amp_floor` > 0, got {amp_floor!r}")
        self.amp_floor = float(amp_floor)
        self.check_nonfinite = check_nonfinite

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return phase_loss(
            pred,
            target,
            mode=self.mode,
            reduction=self.reduction,
            amp_floor=self.amp_floor,
            check_nonfinite=self.check_nonfinite,
        )

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, reduction={self.reduction!r}, amp_floor={self.amp_floor}"
