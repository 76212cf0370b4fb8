"""BasicSR arch entries: the reference nets and the BCM, with option-key checks.

Registered in ``ARCH_REGISTRY`` as ``DRBN``, ``DRBN_ENC``, ``ECLNet``, ``FECNet`` (from
:mod:`erl_losses.archs`) and ``BatchCorrelationModule`` (:class:`erl_losses.BatchCorrelationModule`,
for ``BCMPretextModel``). Each entry is a thin subclass of the core class: the parameters and
``state_dict`` keys are the core's (a checkpoint loads into the core class and back), only
``__init__`` changes, to reject unknown option keys with a message listing the accepted ones.
The option keys are the core constructor's, e.g. ``{type: DRBN_ENC, variant: sice}`` for
DRBN-ENC's SICE release (``DRBNIN3``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from erl_losses.adapters._options import accepted_keys, check_keys

__all__ = ["ARCH_NAMES", "arch_classes", "checked_subclass"]

#: The nets of :mod:`erl_losses.archs` registered into BasicSR, by name.
ARCH_NAMES: tuple[str, ...] = ("DRBN", "DRBN_ENC", "ECLNet", "FECNet")


def checked_subclass(name: str, core: type[nn.Module], kind: str = "arch") -> type[nn.Module]:
    """A subclass of ``core`` named ``name`` whose constructor rejects unknown keyword options.

    Args:
        name: the registry name (becomes ``__name__``; BasicSR registers by ``__name__``).
        core: the class to wrap.
        kind: what it is, for the error message (``"arch"``).
    """
    accepted = accepted_keys(core.__init__)

    def __init__(self: nn.Module, **options: Any) -> None:
        check_keys(f"{kind} {name}", options, accepted)
        core.__init__(self, **options)

    return type(
        name,
        (core,),
        {
            "__init__": __init__,
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": f"BasicSR entry for :class:`{core.__module__}.{core.__qualname__}`.\n\n"
            f"Accepted options: {', '.join(sorted(accepted)) or '(none)'}.",
            "_erl_adapter": True,
        },
    )


def arch_classes() -> dict[str, type[nn.Module]]:
    """``{registry name: checked subclass}`` of every arch the adapter registers."""
    import erl_losses
    from erl_losses import archs

    out = {name: checked_subclass(name, getattr(archs, name)) for name in ARCH_NAMES}
    out["BatchCorrelationModule"] = checked_subclass(
        "BatchCorrelationModule", erl_losses.BatchCorrelationModule
    )
    return out
