"""Pickle-free pretext checkpoints: model, Adam moments and the crop streams' positions.

A checkpoint is a safetensors file: tensors ``model.*`` (the BCM), ``optim.<index>.<name>``
(Adam's moment tensors), ``rng.crops`` (:meth:`erl_losses.pretext.data.CropStream.state`) and the string metadata
``format``, ``state`` (recipe, BCM config, global step, seconds; JSON) and ``optimizer`` (Adam's
param groups and scalar state; JSON). Restoring all of it makes a resumed run bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from erl_losses._files import atomic_path
from erl_losses.modules.bcm_io import read_bcm_metadata

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "load_checkpoint", "save_checkpoint"]

#: ``metadata["format"]`` of a pretext checkpoint.
CHECKPOINT_FORMAT = "erl-losses/pretext-checkpoint-1"


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model: the BCM ``state_dict``.
        crops_state: the crop streams' state (``CropStream.set_state``).
        state: ``recipe``, ``config``, ``global_step`` and ``seconds``.
        optimizer: an ``optimizer.load_state_dict`` input, or ``None`` (saved between stages).
    """

    model: dict[str, Tensor]
    crops_state: Tensor
    state: dict[str, Any]
    optimizer: dict[str, Any] | None


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    crops_state: Tensor,
    state: dict[str, Any],
) -> None:
    """Writes a checkpoint atomically (a unique temporary file, then ``os.replace``)."""
    from safetensors.torch import save_file

    tensors: dict[str, Tensor] = {
        f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()
    }
    tensors["rng.crops"] = crops_state
    optim_meta: dict[str, Any] | None = None
    if optimizer is not None:
        optim_state = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, entry in optim_state["state"].items():
            for key, value in entry.items():
                if isinstance(value, Tensor):
                    tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(index), {})[key] = value
        optim_meta = {"param_groups": optim_state["param_groups"], "scalars": scalars}
    meta = {
        "format": CHECKPOINT_FORMAT,
        "state": json.dumps(state, sort_keys=True),
        "optimizer": json.dumps(optim_meta),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_checkpoint(path: Path) -> Checkpoint:
    """Reads a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a pretext checkpoint, or a truncated one.
    """
    from safetensors.torch import load_file

    meta = read_bcm_metadata(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"Expected a pretext checkpoint ({CHECKPOINT_FORMAT}) at {str(path)!r}, got format "
            f"{meta.get('format')!r}"
        )
    try:
        tensors = load_file(str(path))
        state, optim_meta = json.loads(meta["state"]), json.loads(meta["optimizer"])
    except Exception as err:  # SafetensorError on a truncated body, bad JSON, missing keys
        raise ValueError(
            f"Expected a complete pretext checkpoint at {str(path)!r}, got {type(err).__name__}: "
            f"{err}"
        ) from err
    model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    optimizer = None if optim_meta is None else _optimizer_state(tensors, optim_meta)
    return Checkpoint(model, tensors["rng.crops"], state, optimizer)


def _optimizer_state(tensors: dict[str, Tensor], optim_meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, scalars in optim_meta["scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    return {"state": state, "param_groups": optim_meta["param_groups"]}
