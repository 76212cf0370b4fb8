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

* ``FECNetLoss``, ``ECLNetLoss``, ``DRBNLoss``: each reference net's own loss ``L_c``
  (:mod:`erl_losses.archs.losses`) times ``loss_weight``. They read the net's auxiliary outputs,
  so they go in ``train.net_loss_opt`` of ``model_type: ERLModel``, which calls
  ``loss.compute(net_g, lq, gt)``; they cannot be a ``pixel_opt``.

Every class checks its option keys against the core constructor's signature, so a typo raises
an error that names the key and the accepted ones, and options added to the core later (such
as ``gather``) are accepted without a change here.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

import erl_losses
from erl_losses.adapters.basicsr._options import accepted_keys, check_keys, check_mapping

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

_UNSET: Any = object()


def _check_weight(owner: str, loss_weight: Any) -> float:
    if isinstance(loss_weight, bool) or not isinstance(loss_weight, (int, float)):
        raise TypeError(f"Expected `loss_weight` of {owner} to be a number, got {loss_weight!r}")
    return float(loss_weight)


def _no_elementwise_weight(owner: str, weight: Tensor | None) -> None:
    if weight is not None:
        raise ValueError(
            f"Expected weight=None for {owner} (it compares whole images, not pixels), got a "
            f"{type(weight).__name__}"
        )


