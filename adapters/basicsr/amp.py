"""Mixed precision for ``ERLModel``: ``train.amp: bf16`` runs the training forward of the networks
and of the losses under ``torch.autocast(dtype=torch.bfloat16)``; backward, the optimiser step
and validation stay in float32 (PyTorch recommends autocasting the forward only).

Only bfloat16 is offered. It has float32's exponent range, so the gradients need no loss
scaling; float16 would need a ``GradScaler`` around ``backward`` and ``optimizer.step``, and a
base model's step (SRModel's ``optimize_parameters``) has no place to put one. Since that step
has no hook between forward and backward either, autocast is entered by forward hooks on the
model's networks (``net_g``, ``net_d``) and criteria (``cri_*``), not around the step. The
relation term keeps its float32 path under autocast (its BCM runs with autocast disabled), as do
PhaseLoss's and FECNet's FFTs. A hooked forward run without grad (``test``/validation, the
frozen teacher) is not autocast, so the reported metrics are float32 ones.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["AMP_DTYPES", "amp_dtype", "autocast_forwards"]

#: ``train.amp`` values and their autocast dtype (``false``/``null``: float32, no autocast).
AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def amp_dtype(train_opt: dict) -> torch.dtype | None:
    """The autocast dtype that ``train.amp`` asks for, or ``None`` for float32.

    Raises:
        ValueError: any other value, with the reason for float16.
    """
    value = train_opt.get("amp")
    if value is None or value is False:
        return None
    if isinstance(value, str) and value.lower() in AMP_DTYPES:
        return AMP_DTYPES[value.lower()]
    if isinstance(value, str) and value.lower() in ("fp16", "float16", "half"):
        raise ValueError(
            f"Expected `train.amp` to be bf16 or false, got {value!r}: float16 needs loss scaling "
            "(a GradScaler around backward and the optimiser step), which a BasicSR model's step "
            "cannot host; use bf16 (same exponent range as float32, no scaling needed)"
        )
    raise ValueError(f"Expected `train.amp` to be bf16 or false, got {value!r}")


def autocast_forwards(
    model: Any, device: torch.device, dtype: torch.dtype | None
) -> list[RemovableHandle]:
    """Makes every forward of ``model``'s ``net_*`` and ``cri_*`` modules run under autocast.

    Returns:
        The hook handles (``handle.remove()`` undoes it); empty when ``dtype`` is ``None``.
    """
    if dtype is None:
        return []
    handles: list[RemovableHandle] = []
    for name, module in sorted(vars(model).items()):
        if isinstance(module, nn.Module) and name.startswith(("net_", "cri_")):
            handles += _hook(module, torch.device(device).type, dtype)
    return handles


def _hook(module: nn.Module, device_type: str, dtype: torch.dtype) -> list[RemovableHandle]:
    active: list[torch.autocast | None] = []  # a stack: hooked modules may nest

    def enter(*_: Any) -> None:
        region = None
        if torch.is_grad_enabled():
            region = torch.autocast(device_type=device_type, dtype=dtype)
            region.__enter__()
        active.append(region)

    def leave(*_: Any) -> None:
        region = active.pop()
        if region is not None:
            region.__exit__(None, None, None)

    return [
        module.register_forward_pre_hook(enter),
        module.register_forward_hook(leave, always_call=True),
    ]
