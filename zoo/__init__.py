"""The pretrained-BCM zoo (``erl_losses.zoo``).

>>> from erl_losses import zoo
>>> zoo.names()                                   # doctest: +SKIP
['bcm-phase-photos', 'bcm-l1-photos', 'bcm-none-photos']
>>> bcm = zoo.load_bcm()                          # the default BCM, offline: it ships here
>>> sorted(bcm.config)[:2]
['channels', 'd_model']

``manifest.json`` (human-readable) lists every BCM: name, version, file, sha256, size, URLs,
config, recipe, data provenance, measured numbers and license; ``cards/<name>.md`` are the model
cards. A name resolves to the file shipped in this folder, else the cache (``ERL_LOSSES_HOME``,
default ``torch.hub.get_dir()/erl-losses``), else a download (``ERL_LOSSES_MIRROR`` base URLs,
then the manifest's ``https://`` or ``hf://`` URLs, see ``sources.py``) that is sha256-verified
and atomically moved into the cache.
``ERL_LOSSES_OFFLINE=1`` forbids the network. Nothing is ever unpickled.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erl_losses.zoo.specs import MANIFEST, Manifest, WeightSpec, load_manifest
from erl_losses.zoo.store import (
    ChecksumError,
    DownloadError,
    UnknownModelError,
    Verification,
    WeightsUnavailableError,
    Zoo,
    ZooError,
    file_sha256,
    home_dir,
    is_offline,
    load_bcm_file,
)

if TYPE_CHECKING:
    from erl_losses.modules.bcm import BatchCorrelationModule

__all__ = [
    "MANIFEST",
    "OVERRIDABLE",
    "ChecksumError",
    "DownloadError",
    "Manifest",
    "UnknownModelError",
    "Verification",
    "WeightSpec",
    "WeightsUnavailableError",
    "Zoo",
    "ZooError",
    "default_name",
    "default_zoo",
    "fetch",
    "file_sha256",
    "get_spec",
    "home_dir",
    "is_offline",
    "load_bcm",
    "load_bcm_file",
    "load_manifest",
    "names",
    "resolve_bcm",
    "verify",
]


def __getattr__(name: str) -> Any:
    # OVERRIDABLE lives with the weights file (which imports torch); keep `erl zoo list` light.
    if name == "OVERRIDABLE":
        from erl_losses.modules.bcm_io import OVERRIDABLE

        return OVERRIDABLE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.lru_cache(maxsize=1)
def default_zoo() -> Zoo:
    """The zoo of the shipped manifest (cache folder and offline flag read from the environment
    at each call)."""
    return Zoo()


def names() -> list[str]:
    """The names of the shipped manifest's BCMs, in manifest order."""
    return default_zoo().names()


def default_name() -> str:
    """The name :func:`load_bcm` loads for ``None``."""
    return default_zoo().default


def get_spec(name: str) -> WeightSpec:
    """The :class:`WeightSpec` of ``name``; unknown names raise :class:`UnknownModelError`."""
    return default_zoo().spec(name)


def load_bcm(
    name_or_path: str | os.PathLike[str] | None = None, **overrides: Any
) -> BatchCorrelationModule:
    """A pretrained :class:`~erl_losses.BatchCorrelationModule`, in eval mode.

    Args:
        name_or_path: ``None`` for the default BCM, a zoo name (:func:`names`), or a path to a
            safetensors file written by :func:`erl_losses.modules.bcm_io.save_bcm` (an
            ``os.PathLike``, or a string ending in ``.safetensors`` or containing ``/``).
        **overrides: config entries that keep the weights' meaning (``work_size``).

    Raises:
        UnknownModelError: an unknown name (the message lists the known ones).
        ChecksumError: a shipped or cached file whose sha256 differs from the manifest.
        WeightsUnavailableError: not shipped or cached, and offline or the download failed.
    """
    return default_zoo().load_bcm(name_or_path, **overrides)


def resolve_bcm(
    bcm: BatchCorrelationModule | str | os.PathLike[str] | None = None, **overrides: Any
) -> BatchCorrelationModule:
    """The one resolver "BCM, zoo name or path -> module".

    Args:
        bcm: a :class:`~erl_losses.BatchCorrelationModule` (returned as it is, with the
            overrides applied in place), ``None`` (the zoo's default BCM), a zoo name, or a path
            to a weights file (an ``os.PathLike``, or a string ending in ``.safetensors`` or
            containing ``/``). Named weights are sha256-verified before use; every file's config
            and weights are validated (:func:`erl_losses.modules.bcm_io.load_bcm`).
        **overrides: config entries that keep the weights' meaning (``work_size``).

    Returns:
        The module (a loaded one is in eval mode).

    Raises:
        TypeError: ``bcm`` is none of the above.
        UnknownModelError: an unknown name (the message lists the known ones).
        ChecksumError: a shipped or cached file whose sha256 differs from the manifest.
        WeightsUnavailableError: not shipped or cached, and offline or the download failed.
    """
    from erl_losses.modules.bcm import BatchCorrelationModule

    if isinstance(bcm, BatchCorrelationModule):
        from erl_losses.modules.bcm_io import OVERRIDABLE

        bad = sorted(set(overrides) - set(OVERRIDABLE))
        if bad:
            raise ValueError(f"Expected overrides among {list(OVERRIDABLE)}, got {bad}")
        if "work_size" in overrides:
            bcm.set_work_size(overrides["work_size"])
        return bcm
    if bcm is not None and not isinstance(bcm, (str, os.PathLike)):
        raise TypeError(
            "Expected `bcm` to be a BatchCorrelationModule, a zoo name, a path or None, got "
            f"{type(bcm).__name__}"
        )
    return default_zoo().load_bcm(bcm, **overrides)


def fetch(name: str | None = None, *, force: bool = False) -> Path:
    """The verified local file of ``name`` (``None``: the default), downloading it if needed."""
    return default_zoo().fetch(name, force=force)


def verify(name_or_path: str | os.PathLike[str] | None = None) -> list[Verification]:
    """Checks local files against the manifest (every entry for ``None``); never downloads."""
    return default_zoo().verify(name_or_path)
