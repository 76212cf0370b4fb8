"""Declarative weight specs: one frozen :class:`WeightSpec` per manifest entry.

The manifest (``manifest.json`` next to this file) is the human-readable source of truth: every
pretrained BCM is described by its name, version, file name, sha256, size, download URLs, BCM
config, training recipe, data provenance, measured numbers and license. JSON rather than TOML
because the package supports Python 3.10, whose standard library has no TOML reader, and the
core must not grow a dependency for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from erl_losses.zoo.checks import (
    MAX_SIZE,
    check_card_path,
    check_license,
    check_version,
    is_hub_url,
    parse_hub_url,
)

__all__ = ["MANIFEST", "MANIFEST_FORMAT", "Manifest", "WeightSpec", "load_manifest"]

#: The manifest shipped with the package.
MANIFEST = Path(__file__).with_name("manifest.json")

#: ``manifest["format"]`` this code reads.
MANIFEST_FORMAT = 1

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_URL_SCHEMES = ("http://", "https://", "file://", "hf://")  # hf://: zoo/sources.py
_REQUIRED = ("name", "version", "file", "sha256", "size", "config", "license")


def _frozen(value: Any) -> Any:
    """Read-only view of nested JSON data (dicts -> MappingProxyType, lists -> tuples)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


@dataclass(frozen=True)
class WeightSpec:
    """One pretrained BCM of the zoo.

    Attributes:
        name: the zoo name, e.g. ``"bcm-phase-photos"``.
        version: the weights' version; new weights get a new version (and file name).
        file: the file name (no directories), shipped in the package or cached.
        sha256: hex digest of the file; every use verifies it.
        size: the file size in bytes.
        urls: download locations, tried in order.
        license: the weights' license.
        config: :class:`~erl_losses.BatchCorrelationModule` arguments (must equal the file's).
        description: one line.
        recipe: the pretext recipe (:class:`erl_losses.pretext.PretextRecipe` fields).
        data: training-data provenance.
        metrics: measured numbers (held-out reconstruction PSNR, phase loss vs a random ``t_e``).
        training: command, time, machine.
        card: the model card, relative to the zoo folder.
        loss_variant: the :class:`~erl_losses.SampleRelationLoss` variant these weights are
            meant for (``"paper"``: eq. 4; ``"centred"``: our extension);
            ``SampleRelationLoss.from_pretrained(name)`` applies it.
        diagnostics: :func:`erl_losses.diagnostics.probe` of the entry with its loss variant
            (relational index, attention entropy fraction, cross-sample gradient share).
    """

    name: str
    version: str
    file: str
    sha256: str
    size: int
    urls: tuple[str, ...] = ()
    license: str = "unknown"
    config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    recipe: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    metrics: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    training: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    card: str | None = None
    loss_variant: str = "paper"
    diagnostics: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"Expected `name` of lower-case letters, digits, '.', '_' or '-', got {self.name!r}"
            )
        if not isinstance(self.file, str) or not _FILE.match(self.file) or ".." in self.file:
            raise ValueError(
                "Expected `file` to be a plain '*.safetensors' file name (letters, digits, '.', "
                f"'_', '-'), got {self.file!r} (entry {self.name!r})"
            )
        if not isinstance(self.sha256, str) or not _SHA256.match(self.sha256):
            raise ValueError(
                f"Expected `sha256` of 64 lower-case hex digits, got {self.sha256!r} "
                f"(entry {self.name!r})"
            )
        if (
            not isinstance(self.size, int)
            or isinstance(self.size, bool)
            or not 0 < self.size <= MAX_SIZE
        ):
            shown = self.size if not isinstance(self.size, int) or self.size < 10**20 else "a huge int"
            raise ValueError(
                f"Expected `size` between 1 and {MAX_SIZE} bytes, got {shown!r} (entry {self.name!r})"
            )
        for url in self.urls:
            if not isinstance(url, str) or not url.startswith(_URL_SCHEMES):
                raise ValueError(
                    f"Expected URLs starting with {list(_URL_SCHEMES)}, got {url!r} "
                    f"(entry {self.name!r})"
                )
            if is_hub_url(url):
                parse_hub_url(url)
        check_license(self.license)
        if self.card is not None:
            check_card_path(self.card)
        object.__setattr__(self, "version", check_version(self.version))
        object.__setattr__(self, "urls", tuple(self.urls))
        if self.loss_variant not in ("paper", "centred"):
            raise ValueError(
                "Expected `loss_variant` to be 'paper' or 'centred', got "
                f"{self.loss_variant!r} (entry {self.name!r})"
            )
        for name in ("config", "recipe", "data", "metrics", "training", "diagnostics"):
            object.__setattr__(self, name, _frozen(getattr(self, name) or {}))

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> WeightSpec:
        """Builds a spec from a manifest entry; missing or unknown keys raise ``ValueError``."""
        if not isinstance(entry, Mapping):
            raise TypeError(
                f"Expected a manifest entry to be an object, got {type(entry).__name__}"
            )
        missing = [k for k in _REQUIRED if k not in entry]
        if missing:
            raise ValueError(
                f"Expected manifest entry {entry.get('name', '?')!r} to have {missing}, got "
                f"keys {sorted(entry)}"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ValueError(
                f"Expected manifest keys among {sorted(known)}, got unknown {unknown} "
                f"(entry {entry['name']!r})"
            )
        return cls(**{k: entry[k] for k in entry})

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry as plain JSON data."""
        return {k: _thawed(getattr(self, k)) for k in self.__dataclass_fields__}

    @property
    def bcm_config(self) -> dict[str, Any]:
        """A mutable copy of :attr:`config` for ``BatchCorrelationModule(**config)``."""
        return _thawed(self.config)


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest: specs by name and the default name."""

    specs: tuple[WeightSpec, ...]
    default: str | None = None

    def __post_init__(self) -> None:
        names = [s.name for s in self.specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Expected unique names in the manifest, got duplicates {duplicates}")
        files = [s.file for s in self.specs]
        if len(set(files)) != len(files):
            raise ValueError(f"Expected one file per manifest entry, got {files}")
        if self.default is not None and self.default not in names:
            raise ValueError(f"Expected the default to be one of {names}, got {self.default!r}")

    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(
                f"Expected manifest format {MANIFEST_FORMAT}, got {data.get('format')!r}"
            )
        specs = tuple(WeightSpec.from_dict(e) for e in data.get("models", []))
        return cls(specs=specs, default=data.get("default"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "default": self.default,
            "models": [s.to_dict() for s in self.specs],
        }


def load_manifest(path: str | Path = MANIFEST) -> Manifest:
    """Reads and validates a manifest file (default: the one shipped with the package)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"Expected valid JSON in the zoo manifest {str(path)!r}, got {err}"
        ) from err
    return Manifest.from_dict(data)
