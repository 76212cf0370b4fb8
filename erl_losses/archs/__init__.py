"""Reference exposure-correction networks that ERL is plugged into (paper table 1).

Every net maps RGB (B, 3, H, W) in [0, 1] to RGB of the same shape in [0, 1], for any H, W
(inputs are padded internally and outputs cropped back). ``forward(x)`` returns only the
prediction, so stock training loops (BasicSR's ``self.output = net_g(lq)``) work unchanged;
``forward(x, return_aux=True) -> (pred, aux)`` adds the auxiliary outputs the nets' own losses in
:mod:`erl_losses.archs.losses` need (``forward_with_aux(x)`` is an alias). The losses call
``net(x, return_aux=True)``, so a DistributedDataParallel-wrapped net syncs its gradients.

=========  ==========  =============  =====================================
name       parameters  paper table 1  ``aux`` keys
=========  ==========  =============  =====================================
DRBN       557,668     0.53M (2^20)   half, quarter
DRBN_ENC   612,228     0.58M (2^20)   half, quarter, inst_feat, enc_feat
ECLNet     18,409      0.018M         feature
FECNet     151,965     0.15M          amplitude
=========  ==========  =============  =====================================

``DRBN_ENC(variant="sice")`` is the SICE release's variant (same parameters; ``aux`` holds only
half and quarter); the default ``variant="msec"`` is the MSEC release's.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from erl_losses.archs.drbn import DRBN, DRBN_ENC
from erl_losses.archs.eclnet import ECLNet
from erl_losses.archs.fecnet import FECNet

__all__ = ["ARCHS", "DRBN", "DRBN_ENC", "ECLNet", "FECNet", "build_arch"]

ARCHS: dict[str, type[nn.Module]] = {
    "DRBN": DRBN,
    "DRBN_ENC": DRBN_ENC,
    "ECLNet": ECLNet,
    "FECNet": FECNet,
}


def build_arch(name: str, **kwargs: Any) -> nn.Module:
    """Build a reference network by its name in :data:`ARCHS`, passing ``kwargs`` on.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in ARCHS:
        raise ValueError(f"Expected `name` to be one of {sorted(ARCHS)}, got {name!r}")
    return ARCHS[name](**kwargs)
