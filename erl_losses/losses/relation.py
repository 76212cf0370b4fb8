"""Module form of the sample-relation loss, holding a frozen BCM."""

from __future__ import annotations

import os
import warnings
from typing import Any

from torch import Tensor, nn

from erl_losses._reduction import Reduction, check_reduction
from erl_losses._validation import UnitRangeChecked, check_choice, check_tensor
from erl_losses.distributed import world_size
from erl_losses.functional.relation import RELATION_VARIANTS, sample_relation_loss
from erl_losses.modules.bcm import BatchCorrelationModule
from erl_losses.modules.graphed import GraphedBCM, cuda_graphs_from_env


def recorded_variant(name_or_path: str | os.PathLike[str] | None) -> str:
    """The loss variant a zoo entry records (``None``: the default entry); ``"paper"`` for a
    path or a name outside the shipped manifest."""
    from erl_losses import zoo

    name = zoo.default_name() if name_or_path is None else name_or_path
    if isinstance(name, str) and name in zoo.names():
        return zoo.get_spec(name).loss_variant
    return "paper"


class SampleRelationLoss(UnitRangeChecked, nn.Module):
    """ERL's sample-relation loss with a frozen batch-correlation module (paper eq. 4).

    See :func:`erl_losses.functional.sample_relation_loss` for the definition. The weight
    ``alpha`` (paper: 0.1) stays the caller's: ``loss = l1(out, gt) + 0.1 * relation(out, gt)``.

    The BCM is frozen for good: its parameters never require grad, it is not a registered
    sub-module (so ``loss.parameters()`` is empty and nothing reaches an optimiser or a
    checkpoint), it follows ``.to()``/``.cuda()``/``.double()``, and it stays in eval mode even
    after ``loss.train()``, so the loss is deterministic in train mode.

    Args:
        bcm: a :class:`~erl_losses.BatchCorrelationModule`, a zoo name or a safetensors path;
            ``None`` loads the zoo's default pretrained BCM.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)`` per-sample losses).
        check_nonfinite: raise on NaN/inf inputs.
        gather: under an initialised torch.distributed process group, relate the GLOBAL batch
            (all ranks' samples) instead of each rank's own; every rank gets the single-process
            loss of the concatenated batch and, after DDP's gradient averaging, its gradient.
            Without a process group it warns once and relates the local batch.
        variant: ``"paper"`` (eq. 4) or ``"centred"`` (our extension, see
            :data:`~erl_losses.functional.relation.RELATION_VARIANTS`). ``None``: the variant the
            zoo entry records when ``bcm`` is a zoo name or ``None``, else ``"paper"``.
        check_range: raise when ``pred`` or ``target`` is clearly outside [0, 1] (below -0.5 or
            above 1.5, e.g. 0-255 images), checked on every call. By default only the first call
            is checked, and it warns (one device sync in the loss's lifetime).
        cuda_graphs: replay the frozen BCM from CUDA graphs captured per batch and image size
            (:mod:`erl_losses.modules.graphed`; same values, far fewer kernel launches); CPU
            inputs, ``gather`` and ``torch.compile`` run eagerly. ``None``: on when
            ``ERL_LOSSES_CUDA_GRAPHS=1``.

    Shape:
        ``pred``, ``target``: ``(B, 3, H, W)`` in ``[0, 1]``; output: scalar or ``(B,)``.

    Example:
        >>> import torch
        >>> relation = SampleRelationLoss(BatchCorrelationModule())
        >>> out, gt = torch.rand(4, 3, 64, 64, requires_grad=True), torch.rand(4, 3, 64, 64)
        >>> loss = (out - gt).abs().mean() + 0.1 * relation(out, gt)
        >>> loss.backward()
    """

    is_differentiable = True
    higher_is_better = False
    min_batch_size = 2

    def __init__(
        self,
        bcm: BatchCorrelationModule | str | os.PathLike[str] | None = None,
        reduction: Reduction = "mean",
        check_nonfinite: bool = False,
        gather: bool = False,
        variant: str | None = None,
        check_range: bool = False,
        cuda_graphs: bool | None = None,
    ) -> None:
        super().__init__()
        self.check_range = check_range
        self._range_checked = False
        if variant is None:
            variant = "paper" if isinstance(bcm, nn.Module) else recorded_variant(bcm)
        self.variant = check_choice(variant, "variant", RELATION_VARIANTS)
        self.reduction = check_reduction(reduction)
        self.check_nonfinite = check_nonfinite
        if not isinstance(gather, bool):
            raise TypeError(f"Expected `gather` to be a bool, got {type(gather).__name__}")
        self.gather = gather
        if not isinstance(bcm, BatchCorrelationModule):
            from erl_losses.zoo import resolve_bcm  # the one resolver; it rejects other types

            bcm = resolve_bcm(bcm)
        bcm.requires_grad_(False).eval()
        # Bypass nn.Module.__setattr__ so the BCM is not a child: no parameters, no state_dict.
        object.__setattr__(self, "_bcm", bcm)
        graphs = cuda_graphs_from_env() if cuda_graphs is None else cuda_graphs
        self._graphed = GraphedBCM(bcm) if graphs else None
        self._warned_single = False

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> SampleRelationLoss:
        """Builds the loss around a zoo BCM (``None``: the default) or a safetensors file.

        ``kwargs`` go to the constructor, except ``work_size`` which overrides the BCM's.
        """
        from erl_losses.zoo import resolve_bcm

        overrides = {"work_size": kwargs.pop("work_size")} if "work_size" in kwargs else {}
        if kwargs.get("variant") is None:
            kwargs["variant"] = recorded_variant(name_or_path)
        return cls(resolve_bcm(name_or_path, **overrides), **kwargs)

    @property
    def bcm(self) -> BatchCorrelationModule:
        """The frozen batch-correlation module."""
        return self._bcm

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        super()._apply(fn, recurse)
        self._bcm._apply(fn, recurse)
        if self._graphed is not None:
            self._graphed.cache.clear()  # captured for the old device or dtype
        return self

    def train(self, mode: bool = True) -> SampleRelationLoss:
        super().train(mode)
        self._bcm.eval()
        return self

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        check_tensor(pred, "pred")
        check_tensor(target, "target")
        self._check_pair_range(pred, target)
        global_batch = self.gather and world_size() > 1
        if pred.ndim == 4 and pred.shape[0] == 1 and not global_batch and not self._warned_single:
            self._warned_single = True
            warnings.warn(
                "SampleRelationLoss got a batch of 1: there is no other sample to relate to, so "
                "the term degenerates to a per-sample feature loss (use a batch of >= 2, the "
                "paper uses 4).",
                UserWarning,
                stacklevel=2,
            )
        return sample_relation_loss(
            pred,
            target,
            self._bcm if self._graphed is None else self._graphed,  # type: ignore[arg-type]
            self.reduction,
            check_nonfinite=self.check_nonfinite,
            gather=self.gather,
            variant=self.variant,
        )

    def extra_repr(self) -> str:
        gather = ", gather=True" if self.gather else ""
        variant = f", variant={self.variant!r}" if self.variant != "paper" else ""
        return f"reduction={self.reduction!r}{gather}{variant}, bcm={self._bcm.config}"
