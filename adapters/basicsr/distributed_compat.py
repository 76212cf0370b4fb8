"""Scale-out patches for basicsr 1.4.2: multi-process training on CPU with the gloo backend.

Patch 4 of :mod:`.compat` (it calls :func:`install` at its ``# -- scale-out patches --`` marker).
Both patches are narrow, idempotent, and leave every CUDA run on basicsr's own code path:

4a. ``basicsr.utils.dist_util._init_dist_pytorch`` (what ``init_dist("pytorch")`` calls for
    ``--launcher pytorch``). *Why:* basicsr's version calls
    ``torch.cuda.set_device(rank % torch.cuda.device_count())`` -- a ``ZeroDivisionError`` on a
    machine without CUDA -- and ``parse_options`` always passes the default ``backend="nccl"``
    (``dist_params`` is only read for slurm), which needs CUDA. *When:* only without CUDA; the
    replacement then joins the torchrun process group with ``gloo``. With CUDA, basicsr's
    function runs unchanged.
4b. ``basicsr.models.base_model.BaseModel.model_to_device``. *Why:* basicsr wraps the network
    in ``DistributedDataParallel(net, device_ids=[torch.cuda.current_device()])``, which needs
    CUDA. *When:* only for a distributed run whose model lives on the CPU (``num_gpu: 0`` or no
    CUDA); the replacement wraps with ``device_ids=None`` (DDP's CPU form), honouring
    ``find_unused_parameters`` as basicsr does. Every other case calls basicsr's method.

Usage::

    torchrun --nproc_per_node=2 -m erl_losses.adapters.basicsr.train -opt FILE --launcher pytorch

with ``num_gpu: 0`` (or no GPU) in the option file. To relate the GLOBAL batch, give the relation
loss ``gather: true`` and a BCM that is identical on every rank (a zoo name or a safetensors path;
an untrained ``bcm: {...}`` mapping is seeded per rank by basicsr, so it is not).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["init_dist_pytorch", "install", "is_installed", "model_to_device"]

#: basicsr's original functions, saved by :func:`install` before they are replaced.
_ORIGINALS: dict[str, Callable[..., Any]] = {}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.device_count() > 0


def init_dist_pytorch(backend: str = "nccl", **kwargs: Any) -> None:
    """Patch 4a: basicsr's ``_init_dist_pytorch`` that also works without CUDA (gloo).

    Args:
        backend: the backend basicsr asks for (always ``"nccl"`` for ``--launcher pytorch``);
            without CUDA it is replaced by ``"gloo"``, the only CPU backend.
        **kwargs: passed to ``torch.distributed.init_process_group``.
    """
    if _cuda():
        _ORIGINALS["_init_dist_pytorch"](backend, **kwargs)
        return
    import torch.distributed as dist

    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise RuntimeError(
                f"Expected the torchrun environment variable {name} for `--launcher pytorch`, "
                "got none (start with `torchrun --nproc_per_node=N ...`)"
            )
    dist.init_process_group(backend="gloo", **kwargs)


def model_to_device(self: Any, net: Any) -> Any:
    """Patch 4b: ``BaseModel.model_to_device`` with DDP's CPU form (``device_ids=None``)."""
    if not (self.opt.get("dist") and self.device.type == "cpu"):
        return _ORIGINALS["model_to_device"](self, net)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        net.to(self.device),
        device_ids=None,
        find_unused_parameters=self.opt.get("find_unused_parameters", False),
    )


def install() -> None:
    """Applies patches 4a and 4b to the imported basicsr (idempotent)."""
    import basicsr.utils.dist_util as dist_util
    from basicsr.models.base_model import BaseModel

    if dist_util._init_dist_pytorch is not init_dist_pytorch:
        _ORIGINALS.setdefault("_init_dist_pytorch", dist_util._init_dist_pytorch)
        dist_util._init_dist_pytorch = init_dist_pytorch
    if BaseModel.model_to_device is not model_to_device:
        _ORIGINALS.setdefault("model_to_device", BaseModel.model_to_device)
        BaseModel.model_to_device = model_to_device  # type: ignore[method-assign]


def is_installed() -> bool:
    """Whether :func:`install` has patched the imported basicsr."""
    import sys

    dist_util = sys.modules.get("basicsr.utils.dist_util")
    base_model = sys.modules.get("basicsr.models.base_model")
    return (
        dist_util is not None
        and base_model is not None
        and dist_util._init_dist_pytorch is init_dist_pytorch
        and base_model.BaseModel.model_to_device is model_to_device
    )
