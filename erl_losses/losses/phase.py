"""Module form of :func:`erl_losses.functional.phase_loss`."""

from __future__ import annotations

from torch import Tensor, nn

from erl_losses._reduction import Reduction, check_reduction
from erl_losses._validation import (
    UnitRangeChecked,
    check_bool,
    check_choice,
    check_has_values,
    check_positive_number,
    check_tensor,
)
from erl_losses.functional.phase import PHASE_MODES, phase_loss


class PhaseLoss(UnitRangeChecked, nn.Module):
    """Fourier phase L1 loss (ERL eq. 3); see :func:`erl_losses.functional.phase_loss`.

    Args:
        mode: ``"paper"`` (eq. 3 exactly) or ``"wrapped"`` (angular distance in ``[0, pi]``,
            amplitude-weighted, finite gradients everywhere).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-image ``(B,)`` losses).
        amp_floor: amplitude under which ``"wrapped"`` ignores a frequency (a number > 0).
        check_nonfinite: raise on NaN/inf inputs.
        check_range: raise when ``pred`` or ``target`` is clearly outside [0, 1] (below -0.5 or
            above 1.5, e.g. 0-255 images), checked on every call. By default only the first call
            is checked, and it warns (one device sync in the loss's lifetime).

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
        check_range: bool = False,
    ) -> None:
        super().__init__()
        self.mode = check_choice(mode, "mode", PHASE_MODES)
        self.reduction = check_reduction(reduction)
        self.amp_floor = check_positive_number(amp_floor, "amp_floor")
        self.check_nonfinite = check_bool(check_nonfinite, "check_nonfinite")
        self.check_range = check_bool(check_range, "check_range")
        self._range_checked = False

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        for x, name in ((pred, "pred"), (target, "target")):
            check_has_values(check_tensor(x, name), name)
        self._check_pair_range(pred, target)
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
