"""Neural modules of ERL."""

from erl_losses.modules.bcm import BatchCorrelationModule

__all__ = ["BatchCorrelationModule"]
