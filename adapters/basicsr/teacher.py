"""The frozen teacher of a net's own loss, for ``ERLModel`` (DRBN-ENC's MSEC stage 2).

DRBN-ENC's MSEC release fine-tunes a trained DRBN-ENC with an extra term that pulls the ENC
features of the degraded input toward those a frozen copy of the first-stage net computes on
the ground truth (``DRBNLoss``'s distillation term, weight 0.1). In an option file::

    path:
      pretrain_network_g: experiments/<stage 1>/models/net_g_latest.pth    # warm start
      pretrain_network_teacher: experiments/<stage 1>/models/net_g_latest.pth
      strict_load_teacher: true      # default
      param_key_teacher: params      # default
    train:
      net_loss_opt: {type: DRBNLoss, distill_weight: 0.1}

The teacher has ``network_g``'s architecture and options. It is deliberately not a top-level
``network_teacher`` entry: BasicSR's resume logic would point every ``network_*`` at a
``net_<name>_<iter>.pth`` checkpoint, and the teacher is never saved (it does not change).
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from basicsr.archs import build_network
from torch import nn

__all__ = ["build_teacher"]


def build_teacher(model: Any, net_loss: nn.Module | None) -> nn.Module | None:
    """``network_g`` loaded from ``path.pretrain_network_teacher``, frozen, in eval mode.

    Args:
        model: the BasicSR model (``opt``, ``device``, ``load_network``).
        net_loss: the net's own loss (``train.net_loss_opt``), whose ``compute`` must take a
            ``teacher`` argument; None when the model has none.

    Returns:
        The teacher on ``model.device``, or None when the option is not set.

    Raises:
        ValueError: a teacher is configured for a loss that cannot use one.
    """
    path_opt = model.opt["path"]
    load_path = path_opt.get("pretrain_network_teacher")
    if load_path is None:
        return None
    if net_loss is None or "teacher" not in inspect.signature(net_loss.compute).parameters:
        got = "no net_loss_opt" if net_loss is None else type(net_loss).__name__
        raise ValueError(
            "Expected `train.net_loss_opt` to be a loss that uses a teacher (DRBNLoss) next to "
            f"`path.pretrain_network_teacher`, got {got}"
        )
    teacher = build_network(copy.deepcopy(model.opt["network_g"]))
    model.load_network(
        teacher,
        load_path,
        path_opt.get("strict_load_teacher", True),
        path_opt.get("param_key_teacher", "params"),
    )
    teacher.requires_grad_(False)
    return teacher.to(model.device).eval()
