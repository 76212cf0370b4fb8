"""ERL's losses with BasicSR's loss signature, importable WITHOUT basicsr.

Most exposure and low-light repos (Retinexformer, Restormer-derived code, ...) vendor a copy of
BasicSR without registries: their models look a loss up with
``getattr(importlib.import_module('basicsr.models.losses'), opt.pop('type'))`` and call it as
``cls(**opt)``. One line in the vendored ``basicsr/models/losses/__init__.py`` makes ERL's losses
available to every option file of such a repo::

    from erl_losses.adapters.vendored import ERLCompositeLoss, PhaseLoss, SampleRelationLoss  # noqa: F401

This module imports only the core (torch, erl_losses): never basicsr, so the core install is
enough, and installing the ``basicsr`` extra in such a repo is NOT needed (it would install a
pip ``basicsr`` that shadows the vendored one).

Classes (``loss_weight``, ``reduction``, ``forward(pred, target, weight=None)``):

* :class:`PhaseLoss`: ``loss_weight * L_pre`` (paper eq. 3).
* :class:`SampleRelationLoss`: ``loss_weight * L_r`` (paper eq. 4); ``loss_weight`` default 0.1.
* :class:`ERLCompositeLoss`: ``loss_weight * (base + relation)``, the base being any loss of the
  host repo named by ``base.type`` and looked up as the host repo looks up its own losses. It adds its two terms,
  ``l_base`` and ``l_relation``, to the calling model's log (see :class:`ERLCompositeLoss`).

The registry adapter :mod:`erl_losses.adapters.basicsr` registers the same :class:`PhaseLoss`
and :class:`SampleRelationLoss`, and an :class:`ERLCompositeLoss` whose base comes from BasicSR's
``LOSS_REGISTRY``.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import os
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

import erl_losses
from erl_losses.adapters._options import (
    accepted_keys,
    check_bools,
    check_keys,
    check_loss_weight,
    check_mapping,
)
from erl_losses.modules.bcm_io import PretrainedBCM, resolve_bcm

__all__ = [
    "HOST_LOSS_MODULE",
    "ERLCompositeLoss",
    "PhaseLoss",
    "SampleRelationLoss",
    "build_relation_bcm",
]

#: Where a vendored BasicSR copy keeps its loss classes (Restormer, Retinexformer, ...).
HOST_LOSS_MODULE = "basicsr.models.losses"

#: The log keys of :class:`ERLCompositeLoss`'s two terms.
TERM_LOG_KEYS: dict[str, str] = {"base": "l_base", "relation": "l_relation"}

# How many calling frames are searched for the model that owns the loss: the loss's own
# nn.Module call frames, a wrapper criterion's, then the model's training step.
_CALLER_DEPTH = 12

_UNSET: Any = object()


def _no_elementwise_weight(owner: str, weight: Tensor | None) -> None:
    if weight is not None:
        raise ValueError(
            f"Expected weight=None for {owner} (it compares whole images, not pixels), got a "
            f"{type(weight).__name__}"
        )


class PhaseLoss(nn.Module):
    """BasicSR form of :class:`erl_losses.PhaseLoss`: ``loss_weight * L_pre(pred, target)``.

    Args:
        loss_weight: multiplies the loss; a finite number >= 0.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        **options: the other arguments of :class:`erl_losses.PhaseLoss` (``mode``,
            ``amp_floor``, ``check_nonfinite``); unknown keys raise ``ValueError``.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean", **options: Any) -> None:
        super().__init__()
        core_keys = accepted_keys(erl_losses.PhaseLoss.__init__)
        check_keys("loss PhaseLoss", options, core_keys | {"loss_weight"})
        options = check_bools("PhaseLoss", options, erl_losses.PhaseLoss.__init__)
        self.loss_weight = check_loss_weight("PhaseLoss", loss_weight)
        self.loss = erl_losses.PhaseLoss(reduction=reduction, **options)  # type: ignore[arg-type]

    def forward(
        self, pred: Tensor, target: Tensor, weight: Tensor | None = None, **kwargs: Any
    ) -> Tensor:
        """``pred``, ``target``: (B, 3, H, W) in [0, 1]; ``weight`` must be ``None``."""
        _no_elementwise_weight("PhaseLoss", weight)
        return self.loss_weight * self.loss(pred, target)


def build_relation_bcm(
    bcm: Any = None, work_size: Any = _UNSET
) -> erl_losses.BatchCorrelationModule:
    """The frozen BCM of a relation term, from an option value.

    Args:
        bcm: ``None`` (the zoo's default BCM), a zoo name or a safetensors path, a
            :class:`~erl_losses.BatchCorrelationModule`, or a mapping of BatchCorrelationModule
            arguments, which builds an UNTRAINED BCM (the "no pretext" ablation, and fast tests);
            an empty mapping is refused (an option file rarely means "untrained" by ``{}``).
        work_size: overrides the BCM's working resolution (``None``: full resolution).
    """
    return _relation_bcm(bcm, work_size).bcm


