"""Cost of relating the GLOBAL batch across ranks (``SampleRelationLoss(gather=True)``).

Two measurements:

1. ``test_gather_two_ranks``: a 2-process gloo run (this file started twice as a script, one
   torch thread per rank, file-store rendezvous). Each rank times, as the median of
   ``ITERS`` barrier-aligned iterations, the relation term's forward + backward into ``pred``
   (default BCM, ``(B, 3, 128, 128)`` per rank) with ``gather=False`` (per-rank relation) and
   ``gather=True`` (global relation), and the collectives alone (size exchange, two token
   all-gathers, the reduce-scatter of the backward). Bytes per step are counted from the
   tensors each rank receives. The numbers go to ``benchmark.extra_info`` and stdout; the
   pytest-benchmark timing of this test is the whole 2-process run (process start included).
2. ``test_relate_scaling``: ``bcm.relate(tokens)`` forward + backward for a global batch of
   B = 4 ... 1024 tokens (attention over the batch axis is O(B^2 d) on top of the O(B C' d)
   projections), in this process.

Benchmarks never assert times; they check that the gathered loss equals the single-process one.

    python -m pytest benchmarks/bench_gather.py --benchmark-only -s
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from erl_losses import BatchCorrelationModule, sample_relation_loss

WORLD = 2
SIZE = 128  # = the default work_size, so the encoder runs at its working resolution
PER_RANK_BATCHES = (4, 16)
ITERS, WARMUP = 10, 2
SCALING_BATCHES = (4, 16, 64, 256, 1024)


def _bcm() -> BatchCorrelationModule:
    torch.manual_seed(0)
    return BatchCorrelationModule().requires_grad_(False).eval()


def _batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, SIZE, SIZE, generator=gen), torch.rand(n, 3, SIZE, SIZE, generator=gen)


# -- the rank side ---------------------------------------------------------------------------------
def _median_ms(fn: Callable[[], Any], barrier: Callable[[], Any]) -> float:
    times = []
    for i in range(WARMUP + ITERS):
        barrier()
        start = time.perf_counter()
        fn()
        if i >= WARMUP:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _rank_main(rank: int, out_dir: str) -> None:
    import torch.distributed as dist

    from erl_losses.distributed import all_gather_rows, gather_sizes

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{out_dir}/store", rank=rank, world_size=WORLD
    )
    bcm = _bcm()
    results: dict[str, Any] = {}
    for per_rank in PER_RANK_BATCHES:
        pred_all, gt_all = _batch(WORLD * per_rank, seed=per_rank)
        rows = slice(rank * per_rank, (rank + 1) * per_rank)
        pred, gt = pred_all[rows].clone().requires_grad_(True), gt_all[rows]

        def step(gather: bool, pred: torch.Tensor = pred, gt: torch.Tensor = gt) -> float:
            loss = sample_relation_loss(pred, gt, bcm, gather=gather)
            loss.backward()
            pred.grad = None
            return float(loss)

        tokens = torch.randn(per_rank, bcm.token_dim, requires_grad=True)

        def collectives(tokens: torch.Tensor = tokens) -> None:
            sizes = gather_sizes(tokens.shape[0], tokens.shape[1], tokens.device)
            with torch.no_grad():
                all_gather_rows(tokens.detach(), sizes)
            all_gather_rows(tokens, sizes).sum().backward()
            tokens.grad = None

        token_bytes = per_rank * bcm.token_dim * 4
        results[str(per_rank)] = {
            "per_rank_ms": _median_ms(lambda: step(False), dist.barrier),
            "global_ms": _median_ms(lambda: step(True), dist.barrier),
            "collectives_ms": _median_ms(collectives, dist.barrier),
            # Received per rank per step: 2 all-gathers (pred, gt) + 1 reduce-scatter (grad),
            # (WORLD - 1) peers' shards each, plus the 16-byte size table per peer.
            "bytes_received_per_rank": 3 * (WORLD - 1) * token_bytes + 16 * (WORLD - 1),
            "global_loss": step(True),
        }
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


def run_two_ranks() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, str(r), out],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for r in range(WORLD)
        ]
        logs = [p.communicate(timeout=600)[0] for p in procs]
        for proc, log in zip(procs, logs, strict=True):
            if proc.returncode:
                raise RuntimeError(
                    f"Expected the rank to exit with 0, got {proc.returncode}:\n{log}"
                )
        return [json.loads((Path(out) / f"rank{r}.json").read_text()) for r in range(WORLD)]


# -- the benchmarks ------------------------------------------------------------------------------
@pytest.mark.benchmark(group="gather-2-ranks")
def test_gather_two_ranks(benchmark: Any) -> None:
    ranks = benchmark.pedantic(run_two_ranks, rounds=1, iterations=1)
    bcm = _bcm()
    print(f"\n2 ranks x gloo x 1 thread, default BCM (C'={bcm.token_dim}), {SIZE}px crops")
    print("B/rank  global B  per-rank ms  global ms  collectives ms  KiB received/rank/step")
    for per_rank in PER_RANK_BATCHES:
        key = str(per_rank)
        pred, gt = _batch(WORLD * per_rank, seed=per_rank)
        want = float(sample_relation_loss(pred, gt, bcm))
        for res in ranks:  # the gathered loss is the single-process loss of the global batch
            assert abs(res[key]["global_loss"] - want) <= 1e-5 * max(1.0, abs(want))
        row = {
            name: max(res[key][name] for res in ranks)  # a step lasts as long as its slowest rank
            for name in ("per_rank_ms", "global_ms", "collectives_ms")
        }
        row["bytes_received_per_rank"] = ranks[0][key]["bytes_received_per_rank"]
        benchmark.extra_info[f"B{per_rank}"] = row
        print(
            f"{per_rank:6d}  {WORLD * per_rank:8d}  {row['per_rank_ms']:11.1f}  "
            f"{row['global_ms']:9.1f}  {row['collectives_ms']:14.2f}  "
            f"{row['bytes_received_per_rank'] / 1024:22.0f}"
        )


@pytest.mark.benchmark(group="relate-scaling")
@pytest.mark.parametrize("batch", SCALING_BATCHES, ids=[f"B{b}" for b in SCALING_BATCHES])
def test_relate_scaling(benchmark: Any, batch: int, device: torch.device) -> None:
    bcm = _bcm().to(device)
    tokens = torch.randn(batch, bcm.token_dim, device=device, requires_grad=True)

    def forward_backward() -> None:
        bcm.relate(tokens).abs().mean().backward()
        tokens.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize()

    d_model, layers = bcm.config["d_model"], bcm.config["num_layers"]
    # Forward multiply-adds x2: the token projections (C' <-> d_model) grow like B, the
    # attention scores and mixing (QK^T, AV) like B^2.
    benchmark.extra_info["gflop_projections_fwd"] = 4 * batch * bcm.token_dim * d_model / 1e9
    benchmark.extra_info["gflop_attention_fwd"] = 4 * batch * batch * d_model * layers / 1e9
    benchmark.pedantic(forward_backward, rounds=10, iterations=1, warmup_rounds=2)
    assert bcm.relate(tokens).shape == (batch, bcm.token_dim)


if __name__ == "__main__":
    _rank_main(int(sys.argv[1]), sys.argv[2])
