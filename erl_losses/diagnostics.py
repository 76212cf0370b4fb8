"""Does the relation term relate samples? Three measurements of a BCM and its loss.

The paper builds the sample-relation term (sec. 3.1, fig. 1) so that a batch whose corrections
err in *opposite* directions (some too dark, some too bright) costs more than one whose errors
agree. These diagnostics measure whether a given BCM and loss variant does that:

* :func:`relational_index` ``R``: ground-truth crops are turned into "predictions" that miss by
  ``+d`` or ``-d`` EV (a linear-light gain ``2^(+-d)``, clipped). ``R = L(alternating signs) /
  mean(L(all +), L(all -)) - 1``, averaged over batches and ``d``. Both alternating patterns
  (``+-+-`` and ``-+-+``) are used, so every per-sample loss has ``R = 0`` exactly; ``R > 0``
  means inconsistent errors cost more (the paper's intent), ``R < 0`` that they cost less.
* :func:`attention_entropy_fraction`: entropy of ``t_e``'s batch attention on mixed-exposure
  batches, averaged over layers, heads and query samples, divided by ``log(B)`` (uniform
  attention: 1; each sample attending to one other: 0).
* :func:`cross_sample_gradient_share`: the share of each prediction's gradient that comes from
  the OTHER samples' loss terms, ``|g_other| / (|g_own| + |g_other|)`` (L2 norms), in ``[0, 1]``;
  0 for any per-sample loss.

:func:`probe` runs all three on held-out crops (the test photos chelsea, coffee and china, which
no shipped BCM is trained on); ``erl probe`` prints them. The core of this module needs torch
only; :func:`held_out_crops` imports the ``data`` extra when called.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from erl_losses._validation import check_image, check_positive_int

if TYPE_CHECKING:
    from erl_losses.losses.relation import SampleRelationLoss
    from erl_losses.modules.bcm import BatchCorrelationModule

__all__ = [
    "EV_ERRORS",
    "MIXED_EVS",
    "RelationDiagnostics",
    "attention_entropy_fraction",
    "cross_sample_gradient_share",
    "exposure_shift",
    "held_out_crops",
    "mixed_exposure_batches",
    "probe",
    "relational_index",
]

#: Exposure errors ``d`` in EV of the relational index (the facts file's protocol).
EV_ERRORS: tuple[float, ...] = (0.3, 0.7)

#: Exposures in EV of the samples of a mixed batch (attention entropy), cycled over the batch.
MIXED_EVS: tuple[float, ...] = (-1.5, 0.5, -0.5, 1.5)

#: ``loss_fn(pred, target) -> (B,)`` per-sample loss terms of one batch.
PerSampleLoss = Callable[[Tensor, Tensor], Tensor]


def _srgb_to_linear(x: Tensor) -> Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: Tensor) -> Tensor:
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def exposure_shift(images: Tensor, ev: Tensor | Sequence[float]) -> Tensor:
    """Re-exposes sRGB images by ``ev`` stops: linear-light gain ``2**ev``, clipped to ``[0, 1]``.

    Args:
        images: ``(B, 3, H, W)`` sRGB in ``[0, 1]``.
        ev: ``(B,)`` exposure change of each image in EV (stops).

    Returns:
        ``(B, 3, H, W)`` sRGB in ``[0, 1]``.
    """
    check_image(images, "images", channels=3)
    ev = torch.as_tensor(ev, dtype=images.dtype, device=images.device)
    if ev.shape != images.shape[:1]:
        raise ValueError(f"Expected `ev` of shape ({images.shape[0]},), got {tuple(ev.shape)}")
    gain = torch.exp2(ev).view(-1, 1, 1, 1)
    return _linear_to_srgb((_srgb_to_linear(images) * gain).clamp(0, 1)).clamp(0, 1)


def _batches(crops: Tensor, batch_size: int) -> list[Tensor]:
    check_image(crops, "crops", channels=3)
    batch_size = check_positive_int(batch_size, "batch_size")
    if batch_size < 2 or crops.shape[0] < batch_size:
        raise ValueError(
            f"Expected `batch_size` >= 2 and at least one full batch of crops, got batch_size "
            f"{batch_size} and {crops.shape[0]} crops"
        )
    usable = crops.shape[0] // batch_size * batch_size
    return list(crops[:usable].split(batch_size))


def _signs(pattern: str, batch_size: int) -> list[float]:
    if pattern == "alternate":
        return [1.0 if i % 2 == 0 else -1.0 for i in range(batch_size)]
    if pattern == "alternate_flipped":
        return [-1.0 if i % 2 == 0 else 1.0 for i in range(batch_size)]
    return [1.0 if pattern == "plus" else -1.0] * batch_size


@torch.no_grad()
def relational_index(
    loss_fn: PerSampleLoss,
    crops: Tensor,
    *,
    ev_errors: Sequence[float] = EV_ERRORS,
    batch_size: int = 4,
) -> float:
    """The relational index ``R`` of a loss (see the module docstring).

    Args:
        loss_fn: ``loss_fn(pred, target)`` returning per-sample terms ``(B,)`` or their mean.
        crops: ground-truth crops ``(N, 3, H, W)`` in ``[0, 1]``, cut into consecutive batches of
            ``batch_size`` (a remainder is dropped).
        ev_errors: error sizes ``d`` in EV.
        batch_size: samples per batch (the paper trains with 4).

    Returns:
        ``R``, the mean over batches and ``d`` of ``L_alt / mean(L_plus, L_minus) - 1``, where
        ``L_alt`` averages the two alternating sign patterns.
    """
    ratios = []
    for target in _batches(crops, batch_size):
        for d in ev_errors:
            cost = {}
            for pattern in ("plus", "minus", "alternate", "alternate_flipped"):
                ev = [s * d for s in _signs(pattern, len(target))]
                cost[pattern] = float(loss_fn(exposure_shift(target, ev), target).mean())
            consistent = (cost["plus"] + cost["minus"]) / 2
            inconsistent = (cost["alternate"] + cost["alternate_flipped"]) / 2
            if consistent <= 0:
                raise ValueError(f"Expected a positive loss for +-{d} EV errors, got {consistent}")
            ratios.append(inconsistent / consistent - 1)
    return sum(ratios) / len(ratios)


def mixed_exposure_batches(
    crops: Tensor, *, evs: Sequence[float] = MIXED_EVS, batch_size: int = 4
) -> list[Tensor]:
    """Consecutive batches of ``crops``, sample ``i`` re-exposed by ``evs[i % len(evs)]``."""
    return [
        exposure_shift(batch, [evs[i % len(evs)] for i in range(len(batch))])
        for batch in _batches(crops, batch_size)
    ]


@torch.no_grad()
def attention_entropy_fraction(
    bcm: BatchCorrelationModule,
    crops: Tensor,
    *,
    evs: Sequence[float] = MIXED_EVS,
    batch_size: int = 4,
) -> float:
    """Entropy of ``t_e``'s batch attention on mixed-exposure batches, as a fraction of uniform.

    Args:
        bcm: the BCM whose attention is measured (every layer, every head).
        crops: ``(N, 3, H, W)`` crops in ``[0, 1]``; see :func:`mixed_exposure_batches`.
        evs: exposures in EV given to the samples of each batch.
        batch_size: samples per batch (>= 2).

    Returns:
        Mean entropy of the attention rows divided by ``log(batch_size)``: 1 for uniform
        attention, smaller for attention that picks samples.
    """
    device = next(bcm.parameters()).device
    entropies = []
    for batch in mixed_exposure_batches(crops, evs=evs, batch_size=batch_size):
        for weights in bcm.attention_maps(batch.to(device)):
            rows = weights.clamp_min(1e-12)
            entropies.append(float(-(rows * rows.log()).sum(dim=-1).mean()))
    return sum(entropies) / len(entropies) / math.log(batch_size)


def cross_sample_gradient_share(
    loss_fn: PerSampleLoss,
    crops: Tensor,
    *,
    ev_error: float = 0.5,
    batch_size: int = 4,
) -> float:
    """Share of each prediction's gradient that arrives through the other samples' terms.

    The predictions miss the crops by alternating ``+-ev_error`` EV. For sample ``i``, ``g_own``
    is the gradient of its own term ``L_i`` and ``g_other`` that of ``sum_{j != i} L_j``, both
    with respect to ``pred[i]``.

    Args:
        loss_fn: ``loss_fn(pred, target) -> (B,)`` per-sample terms (differentiable in ``pred``).
        crops: ground-truth crops ``(N, 3, H, W)`` in ``[0, 1]``.
        ev_error: size of the exposure errors in EV.
        batch_size: samples per batch (>= 2).

    Returns:
        The mean over samples and batches of ``|g_other| / (|g_own| + |g_other|)``, in ``[0, 1]``.
    """
    shares = []
    for target in _batches(crops, batch_size):
        ev = [s * ev_error for s in _signs("alternate", len(target))]
        pred = exposure_shift(target, ev).requires_grad_(True)
        terms = loss_fn(pred, target)
        if terms.shape != (len(target),):
            raise ValueError(
                f"Expected `loss_fn` to return per-sample terms ({len(target)},), "
                f"got {tuple(terms.shape)}"
            )
        own = torch.zeros_like(pred)
        other = torch.zeros_like(pred)
        for j in range(len(target)):
            (grad,) = torch.autograd.grad(terms[j], pred, retain_graph=j < len(target) - 1)
            own[j] = grad[j]
            other += grad
            other[j] -= grad[j]
        own_norm = own.flatten(1).norm(dim=1)
        other_norm = other.flatten(1).norm(dim=1)
        total = (own_norm + other_norm).clamp_min(1e-30)
        shares += (other_norm / total).tolist()
    return sum(shares) / len(shares)


def held_out_crops(num_crops: int = 48, size: int = 128, seed: int = 0) -> Tensor:
    """Seeded random crops of the held-out test photos (chelsea, coffee, china), cycled.

    Needs the ``data`` extra (the photos ship with scikit-image and scikit-learn).

    Returns:
        ``(num_crops, 3, size, size)`` float32 sRGB in ``[0, 1]``.
    """
    from erl_losses.data.photos import HELD_OUT, load_photo

    num_crops = check_positive_int(num_crops, "num_crops")
    size = check_positive_int(size, "size")
    photos = [torch.from_numpy(load_photo(name)).permute(2, 0, 1) for name in HELD_OUT]
    generator = torch.Generator().manual_seed(seed)
    crops = []
    for i in range(num_crops):
        photo = photos[i % len(photos)]
        top = int(torch.randint(photo.shape[1] - size + 1, (1,), generator=generator))
        left = int(torch.randint(photo.shape[2] - size + 1, (1,), generator=generator))
        crops.append(photo[:, top : top + size, left : left + size])
    return torch.stack(crops).float() / 255


@dataclass(frozen=True)
class RelationDiagnostics:
    """What :func:`probe` measured (see the module docstring for the definitions).

    Attributes:
        relational_index: ``R``; > 0 when inconsistent exposure errors cost more.
        attention_entropy_fraction: batch-attention entropy on mixed batches / ``log(B)``.
        cross_sample_gradient_share: share of a sample's gradient from the other samples.
        variant: the loss variant measured (``"paper"``: eq. 4 as published).
        num_crops, crop_size, batch_size, ev_errors: the protocol.
    """

    relational_index: float
    attention_entropy_fraction: float
    cross_sample_gradient_share: float
    variant: str
    num_crops: int
    crop_size: int
    batch_size: int
    ev_errors: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-compatible dict, the three measurements rounded to 4 decimals."""
        data = dataclasses.asdict(self)
        for key in (
            "relational_index",
            "attention_entropy_fraction",
            "cross_sample_gradient_share",
        ):
            data[key] = round(data[key], 4)
        data["ev_errors"] = list(self.ev_errors)
        return data


