"""Measuring a BCM on held-out crops: reconstruction PSNR and the stage-2 pretext losses."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from erl_losses.data.images import PhotoImages, RandomCrops
from erl_losses.functional.phase import PHASE_MODES, phase_loss
from erl_losses.functional.psnr import psnr
from erl_losses.modules.bcm import BatchCorrelationModule

__all__ = ["evaluate_bcm", "random_relation"]


def random_relation(bcm: BatchCorrelationModule, seed: int = 0) -> BatchCorrelationModule:
    """A copy of ``bcm`` whose ``t_e`` is re-initialised as a fresh, seeded BCM would be.

    With the recipe's seed this is exactly the ``t_e`` a pretext run starts stage 2 from (and
    the ``t_e`` of the ``"none"`` variant).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = BatchCorrelationModule(**bcm.config)
    other = copy.deepcopy(bcm)
    other.t_e.load_state_dict(fresh.t_e.state_dict())
    return other


def _held_out(
    num_batches: int, batch_size: int, crop: int, seed: int, photos: Sequence[str] | None
) -> tuple[list[Tensor], dict[str, Any]]:
    from erl_losses.data.photos import split_photos

    names = list(split_photos()[1] if photos is None else photos)
    crops = RandomCrops(PhotoImages(names), seed=seed, flip=False)
    batches = [crops.sample(batch_size, crop) for _ in range(num_batches)]
    data = {
        "photos": names,
        "num_batches": num_batches,
        "batch_size": batch_size,
        "crop_size": crop,
        "seed": seed,
    }
    return batches, data


@torch.no_grad()
def _measure(
    bcm: BatchCorrelationModule,
    baseline: BatchCorrelationModule,
    batches: Sequence[Tensor],
    phase_mode: str,
) -> dict[str, float]:
    """Means over ``batches`` of the per-crop PSNRs and the per-batch pretext losses."""
    was_training = bcm.training, baseline.training
    bcm.eval()
    baseline.eval()
    device = bcm.fuse.weight.device
    sums: dict[str, list[float]] = {
        k: [] for k in ("psnr", "psnr_ae", "phase", "phase_rand", "l1", "l1_rand")
    }
    for batch in batches:
        x = batch.to(device)
        rec = bcm.reconstruct(x, relation=True)
        rec_rand = baseline.reconstruct(x, relation=True)
        sums["psnr"] += psnr(rec, x).tolist()
        sums["psnr_ae"] += psnr(bcm.reconstruct(x, relation=False), x).tolist()
        sums["phase"].append(float(phase_loss(rec, x, mode=phase_mode)))
        sums["phase_rand"].append(float(phase_loss(rec_rand, x, mode=phase_mode)))
        sums["l1"].append(float((rec - x).abs().mean()))
        sums["l1_rand"].append(float((rec_rand - x).abs().mean()))
    bcm.train(was_training[0])
    baseline.train(was_training[1])
    return {key: round(sum(values) / len(values), 4) for key, values in sums.items()}


def evaluate_bcm(
    bcm: BatchCorrelationModule,
    *,
    baseline: BatchCorrelationModule | None = None,
    batches: Sequence[Tensor] | None = None,
    photos: Sequence[str] | None = None,
    num_batches: int = 16,
    batch_size: int = 4,
    crop_size: int | None = None,
    seed: int = 2023,
    phase_mode: str = "paper",
) -> dict[str, Any]:
    """Measures a BCM on held-out crops: reconstruction PSNR and the stage-2 pretext losses.

    By default the crops come from the held-out test photos of
    :func:`erl_losses.data.photos.split_photos` (never seen by a shipped BCM): ``num_batches``
    seeded batches of ``batch_size`` crops of ``crop_size`` (default: the BCM's ``work_size``).

    Args:
        bcm: the BCM to measure.
        baseline: the same BCM with a random ``t_e`` (default: :func:`random_relation` of
            ``bcm`` with seed 0, keeping its trained ``W``).
        batches: explicit ``(B, 3, H, W)`` batches in ``[0, 1]`` instead of held-out photos.
        photos: photo names to crop instead of the held-out split.
        num_batches, batch_size, crop_size, seed: the held-out crops.
        phase_mode: the phase-loss mode (eq. 3 is ``"paper"``).

    Returns:
        A JSON-compatible dict: ``recon_psnr_db`` (the encoder/decoder's reconstruction,
        ``reconstruct(x, relation=False)`` vs ``x``: mean of per-crop PSNR in dB, from
        :func:`erl_losses.functional.psnr.psnr`), ``recon_psnr_db_relation``
        (``reconstruct(x, relation=True)``, which the phase pretext deliberately does not hold to
        the input's amplitude, i.e. its exposure), ``phase_loss`` and ``phase_loss_random_te``
        (eq. 3 in radians, for ``bcm`` and ``baseline``), ``l1`` and ``l1_random_te`` (pixel L1
        of the relation reconstruction), ``phase_loss_reduction`` (relative reduction vs the
        random ``t_e``), and a description of the crops.
    """
    if phase_mode not in PHASE_MODES:
        raise ValueError(f"Expected `phase_mode` in {list(PHASE_MODES)}, got {phase_mode!r}")
    if batches is None:
        crop = crop_size or bcm.work_size or 128
        batches, data = _held_out(num_batches, batch_size, crop, seed, photos)
    else:
        data = {"num_batches": len(batches), "shapes": [list(b.shape) for b in batches[:1]]}
    if baseline is None:
        baseline = random_relation(bcm, seed=0)
    m = _measure(bcm, baseline, batches, phase_mode)
    return {
        "recon_psnr_db": m["psnr_ae"],
        "recon_psnr_db_relation": m["psnr"],
        "phase_loss": m["phase"],
        "phase_loss_random_te": m["phase_rand"],
        "phase_loss_reduction": (
            round(1 - m["phase"] / m["phase_rand"], 4) if m["phase_rand"] > 0 else 0.0
        ),
        "l1": m["l1"],
        "l1_random_te": m["l1_rand"],
        "phase_mode": phase_mode,
        "held_out": data,
    }
