"""CUDA-graph replay of the frozen BCM for the relation loss (one launch instead of hundreds).

On a GPU the relation term is launch-bound: the small BCM issues a few hundred kernels per call
whatever the patch size (about 6 ms on an H100, see benchmarks/RESULTS.md). Its weights are
frozen and, for a given batch size and image size, every shape is static, so its forward (on the
target, no grad) and forward + backward (on the prediction) can be captured once in CUDA graphs
and replayed. :class:`GraphedBCM` does that per *key* -- device, dtype, input shape, whether a
gradient is wanted, the BCM's ``work_size`` and the storage of its weights -- and captures again
when the key changes (a new batch size, a resolution change, ``.to()``). It keeps at most
``max_graphs`` keys (least recently used first out) and captures a key only once it has been
seen ``warmup_calls`` times, so one-off shapes (validation images) run eagerly.

Anything a graph cannot serve runs the BCM eagerly with identical results: CPU tensors, a
process-group ``gather``, ``torch.compile`` tracing, an ongoing capture. Outputs and gradients
are copied out of the graphs' static buffers, so two relation terms in one step, or a caller
that keeps the features, never see them overwritten. This module is ours (an engineering
addition, not in the paper).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import Tensor

from erl_losses._flags import env_flag
from erl_losses._validation import check_positive_int, is_compiling
from erl_losses.modules.bcm import BatchCorrelationModule

__all__ = ["GraphCache", "GraphedBCM", "cuda_graphs_from_env", "graph_key"]

Runner = Callable[[Tensor], Tensor]


def cuda_graphs_from_env() -> bool:
    """Whether ``ERL_LOSSES_CUDA_GRAPHS`` (``1``/``true``/``yes``/``on``) turns graphs on for
    every :class:`~erl_losses.SampleRelationLoss` built with ``cuda_graphs=None``."""
    return env_flag("ERL_LOSSES_CUDA_GRAPHS")


def graph_key(x: Tensor, bcm: BatchCorrelationModule) -> tuple[Hashable, ...]:
    """What a captured graph depends on: ``x``'s device, dtype, shape and whether it needs a
    gradient, the BCM's ``work_size``, and the address of its weights (moved by ``.to()``)."""
    needs_grad = bool(x.requires_grad and torch.is_grad_enabled())
    weight = bcm.fuse.weight
    return (str(x.device), x.dtype, tuple(x.shape), needs_grad, bcm.work_size, weight.data_ptr())


class GraphCache:
    """Runners by key, captured on the ``warmup_calls``-th call of a key, least recently used
    out beyond ``max_graphs``.

    Args:
        capture: builds the runner of a key from an example input (on CUDA: graph capture).
        max_graphs: keys kept at once.
        warmup_calls: calls of a key before it is captured (the earlier ones return ``None``:
            the caller runs eagerly).
    """

    def __init__(
        self, capture: Callable[[Tensor], Runner], max_graphs: int = 4, warmup_calls: int = 2
    ) -> None:
        check_positive_int(max_graphs, "max_graphs")
        check_positive_int(warmup_calls, "warmup_calls")
        self.capture, self.max_graphs, self.warmup_calls = capture, max_graphs, warmup_calls
        self.runners: OrderedDict[Hashable, Runner] = OrderedDict()
        self.seen: dict[Hashable, int] = {}
        self.captures = 0

    def get(self, key: Hashable, example: Tensor) -> Runner | None:
        """The runner of ``key`` (capturing it now if it is due), or ``None`` for eager."""
        if key in self.runners:
            self.runners.move_to_end(key)
            return self.runners[key]
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] < self.warmup_calls:
            return None
        runner = self.capture(example)
        self.captures += 1
        self.runners[key] = runner
        del self.seen[key]
        while len(self.runners) > self.max_graphs:
            self.runners.popitem(last=False)
        return runner

    def clear(self) -> None:
        self.runners.clear()
        self.seen.clear()