def probe(
    relation: SampleRelationLoss | BatchCorrelationModule,
    *,
    crops: Tensor | None = None,
    seed: int = 0,
    batch_size: int = 4,
) -> RelationDiagnostics:
    """Measures ``R``, the attention entropy and the cross-sample gradient share.

    Args:
        relation: a :class:`~erl_losses.SampleRelationLoss` (its BCM and loss variant) or a
            :class:`~erl_losses.BatchCorrelationModule` (measured with the paper's eq. 4).
        crops: ``(N, 3, H, W)`` ground-truth crops in ``[0, 1]``; ``None``: 48 seeded 128 px
            crops of the held-out photos (:func:`held_out_crops`, needs the ``data`` extra).
        seed: seed of the held-out crops.
        batch_size: samples per batch.

    Returns:
        A :class:`RelationDiagnostics`.
    """
    from erl_losses.functional.relation import sample_relation_loss
    from erl_losses.losses.relation import SampleRelationLoss
    from erl_losses.modules.bcm import BatchCorrelationModule

    if isinstance(relation, SampleRelationLoss):
        bcm, variant = relation.bcm, relation.variant
    elif isinstance(relation, BatchCorrelationModule):
        bcm, variant = relation, "paper"
    else:
        raise TypeError(
            "Expected `relation` to be a SampleRelationLoss or a BatchCorrelationModule, "
            f"got {type(relation).__name__}"
        )
    if crops is None:
        crops = held_out_crops(seed=seed)
    device = next(bcm.parameters()).device
    crops = crops.to(device)
    was_training = bcm.training
    flags = [p.requires_grad for p in bcm.parameters()]
    bcm.eval().requires_grad_(False)

    def per_sample(pred: Tensor, target: Tensor) -> Tensor:
        return sample_relation_loss(pred, target, bcm, "none", variant=variant)

    try:
        with torch.enable_grad():
            r_index = relational_index(per_sample, crops, batch_size=batch_size)
            entropy = attention_entropy_fraction(bcm, crops, batch_size=batch_size)
            share = cross_sample_gradient_share(per_sample, crops, batch_size=batch_size)
    finally:
        bcm.train(was_training)
        for param, flag in zip(bcm.parameters(), flags, strict=True):
            param.requires_grad_(flag)
    return RelationDiagnostics(
        relational_index=r_index,
        attention_entropy_fraction=entropy,
        cross_sample_gradient_share=share,
        variant=variant,
        num_crops=int(crops.shape[0]),
        crop_size=int(crops.shape[-1]),
        batch_size=batch_size,
        ev_errors=tuple(EV_ERRORS),
    )
