"""torch.distributed helpers: the sample relation over the GLOBAL batch across ranks.

The relation term relates the samples of one batch. Under data parallelism each rank only sees its
own shard, so by default the relation is per-rank. With ``gather=True``
(:class:`~erl_losses.SampleRelationLoss`, :func:`~erl_losses.functional.sample_relation_loss`) the
per-sample tokens of the BCM (``bcm.encode_tokens``, ``(B_r, C')``, no cross-sample mixing) are
all-gathered with :func:`all_gather_rows`, and ``bcm.relate`` runs on the concatenated
``(N, C')`` tokens, ``N = sum_r B_r``, in rank order. Every rank then computes the same loss, equal
to the single-process loss on the concatenated batch.

Gradient convention (the same as ``torch.distributed.nn.functional.all_gather``, whose backward
reduce-scatters with SUM): the backward of :func:`all_gather_rows` SUMS the gradients that all
ranks computed for rank ``r``'s rows. Each rank holds an identical copy of the global loss ``L``,
so rank ``r``'s local gradient is ``world_size * dL/d(own samples)``. DDP then AVERAGES parameter
gradients over ranks, ``(1/W) * sum_r W * dL/dtheta|_r = dL/dtheta``: the DDP-averaged gradient
equals the single-process gradient on the concatenated batch -- the same factor as a per-rank
mean loss such as L1, so ``l1 + 0.1 * relation`` keeps its balance. Without DDP (summing, or
one optimiser per rank), divide the relation term by the world size.

Uneven per-rank batch sizes (a last partial batch) are supported: the sizes are all-gathered
first, every rank pads to the largest, and the padding is stripped after the gather.

This module imports only torch; :func:`gather_active` is the one place that decides whether
``gather=True`` applies (a process group is initialised) and warns once when it does not.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.autograd import Function

from erl_losses._validation import check_bool

__all__ = [
    "all_gather_rows",
    "gather_active",
    "gather_sizes",
    "is_distributed",
    "rank",
    "world_size",
]

_warned_no_group = False


def is_distributed() -> bool:
    """``True`` if torch.distributed is available and a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size(group: Any = None) -> int:
    """The number of ranks in ``group`` (the default group if ``None``); 1 without one."""
    return dist.get_world_size(group) if is_distributed() else 1


def rank(group: Any = None) -> int:
    """This process's rank in ``group`` (the default group if ``None``); 0 without one."""
    return dist.get_rank(group) if is_distributed() else 0


def gather_active(gather: bool) -> bool:
    """Resolves a ``gather`` flag: ``True`` only if requested and a process group exists.

    Without an initialised process group, ``gather=True`` falls back to the per-rank relation
    (identical to ``gather=False`` in a single process) and warns once per process.

    Raises:
        TypeError: if ``gather`` is not a bool.
    """
    global _warned_no_group
    if not check_bool(gather, "gather"):
        return False
    if is_distributed():
        return True
    if not _warned_no_group:
        _warned_no_group = True
        warnings.warn(
            "gather=True but no torch.distributed process group is initialised: the sample "
            "relation is computed over the local batch only (as with gather=False). Call "
            "torch.distributed.init_process_group (e.g. under torchrun) to relate the global "
            "batch.",
            UserWarning,
            stacklevel=3,
        )
    return False


def gather_sizes(rows: int, row_dim: int, device: torch.device, group: Any = None) -> list[int]:
    """All-gathers every rank's row count; checks that all ranks agree on ``row_dim``.

    Args:
        rows: this rank's number of rows (its local batch size).
        row_dim: this rank's row width (the BCM's token size ``C'``); must match on all ranks.
        device: where the small int64 exchange tensor lives (a CUDA device for nccl).
        group: the process group; ``None`` is the default group.

    Returns:
        The row counts of all ranks, in rank order.

    Raises:
        ValueError: if the ranks disagree on ``row_dim`` (different BCMs) -- raised on every rank,
            since every rank sees the same gathered table.
    """
    local = torch.tensor([rows, row_dim], dtype=torch.int64, device=device)
    table = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(table, local, group=group)
    pairs = [(int(t[0]), int(t[1])) for t in table]
    dims = {d for _, d in pairs}
    if len(dims) != 1:
        raise ValueError(
            f"Expected every rank to produce tokens of the same width, got widths "
            f"{[d for _, d in pairs]} by rank (do all ranks use the same BCM?)"
        )
    return [n for n, _ in pairs]