class _CopyGrad(torch.autograd.Function):
    """Identity whose backward copies the gradient, so a graph's static gradient buffer is never
    handed to autograd (a leaf could otherwise keep it as its ``.grad``)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad.clone()


def _capture_cuda(bcm: BatchCorrelationModule, example: Tensor) -> Runner:
    """Captures ``bcm`` on ``example``'s shape: forward + backward if it needs a gradient (via
    ``torch.cuda.make_graphed_callables``), else a forward-only graph with static buffers."""
    sample = torch.zeros_like(example)
    if example.requires_grad and torch.is_grad_enabled():
        graphed = torch.cuda.make_graphed_callables(
            bcm.forward, (sample.requires_grad_(),), allow_unused_input=True
        )
        return lambda x: graphed(_CopyGrad.apply(x)).clone()
    static_in = sample
    stream = torch.cuda.Stream(device=example.device)
    stream.wait_stream(torch.cuda.current_stream(example.device))
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):  # warm-up on a side stream, as the CUDA-graph docs ask
            bcm(static_in)
    torch.cuda.current_stream(example.device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_out = bcm(static_in)

    def run(x: Tensor) -> Tensor:
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    return run


class GraphedBCM:
    """A frozen BCM whose call replays CUDA graphs where it can (see the module docstring).

    It stands in for the BCM inside :func:`erl_losses.functional.sample_relation_loss` (both are
    a :class:`~erl_losses.functional.relation.RelationEncoder`): only ``__call__`` (the relation
    features) is graphed; the per-sample and cross-sample steps used by ``gather`` run the BCM.

    Args:
        bcm: the frozen module (parameters not requiring grad, eval mode).
        max_graphs: shapes kept captured at once.
        warmup_calls: calls of a shape before it is captured.
    """

    def __init__(
        self, bcm: BatchCorrelationModule, max_graphs: int = 4, warmup_calls: int = 2
    ) -> None:
        self.bcm = bcm
        self.cache = GraphCache(self._capture, max_graphs, warmup_calls)

    def _capture(self, x: Tensor) -> Runner:
        return _capture_cuda(self.bcm, x)

    def __getstate__(self) -> dict[str, Any]:
        # Copies and pickles (deepcopy, torch.save of the loss) keep the settings, not the
        # graphs: those hold device memory of this object's BCM and are captured again.
        return {"bcm": self.bcm, "max_graphs": self.cache.max_graphs,
                "warmup_calls": self.cache.warmup_calls}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["bcm"], state["max_graphs"], state["warmup_calls"])  # type: ignore[misc]

    # -- the RelationEncoder interface, delegated to the BCM --------------------------------------
    @property
    def in_channels(self) -> int:
        return self.bcm.in_channels

    @property
    def min_size(self) -> int:
        return self.bcm.min_size

    @property
    def token_dim(self) -> int:
        return self.bcm.token_dim

    @property
    def device(self) -> torch.device:
        return self.bcm.device

    def encode_tokens(self, x: Tensor) -> Tensor:
        return self.bcm.encode_tokens(x)

    def relate(self, tokens: Tensor) -> Tensor:
        return self.bcm.relate(tokens)

    def graphable(self, x: Tensor) -> bool:
        """Whether a call on ``x`` may replay a graph (CUDA, not tracing, not capturing)."""
        return (
            x.is_cuda
            and not is_compiling()
            and not torch.cuda.is_current_stream_capturing()
            and not torch.is_autocast_enabled()
            and not any(p.requires_grad for p in self.bcm.parameters())
        )

    def __call__(self, x: Tensor) -> Tensor:
        if not self.graphable(x):
            return self.bcm(x)
        x = self.bcm.check_input(x)  # the same check and dtype cast as the eager call
        runner = self.cache.get(graph_key(x, self.bcm), x)
        return self.bcm(x) if runner is None else runner(x)
