"""BasicSR model ``ERLModel``: any base model plus a relation term (``BCMPretextModel``, the BCM
pretext, lives in :mod:`.pretext_model`).

``ERLModel`` trains in one of two ways.

With the base model's pixel loss, reading ``train.relation_opt`` next to it and logging
``l_relation`` separately from ``l_pix``::

    model_type: ERLModel
    base_model_type: SRModel          # any registered model whose loss uses `self.cri_pix`
    train:
      pixel_opt: {type: L1Loss, loss_weight: 1.0}
      relation_opt: {type: SampleRelationLoss, loss_weight: 0.1}   # + bcm, work_size, gather

It is built per base type as ``ERLModel[<base>]``, a subclass of both the base model class
and :class:`ERLModel` (``isinstance(model, SRModel)`` stays true), so everything the base model
does -- EMA, validation, saving, resuming -- is unchanged. The relation term rides on the base
model's pixel criterion: ``cri_pix`` becomes ``pixel + relation`` (one backward pass), and the two
terms are logged as ``l_pix`` (or ``l_g_pix`` for GAN models) and ``l_relation``.

With the net's own loss (the paper's recipe ``L = L_c + 0.1 * L_r``), ``train.net_loss_opt``
replaces ``pixel_opt``; ``relation_opt`` is optional (without it: the paper's baseline)::

    model_type: ERLModel
    base_model_type: SRModel          # SRModel or a non-GAN subclass (SwinIRModel, ...)
    train:
      net_loss_opt: {type: ECLNetLoss}                              # FECNetLoss | DRBNLoss
      relation_opt: {type: SampleRelationLoss, loss_weight: 0.1}   # optional

Each step computes ``l_net, pred = net_loss.compute(net_g, lq, gt)`` -- ``net_g`` is called
through its DistributedDataParallel wrapper, as ``net_g(lq, return_aux=True)`` -- adds
``relation(pred, gt)`` when configured, backpropagates once, steps ``optimizer_g``, updates the
EMA copy like SRModel, and logs ``l_net`` and ``l_relation``.

In both ways ``train.amp: bf16`` autocasts the training forward of the networks and losses to
bfloat16 (the relation term's BCM stays float32); see :mod:`.amp`.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from torch import Tensor, nn

from erl_losses.adapters._options import check_mapping
from erl_losses.adapters.basicsr.amp import amp_dtype, autocast_forwards
from erl_losses.adapters.basicsr.teacher import build_teacher

__all__ = ["ERLModel", "erl_model_class"]

#: Log keys under which base models report their pixel criterion.
_PIXEL_LOG_KEYS: tuple[str, ...] = ("l_pix", "l_g_pix")


class _PixelPlusRelation(nn.Module):
    """``cri_pix`` of an ERL model: the base pixel loss plus the relation term.

    Remembers both detached terms of the latest call in ``last_terms`` for logging.
    """

    def __init__(self, pixel: nn.Module | None, relation: nn.Module) -> None:
        super().__init__()
        self.pixel = pixel
        self.relation = relation
        self.last_terms: dict[str, Tensor] = {}

    def forward(self, pred: Tensor, target: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        relation = self.relation(pred, target)
        if not isinstance(relation, Tensor):
            raise TypeError(
                f"Expected the relation loss to return a tensor, got {type(relation).__name__}"
            )
        terms = {"relation": relation.detach()}
        total = relation
        if self.pixel is not None:
            pixel = self.pixel(pred, target, *args, **kwargs)
            terms["pixel"] = pixel.detach()
            total = pixel + relation
        self.last_terms = terms
        return total


class ERLModel:
    """``model_type: ERLModel``: the base model of ``base_model_type`` plus ERL's relation term.

    Options (besides the base model's):

    * ``base_model_type``: a registered model name (default ``SRModel``) whose training step
      computes its pixel loss with ``self.cri_pix(output, gt)`` (SRModel, SwinIRModel,
      SRGANModel, ESRGANModel, ... and their subclasses).
    * ``train.relation_opt``: the relation loss, ``{type: SampleRelationLoss, loss_weight: 0.1,
      bcm: <zoo name | path | null>, ...}`` (``type`` defaults to ``SampleRelationLoss``; any
      registered loss taking ``(pred, target)`` works).
    * ``train.net_loss_opt``: the net's own loss, ``{type: FECNetLoss | ECLNetLoss | DRBNLoss,
      loss_weight: 1.0, <the loss's options>}`` (any registered loss with ``compute(net, lq,
      gt) -> (loss, pred)``). It replaces ``pixel_opt``/``perceptual_opt`` (both refused next
      to it), makes ``relation_opt`` optional, and needs SRModel or a non-GAN subclass as base.
      Logged as ``l_net`` (and ``l_relation``).
    * ``path.pretrain_network_teacher``: a frozen copy of ``network_g`` loaded from there is
      passed to ``net_loss.compute(..., teacher=...)`` (DRBN-ENC's MSEC stage 2; see
      :mod:`.teacher`).
    * ``train.amp``: ``bf16`` autocasts the training forward of ``net_*`` and ``cri_*`` to
      bfloat16 (backward, optimiser step and validation stay float32); ``false`` (default):
      float32. float16 is refused (it needs a GradScaler; see :mod:`.amp`).

    At least one of ``relation_opt`` and ``net_loss_opt`` is required.

    ``ERLModel(opt)`` returns an instance of ``ERLModel[<base>]`` (see :func:`erl_model_class`).
    """

    def __new__(cls, opt: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if cls is ERLModel:
            return object.__new__(erl_model_class(opt.get("base_model_type", "SRModel")))
        return object.__new__(cls)


class _ERLMixin:
    """The training-time additions of :class:`ERLModel`, placed before the base in the MRO."""

    opt: dict[str, Any]
    device: torch.device
    cri_pix: nn.Module | None
    log_dict: OrderedDict[str, float]
    #: The net's own loss (``train.net_loss_opt``); None in the ``pixel_opt`` mode.
    cri_net: nn.Module | None = None
    cri_relation: nn.Module | None = None
    #: Frozen teacher of ``cri_net`` (``path.pretrain_network_teacher``); never saved.
    net_teacher: nn.Module | None = None

    def init_training_settings(self) -> None:
        dtype = amp_dtype(self.opt["train"])  # checked before anything is built
        self._init_erl_training()
        autocast_forwards(self, self.device, dtype)

    def _init_erl_training(self) -> None:
        train_opt = self.opt["train"]
        relation_opt = train_opt.get("relation_opt")
        if relation_opt is not None:
            relation_opt = copy.deepcopy(check_mapping("`train.relation_opt`", relation_opt))
            relation_opt.setdefault("type", "SampleRelationLoss")
        if train_opt.get("net_loss_opt") is not None:
            self._init_net_loss_training(train_opt["net_loss_opt"], relation_opt)
            return
        if relation_opt is None:
            raise ValueError(
                "Expected `train.relation_opt` (e.g. {type: SampleRelationLoss, loss_weight: "
                "0.1}) or `train.net_loss_opt` (e.g. {type: ECLNetLoss}) for model_type "
                "ERLModel, got neither"
            )
        build_teacher(self, None)  # refuses a teacher that no net loss would use
        super().init_training_settings()  # type: ignore[misc]
        self.cri_relation = build_loss(relation_opt).to(self.device)
        self.cri_pix = _PixelPlusRelation(self.cri_pix, self.cri_relation).to(self.device)

    def _init_net_loss_training(self, net_loss_opt: Any, relation_opt: dict | None) -> None:
        """SRModel's training settings with the net's own loss in place of ``pixel_opt``."""
        if not isinstance(self, SRModel) or isinstance(self, SRGANModel):
            raise ValueError(
                "Expected `base_model_type` to be SRModel or a non-GAN subclass of it with "
                f"`train.net_loss_opt`, got {self.opt.get('base_model_type', 'SRModel')!r}"
            )
        train_opt = self.opt["train"]
        clashing = sorted(k for k in ("pixel_opt", "perceptual_opt") if train_opt.get(k))
        if clashing:
            raise ValueError(
                "Expected no `train.pixel_opt`/`train.perceptual_opt` next to "
                f"`train.net_loss_opt` (the net's own loss replaces them), got {clashing}"
            )
        net_loss_opt = copy.deepcopy(check_mapping("`train.net_loss_opt`", net_loss_opt))
        if "type" not in net_loss_opt:
            raise ValueError(
                "Expected `train.net_loss_opt` to name its loss with `type:` (FECNetLoss, "
                f"ECLNetLoss or DRBNLoss), got keys {sorted(net_loss_opt)}"
            )
        cri_net = build_loss(net_loss_opt)
        if not callable(getattr(cri_net, "compute", None)):
            raise TypeError(
                "Expected `train.net_loss_opt` to be a net's own loss with compute(net, lq, gt) "
                f"(FECNetLoss, ECLNetLoss, DRBNLoss), got {type(cri_net).__name__}"
            )
        self.net_g.train()  # type: ignore[attr-defined]
        # EMA as SRModel.init_training_settings sets it up.
        self.ema_decay = train_opt.get("ema_decay", 0)
        if self.ema_decay > 0:
            get_root_logger().info(f"Use Exponential Moving Average with decay: {self.ema_decay}")
            self.net_g_ema = build_network(self.opt["network_g"]).to(self.device)
            load_path = self.opt["path"].get("pretrain_network_g", None)
            if load_path is not None:
                strict = self.opt["path"].get("strict_load_g", True)
                self.load_network(self.net_g_ema, load_path, strict, "params_ema")
            else:
                self.model_ema(0)
            self.net_g_ema.eval()
        self.cri_net = cri_net.to(self.device)
        self.net_teacher = build_teacher(self, cri_net)
        if relation_opt is not None:
            self.cri_relation = build_loss(relation_opt).to(self.device)
        self.cri_pix = None
        self.cri_perceptual = None
        self.setup_optimizers()  # type: ignore[attr-defined]
        self.setup_schedulers()  # type: ignore[attr-defined]

    def optimize_parameters(self, current_iter: int) -> None:
        if self.cri_net is not None:
            self._optimize_with_net_loss()
            return
        criterion = self.cri_pix
        if isinstance(criterion, _PixelPlusRelation):
            criterion.last_terms = {}
        super().optimize_parameters(current_iter)  # type: ignore[misc]
        if not isinstance(criterion, _PixelPlusRelation) or not criterion.last_terms:
            return  # e.g. a GAN model's discriminator-only iteration
        terms = criterion.last_terms
        extra: OrderedDict[str, Tensor] = OrderedDict()
        pixel_key = next((k for k in _PIXEL_LOG_KEYS if k in self.log_dict), "l_pix")
        if "pixel" in terms:
            extra[pixel_key] = terms["pixel"]
        extra["l_relation"] = terms["relation"]
        log = OrderedDict(self.log_dict)
        if "pixel" not in terms:
            log.pop(pixel_key, None)  # the criterion held only the relation term
        log.update(self.reduce_loss_dict(extra))  # type: ignore[attr-defined]
        self.log_dict = log

    def _optimize_with_net_loss(self) -> None:
        """One step of ``L = L_c + relation(pred, gt)``, SRModel-style (optimizer, EMA, log)."""
        assert self.cri_net is not None
        self.optimizer_g.zero_grad()  # type: ignore[attr-defined]
        # Called through the wrapper: net_g(lq, return_aux=True), so DDP syncs the gradients.
        teacher = {} if self.net_teacher is None else {"teacher": self.net_teacher}
        l_net, pred = self.cri_net.compute(self.net_g, self.lq, self.gt, **teacher)  # type: ignore[attr-defined]
        loss_dict: OrderedDict[str, Tensor] = OrderedDict(l_net=l_net)
        l_total = l_net
        if self.cri_relation is not None:
            l_relation = self.cri_relation(pred, self.gt)  # type: ignore[attr-defined]
            loss_dict["l_relation"] = l_relation
            l_total = l_total + l_relation
        l_total.backward()
        self.optimizer_g.step()  # type: ignore[attr-defined]
        self.output = pred.detach()
        self.log_dict = self.reduce_loss_dict(loss_dict)  # type: ignore[attr-defined]
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)  # type: ignore[attr-defined]


_ERL_CLASSES: dict[str, type] = {}


def erl_model_class(base_model_type: str) -> type:
    """The class ``ERLModel[<base_model_type>]``, built once per base type.

    Raises:
        ValueError: the base type is not registered, or is itself an adapter model.
    """
    if not isinstance(base_model_type, str) or base_model_type not in MODEL_REGISTRY:
        raise ValueError(
            f"Expected `base_model_type` to be a registered BasicSR model "
            f"{sorted(MODEL_REGISTRY.keys())}, got {base_model_type!r}"
        )
    if base_model_type in ("ERLModel", "BCMPretextModel"):
        raise ValueError(
            f"Expected `base_model_type` to be a base model such as SRModel, got {base_model_type!r}"
        )
    if base_model_type not in _ERL_CLASSES:
        base = MODEL_REGISTRY.get(base_model_type)
        name = f"ERLModel[{base_model_type}]"
        _ERL_CLASSES[base_model_type] = type(
            name,
            (_ERLMixin, base, ERLModel),
            {"__module__": __name__, "__qualname__": name, "__doc__": ERLModel.__doc__},
        )
    return _ERL_CLASSES[base_model_type]
