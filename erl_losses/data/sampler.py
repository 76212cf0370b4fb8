"""A batch sampler whose every mini-batch mixes under- and over-exposed samples.

ERL's relation loss compares samples *within* a mini-batch, so a batch of only under-exposed (or
only over-exposed) images teaches nothing about the relation between the two (Huang et al.,
CVPR 2023). :class:`MixedExposureBatchSampler` guarantees at least one sample of each group in
every batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

__all__ = ["MixedExposureBatchSampler"]


class MixedExposureBatchSampler(Sampler[list[int]]):
    """Yields full batches of indices, each with >= 1 ``'under'`` and >= 1 ``'over'`` sample.

    Every batch has exactly ``batch_size`` indices. The under/over share of each batch follows the
    dataset's proportions as closely as possible (the per-batch counts differ by at most one),
    clamped to ``[1, batch_size - 1]``. Within an epoch:

    * ``drop_last=False`` (default): every sample appears at least once. The epoch has
      ``max(ceil(N / B), ceil(N_under / (B - 1)), ceil(N_over / (B - 1)))`` batches, the fewest
      that cover every sample with every batch mixed; the remaining slots are filled with
      repeats drawn from a fresh permutation of the group.
    * ``drop_last=True``: no sample appears twice. The epoch has
      ``min(N // B, N_under, N_over)`` batches and the samples that do not fit are left out
      (different ones each epoch).

    ``len(sampler)`` is that batch count and does not change between epochs. The order is a
    deterministic function of ``(seed, epoch)``. Each ``iter()`` uses the current epoch and then
    advances it by one, so plain ``for epoch ...: for batch in loader`` loops see new orders;
    :meth:`set_epoch` sets it explicitly (as with ``DistributedSampler``).

    Use it as ``DataLoader(dataset, batch_sampler=MixedExposureBatchSampler(dataset.groups, 4))``.

    Args:
        groups: each sample's group, ``'under'`` or ``'over'`` (e.g. ``MSECDataset.groups``).
        batch_size: samples per batch, >= 2.
        drop_last: see above.
        seed: base seed of the shuffling.

    Raises:
        ValueError: ``batch_size < 2``, an unknown group name, or a group with no sample.
    """

    def __init__(
        self,
        groups: Sequence[str],
        batch_size: int,
        *,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
            raise ValueError(
                f"Expected batch_size to be an int >= 2 (one under- and one over-exposed sample), "
                f"got {batch_size!r}"
            )
        bad = sorted({str(g) for g in groups if g not in ("under", "over")})
        if bad:
            raise ValueError(f"Expected groups to be 'under' or 'over', got {bad}")
        self.under = np.array([i for i, g in enumerate(groups) if g == "under"], dtype=np.int64)
        self.over = np.array([i for i, g in enumerate(groups) if g == "over"], dtype=np.int64)
        if len(self.under) == 0 or len(self.over) == 0:
            raise ValueError(
                f"Expected at least one 'under' and one 'over' sample, got {len(self.under)} under "
                f"and {len(self.over)} over"
            )
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.epoch = 0
        n, nu, no, b = len(groups), len(self.under), len(self.over), batch_size
        if self.drop_last:
            self.num_batches = min(n // b, nu, no)
            slots = self.num_batches * b
            low, high = max(self.num_batches, slots - no), min(nu, self.num_batches * (b - 1))
            self.under_slots = min(max(round(slots * nu / n), low), high)
        else:
            self.num_batches = max(
                math.ceil(n / b), math.ceil(nu / (b - 1)), math.ceil(no / (b - 1))
            )
            base_u, base_o = max(nu, self.num_batches), max(no, self.num_batches)
            extra = self.num_batches * b - base_u - base_o
            self.under_slots = base_u + round(extra * nu / n)

    def __len__(self) -> int:
        return self.num_batches

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch whose order the next ``iter()`` yields."""
        self.epoch = int(epoch)

    @staticmethod
    def _stream(indices: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` indices: one permutation of all, then fresh permutations for the repeats."""
        chunks = [rng.permutation(indices)]
        while sum(len(c) for c in chunks) < count:
            chunks.append(rng.permutation(indices))
        return np.concatenate(chunks)[:count]

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        nb, b = self.num_batches, self.batch_size
        if nb == 0:
            return
        under = self._stream(self.under, self.under_slots, rng)
        over = self._stream(self.over, nb * b - self.under_slots, rng)
        per_batch = np.full(nb, self.under_slots // nb)
        per_batch[rng.permutation(nb)[: self.under_slots % nb]] += 1
        u_pos = o_pos = 0
        for k in range(nb):
            nu = int(per_batch[k])
            batch = np.concatenate([under[u_pos : u_pos + nu], over[o_pos : o_pos + b - nu]])
            u_pos, o_pos = u_pos + nu, o_pos + b - nu
            yield rng.permutation(batch).tolist()
