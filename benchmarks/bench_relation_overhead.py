"""Cost of ERL's relation term on one training step of a ~0.15M-parameter exposure network.

A training step is forward + backward + Adam step of the network on a ``(4, 3, S, S)`` batch,
with the loss ``L1`` (baseline) or ``L1 + 0.1 * SampleRelationLoss`` (ERL). The BCM runs at full
resolution (``work_size=None``, as in the paper) or area-resized to ``work_size`` on a side.
The network is :class:`erl_losses.archs.FECNet` (0.15M parameters, the paper's FECNet); if it is
not importable a stand-in conv net of the same size is used and labelled ``StandInNet``.

Besides the full steps, the relation term alone -- its forward on ``pred`` and ``gt`` and its
backward into ``pred`` -- is timed: the network's backward runs once in both variants, so that
term is the whole extra work of a step with ERL, and it is cheap enough to time at every
``work_size``. ``run_perf.py`` interleaves all of these in one process and computes the ratios.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from erl_losses import BatchCorrelationModule, SampleRelationLoss

BATCH, ALPHA, LR = 4, 0.1, 1e-4
WORK_SIZES: tuple[int | None, ...] = (None, 64, 128, 256)


def ws_label(work_size: int | None) -> str:
    return "full" if work_size is None else str(work_size)


# -- the network ----------------------------------------------------------------------------------
class StandInNet(nn.Module):
    """NOT FECNet: a residual 3x3-conv net of ~0.15M parameters, used only if FECNet is missing."""

    def __init__(self, width: int = 48, depth: int = 7) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(depth))
        self.tail = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.leaky_relu(self.head(x), 0.1)
        for conv in self.body:
            h = h + F.leaky_relu(conv(h), 0.1)
        return (x + self.tail(h)).clamp(0, 1)


def net_factory(kind: str = "auto") -> tuple[Callable[[], nn.Module], str]:
    """``(constructor, label)`` for "fecnet", "standin" or "auto" (FECNet if importable)."""
    if kind in ("auto", "fecnet"):
        try:
            from erl_losses.archs import FECNet  # type: ignore[attr-defined]
        except ImportError:
            try:
                from erl_losses.archs.fecnet import FECNet
            except ImportError:
                if kind == "fecnet":
                    raise
                FECNet = None
        if FECNet is not None:
            return FECNet, "FECNet (erl_losses.archs)"
    if kind not in ("auto", "standin"):
        raise ValueError(f"Expected net kind 'auto', 'fecnet' or 'standin', got {kind!r}")
    return StandInNet, "StandInNet (stand-in conv net, NOT FECNet)"


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def make_batch(size: int, device: torch.device | str, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A seeded mixed-exposure batch: ``gt`` in [0, 1] and ``x`` = gt scaled by 0.3..2, clipped."""
    gen = torch.Generator().manual_seed(seed)
    gt = torch.rand(BATCH, 3, size, size, generator=gen)
    gains = torch.tensor([0.3, 0.5, 1.5, 2.0])[:BATCH].view(-1, 1, 1, 1)
    return (gt * gains).clamp(0, 1).to(device), gt.to(device)


def make_relation(
    work_size: int | None, device: torch.device | str, seed: int = 0, cuda_graphs: bool = False
) -> SampleRelationLoss:
    """A :class:`SampleRelationLoss` around a seeded BCM (random weights: cost does not depend
    on the values); ``cuda_graphs`` replays the BCM from CUDA graphs (eager on a CPU)."""
    torch.manual_seed(seed)
    bcm = BatchCorrelationModule(work_size=work_size)
    return SampleRelationLoss(bcm, cuda_graphs=cuda_graphs).to(device)


