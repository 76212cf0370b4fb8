"""erl-losses: Exposure Relationship Learning (Huang et al., CVPR 2023) for PyTorch.

>>> from erl_losses import SampleRelationLoss
>>> relation = SampleRelationLoss.from_pretrained()          # doctest: +SKIP
>>> loss = l1(out, gt) + 0.1 * relation(out, gt)               # doctest: +SKIP
"""

from erl_losses._version import __version__
from erl_losses.functional import phase_loss, sample_relation_loss
from erl_losses.losses import PhaseLoss, SampleRelationLoss
from erl_losses.modules import BatchCorrelationModule

__all__ = [
    "BatchCorrelationModule",
    "PhaseLoss",
    "SampleRelationLoss",
    "__version__",
    "phase_loss",
    "sample_relation_loss",
]
