"""Plain-PyTorch DDP training with ERL's sample relation over the GLOBAL batch.

Start with torchrun (CPU + gloo here; on CUDA it picks nccl and one GPU per process)::

    OMP_NUM_THREADS=1 torchrun --nproc_per_node=2 examples/ddp_train.py --steps 20
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 \\
        --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 examples/ddp_train.py   # node 0 of 2

``python examples/ddp_train.py`` also works (one process, no process group: the relation loss
then warns once that ``gather=True`` falls back to the local batch).

What it trains: ECLNet (18k parameters) maps badly exposed crops of the photos bundled with
scikit-image & co. (rendered at -1.5 ... +1.5 EV by :mod:`erl_losses.data.render`) to the
renderer's expert-retouch ground truth, with ``L = L1 + 0.1 * L_r``. ``L_r`` is
``SampleRelationLoss(gather=True)``: the BCM's per-sample tokens of every rank are all-gathered,
so each sample is related to the whole global batch (``world_size * batch_size`` samples), not
only to its own rank's shard. DDP averages gradients over ranks; the gathered loss's backward
sums the ranks' gradients, so after averaging the update is exactly that of one process on the
concatenated batch (see ``docs/scale-out.md``).

The BCM is the zoo's pretrained default when the zoo provides one, else (with a warning) a
randomly initialised ``BatchCorrelationModule`` broadcast from rank 0 -- fine for a smoke run,
meaningless as a regulariser.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from erl_losses import BatchCorrelationModule, SampleRelationLoss
from erl_losses.archs import ECLNet
from erl_losses.data.photos import load_photo, split_photos
from erl_losses.data.render import render_scene

LEVELS = ("N1.5", "N1", "0", "P1", "P1.5")  # the camera inputs; the GT is the expert retouch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, default=4, help="samples per rank")
    parser.add_argument("--crop", type=int, default=64, help="square crop side in pixels")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=0.1, help="weight of the relation term")
    parser.add_argument("--bcm", default=None, help="zoo name or safetensors path of the BCM")
    parser.add_argument(
        "--no-gather", action="store_true", help="relate each rank's own batch only"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="write the trained weights here (rank 0)")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "crop"):
        if getattr(args, name) < 1:
            parser.error(f"Expected --{name.replace('_', '-')} >= 1, got {getattr(args, name)}")
    return args


def setup() -> tuple[int, int, torch.device]:
    """Joins the torchrun process group (if launched by torchrun); returns rank, world, device."""
    if "RANK" not in os.environ:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        dist.init_process_group("nccl")
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size(), device


def build_relation(name: str | None, gather: bool, device: torch.device) -> SampleRelationLoss:
    """The zoo's BCM if available (an explicit ``name`` must load), else a random one."""
    try:
        from erl_losses.zoo import ZooError
    except ImportError as err:  # an install without the zoo
        if name is not None:
            raise
        reason: Exception = err
    else:
        try:
            return SampleRelationLoss.from_pretrained(name, gather=gather).to(device)
        except ZooError as err:
            if name is not None:
                raise
            reason = err
    if not dist.is_initialized() or dist.get_rank() == 0:
        warnings.warn(
            f"No pretrained BCM ({reason}); using a randomly initialised one.", stacklevel=2
        )
    bcm = BatchCorrelationModule().to(device)
    if dist.is_initialized():  # every rank must relate with the SAME BCM
        for tensor in bcm.state_dict().values():
            dist.broadcast(tensor, src=0)
    return SampleRelationLoss(bcm, gather=gather)


class ExposureCrops:
    """Random ``(input, gt)`` crop pairs from the bundled training photos, per-rank seeded."""

    def __init__(self, crop: int, seed: int) -> None:
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        self.photos = []
        for name in split_photos()[0]:
            gt = load_photo(name)
            if min(gt.shape[:2]) < crop:
                continue
            # The same scenes on every rank: the render seed is the photo index, not the rank seed.
            rendered = render_scene(gt, seed=len(self.photos), levels=LEVELS)
            self.photos.append(np.stack([rendered.gt, *rendered.inputs.values()]))
        if not self.photos:
            raise ValueError(f"Expected a bundled photo of at least {crop} px, got none")

    def batch(self, size: int) -> tuple[Tensor, Tensor]:
        inputs, gts = [], []
        for _ in range(size):
            stack = self.photos[self.rng.integers(len(self.photos))]
            top = self.rng.integers(stack.shape[1] - self.crop + 1)
            left = self.rng.integers(stack.shape[2] - self.crop + 1)
            patch = stack[:, top : top + self.crop, left : left + self.crop]
            gts.append(patch[0])
            inputs.append(patch[1 + self.rng.integers(len(LEVELS))])

        def to_tensor(images: list[np.ndarray]) -> Tensor:
            return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0

        return to_tensor(inputs), to_tensor(gts)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rank, world, device = setup()
    torch.manual_seed(args.seed)  # same initial weights everywhere (DDP also broadcasts them)
    net: nn.Module = ECLNet().to(device)
    model = (
        DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        if world > 1
        else net
    )
    relation = build_relation(args.bcm, gather=not args.no_gather, device=device)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    data = ExposureCrops(args.crop, seed=args.seed * 1000 + rank)  # each rank its own crops
    if rank == 0:
        scope = "global" if relation.gather and world > 1 else "per-rank"
        print(
            f"world={world} device={device} backend={dist.get_backend() if world > 1 else '-'} "
            f"batch={args.batch_size}/rank ({args.batch_size * world} global), "
            f"relation: {scope}, bcm={relation.bcm.config}",
            flush=True,
        )
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        lq, gt = (t.to(device, non_blocking=True) for t in data.batch(args.batch_size))
        out = model(lq).clamp(0, 1)
        l1 = F.l1_loss(out, gt)
        l_rel = relation(out, gt)
        loss = l1 + args.alpha * l_rel
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if rank == 0 and (step == 1 or step % 5 == 0 or step == args.steps):
            print(
                f"step {step:4d}  loss {loss.item():.4f}  l1 {l1.item():.4f}  "
                f"relation {l_rel.item():.4f}  {time.perf_counter() - start:.1f}s",
                flush=True,
            )
    if rank == 0 and args.save:
        torch.save(net.state_dict(), args.save)
        print(f"saved {args.save}", flush=True)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
