"""Sample-relation regularisation (ERL paper sec. 3.3, eq. 4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from erl_losses._reduction import Reduction, check_reduction, reduce
from erl_losses._validation import check_finite, check_image, check_pair

if TYPE_CHECKING:
    from erl_losses.modules.bcm import BatchCorrelationModule


def relation_distance(feat_pred: Tensor, feat_target: Tensor, reduction: Reduction) -> Tensor:
    """L1 distance of ``(N, D)`` relation features, per sample then reduced, in float32."""
    per_sample = (feat_pred.float() - feat_target.float()).abs().mean(dim=1)
    return reduce(per_sample, reduction)


def sample_relation_loss(
    pred: Tensor,
    target: Tensor,
    bcm: BatchCorrelationModule,
    reduction: Reduction = "mean",
    check_nonfinite: bool = False,
) -> Tensor:
    r"""ERL's sample-relation loss :math:`L_r = \mathrm{mean}\,|t_e(f_e(pred)) - t_e(f_e(gt))|`.

    Both batches go through the frozen batch-correlation module, whose transformer relates each
    sample to the others of its batch, so the gradient reaching ``pred[i]`` also depends on every
    ``pred[j]`` and ``target[j]``: the corrected batch is pulled towards the ground truth's
    *relationships*, not only sample by sample. The target branch runs under ``no_grad``; the
    BCM's parameters should not require grad (:class:`~erl_losses.SampleRelationLoss` freezes
    them). The paper adds it as ``L = L_c + 0.1 * L_r``.

    Args:
        pred: corrected images ``(B, 3, H, W)`` in ``[0, 1]``, ``B >= 2`` for a relation
            (with ``B = 1`` it degenerates to a per-sample feature loss).
        target: ground-truth images, the same shape and device.
        bcm: a (pretrained) :class:`~erl_losses.BatchCorrelationModule`.
        reduction: ``"mean"`` (over the batch), ``"sum"`` or ``"none"`` (``(B,)`` per sample).
        check_nonfinite: raise ``ValueError`` on NaN/inf inputs (syncs the GPU).

    Returns:
        A float32 scalar, or ``(B,)`` for ``reduction="none"``.

    Example:
        >>> from erl_losses import BatchCorrelationModule
        >>> bcm = BatchCorrelationModule().requires_grad_(False).eval()
        >>> pred = torch.rand(4, 3, 64, 64, requires_grad=True)
        >>> loss = sample_relation_loss(pred, torch.rand(4, 3, 64, 64), bcm)
        >>> loss.backward()
        >>> pred.grad.shape
        torch.Size([4, 3, 64, 64])
    """
    reduction = check_reduction(reduction)
    channels, min_size = bcm.in_channels, bcm.min_size
    check_image(pred, "pred", channels=channels, min_size=min_size)
    check_image(target, "target", channels=channels, min_size=min_size)
    check_pair(pred, target)
    if check_nonfinite:
        check_finite(pred, "pred")
        check_finite(target, "target")
    with torch.no_grad():
        feat_target = bcm(target)
    return relation_distance(bcm(pred), feat_target, reduction)
