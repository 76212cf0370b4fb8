"""ERL's losses in BasicSR's loss convention (``loss_weight``, ``reduction``, ``weight=None``).

Registered under these names in ``basicsr.utils.registry.LOSS_REGISTRY``:

* ``PhaseLoss``: :class:`erl_losses.PhaseLoss` (paper eq. 3) times ``loss_weight``.
* ``SampleRelationLoss``: :class:`erl_losses.SampleRelationLoss` (paper eq. 4) times
  ``loss_weight`` (default 0.1, the paper's alpha), with the BCM given by zoo name or path.
* ``ERLCompositeLoss``: ``base + relation`` -- any registered BasicSR loss plus the weighted
  relation term, so that stock models (``SRModel``, ...) gain ERL through ``pixel_opt`` alone::

      pixel_opt:
        type: ERLCompositeLoss
        base: {type: L1Loss, loss_weight: 1.0}
        relation: {loss_weight: 0.1}          # + bcm, work_size, gather, ... (defaults: zoo BCM)

  The model's log gains ``l_base`` and ``l_relation`` next to its own ``l_pix`` (the loss adds
  them through the model's ``reduce_loss_dict``; see :class:`erl_losses.adapters.vendored.ERLCompositeLoss`).

* ``FECNetLoss``, ``ECLNetLoss``, ``DRBNLoss``: each reference net's own loss ``L_c``
  (:mod:`erl_losses.archs.losses`) times ``loss_weight``. They read the net's auxiliary outputs,
  so they go in ``train.net_loss_opt`` of ``model_type: ERLModel``, which calls
  ``loss.compute(net_g, lq, gt)``; they cannot be a ``pixel_opt``.

``PhaseLoss`` and ``SampleRelationLoss`` are :mod:`erl_losses.adapters.vendored`'s classes
(which import no basicsr, for vendored BasicSR copies); ``ERLCompositeLoss`` here builds its
base through BasicSR's registry. Every class checks its option keys against the core constructor's signature, so a typo raises
an error that names the key and the accepted ones, and options added to the core later (such
as ``gather``) are accepted without a change here.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from erl_losses.adapters import vendored
from erl_losses.adapters._options import accepted_keys, check_keys, check_loss_weight
from erl_losses.adapters.vendored import PhaseLoss, SampleRelationLoss, build_relation_bcm

__all__ = [
    "NET_LOSS_NAMES",
    "DRBNLoss",
    "ECLNetLoss",
    "ERLCompositeLoss",
    "FECNetLoss",
    "PhaseLoss",
    "SampleRelationLoss",
    "build_relation_bcm",
]


class ERLCompositeLoss(vendored.ERLCompositeLoss):
    """:class:`erl_losses.adapters.vendored.ERLCompositeLoss` with its base from BasicSR's
    ``LOSS_REGISTRY`` (``basicsr.losses.build_loss``): any registered loss, basicsr's own
    (``L1Loss``, ``CharbonnierLoss``, ...) or another package's."""

    def build_base(self, opt: dict[str, Any]) -> nn.Module:
        """The base loss from its options, through ``basicsr.losses.build_loss``."""
        from basicsr.losses import build_loss

        return build_loss(dict(opt))


# ---------------------------------------------------------------------------------------------
# The reference nets' own losses (train.net_loss_opt of ERLModel)
# ---------------------------------------------------------------------------------------------


def _net_loss_class(name: str) -> type[nn.Module]:
    """A subclass of the core ``erl_losses.archs.losses.<name>`` taking ``loss_weight``.

    ``forward(pred, aux, gt, ...)`` and ``compute(net, lq, gt, ...)`` are the core's, times
    ``loss_weight``; unknown option keys raise ``ValueError`` listing the accepted ones.
    """
    from erl_losses.archs import losses as core_losses

    core = getattr(core_losses, name)
    accepted = accepted_keys(core.__init__) | {"loss_weight"}

    def __init__(self: nn.Module, loss_weight: float = 1.0, **options: Any) -> None:
        check_keys(f"loss {name}", {**options, "loss_weight": loss_weight}, accepted)
        core.__init__(self, **options)
        self.loss_weight = check_loss_weight(name, loss_weight)

    def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Tensor:
        return self.loss_weight * core.forward(self, *args, **kwargs)

    return type(
        name,
        (core,),
        {
            "__init__": __init__,
            "forward": forward,
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": f"BasicSR form of :class:`erl_losses.archs.losses.{name}`: "
            f"``loss_weight * L_c``, for ``train.net_loss_opt`` of ERLModel.\n\n"
            f"Accepted options: {', '.join(sorted(accepted))}.",
        },
    )


#: The nets' own losses registered for ``train.net_loss_opt``.
NET_LOSS_NAMES: tuple[str, ...] = ("DRBNLoss", "ECLNetLoss", "FECNetLoss")

FECNetLoss = _net_loss_class("FECNetLoss")
ECLNetLoss = _net_loss_class("ECLNetLoss")
DRBNLoss = _net_loss_class("DRBNLoss")
