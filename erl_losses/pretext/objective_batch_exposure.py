"""``pretext="batch_exposure"``: a stage-2 objective that needs batch context (OUR EXTENSION).

Not in the paper. The paper's phase pretext (eq. 3) gives ``t_e`` no reason to look at the other
samples: its decoder already holds each sample's own features ``F``, and measured attention stays
uniform (``docs/limitations.md``). This objective makes the relation feature ``F'_i`` carry what
only the batch can tell: each sample's exposure RELATIVE to the batch.

Each normal-exposure batch is re-exposed (linear light, :func:`erl_losses.diagnostics.
exposure_shift`) by a shift ``s`` shared by the whole batch plus a per-sample jitter ``e_i``
(both uniform in ``[-EV_RANGE, EV_RANGE]``), and the relation reconstruction must return every
sample at the batch's MEAN exposure, ``s + mean_j e_j``:

    L = mean | f_d(W(cat[F_i, F'_i])) - shift(x_i, s + mean_j e_j) |

``F_i`` tells the decoder sample ``i``'s own exposure ``s + e_i``; the correction it must apply,
``-(e_i - mean_j e_j)``, depends on the other samples and not on ``s``, so it has to come through
``t_e``. A consistent error of every sample leaves that relative exposure unchanged, an
inconsistent one changes it: the property the relational index measures.

The exposures are drawn from a generator seeded by the batch's content, so a run (and a resumed
run) stays reproducible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from erl_losses.pretext.objectives import register_objective

if TYPE_CHECKING:
    from torch import Tensor

    from erl_losses.modules.bcm import BatchCorrelationModule

#: Half-width in EV of the shared shift and of the per-sample jitter.
EV_RANGE = 1.0


def _generator(batch: Tensor) -> torch.Generator:
    # Seed from a strided sample of the pixels: deterministic for a given batch on a device.
    probe_values = batch.detach().flatten()[:: max(1, batch.numel() // 4096)]
    seed = int(probe_values.double().sum().item() * 1e6) % (2**31)
    return torch.Generator().manual_seed(seed)


def batch_exposure_targets(batch: Tensor) -> tuple[Tensor, Tensor]:
    """``(inputs, targets)`` of one batch ``(B, 3, H, W)`` in ``[0, 1]`` (see the module doc)."""
    from erl_losses.diagnostics import exposure_shift

    generator = _generator(batch)
    shared = (torch.rand((), generator=generator) * 2 - 1) * EV_RANGE
    jitter = (torch.rand(batch.shape[0], generator=generator) * 2 - 1) * EV_RANGE
    exposure = (shared + jitter).to(batch.device, batch.dtype)
    inputs = exposure_shift(batch, exposure)
    targets = exposure_shift(batch, torch.full_like(exposure, float(exposure.mean())))
    return inputs, targets


def batch_exposure_loss(bcm: BatchCorrelationModule, batch: Tensor, recipe: Any = None) -> Tensor:
    """Pixel L1 between the relation reconstruction of the re-exposed batch and the batch at its
    mean exposure; a scalar."""
    inputs, targets = batch_exposure_targets(batch)
    return (bcm.reconstruct(inputs, relation=True) - targets).abs().mean()


register_objective(
    "batch_exposure",
    batch_exposure_loss,
    description="(ours, not the paper's) reconstruct every sample of an exposure-jittered batch "
    "at the batch's mean exposure: needs each sample's exposure relative to the others",
)