def _relation_bcm(bcm: Any, work_size: Any) -> PretrainedBCM:
    """:func:`build_relation_bcm` with the zoo entry a name brings (its loss variant)."""
    overrides = {} if work_size is _UNSET else {"work_size": work_size}
    if bcm is None or isinstance(bcm, (str, os.PathLike, erl_losses.BatchCorrelationModule)):
        return resolve_bcm(bcm, **overrides)
    if isinstance(bcm, Mapping):
        if not bcm:
            raise ValueError(
                "Expected `bcm` to be a zoo name, a path, null (the default BCM) or a non-empty "
                "mapping of BatchCorrelationModule options for an UNTRAINED BCM, got {} (write "
                "e.g. {channels: 32} to mean an untrained BCM)"
            )
        config = {**bcm, **overrides}
        check_keys(
            "the untrained BCM `bcm:`",
            config,
            accepted_keys(erl_losses.BatchCorrelationModule.__init__),
        )
        return PretrainedBCM(erl_losses.BatchCorrelationModule(**config), None)
    raise TypeError(
        "Expected `bcm` to be a zoo name, a path, a mapping of BatchCorrelationModule options or "
        f"null (the default BCM), got {type(bcm).__name__}: {bcm!r}"
    )


class SampleRelationLoss(nn.Module):
    """BasicSR form of :class:`erl_losses.SampleRelationLoss`: ``loss_weight * L_r``.

    The BCM is frozen and hidden from optimisers and checkpoints (see the core class).

    Args:
        loss_weight: the paper's alpha; default 0.1 (the paper's value); finite and >= 0.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        bcm: zoo name, safetensors path, ``null`` for the zoo's default BCM, or a mapping of
            BatchCorrelationModule options for an untrained BCM (see :func:`build_relation_bcm`).
        work_size: override of the BCM's working resolution.
        **options: the other arguments of :class:`erl_losses.SampleRelationLoss`
            (``check_nonfinite``, ``gather``, ``variant``, ...); unknown keys raise
            ``ValueError``. Without ``variant``, a zoo name (or ``null``) brings the loss
            variant its manifest entry records.
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
        options = check_bools("SampleRelationLoss", options, erl_losses.SampleRelationLoss.__init__)
        self.loss_weight = check_loss_weight("SampleRelationLoss", loss_weight)
        resolved = _relation_bcm(bcm, work_size)
        if options.get("variant") is None:
            options["variant"] = resolved.variant  # a zoo name's entry records it; else "paper"
        self.loss = erl_losses.SampleRelationLoss(
            resolved.bcm,
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
        """``pred``, ``target``: (B, 3, H, W) in [0, 1], B >= 2; ``weight`` must be ``None``."""
        _no_elementwise_weight("SampleRelationLoss", weight)
        return self.loss_weight * self.loss(pred, target)


class ERLCompositeLoss(nn.Module):
    """``loss_weight * (base(pred, target) + relation(pred, target))`` for any BasicSR model.

    Put it in ``pixel_opt`` of a stock model to train with ERL (paper eq. 5,
    ``L = L_c + alpha * L_r``) without changing the model.

    Args:
        base: options of a loss of the host, with its ``type`` (e.g.
            ``{type: L1Loss, loss_weight: 1.0}``); it must return one tensor. This class looks
            ``type`` up as an attribute of :data:`HOST_LOSS_MODULE` (the vendored copy's
            ``basicsr.models.losses``); the registry adapter's subclass uses BasicSR's registry.
        relation: options of :class:`SampleRelationLoss` (``loss_weight`` = alpha, default 0.1;
            ``bcm``; ``work_size``; ``gather``; ...); ``null`` or ``{}`` for all defaults (the
            zoo's default BCM). A ``type`` key, if present, must be ``SampleRelationLoss``.
        loss_weight: multiplies the sum (default 1); finite and >= 0.
        reduction: ``"mean"`` or ``"sum"``: the default reduction of both terms when their own
            options do not set one (``"none"`` is refused: the base loss is per pixel, the
            relation per sample, so unreduced terms cannot be added).

        log_terms: report both terms in the log of the model that calls the loss (default
            true; see below).

    Logging: BasicSR models (pip basicsr and vendored copies alike) log what their training step
    passes to ``self.reduce_loss_dict(loss_dict)``, and a stock model passes only its sum as
    ``l_pix``. On its first call the loss finds that model -- the nearest calling method's
    ``self`` that has a ``reduce_loss_dict`` method -- and wraps that method on the instance, so
    that ``l_base`` and ``l_relation`` (summed over the loss's calls since the previous
    reduction, as ``l_pix`` is) join the model's own terms: in the text log, TensorBoard, wandb,
    and averaged over ranks under DDP as the model's terms are. The two terms are before the
    outer ``loss_weight``. A caller without ``reduce_loss_dict`` (a hand-written loop) reads
    :attr:`last_terms` instead.

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
        log_terms: bool = True,
        **unknown: Any,
    ) -> None:
        super().__init__()
        check_keys(
            "loss ERLCompositeLoss",
            unknown,
            {"base", "relation", "loss_weight", "reduction", "log_terms"},
        )
        if not isinstance(log_terms, bool):
            raise TypeError(
                f"Expected `log_terms` of ERLCompositeLoss to be true or false, got {log_terms!r}"
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
        self.loss_weight = check_loss_weight("ERLCompositeLoss", loss_weight)
        base_opt = copy.deepcopy(check_mapping("`base` of ERLCompositeLoss", base))
        if "type" not in base_opt:
            raise ValueError(
                "Expected `base` of ERLCompositeLoss to name its loss with `type:` (e.g. "
                f"L1Loss), got keys {sorted(base_opt)}"
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
        self.relation = SampleRelationLoss(**relation_opt)
        self.base = self.build_base(base_opt)
        self.last_terms: dict[str, Tensor] = {}
        self.log_terms = log_terms
        # Terms not yet handed to the model's reduce_loss_dict, and the model found (weakly).
        self._pending: dict[str, Tensor] = {}
        self._logged_by: weakref.ReferenceType[Any] | None = None

    def build_base(self, opt: dict[str, Any]) -> nn.Module:
        """The base loss from its options (``type`` + keyword arguments), as the host does:
        ``getattr(importlib.import_module(HOST_LOSS_MODULE), type)(**rest)``."""
        opt = dict(opt)
        kind = opt.pop("type")
        try:
            host = importlib.import_module(HOST_LOSS_MODULE)
        except ImportError as err:
            raise ValueError(
                f"Expected the host repo's loss module {HOST_LOSS_MODULE} for `base.type: "
                f"{kind}` of ERLCompositeLoss, got {type(err).__name__}: {err}"
            ) from err
        cls = getattr(host, str(kind), None)
        if not callable(cls):
            raise ValueError(
                f"Expected `base.type` of ERLCompositeLoss to name a loss class of "
                f"{HOST_LOSS_MODULE}, got {kind!r}"
            )
        return cls(**opt)

    def forward(
        self, pred: Tensor, target: Tensor, weight: Tensor | None = None, **kwargs: Any
    ) -> Tensor:
        """``pred``, ``target``: (B, 3, H, W) in [0, 1]; ``weight`` goes to the base loss."""
        # Hosts' losses differ in whether they take `weight`: pass it only when given.
        args = (pred, target) if weight is None else (pred, target, weight)
        base = self.base(*args, **kwargs)
        if not isinstance(base, Tensor):
            raise TypeError(
                f"Expected the base loss {type(self.base).__name__} to return a tensor, got "
                f"{type(base).__name__} (perceptual losses belong in `perceptual_opt`)"
            )
        relation = self.relation(pred, target)
        self.last_terms = {"base": base.detach(), "relation": relation.detach()}
        if self.log_terms:
            self._report_terms()
        return self.loss_weight * (base + relation)

    def _report_terms(self) -> None:
        """Queues the latest terms for the calling model's next ``reduce_loss_dict``."""
        model = None if self._logged_by is None else self._logged_by()
        if model is None:
            model = _calling_model(self)
            if model is None:
                return
            _wrap_reduce_loss_dict(model, self)
            self._logged_by = weakref.ref(model)
        for term, value in self.last_terms.items():
            key = TERM_LOG_KEYS[term]
            value = value.float()  # an autocast term may be half precision; the log is float32
            self._pending[key] = value if key not in self._pending else self._pending[key] + value

    def _take_pending(self) -> dict[str, Tensor]:
        pending, self._pending = self._pending, {}
        return pending


def _calling_model(loss: nn.Module) -> Any:
    """The nearest caller's ``self`` that has a ``reduce_loss_dict`` method (a BasicSR model);
    frames of ``torch.nn.Module`` objects (the loss itself, a wrapper criterion) are passed."""
    frame = inspect.currentframe()
    try:
        for _ in range(_CALLER_DEPTH):
            if frame is None:
                return None
            owner = frame.f_locals.get("self")
            if (
                owner is not None
                and not isinstance(owner, nn.Module)
                and callable(getattr(owner, "reduce_loss_dict", None))
            ):
                return owner
            frame = frame.f_back
        return None
    finally:
        del frame  # frames reference their locals: break the cycle at once


def _wrap_reduce_loss_dict(model: Any, loss: ERLCompositeLoss) -> None:
    """Makes ``model.reduce_loss_dict`` add the loss's queued terms to the dict it reduces."""
    reduce: Callable[..., Any] = model.reduce_loss_dict
    owner = weakref.ref(loss)

    def reduce_loss_dict(loss_dict: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        source = owner()
        pending = {} if source is None else source._take_pending()
        if pending:
            loss_dict = OrderedDict(loss_dict)
            for key, value in pending.items():
                loss_dict.setdefault(key, value.to(_device_of(loss_dict, value)))
        return reduce(loss_dict, *args, **kwargs)

    model.reduce_loss_dict = reduce_loss_dict


def _device_of(loss_dict: Mapping[str, Any], default: Tensor) -> Any:
    # Under DDP, reduce_loss_dict stacks the values: they must share the model terms' device.
    for value in loss_dict.values():
        if isinstance(value, Tensor):
            return value.device
    return default.device