def _collective(name: str, legacy: str) -> Any:
    """``dist.<name>`` (torch >= 2.10 spelling) or ``dist.<legacy>`` (older torch)."""
    return getattr(dist, name, None) or getattr(dist, legacy)


def _pad_rows(x: Tensor, rows: int) -> Tensor:
    if x.shape[0] == rows:
        return x.contiguous()
    pad = x.new_zeros((rows - x.shape[0], *x.shape[1:]))
    return torch.cat([x, pad], dim=0)


def _gather_padded(x: Tensor, sizes: list[int], group: Any) -> Tensor:
    """All-gathers ``x`` padded to ``max(sizes)`` rows; returns the ``(sum(sizes), ...)`` concat."""
    longest = max(sizes)
    padded = _pad_rows(x, longest)
    out = padded.new_empty((len(sizes) * longest, *x.shape[1:]))
    _collective("all_gather_single", "all_gather_into_tensor")(out, padded, group=group)
    chunks = out.split(longest, dim=0)
    return torch.cat([c[:n] for c, n in zip(chunks, sizes, strict=True)], dim=0)


def _reduce_scatter_rows(grad: Tensor, sizes: list[int], my_rank: int, group: Any) -> Tensor:
    """Sums ``grad`` (``(sum(sizes), ...)``) over ranks and returns this rank's rows."""
    longest = max(sizes)
    padded = torch.cat([_pad_rows(g, longest) for g in grad.split(sizes, dim=0)], dim=0)
    out = padded.new_empty((longest, *grad.shape[1:]))
    try:
        reduce_scatter = _collective("reduce_scatter_single", "reduce_scatter_tensor")
        reduce_scatter(out, padded, op=dist.ReduceOp.SUM, group=group)
    except (RuntimeError, NotImplementedError):
        # Backends without reduce-scatter (gloo in older torch): all-reduce, keep our rows.
        # Twice the traffic of a reduce-scatter, same result.
        dist.all_reduce(padded, op=dist.ReduceOp.SUM, group=group)
        out = padded[my_rank * longest : (my_rank + 1) * longest]
    return out[: sizes[my_rank]]


class _AllGatherRows(Function):
    """All-gather of rows; the backward sums every rank's gradient for our rows."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, sizes: list[int], group: Any) -> Tensor:  # type: ignore[override]
        ctx.sizes = sizes
        ctx.group = group
        ctx.rank = dist.get_rank(group)
        return _gather_padded(x, sizes, group)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        return _reduce_scatter_rows(grad.contiguous(), ctx.sizes, ctx.rank, ctx.group), None, None


def all_gather_rows(x: Tensor, sizes: list[int] | None = None, group: Any = None) -> Tensor:
    """Concatenates every rank's ``x`` along dim 0, in rank order; differentiable.

    Rows may differ in number between ranks (pass ``sizes`` from :func:`gather_sizes` to skip the
    size exchange); the trailing shape and dtype must match. If ``x`` requires grad, the backward
    returns to each rank the SUM over ranks of the gradients for its rows (see the module
    docstring for the factor this implies under DDP). Every rank must call it, in the same order.

    Args:
        x: this rank's rows ``(B_r, ...)``.
        sizes: all ranks' row counts in rank order, or ``None`` to all-gather them first.
        group: the process group; ``None`` is the default group.

    Returns:
        ``(sum(sizes), ...)``; rows ``offset_r : offset_r + B_r`` are rank ``r``'s ``x``.

    Raises:
        RuntimeError: if no process group is initialised.
        ValueError: if ``sizes`` does not list this rank's row count.
    """
    if not is_distributed():
        raise RuntimeError(
            "Expected an initialised torch.distributed process group, got none "
            "(call torch.distributed.init_process_group first)"
        )
    if sizes is None:
        sizes = gather_sizes(x.shape[0], math.prod(x.shape[1:]), x.device, group)
    my_rank = dist.get_rank(group)
    if len(sizes) != dist.get_world_size(group) or sizes[my_rank] != x.shape[0]:
        raise ValueError(
            f"Expected `sizes` to list {dist.get_world_size(group)} row counts with "
            f"{x.shape[0]} at rank {my_rank}, got {sizes}"
        )
    if x.requires_grad and torch.is_grad_enabled():
        return _AllGatherRows.apply(x, sizes, group)
    return _gather_padded(x, sizes, group)
