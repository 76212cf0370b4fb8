"""erl-losses: Exposure Relationship Learning (Huang et al., CVPR 2023) for PyTorch.

>>> from erl_losses import SampleRelationLoss
>>> relation = SampleRelationLoss.from_pretrained()          # doctest: +SKIP
>>> loss = l1(out, gt) + 0.1 * relation(out, gt)               # doctest: +SKIP

The public names are imported on first use (PEP 562), so ``import erl_losses`` and the ``erl``
command line's ``--help`` do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from erl_losses._version import __version__

if TYPE_CHECKING:  # static analysers and IDEs see the real objects
    from erl_losses.functional import phase_loss, sample_relation_loss
    from erl_losses.losses import PhaseLoss, SampleRelationLoss
    from erl_losses.modules import BatchCorrelationModule

# Public name -> the submodule that defines it.
_LAZY = {
    "BatchCorrelationModule": "erl_losses.modules",
    "PhaseLoss": "erl_losses.losses",
    "SampleRelationLoss": "erl_losses.losses",
    "phase_loss": "erl_losses.functional",
    "sample_relation_loss": "erl_losses.functional",
}

__all__ = [
    "BatchCorrelationModule",
    "PhaseLoss",
    "SampleRelationLoss",
    "__version__",
    "phase_loss",
    "sample_relation_loss",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'erl_losses' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
