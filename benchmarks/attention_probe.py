"""How selective is each zoo BCM's batch attention? (evidence for the quality discussion)

For 16 mixed batches of 8 held-out crops (chelsea, coffee, china; 128 px; exposures N1.5, N1, P1,
P1.5 in turn, rendered by :func:`erl_losses.data.render.render_exposures`), prints per zoo BCM the
mean largest attention weight of a row (uniform: 1/8 = 0.125), the mean row entropy divided by
log 8 (uniform: 1), and the mean L1 distance between the attention rows of the ground-truth batch
and of the mis-exposed batch (at most 2).

    python benchmarks/attention_probe.py
"""

from __future__ import annotations

import numpy as np
import torch

from erl_losses.data.photos import load_photo, split_photos
from erl_losses.data.render import render_exposures
from erl_losses.modules import BatchCorrelationModule
from erl_losses.zoo import names

BATCH, CROP, BATCHES = 8, 128, 16
LEVELS = ("N1.5", "N1", "P1", "P1.5")


def _batches(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = np.random.default_rng(seed)
    _, test = split_photos()
    photos = {name: load_photo(name) for name in test}
    out = []
    for _ in range(BATCHES):
        gts, lqs = [], []
        for k in range(BATCH):
            img = photos[test[int(rng.integers(len(test)))]]
            top = int(rng.integers(img.shape[0] - CROP))
            left = int(rng.integers(img.shape[1] - CROP))
            crop = img[top : top + CROP, left : left + CROP]
            gts.append(crop)
            lqs.append(render_exposures(crop)[LEVELS[k % len(LEVELS)]])
        out.append(tuple(torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255
                         for a in (gts, lqs)))  # fmt: skip
    return out


def main() -> None:
    batches = _batches()
    print(
        "| BCM | max weight (uniform 0.125) | entropy / log 8 | L1(attention gt, attention input) |"
    )
    print("|---|---|---|---|")
    for name in names():
        bcm = BatchCorrelationModule.from_pretrained(name)
        max_w, entropy, gap = [], [], []
        with torch.no_grad():
            for gt, lq in batches:
                a_gt, a_lq = bcm.batch_attention(gt), bcm.batch_attention(lq)
                max_w.append(a_lq.max(dim=1).values.mean().item())
                row_entropy = -(a_lq * a_lq.clamp_min(1e-12).log()).sum(dim=1)
                entropy.append((row_entropy.mean() / np.log(BATCH)).item())
                gap.append((a_gt - a_lq).abs().sum(dim=1).mean().item())
        print(f"| {name} | {np.mean(max_w):.3f} | {np.mean(entropy):.4f} | {np.mean(gap):.3f} |")


if __name__ == "__main__":
    main()
