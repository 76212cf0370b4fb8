"""The ``torchvision.transforms.functional_tensor`` alias basicsr 1.4.2 needs (imports no basicsr).

basicsr 1.4.2 (``basicsr/data/degradations.py``, imported by ``import basicsr``) imports
``torchvision.transforms.functional_tensor``; torchvision >= 0.17 renamed it
``_functional_tensor``, so ``import basicsr`` fails. BasicSR's master fixed the import but no
release carries the fix. The alias imports nothing of this package, so it sits in the core's base layer where
both of its users may import it: :mod:`erl_losses.evaluation.metrics` (basicsr's metric code,
without importing, registering and patching the whole adapter) and the BasicSR adapter, whose
patch 1 it is (:mod:`erl_losses.adapters.basicsr.compat`).
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["install_torchvision_alias"]

_ALIAS = "torchvision.transforms.functional_tensor"
_PRIVATE = "torchvision.transforms._functional_tensor"


def install_torchvision_alias() -> bool:
    """Aliases ``torchvision.transforms.functional_tensor`` when it is missing.

    Must run before the first ``import basicsr``; idempotent.

    Returns:
        ``True`` when the alias was installed by this call, ``False`` when nothing was needed
        (the module exists, the alias is already there, or torchvision has neither module).
    """
    if _ALIAS in sys.modules:
        return False
    try:
        importlib.import_module(_ALIAS)
        return False
    except ImportError:
        pass
    try:
        private = importlib.import_module(_PRIVATE)
    except ImportError:
        return False
    sys.modules[_ALIAS] = private
    return True