class PhaseLoss(nn.Module):
    """BasicSR form of :class:`erl_losses.PhaseLoss`: ``loss_weight * L_pre(pred, target)``.

    Args:
        loss_weight: multiplies the loss.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        **options: the other arguments of :class:`erl_losses.PhaseLoss` (``mode``,
            ``amp_floor``, ``check_nonfinite``); unknown keys raise ``ValueError``.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean", **options: Any) -> None:
        super().__init__()
        core_keys = accepted_keys(erl_losses.PhaseLoss.__init__)
        check_keys("loss PhaseLoss", options, core_keys | {"loss_weight"})
        self.loss_weight = _check_weight("PhaseLoss", loss_weight)
        self.loss = erl_losses.PhaseLoss(reduction=reduction, **options)  # type: ignore[arg-type]

    def forward(
        self, pred: Tensor, target: Tensor, weight: Tensor | None = None, **kwargs: Any
    ) -> Tensor:
        _no_elementwise_weight("PhaseLoss", weight)
        return self.loss_weight * self.loss(pred, target)


def build_relation_bcm(
    bcm: Any = None, work_size: Any = _UNSET
) -> erl_losses.BatchCorrelationModule:
    """The frozen BCM of a relation term, from an option value.

    Args:
        bcm: ``None`` (the zoo's default BCM), a zoo name or a safetensors path (see
            :func:`erl_losses.zoo.load_bcm`), a :class:`~erl_losses.BatchCorrelationModule`, or a
            mapping of BatchCorrelationModule arguments, which builds an UNTRAINED BCM (the
            "no pretext" ablation, and fast tests).
        work_size: overrides the BCM's working resolution (``None``: full resolution).
    """
    overrides = {} if work_size is _UNSET else {"work_size": work_size}
    if bcm is None or isinstance(bcm, (str, os.PathLike)):
        return erl_losses.BatchCorrelationModule.from_pretrained(bcm, **overrides)
    if isinstance(bcm, erl_losses.BatchCorrelationModule):
        if overrides:
            bcm.work_size = overrides["work_size"]
        return bcm
    if isinstance(bcm, Mapping):
        config = {**bcm, **overrides}
        check_keys(
            "the untrained BCM `bcm:`",
            config,
            accepted_keys(erl_losses.BatchCorrelationModule.__init__),
        )
        return erl_losses.BatchCorrelationModule(**config)
    raise TypeError(
        "Expected `bcm` to be a zoo name, a path, a mapping of BatchCorrelationModule options or "
        f"null (the default BCM), got {type(bcm).__name__}: {bcm!r}"
    )


class SampleRelationLoss(nn.Module):
    """BasicSR form of :class:`erl_losses.SampleRelationLoss`: ``loss_weight * L_r``.

    The BCM is frozen and hidden from optimisers and checkpoints (see the core class).

    Args:
        loss_weight: the paper's alpha; default 0.1 (the paper's value).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        bcm: zoo name, safetensors path, ``null`` for the zoo's default BCM, or a mapping of
            BatchCorrelationModule options for an untrained BCM (see :func:`build_relation_bcm`).
        work_size: override of the BCM's working resolution.
        **options: the other arguments of :class:`erl_losses.SampleRelationLoss`
            (``check_nonfinite``, ``gather``, ...); unknown keys raise ``ValueError``.
    """

    def __init__(
        self,
        loss_weight: float = 0.1,
        reduction: str = "mean",
        bcm: Any = None,
        work_size: Any = _UNSET,
        **options: Any,
    ) -> None:
        super().__init__()
        core_keys = accepted_keys(erl_losses.SampleRelationLoss.__init__)
        check_keys("loss SampleRelationLoss", options, core_keys | {"loss_weight", "work_size"})
        self.loss_weight = _check_weight("SampleRelationLoss", loss_weight)
        self.loss = erl_losses.SampleRelationLoss(
            build_relation_bcm(bcm, work_size),
            reduction=reduction,  # type: ignore[arg-type]
            **options,
        )

    @property
    def bcm(self) -> erl_losses.BatchCorrelationModule:
        """The frozen batch-correlation module."""
        return self.loss.bcm

    def forward(
        self, pred: Tensor, target: Tensor, weight: Tensor | None = None, **kwargs: Any
    ) -> Tensor:
        _no_elementwise_weight("SampleRelationLoss", weight)
        return self.loss_weight * self.loss(pred, target)


class ERLCompositeLoss(nn.Module):
    """``loss_weight * (base(pred, target) + relation(pred, target))`` for any BasicSR model.

    Put it in ``pixel_opt`` of a stock model to train with ERL (paper eq. 5,
    ``L = L_c + alpha * L_r``) without changing the model.

    Args:
        base: options of any registered BasicSR loss, with its ``type`` (e.g.
            ``{type: L1Loss, loss_weight: 1.0}``); it must return one tensor.
        relation: options of :class:`SampleRelationLoss` (``loss_weight`` = alpha, default 0.1;
            ``bcm``; ``work_size``; ``gather``; ...); ``null`` or ``{}`` for all defaults (the
            zoo's default BCM). A ``type`` key, if present, must be ``SampleRelationLoss``.
        loss_weight: multiplies the sum (default 1).
        reduction: ``"mean"`` or ``"sum"``: the default reduction of both terms when their own
            options do not set one (``"none"`` is refused: the base loss is per pixel, the
            relation per sample, so unreduced terms cannot be added).

    Attributes:
        last_terms: the detached ``{"base": ..., "relation": ...}`` values of the latest call,
            for logging them separately.
    """

    def __init__(
        self,
        base: Mapping[str, Any] | None = None,
        relation: Mapping[str, Any] | None = None,
        loss_weight: float = 1.0,
        reduction: str = "mean",
        **unknown: Any,
    ) -> None:
        super().__init__()
        from basicsr.losses import build_loss

        check_keys(
            "loss ERLCompositeLoss", unknown, {"base", "relation", "loss_weight", "reduction"}
        )
        if base is None:
            raise ValueError(
                "Expected `base` of ERLCompositeLoss (a BasicSR loss such as {type: L1Loss}), "
                "got none"
            )
        if reduction not in ("mean", "sum"):
            raise ValueError(
                f"Expected `reduction` of ERLCompositeLoss to be 'mean' or 'sum', got {reduction!r}"
            )
        self.loss_weight = _check_weight("ERLCompositeLoss", loss_weight)
        base_opt = copy.deepcopy(check_mapping("`base` of ERLCompositeLoss", base))
        if "type" not in base_opt:
            raise ValueError(
                "Expected `base` of ERLCompositeLoss to name a registered BasicSR loss with "
                f"`type:` (e.g. L1Loss), got keys {sorted(base_opt)}"
            )
        base_opt.setdefault("reduction", reduction)
        relation_opt = copy.deepcopy(
            check_mapping("`relation` of ERLCompositeLoss", relation or {})
        )
        kind = relation_opt.pop("type", "SampleRelationLoss")
        if kind != "SampleRelationLoss":
            raise ValueError(
                f"Expected `relation.type` of ERLCompositeLoss to be SampleRelationLoss, got {kind!r}"
            )
        relation_opt.setdefault("reduction", reduction)
        self.base = build_loss(base_opt)
        self.relation = SampleRelationLoss(**relation_opt)
        self.last_terms: dict[str, Tensor] = {}

    def forward(
        self, pred: Tensor, target: Tensor, weight: Tensor | None = None, **kwargs: Any
    ) -> Tensor:
        base = self.base(pred, target, weight, **kwargs)
        if not isinstance(base, Tensor):
            raise TypeError(
                f"Expected the base loss {type(self.base).__name__} to return a tensor, got "
                f"{type(base).__name__} (perceptual losses belong in `perceptual_opt`)"
            )
        relation = self.relation(pred, target)
        self.last_terms = {"base": base.detach(), "relation": relation.detach()}
        return self.loss_weight * (base + relation)


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
        self.loss_weight = _check_weight(name, loss_weight)

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
