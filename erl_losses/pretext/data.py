"""The pretext's crop pipeline: a ``DataLoader`` of seeded random crops, resumable by position.

Each stage reads its own stream of crops. Crop ``n`` of a stream is a pure function of
``(seed, stage, n)``: an epoch is one pass over a seeded permutation of the images (``epoch =
n // len(images)``, the permutation seeded by ``(seed, stage, epoch)``), and the crop's offsets
and flips come from a generator seeded by ``(seed, stage, n)``. So the stream does not depend on
the number of workers, on which worker cut a crop, or on prefetching, and a checkpoint only
needs the number of crops each stage has consumed (:meth:`CropStream.state`) for a resumed run
to draw exactly the crops an uninterrupted one would.

Workers cut crops in parallel from the source's images (for a folder, the resized copies in the
on-disk cache, :meth:`erl_losses.data.images.FolderImages.scan`); batches travel as uint8 (a
quarter of float32's bytes), pinned when the trainer runs on CUDA, and become float in [0, 1] on
the device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from erl_losses._validation import check_int

__all__ = ["STATE_TAG", "CropStream", "default_workers"]

#: First element of a :meth:`CropStream.state` tensor (a checkpoint of an older sampler has none).
STATE_TAG = 0x45524C31  # "ERL1"


def default_workers(images: Any) -> int:
    """Workers for a source: none for images already in memory (a crop is a slice), else one
    per core but one (the training loop keeps a core), at most 8."""
    from erl_losses.data.images import FolderImages

    if not isinstance(images, FolderImages):
        return 0
    return max(1, min(8, (os.cpu_count() or 1) - 1))


class _SeededCrops(torch.utils.data.Dataset):
    """Crop ``n`` of one stage's stream: ``(3, crop, crop)`` uint8, as a numpy array.

    Slicing, flipping and stacking are numpy's: torch's small-tensor ``flip`` and ``stack``
    go through its intra-op thread pool, measured at milliseconds per crop when the training
    thread cuts crops on a busy machine, against microseconds here.
    """

    def __init__(self, images: Any, seed: int, stage: int, crop: int, flip: bool) -> None:
        self.images, self.seed, self.stage, self.crop, self.flip = images, seed, stage, crop, flip
        self._epoch: tuple[int, np.ndarray] | None = None

    def _order(self, epoch: int) -> np.ndarray:
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, self.stage, 0, epoch])
            self._epoch = (epoch, rng.permutation(len(self.images)))
        return self._epoch[1]

    def __getitem__(self, n: int) -> np.ndarray:
        epoch, position = divmod(n, len(self.images))
        image = self.images.get(int(self._order(epoch)[position]), self.crop).numpy()
        rng = np.random.default_rng([self.seed, self.stage, 1, n])
        top = int(rng.integers(image.shape[1] - self.crop + 1))
        left = int(rng.integers(image.shape[2] - self.crop + 1))
        patch = image[:, top : top + self.crop, left : left + self.crop]
        if self.flip:
            flips = rng.random(2)
            if flips[0] < 0.5:
                patch = patch[:, :, ::-1]
            if flips[1] < 0.5:
                patch = patch[:, ::-1, :]
        return patch


def _stack(patches: list[np.ndarray]) -> Tensor:
    """``(B, 3, crop, crop)`` uint8 from a batch of crops."""
    return torch.from_numpy(np.stack(patches))


class _Positions(torch.utils.data.Sampler):
    """``count`` consecutive batches of crop indices, the first starting at ``start``."""

    def __init__(self, start: int, batch_size: int, count: int) -> None:
        self.start, self.batch_size, self.count = start, batch_size, count

    def __iter__(self) -> Iterator[list[int]]:
        for b in range(self.count):
            first = self.start + b * self.batch_size
            yield list(range(first, first + self.batch_size))

    def __len__(self) -> int:
        return self.count


class CropStream:
    """Seeded random square crops for the two pretext stages, drawn by a ``DataLoader``.

    Args:
        images: a :class:`~erl_losses.data.images.PhotoImages`,
            :class:`~erl_losses.data.images.FolderImages` or any object with ``__len__`` and
            ``get(index, crop) -> (3, H, W) uint8`` (at least ``crop`` on each side).
        seed: seeds the permutations, offsets and flips (an int >= 0).
        flip: random horizontal and vertical flips.
        workers: ``DataLoader`` worker processes (0: crops are cut in the training thread;
            ``None``: :func:`default_workers`).
        pin_memory: page-locked batches (for asynchronous copies to a GPU).
        prefetch: batches each worker prepares ahead.
    """

    def __init__(
        self,
        images: Any,
        seed: int = 0,
        flip: bool = True,
        *,
        workers: int | None = None,
        pin_memory: bool = False,
        prefetch: int = 4,
    ) -> None:
        if len(images) < 1:
            raise ValueError(f"Expected an image source with images, got {len(images)} images")
        self.images = images
        self.seed = check_int(seed, "seed", minimum=0)
        self.flip = flip
        self.workers = default_workers(images) if workers is None else workers
        check_int(self.workers, "workers", minimum=0)
        self.pin_memory = pin_memory
        self.prefetch = check_int(prefetch, "prefetch")
        self.drawn = [0, 0]  # crops consumed by stage 1 and stage 2

    def epoch(self, stage: int) -> float:
        """Passes over the images that ``stage`` has consumed so far (fractional)."""
        return self.drawn[stage - 1] / len(self.images)

    def batches(self, stage: int, batch_size: int, crop: int, count: int) -> Iterator[Tensor]:
        """Yields ``count`` batches ``(batch_size, 3, crop, crop)`` uint8 of ``stage``'s stream,
        from its current position; the position advances as each batch is yielded (a
        checkpoint taken between two batches resumes at the next one)."""
        if stage not in (1, 2):
            raise ValueError(f"Expected `stage` to be 1 or 2, got {stage!r}")
        check_int(batch_size, "batch_size")
        check_int(count, "count", minimum=0)
        if count == 0:
            return
        dataset = _SeededCrops(self.images, self.seed, stage, crop, self.flip)
        sampler = _Positions(self.drawn[stage - 1], batch_size, count)
        extra: dict[str, Any] = {}
        if self.workers > 0:
            extra = {"prefetch_factor": self.prefetch, "persistent_workers": False}
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, num_workers=self.workers, collate_fn=_stack,
            pin_memory=self.pin_memory, **extra,
        )  # fmt: skip
        iterator = iter(loader)
        try:
            for batch in iterator:
                self.drawn[stage - 1] += batch_size
                yield batch
        finally:
            del iterator  # stops the workers now, not when the garbage collector runs

    def sample(self, stage: int, batch_size: int, crop: int) -> Tensor:
        """The next batch of ``stage`` as float32 in [0, 1], cut in this thread (no workers)."""
        dataset = _SeededCrops(self.images, self.seed, stage, crop, self.flip)
        start = self.drawn[stage - 1]
        batch = _stack([dataset[n] for n in range(start, start + batch_size)])
        self.drawn[stage - 1] += batch_size
        return batch.float() / 255.0

    def state(self) -> Tensor:
        """``int64 [STATE_TAG, seed, crops drawn by stage 1, crops drawn by stage 2]``."""
        return torch.tensor([STATE_TAG, self.seed, *self.drawn], dtype=torch.int64)

    def set_state(self, state: Tensor) -> None:
        """Restores a :meth:`state`.

        Raises:
            ValueError: ``state`` is not a crop-stream state, or one of another seed.
        """
        if state.dtype != torch.int64 or state.shape != (4,) or int(state[0]) != STATE_TAG:
            raise ValueError(
                "Expected a crop-stream state (int64 [tag, seed, drawn1, drawn2]), got a tensor "
                f"{state.dtype} {tuple(state.shape)}"
            )
        if int(state[1]) != self.seed:
            raise ValueError(
                f"Expected a crop-stream state of seed {self.seed}, got {int(state[1])}"
            )
        self.drawn = [int(state[2]), int(state[3])]

    def seek(self, drawn1: int, drawn2: int) -> None:
        """Positions both streams (crops consumed by each stage)."""
        self.drawn = [
            check_int(drawn1, "drawn1", minimum=0),
            check_int(drawn2, "drawn2", minimum=0),
        ]
