"""Adding ERL to your own training loop takes one line.

A tiny exposure-correction net is trained on random crops of the photos that ship with
scikit-image, re-exposed by a random gain (under- and over-exposed samples in every batch).
The only ERL-specific lines are the two marked ``# <- ERL``.

    python examples/one_line.py --steps 200
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data
from torch import nn

from erl_losses import SampleRelationLoss

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def random_batch(photos: list[torch.Tensor], batch: int, crop: int, gen: torch.Generator):
    """Crops ``(B, 3, crop, crop)`` ground truth and exposes half of it down, half up."""
    gts = []
    for _ in range(batch):
        photo = photos[int(torch.randint(len(photos), (1,), generator=gen))]
        top = int(torch.randint(photo.shape[1] - crop + 1, (1,), generator=gen))
        left = int(torch.randint(photo.shape[2] - crop + 1, (1,), generator=gen))
        gts.append(photo[:, top : top + crop, left : left + crop])
    gt = torch.stack(gts)
    # Linear-light gains of 2^-1.5 .. 2^-0.5 (under) and 2^0.5 .. 2^1.5 (over), alternating.
    ev = torch.rand(batch, generator=gen) + 0.5
    ev = torch.where(torch.arange(batch) % 2 == 0, -ev, ev).view(-1, 1, 1, 1)
    lq = ((gt**2.2) * 2.0**ev).clamp(0, 1) ** (1 / 2.2)
    return lq, gt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--alpha", type=float, default=0.1, help="weight of the relation term")
    args = parser.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    photos = [
        torch.from_numpy(np.ascontiguousarray(getattr(data, name)())).permute(2, 0, 1).float() / 255
        for name in PHOTOS
    ]
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 3, 3, padding=1), nn.Sigmoid(),
    )  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    relation = SampleRelationLoss.from_pretrained()  # <- ERL: frozen, pretrained, offline

    for step in range(1, args.steps + 1):
        lq, gt = random_batch(photos, args.batch, args.crop, gen)
        out = net(lq)
        l1 = F.l1_loss(out, gt)
        loss = l1 + args.alpha * relation(out, gt)  # <- ERL: L = L_c + 0.1 * L_r
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == 1:
            psnr = -10 * torch.log10(F.mse_loss(out.detach(), gt))
            print(f"step {step:4d}  l1 {l1.item():.4f}  loss {loss.item():.4f}  psnr {psnr:.2f} dB")


if __name__ == "__main__":
    main()
