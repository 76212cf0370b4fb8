"""The pretrained-BCM zoo (``erl_losses.zoo``).

>>> from erl_losses import zoo
>>> zoo.names()                                   # doctest: +SKIP
['bcm-phase-photos', 'bcm-l1-photos', 'bcm-none-photos']
>>> path, spec = zoo.resolve()                    # the default BCM's file: it ships here
>>> path.suffix, spec.name == zoo.default_name()
('.safetensors', True)

``manifest.json`` (human-readable) lists every BCM: name, version, file, sha256, size, URLs,
config, recipe, data provenance, measured numbers and license; ``cards/<name>.md`` are the model
cards. A name resolves to the file shipped in this folder, else the cache (``ERL_LOSSES_HOME``,
default ``torch.hub.get_dir()/erl-losses``), else a download (``ERL_LOSSES_MIRROR`` base URLs,
then the manifest's ``https://`` or ``hf://`` URLs, see ``sources.py``) that is sha256-verified
and atomically moved into the cache.
``ERL_LOSSES_OFFLINE=1`` forbids the network. Nothing is ever unpickled.

The zoo builds no modules and imports no torch: it turns a name into a verified local file and
its :class:`WeightSpec`. A module is built from that file by :mod:`erl_losses.modules.bcm_io`,
reached through ``BatchCorrelationModule.from_pretrained`` or
``SampleRelationLoss.from_pretrained``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

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
)

__all__ = [
    "MANIFEST",
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
    "load_manifest",
    "names",
    "resolve",
    "verify",
]


@functools.lru_cache(maxsize=1)
def default_zoo() -> Zoo:
    """The zoo of the shipped manifest (cache folder and offline flag read from the environment
    at each call)."""
    return Zoo()


def names() -> list[str]:
    """The names of the shipped manifest's BCMs, in manifest order."""
    return default_zoo().names()


def default_name() -> str:
    """The name :func:`resolve` resolves for ``None``."""
    return default_zoo().default


def get_spec(name: str) -> WeightSpec:
    """The :class:`WeightSpec` of ``name``; unknown names raise :class:`UnknownModelError`."""
    return default_zoo().spec(name)


def resolve(
    name_or_path: str | os.PathLike[str] | None = None,
) -> tuple[Path, WeightSpec | None]:
    """A local weights file and its spec (see :meth:`Zoo.resolve`): for ``None`` (the default
    BCM) or a zoo name the sha256-verified file, fetched if needed, and its :class:`WeightSpec`;
    for a path (an ``os.PathLike``, or a string ending in ``.safetensors`` or containing ``/``)
    the path and ``None``.

    Raises:
        TypeError: ``name_or_path`` is none of the above.
        UnknownModelError: an unknown name (the message lists the known ones).
        ChecksumError: a shipped or cached file whose sha256 differs from the manifest.
        WeightsUnavailableError: not shipped or cached, and offline or the download failed.
    """
    return default_zoo().resolve(name_or_path)


def fetch(name: str | None = None, *, force: bool = False) -> Path:
    """The verified local file of ``name`` (``None``: the default), downloading it if needed."""
    return default_zoo().fetch(name, force=force)


def verify(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    load_check: Callable[[Path], str] | None = None,
) -> list[Verification]:
    """Checks local files against the manifest (every entry for ``None``); never downloads.
    ``load_check``: see :meth:`Zoo.verify`."""
    return default_zoo().verify(name_or_path, load_check=load_check)
