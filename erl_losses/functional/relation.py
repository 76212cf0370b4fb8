"""Sample-relation regularisation (ERL paper sec. 3.3, eq. 4)."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from erl_losses._reduction import Reduction, check_reduction, reduce
from erl_losses._validation import check_choice, check_finite, check_image, check_pair
from erl_losses.distributed import all_gather_rows, gather_active, gather_sizes


class RelationEncoder(Protocol):
    """What the loss needs of a BCM: :class:`~erl_losses.BatchCorrelationModule` and
    :class:`~erl_losses.modules.graphed.GraphedBCM` both are one. Written as a protocol so that
    the functional layer does not import the modules built on it."""

    @property
    def in_channels(self) -> int: ...

    @property
    def min_size(self) -> int: ...

    @property
    def token_dim(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    def __call__(self, x: Tensor) -> Tensor: ...

    def encode_tokens(self, x: Tensor) -> Tensor: ...

    def relate(self, tokens: Tensor) -> Tensor: ...


#: Variants of eq. 4. ``"paper"``: ``mean |F'(pred) - F'(gt)|`` as published. ``"centred"``
#: (our extension): the same on ``F'_i - mean_j F'_j``, the batch-relative part of each sample's
#: relation feature; under it inconsistent exposure errors in a batch cost more than consistent
#: ones (relational index R > 0, :mod:`erl_losses.diagnostics`), which eq. 4 does not ensure.
RELATION_VARIANTS: tuple[str, ...] = ("paper", "centred")


def relation_distance(feat_pred: Tensor, feat_target: Tensor, reduction: Reduction) -> Tensor:
    """L1 distance of ``(N, D)`` relation features, per sample then reduced, in float32."""
    per_sample = (feat_pred.float() - feat_target.float()).abs().mean(dim=1)
    return reduce(per_sample, reduction)


def sample_relation_loss(
    pred: Tensor,
    target: Tensor,
    bcm: RelationEncoder,
    reduction: Reduction = "mean",
    check_nonfinite: bool = False,
    gather: bool = False,
    variant: str = "paper",
) -> Tensor:
    r"""ERL's sample-relation loss :math:`L_r = \mathrm{mean}\,|t_e(f_e(pred)) - t_e(f_e(gt))|`.

    Both batches go through the frozen batch-correlation module, whose transformer relates each
    sample to the others of its batch, so the gradient reaching ``pred[i]`` also depends on every
    ``pred[j]`` and ``target[j]``: the corrected batch is pulled towards the ground truth's
    *relationships*, not only sample by sample. The target branch runs under ``no_grad``; the
    BCM's parameters should not require grad (:class:`~erl_losses.SampleRelationLoss` freezes
    them). The paper adds it as ``L = L_c + 0.1 * L_r``. Under autocast the BCM still runs in
    float32 (the loss is a difference of features, which half precision would drown in rounding
    noise); gradients flow back to ``pred`` in its own dtype.

    Args:
        pred: corrected images ``(B, 3, H, W)`` in ``[0, 1]``, ``B >= 2`` for a relation
            (with ``B = 1`` it degenerates to a per-sample feature loss).
        target: ground-truth images, the same shape and device.
        bcm: a (pretrained) :class:`~erl_losses.BatchCorrelationModule` on the inputs' device
            (any :class:`RelationEncoder`).
        reduction: ``"mean"`` (over the batch), ``"sum"`` or ``"none"`` (``(B,)`` per sample).
        check_nonfinite: raise ``ValueError`` on NaN/inf inputs (syncs the GPU). Without it a
            NaN or inf anywhere in ``pred`` or ``target`` makes the loss of EVERY sample NaN, and
            the gradient too (the BCM relates the samples, so one bad sample reaches all).
        gather: relate the GLOBAL batch across the ranks of an initialised torch.distributed
            process group: the per-sample tokens (``bcm.encode_tokens``) of ``pred`` (with
            gradients) and ``target`` are all-gathered in rank order, so every rank returns the
            single-process loss of the concatenated batch (per-rank batch sizes may differ).
            The backward sums all ranks' gradients for a rank's own samples: its local gradient
            is ``world_size`` times the single-process one, and DDP's averaging turns that back
            into exactly the single-process gradient (see :mod:`erl_losses.distributed`). Every
            rank must call the loss. Without a process group it warns once and computes the
            per-rank relation, as with ``gather=False``.
        variant: ``"paper"`` is eq. 4 as published. ``"centred"`` (an EXTENSION, not in the
            paper) compares centred relation features ``F'_i - mean_j F'_j`` of both batches,
            so an error shared by the whole batch costs nothing through this term and only
            inconsistent errors cost: see :data:`RELATION_VARIANTS` and
            :mod:`erl_losses.diagnostics`.

    Returns:
        A float32 scalar, or ``(B,)`` for ``reduction="none"`` (with an active ``gather``,
        ``(N,)`` for the global batch of ``N`` samples, in rank order).

    Example:
        >>> import torch
        >>> from erl_losses import BatchCorrelationModule
        >>> bcm = BatchCorrelationModule().requires_grad_(False).eval()
        >>> pred = torch.rand(4, 3, 64, 64, requires_grad=True)
        >>> loss = sample_relation_loss(pred, torch.rand(4, 3, 64, 64), bcm)
        >>> loss.backward()
        >>> pred.grad.shape
        torch.Size([4, 3, 64, 64])
    """
    reduction = check_reduction(reduction)
    variant = check_choice(variant, "variant", RELATION_VARIANTS)
    channels, min_size = bcm.in_channels, bcm.min_size
    check_image(pred, "pred", channels=channels, min_size=min_size)
    check_image(target, "target", channels=channels, min_size=min_size)
    check_pair(pred, target)
    if check_nonfinite:
        check_finite(pred, "pred")
        check_finite(target, "target")
    if pred.device != bcm.device:
        raise ValueError(
            f"Expected `pred` and `target` on the BCM's device {bcm.device}, got {pred.device} "
            "(move the BCM with `.to(device)`; SampleRelationLoss moves it by itself)"
        )
    feat_pred, feat_target = _relation_features(pred, target, bcm, gather)
    if variant == "centred":
        feat_pred = feat_pred - feat_pred.mean(dim=0, keepdim=True)
        feat_target = feat_target - feat_target.mean(dim=0, keepdim=True)
    distance = relation_distance(feat_pred, feat_target, "none")
    return reduce(distance * _nan_if_nonfinite(pred, target), reduction)


def _nan_if_nonfinite(pred: Tensor, target: Tensor) -> Tensor:
    """1, or NaN when either batch holds NaN or inf (``0 * inf`` is NaN), without a device sync.

    A factor rather than a term, so that the gradient reaching ``pred`` is NaN too when only
    ``target`` is bad (``abs``'s gradient at a NaN feature difference is 0, not NaN); the
    target stays out of the graph, as in the loss.
    """
    return 1.0 + 0.0 * (pred.sum(dtype=torch.float32) + target.detach().sum(dtype=torch.float32))


def _relation_features(
    pred: Tensor, target: Tensor, bcm: RelationEncoder, gather: bool
) -> tuple[Tensor, Tensor]:
    """``(F'(pred), F'(target))``, each ``(N, D)``: local, or of the global batch with gather."""
    # The BCM runs in its own precision (float32) even under autocast: the loss is a small
    # difference of two feature sets, and bf16 rounding of the features (~0.4 %) is of the order
    # of the loss itself. With `work_size` the BCM costs well under 1 % of a training step.
    with torch.autocast(device_type=pred.device.type, enabled=False):
        if gather_active(gather):
            with torch.no_grad():
                tokens_target = bcm.encode_tokens(target)
                sizes = gather_sizes(pred.shape[0], bcm.token_dim, tokens_target.device)
                feat_target = bcm.relate(all_gather_rows(tokens_target, sizes))
            return bcm.relate(all_gather_rows(bcm.encode_tokens(pred), sizes)), feat_target
        with torch.no_grad():
            feat_target = bcm(target)
        return bcm(pred), feat_target
