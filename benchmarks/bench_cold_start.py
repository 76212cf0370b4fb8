"""Cold start of ``SampleRelationLoss.from_pretrained()``: load + first call, in fresh processes.

Each run is a new Python process (nothing cached in memory; the OS file cache is warm after the
first run, as on a training machine). It imports torch first (timed apart: every torch program
pays it), then times, after torch is imported:

- ``import``: ``import erl_losses``;
- ``load``: ``SampleRelationLoss.from_pretrained()`` (zoo lookup, sha256 check, safetensors read);
- ``first call``: forward + backward of the relation term on a ``(4, 3, S, S)`` batch.

Target (design.md section 9): ``import + load + first call`` < 0.2 s after torch is imported, on CPU.
``run_perf.py`` writes the figures to RESULTS.md; ``pytest benchmarks/bench_cold_start.py``
measures the same with pytest-benchmark.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Any

import torch

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
torch.set_num_threads(int(sys.argv[3]))
t1 = time.perf_counter()
import erl_losses
t2 = time.perf_counter()
loss_fn = erl_losses.SampleRelationLoss.from_pretrained().to(sys.argv[1])
t3 = time.perf_counter()
size = int(sys.argv[2])
pred = torch.rand(4, 3, size, size, device=sys.argv[1], requires_grad=True)
gt = torch.rand(4, 3, size, size, device=sys.argv[1])
loss_fn(pred, gt).backward()
if sys.argv[1] == "cuda":
    torch.cuda.synchronize()
t4 = time.perf_counter()
print(json.dumps({"torch_import": t1 - t0, "import": t2 - t1, "load": t3 - t2,
                  "first_call": t4 - t3, "after_torch": t4 - t1}))
"""

PARTS = ("torch_import", "import", "load", "first_call", "after_torch")
TARGET_S = 0.2


def one_cold_start(device: str = "cpu", size: int = 256, threads: int | None = None) -> dict:
    """Seconds of each part of one cold start, in a fresh interpreter."""
    threads = threads or torch.get_num_threads()
    env = dict(os.environ, ERL_LOSSES_OFFLINE="1")  # the default BCM ships: never the network
    out = subprocess.run(
        [sys.executable, "-c", CHILD, device, str(size), str(threads)],
        capture_output=True, text=True, check=True, env=env, timeout=300,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_start(device: str = "cpu", size: int = 256, runs: int = 5) -> dict[str, Any]:
    """Medians (and min/max) of each part over ``runs`` fresh processes, after one unrecorded
    run that warms the OS file cache."""
    one_cold_start(device, size)
    samples = [one_cold_start(device, size) for _ in range(runs)]
    stats = {
        part: {
            "median": statistics.median(s[part] for s in samples),
            "min": min(s[part] for s in samples),
            "max": max(s[part] for s in samples),
        }
        for part in PARTS
    }
    return {"size": size, "runs": runs, "parts": stats, "target_s": TARGET_S}


# -- pytest-benchmark ---------------------------------------------------------------------------
def test_cold_start(benchmark, device: torch.device) -> None:
    benchmark.group = "from_pretrained cold start (fresh process)"
    result = benchmark.pedantic(
        lambda: one_cold_start(device.type), rounds=3, iterations=1, warmup_rounds=1
    )
    benchmark.extra_info.update(result)
