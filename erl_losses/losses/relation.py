"""Module form of the sample-relation loss, holding a frozen BCM."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from erl_losses._reduction import Reduction, check_reduction
from erl_losses._validation import UnitRangeChecked, check_bool, check_choice, check_tensor
from erl_losses.distributed import world_size
from erl_losses.functional.relation import RELATION_VARIANTS, sample_relation_loss
from erl_losses.modules.bcm import BatchCorrelationModule
from erl_losses.modules.bcm_io import load_pretrained, resolve_bcm
from erl_losses.modules.graphed import GraphedBCM, cuda_graphs_from_env


class SampleRelationLoss(UnitRangeChecked, nn.Module):
    """ERL's sample-relation loss with a frozen batch-correlation module (paper eq. 4).

    See :func:`erl_losses.functional.sample_relation_loss` for the definition. The weight
    ``alpha`` (paper: 0.1) stays the caller's: ``loss = l1(out, gt) + 0.1 * relation(out, gt)``.

    The BCM is frozen for good: its parameters never require grad, it is not a registered
    sub-module (so ``loss.parameters()`` is empty and nothing reaches an optimiser or a
    checkpoint), and it stays in eval mode even after ``loss.train()``, so the loss is
    deterministic in train mode. It follows the inputs: on the first call with inputs on another
    device it moves there (``SampleRelationLoss.from_pretrained()`` works as it is in a CUDA
    trainer), keeping its dtype. ``nn.Module`` transformations reach it with its values kept:
    ``.to()``, ``.cuda()``, ``.half()``, ``.double()`` convert it, ``share_memory()`` shares it,
    and ``to_empty()`` -- which no checkpoint could undo, the BCM being outside the
    ``state_dict`` -- moves it with its weights instead of leaving uninitialised memory.

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
            zoo entry records when ``bcm`` is a zoo name or ``None`` (it comes with the entry),
            else ``"paper"``.
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
        self.check_range = check_bool(check_range, "check_range")
        self._range_checked = False
        resolved = resolve_bcm(bcm)  # a module passes through; a name brings its zoo entry
        self.variant = check_choice(
            resolved.variant if variant is None else variant, "variant", RELATION_VARIANTS
        )
        self.reduction = check_reduction(reduction)
        self.check_nonfinite = check_bool(check_nonfinite, "check_nonfinite")
        self.gather = check_bool(gather, "gather")
        bcm = resolved.bcm
        bcm.requires_grad_(False).eval()
        # Bypass nn.Module.__setattr__ so the BCM is not a child: no parameters, no state_dict.
        object.__setattr__(self, "_bcm", bcm)
        graphs = (
            cuda_graphs_from_env()
            if cuda_graphs is None
            else check_bool(cuda_graphs, "cuda_graphs")
        )
        self._graphed = GraphedBCM(bcm) if graphs else None
        self._warned_single = False

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> SampleRelationLoss:
        """Builds the loss around a zoo BCM (``None``: the default) or a safetensors file,
        loaded by :func:`erl_losses.modules.bcm_io.load_pretrained`.

        ``kwargs`` go to the constructor, except ``work_size`` which overrides the BCM's. Without
        ``variant``, a zoo entry's recorded variant is used (``"paper"`` for a file).
        """
        overrides = {"work_size": kwargs.pop("work_size")} if "work_size" in kwargs else {}
        loaded = load_pretrained(name_or_path, **overrides)
        if kwargs.get("variant") is None:
            kwargs["variant"] = loaded.variant
        return cls(loaded.bcm, **kwargs)

    @property
    def bcm(self) -> BatchCorrelationModule:
        """The frozen batch-correlation module."""
        return self._bcm

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> SampleRelationLoss:
        super()._apply(fn, recurse)
        _apply_keeping_values(self._bcm, fn)
        if self._graphed is not None:
            self._graphed.cache.clear()  # captured for the old device or dtype
        return self

    def _follow(self, pred: Tensor) -> None:
        """Moves the BCM to ``pred``'s device if it is elsewhere (its dtype stays)."""
        if pred.device != self._bcm.device and pred.device.type != "meta":
            self.to(pred.device)

    def train(self, mode: bool = True) -> SampleRelationLoss:
        super().train(mode)
        self._bcm.eval()
        return self

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        check_tensor(pred, "pred")
        check_tensor(target, "target")
        self._check_pair_range(pred, target)
        self._follow(pred)
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
            self._bcm if self._graphed is None else self._graphed,
            self.reduction,
            check_nonfinite=self.check_nonfinite,
            gather=self.gather,
            variant=self.variant,
        )

    def extra_repr(self) -> str:
        gather = ", gather=True" if self.gather else ""
        variant = f", variant={self.variant!r}" if self.variant != "paper" else ""
        return f"reduction={self.reduction!r}{gather}{variant}, bcm={self._bcm.config}"


def _apply_keeping_values(bcm: BatchCorrelationModule, fn: Callable[[Tensor], Tensor]) -> None:
    """``bcm._apply(fn)`` for a frozen BCM whose values no checkpoint can restore.

    Each new tensor ``fn`` makes gets the old one's values (a no-op after ``.to()``, a restore
    after ``to_empty()``, which would leave uninitialised memory); an in-place ``fn``
    (``share_memory_``) acts as it is.

    Raises:
        RuntimeError: the BCM is on the ``meta`` device (it holds no values) and ``fn`` would
            materialise it: there is nothing to restore it from.
    """

    def keep(tensor: Tensor) -> Tensor:
        new = fn(tensor)
        if new is tensor or new.device.type == "meta":
            return new
        if tensor.device.type == "meta":
            raise RuntimeError(
                "SampleRelationLoss cannot materialise its frozen BCM from the meta device: the "
                "BCM is outside the state_dict, so no checkpoint can fill it. Build the loss "
                "outside `torch.device('meta')` (from_pretrained loads real weights even there)."
            )
        with torch.no_grad():
            return new.copy_(tensor)

    bcm._apply(keep)
