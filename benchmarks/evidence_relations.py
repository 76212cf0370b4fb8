"""The relation terms the evidence benchmark trains with: the BCM arms and the controls.

* ``bcm``: :class:`erl_losses.SampleRelationLoss` with a zoo BCM and a variant (eq. 4, or the
  centred extension).
* ``identity-te`` (control): the same BCM's per-sample tokens ``f_e`` (pooled, flattened), with
  ``t_e`` replaced by the identity, so no token sees another sample.
* ``pixels`` (control): ``16 x 16`` area-pooled thumbnails of the images, no BCM at all.

Centring the features over the batch makes any feature map "relational" (R > 0) by construction;
the controls tell whether a gain of the centred arm needs the pretrained transformer. The two
controls' features live on other scales than ``t_e``'s output, so each is multiplied by one
constant, fixed on the validation crops: the ratio of the mean absolute centred feature of the
BCM arm to the control's (:func:`calibrate`), so that ``alpha`` weighs all arms alike.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Side of the pixel control's thumbnails (the BCM's token grid).
PIXEL_GRID = 16


def _centre(feat: Tensor) -> Tensor:
    return feat - feat.mean(dim=0, keepdim=True)


class FeatureRelation(nn.Module):
    """``mean |phi(pred) - phi(target)|`` over features ``phi`` (``(B, D)``), optionally centred
    over the batch, times ``scale``; gradients reach ``pred`` only.

    Args:
        kind: ``"identity-te"`` (a BCM's ``f_e`` tokens) or ``"pixels"`` (thumbnails).
        variant: ``"paper"`` or ``"centred"``.
        bcm: the frozen BCM whose encoder ``identity-te`` uses (``None`` for ``pixels``).
    """

    def __init__(self, kind: str, variant: str, bcm: nn.Module | None = None) -> None:
        super().__init__()
        if kind not in ("identity-te", "pixels") or (kind == "pixels") != (bcm is None):
            raise ValueError(f"Expected kind 'identity-te' with a BCM or 'pixels', got {kind!r}")
        self.kind, self.variant = kind, variant
        self.scale = 1.0
        if bcm is not None:
            bcm.requires_grad_(False).eval()
            object.__setattr__(self, "_bcm", bcm)  # frozen, not a child: no state, no optimiser

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        super()._apply(fn, recurse)
        if self.kind == "identity-te":
            self._bcm._apply(fn, recurse)
        return self

    def features(self, images: Tensor) -> Tensor:
        """``(B, D)`` features of ``(B, 3, H, W)`` images in [0, 1], centred when asked."""
        if self.kind == "pixels":
            feat = F.adaptive_avg_pool2d(images.float(), PIXEL_GRID).flatten(1)
        else:
            feat = self._bcm.encode_tokens(images.float())
        return _centre(feat) if self.variant == "centred" else feat

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            feat_target = self.features(target)
        return self.scale * (self.features(pred) - feat_target).abs().mean()


def build_relation(arm: dict[str, Any], device: torch.device) -> nn.Module:
    """The relation term of an arm record (``{"kind", "variant", "path", "scale"}``)."""
    from erl_losses import BatchCorrelationModule, SampleRelationLoss

    if arm["kind"] == "bcm":
        return SampleRelationLoss(arm["path"], variant=arm["variant"]).to(device)
    bcm = None if arm["kind"] == "pixels" else BatchCorrelationModule.from_pretrained(arm["path"])
    relation = FeatureRelation(arm["kind"], arm["variant"], bcm).to(device)
    relation.scale = float(arm.get("scale", 1.0))
    return relation


@torch.no_grad()
def mean_feature(relation: nn.Module, images: Tensor, batch_size: int = 4) -> float:
    """Mean absolute (centred, when the arm centres) feature over batches of ``images``."""
    values = []
    for start in range(0, len(images) - batch_size + 1, batch_size):
        batch = images[start : start + batch_size]
        if isinstance(relation, FeatureRelation):
            feat = relation.features(batch)
        else:
            feat = relation.bcm(batch)
            feat = _centre(feat) if relation.variant == "centred" else feat
        values.append(float(feat.abs().mean()))
    return sum(values) / len(values)


def calibrate(control: FeatureRelation, reference: nn.Module, images: Tensor) -> float:
    """The scale that gives ``control`` the reference arm's mean absolute feature on ``images``
    (``(N, 3, H, W)`` in [0, 1], N >= 4, not all alike)."""
    own = mean_feature(control, images)
    if not own > 0:
        raise ValueError(f"Expected calibration images that differ, got a mean feature of {own}")
    return mean_feature(reference, images) / own
