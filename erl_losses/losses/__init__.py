"""Loss modules; each stores its configuration and delegates to :mod:`erl_losses.functional`."""

from erl_losses.losses.phase import PhaseLoss
from erl_losses.losses.relation import SampleRelationLoss

__all__ = ["PhaseLoss", "SampleRelationLoss"]