# -- workloads ----------------------------------------------------------------------------------
class TrainStep:
    """One optimisation step: ``zero_grad``, forward, ``L1 [+ alpha * relation]``, backward, Adam.

    Args:
        relation: ``None`` for the L1 baseline, else a :class:`SampleRelationLoss`.
        amp_dtype: run forward and loss under ``torch.autocast(dtype=amp_dtype)`` (e.g. bf16).
    """

    def __init__(
        self,
        make_net: Callable[[], nn.Module],
        size: int,
        device: torch.device | str,
        relation: SampleRelationLoss | None = None,
        amp_dtype: torch.dtype | None = None,
        seed: int = 0,
    ) -> None:
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.net = make_net().to(self.device).train()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=LR)
        self.x, self.gt = make_batch(size, self.device, seed)
        self.relation = relation
        self.amp_dtype = amp_dtype

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        with self._autocast():
            out = self.net(self.x)
            loss = F.l1_loss(out.float(), self.gt)
            if self.relation is not None:
                loss = loss + ALPHA * self.relation(out, self.gt)
        loss.backward()
        self.opt.step()


class RelationTerm:
    """The extra work of ERL in a step: ``alpha * relation(pred, gt)`` forward and backward into
    ``pred`` (a leaf standing in for the network output)."""

    def __init__(
        self,
        relation: SampleRelationLoss,
        size: int,
        device: torch.device | str,
        amp_dtype: torch.dtype | None = None,
        seed: int = 0,
    ) -> None:
        self.device = torch.device(device)
        x, self.gt = make_batch(size, self.device, seed)
        self.pred = x.clone().requires_grad_()
        self.relation = relation
        self.amp_dtype = amp_dtype

    def __call__(self) -> None:
        self.pred.grad = None
        ctx = (
            torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with ctx:
            loss = ALPHA * self.relation(self.pred, self.gt)
        loss.backward()


# -- peak memory --------------------------------------------------------------------------------
def peak_memory_bytes(fn: Callable[[], None], device: torch.device | str) -> int:
    """Peak bytes of tensor memory allocated by one call of ``fn`` on top of what was live before.

    CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``. CPU: the running
    "Total Allocated" counter of ``torch.profiler``'s memory events (``profile_memory=True``),
    i.e. every tensor allocation through torch's CPU allocator during the call; buffers that
    oneDNN/MKL allocate internally (convolution scratchpads, FFT work areas) are not included.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as fh:
            events = json.load(fh)["traceEvents"]
    finally:
        os.unlink(path)
    totals = [
        e["args"]["Total Allocated"]
        for e in events
        if e.get("name") == "[memory]" and e.get("args", {}).get("Device Type", 0) == 0
    ]
    return int(max([0, *totals]))


# -- pytest-benchmark ---------------------------------------------------------------------------
STEP_CONFIGS: dict[str, int | str | None] = {"L1": "none", "L1+rel@128": 128, "L1+rel@full": None}


@pytest.fixture(scope="module")
def make_net() -> Callable[[], nn.Module]:
    return net_factory("auto")[0]


@pytest.mark.parametrize("config", list(STEP_CONFIGS))
def test_training_step(benchmark, make_net, config: str, size: int, device: torch.device) -> None:
    from conftest import synchronize

    work_size = STEP_CONFIGS[config]
    relation = None if work_size == "none" else make_relation(work_size, device)  # type: ignore[arg-type]
    step = TrainStep(make_net, size, device, relation)
    benchmark.group = f"train-step {size}px batch {BATCH}"
    benchmark.extra_info.update(
        {"net": net_factory("auto")[1], "params": count_parameters(step.net), "config": config}
    )

    def run() -> None:
        step()
        synchronize(device)

    # A CPU step of FECNet takes seconds: few rounds; run_perf.py interleaves more carefully.
    benchmark.pedantic(run, rounds=2 if device.type == "cpu" else 20, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("work_size", WORK_SIZES, ids=[f"ws={ws_label(w)}" for w in WORK_SIZES])
def test_relation_term(benchmark, work_size: int | None, size: int, device: torch.device) -> None:
    from conftest import synchronize

    term = RelationTerm(make_relation(work_size, device), size, device)
    benchmark.group = f"relation-term {size}px batch {BATCH}"
    benchmark.extra_info.update({"work_size": work_size})

    def run() -> None:
        term()
        synchronize(device)

    benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=2)
