"""ERL for BasicSR: ``import erl_losses.adapters.basicsr`` registers everything.

Importing this module (the BasicSR convention) first installs the
``torchvision.transforms.functional_tensor`` alias when that module is missing (basicsr 1.4.2
needs it; see :mod:`.compat`), then imports basicsr, applies the other compatibility patches
and registers, idempotently:

=========  ==============================================================================
registry   names
=========  ==============================================================================
loss       ``PhaseLoss``, ``SampleRelationLoss``, ``ERLCompositeLoss``,
           ``FECNetLoss``, ``ECLNetLoss``, ``DRBNLoss`` (``train.net_loss_opt``)
arch       ``BatchCorrelationModule``, ``DRBN``, ``DRBN_ENC``, ``ECLNet``, ``FECNet``
model      ``ERLModel``, ``BCMPretextModel``
dataset    ``MSECDataset``, ``SICEDataset``, ``SyntheticExposureDataset``
=========  ==============================================================================

None of these names is one of basicsr's own; :func:`register` refuses to shadow a name that
another package registered first. The option files of the paper's configurations ship in the
``options/`` folder (:func:`option_files`); ``erl-basicsr-train -opt FILE`` and
``erl-basicsr-test -opt FILE`` run them. See ``docs/basicsr.md``.

Stock models gain ERL through ``pixel_opt`` alone::

    train:
      pixel_opt:
        type: ERLCompositeLoss
        base: {type: L1Loss, loss_weight: 1.0}
        relation: {loss_weight: 0.1}        # the zoo's default BCM
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from erl_losses.adapters.basicsr import compat

compat.install_torchvision_alias()

import basicsr  # noqa: E402,F401  -- after the alias, which basicsr's import needs
from basicsr.utils.registry import (  # noqa: E402
    ARCH_REGISTRY,
    DATASET_REGISTRY,
    LOSS_REGISTRY,
    MODEL_REGISTRY,
)

__all__ = ["REGISTERED", "option_files", "register"]

#: Every name the adapter registers, per registry.
REGISTERED: dict[str, tuple[str, ...]] = {
    "loss": (
        "PhaseLoss",
        "SampleRelationLoss",
        "ERLCompositeLoss",
        "FECNetLoss",
        "ECLNetLoss",
        "DRBNLoss",
    ),
    "arch": ("BatchCorrelationModule", "DRBN", "DRBN_ENC", "ECLNet", "FECNet"),
    "model": ("ERLModel", "BCMPretextModel"),
    "dataset": ("MSECDataset", "SICEDataset", "SyntheticExposureDataset"),
}

_REGISTRIES = {
    "loss": LOSS_REGISTRY,
    "arch": ARCH_REGISTRY,
    "model": MODEL_REGISTRY,
    "dataset": DATASET_REGISTRY,
}


def _is_ours(obj: Any) -> bool:
    module = getattr(obj, "__module__", "") or ""
    return module.startswith("erl_losses.adapters.")


def _objects() -> dict[str, dict[str, Any]]:
    from erl_losses.adapters.basicsr import datasets, losses, models, pretext_model
    from erl_losses.adapters.basicsr.archs import arch_classes

    return {
        "loss": {
            "PhaseLoss": losses.PhaseLoss,
            "SampleRelationLoss": losses.SampleRelationLoss,
            "ERLCompositeLoss": losses.ERLCompositeLoss,
            **{name: getattr(losses, name) for name in losses.NET_LOSS_NAMES},
        },
        "arch": arch_classes(),
        "model": {"ERLModel": models.ERLModel, "BCMPretextModel": pretext_model.BCMPretextModel},
        "dataset": {
            "MSECDataset": datasets.MSECDataset,
            "SICEDataset": datasets.SICEDataset,
            "SyntheticExposureDataset": datasets.SyntheticExposureDataset,
        },
    }


def register() -> dict[str, list[str]]:
    """Registers the adapter's losses, archs, models and datasets into BasicSR (idempotent).

    Also applies the compatibility patches of :mod:`.compat`. A name already registered by the
    adapter (an earlier call, or an earlier import of this module) is left as it is.

    Returns:
        ``{registry: [names registered by this call]}`` (empty lists when nothing was new).

    Raises:
        ValueError: a name is already taken by another package's object.
    """
    compat.install()
    added: dict[str, list[str]] = {kind: [] for kind in _REGISTRIES}
    pending = {
        kind: [name for name in REGISTERED[kind] if name not in _REGISTRIES[kind]]
        for kind in _REGISTRIES
    }
    for kind, registry in _REGISTRIES.items():
        for name in REGISTERED[kind]:
            if name in registry and not _is_ours(registry.get(name)):
                raise ValueError(
                    f"Expected the {kind} name {name!r} to be free in BasicSR's registry, got it "
                    f"taken by {registry.get(name)!r}"
                )
    if not any(pending.values()):
        return added
    objects = _objects()
    for kind, names in pending.items():
        for name in names:
            obj = objects[kind][name]
            if obj.__name__ != name:
                raise ValueError(f"Expected {obj!r} to be named {name!r}, got {obj.__name__!r}")
            _REGISTRIES[kind].register(obj)
            added[kind].append(name)
    return added


def option_files() -> list[Path]:
    """The option files shipped in ``erl_losses/adapters/basicsr/options/``, sorted."""
    folder = resources.files(__name__).joinpath("options")
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yml"))


register()
