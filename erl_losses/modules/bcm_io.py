"""The BCM weights file: one safetensors file with the config and provenance in its metadata.

Layout: the tensors are ``BatchCorrelationModule.state_dict()``; the string metadata holds
``format`` (:data:`WEIGHTS_FORMAT`), ``config`` (the constructor arguments as a JSON object) and
any extra entries (recipe, data provenance, metrics...), JSON-encoded unless they are strings.
Nothing is ever unpickled.

This module is the one place a BCM is built from a file: :func:`load_bcm` for a path,
:func:`load_pretrained` for a zoo name or a path (the zoo, :mod:`erl_losses.zoo`, only turns a
name into a sha256-verified local file and its :class:`~erl_losses.zoo.WeightSpec`), and
:func:`resolve_bcm` for constructors that also accept a module. The public doors are
``BatchCorrelationModule.from_pretrained`` and ``SampleRelationLoss.from_pretrained``.

Loading trusts nothing in the file: the config must be a JSON object of known keys with the right
types and bounds, a module built from it on the ``meta`` device (no memory) must have exactly the
file's tensor names and shapes -- all checked BEFORE any real allocation --, and every weight must
be finite. The zoo (:mod:`erl_losses.zoo`) adds the sha256 check for named weights.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from erl_losses._files import atomic_path
from erl_losses.modules.bcm import BatchCorrelationModule

if TYPE_CHECKING:
    from erl_losses.zoo import Zoo
    from erl_losses.zoo.specs import WeightSpec

__all__ = [
    "OVERRIDABLE",
    "WEIGHTS_FORMAT",
    "PretrainedBCM",
    "load_bcm",
    "load_pretrained",
    "read_bcm_metadata",
    "resolve_bcm",
    "save_bcm",
    "validate_bcm_config",
]

#: ``metadata["format"]`` of a BCM weights file written by :func:`save_bcm`.
WEIGHTS_FORMAT = "erl-losses/bcm-1"

#: Config entries that may be overridden at load time: they do not change the weights' meaning.
OVERRIDABLE: tuple[str, ...] = ("work_size",)

# Bounds of a plausible BCM: a file asking for more is refused before anything is built (the
# shape check against the file's own tensors is the real guard; these give a clearer message).
_MAX_INT = 1 << 16

# The constructor's arguments and defaults, read from its signature (the one definition).
_CONFIG_DEFAULTS: dict[str, Any] = {
    name: param.default
    for name, param in inspect.signature(BatchCorrelationModule.__init__).parameters.items()
    if name != "self"
}


def save_bcm(
    bcm: BatchCorrelationModule,
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Writes ``bcm`` as a weights file (atomically, through a unique temporary file).

    Args:
        bcm: the module; its ``state_dict`` is saved from the CPU.
        path: the ``.safetensors`` file to write (folders are created).
        metadata: extra entries (``name``, ``version``, ``recipe``, ``data``...); strings are
            stored as they are, anything else as JSON. ``format`` and ``config`` are reserved.

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    if not isinstance(bcm, BatchCorrelationModule):
        raise TypeError(f"Expected `bcm` to be a BatchCorrelationModule, got {type(bcm).__name__}")
    extra = dict(metadata or {})
    reserved = sorted({"format", "config"} & set(extra))
    if reserved:
        raise ValueError(f"Expected `metadata` without the reserved keys, got {reserved}")
    meta = {"format": WEIGHTS_FORMAT, "config": json.dumps(bcm.config, sort_keys=True)}
    for key, value in extra.items():
        meta[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in bcm.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def read_bcm_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a safetensors file (no tensor is read).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a readable safetensors file (truncated, empty, another format).
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Expected a safetensors file at {str(path)!r}, got no file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as err:  # safetensors raises its own error types (SafetensorError, OSError)
        raise ValueError(
            f"Expected a readable safetensors file at {str(path)!r}, got {type(err).__name__}: "
            f"{err}"
        ) from err


def validate_bcm_config(config: object, where: str = "the config") -> dict[str, Any]:
    """Checks a BCM config read from a file before anything is built from it.

    It must be a dict of constructor arguments; each value must have its default's type (an int
    in ``[1, 65536]``, a string of at most 64 characters, or ``None`` where the default is
    ``None`` or ``work_size``). The constructor then checks the finer rules on the meta device.

    Returns:
        A copy of ``config``; the ``BatchCorrelationModule`` defaults fill absent keys.
    """
    if not isinstance(config, dict):
        raise ValueError(f"Expected {where} to be a JSON object, got {type(config).__name__}")
    unknown = sorted(set(config) - set(_CONFIG_DEFAULTS))
    if unknown:
        raise ValueError(
            f"Expected {where} keys among {sorted(_CONFIG_DEFAULTS)}, got unknown {unknown}"
        )
    for key, value in config.items():
        default = _CONFIG_DEFAULTS[key]
        if value is None and (default is None or key == "work_size"):
            continue
        if isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= _MAX_INT
            wanted = f"an int in [1, {_MAX_INT}]" + (" or null" if key == "work_size" else "")
        else:
            ok = isinstance(value, str) and len(value) <= 64
            wanted = "a string of at most 64 characters"
        if not ok:
            raise ValueError(f"Expected {where} entry {key!r} to be {wanted}, got {value!r}")
    return dict(config)


def _file_config(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    if meta.get("format") != WEIGHTS_FORMAT or "config" not in meta:
        raise ValueError(
            f"Expected a BCM weights file (metadata format {WEIGHTS_FORMAT!r} with a 'config'), "
            f"got format {meta.get('format')!r} in {str(path)!r}; write one with "
            "erl_losses.modules.bcm_io.save_bcm(bcm, path)"
        )
    try:
        config = json.loads(meta["config"])
    except json.JSONDecodeError as err:
        raise ValueError(
            f"Expected the 'config' metadata of {str(path)!r} to be JSON, got {meta['config']!r}"
        ) from err
    return validate_bcm_config(config, f"the 'config' metadata of {str(path)!r}")


def _check_shapes(path: Path, config: dict[str, Any]) -> None:
    """Builds the module on the meta device and compares its tensors with the file's header."""
    from safetensors import safe_open

    try:
        with torch.device("meta"):
            skeleton = BatchCorrelationModule(**config)
    except (ValueError, TypeError) as err:
        raise ValueError(f"Expected a valid BCM config in {str(path)!r}, got: {err}") from err
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    with safe_open(str(path), framework="pt") as handle:
        found = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118 (not a dict)
    if expected != found:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        raise ValueError(
            f"Expected the tensors of {str(path)!r} to match a BCM with config {config}, got "
            f"missing {missing[:5]}, unexpected {extra[:5]}, wrong shapes "
            f"{[(k, found[k], expected[k]) for k in wrong[:5]]}"
        )


def _read_tensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as err:  # SafetensorError on a truncated body
        raise ValueError(
            f"Expected a complete safetensors file at {str(path)!r}, got {type(err).__name__}: "
            f"{err}"
        ) from err
    for key, value in tensors.items():
        if not value.is_floating_point():
            raise ValueError(
                f"Expected floating-point weights in {str(path)!r}, got {value.dtype} for {key!r}"
            )
    # One fused max-abs over all tensors (NaN and inf propagate) instead of a check per tensor:
    # per-tensor checks were most of from_pretrained()'s cold start. Only a failure is located.
    if tensors and bool(
        torch.isfinite(torch.stack(torch._foreach_norm(list(tensors.values()), float("inf")))).all()
    ):
        return tensors
    for key, value in tensors.items():
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(
                f"Expected finite weights in {str(path)!r}, got {bad} NaN/inf values in {key!r} "
                "(the file is corrupted or came from a diverged run)"
            )
    return tensors


def load_bcm(
    path: str | os.PathLike[str],
    *,
    expected_config: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> BatchCorrelationModule:
    """Rebuilds a BCM from a weights file written by :func:`save_bcm` (eval mode).

    No checksum here (an explicit path has no reference digest): zoo names go through
    :func:`load_pretrained`, whose zoo look-up verifies the sha256 first.

    Args:
        path: the safetensors file.
        expected_config: if given, the file's config must equal it (a manifest's config).
        **overrides: entries of :data:`OVERRIDABLE` (e.g. ``work_size=None``) to replace.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a BCM weights file, a config that is not a JSON object of known keys in
            bounds, tensors that do not match the config, or non-finite weights.
    """
    bad = sorted(set(overrides) - set(OVERRIDABLE))
    if bad:
        raise ValueError(
            f"Expected overrides among {list(OVERRIDABLE)} (the others change the weights' "
            f"meaning), got {bad}"
        )
    path = Path(path)
    config = _file_config(path, read_bcm_metadata(path))
    if expected_config is not None and config != dict(expected_config):
        raise ValueError(
            f"Expected the config of {str(path)!r} to match the manifest {dict(expected_config)}, "
            f"got {config}"
        )
    _check_shapes(path, config)
    tensors = _read_tensors(path)
    config.update(overrides)
    with torch.device("meta"):
        bcm = BatchCorrelationModule(**config)
    # assign=True takes the loaded tensors as the parameters: no second, random-initialised copy
    # (and no draw from the global RNG, which a fresh module would consume).
    dtype = torch.get_default_dtype()  # a half-precision file still gives a float32 module
    bcm.load_state_dict({k: v.to(dtype) for k, v in tensors.items()}, strict=True, assign=True)
    return bcm.requires_grad_(True).eval()


class PretrainedBCM(NamedTuple):
    """A BCM and the zoo entry it was loaded from (``None``: a path, or a module passed in)."""

    bcm: BatchCorrelationModule
    spec: WeightSpec | None

    @property
    def variant(self) -> str:
        """The relation-loss variant the zoo entry records; ``"paper"`` without an entry."""
        return self.spec.loss_variant if self.spec is not None else "paper"


def load_pretrained(
    name_or_path: str | os.PathLike[str] | None = None, *, zoo: Zoo | None = None, **overrides: Any
) -> PretrainedBCM:
    """A pretrained BCM (eval mode) with its zoo entry: the one way from a name to a module.

    Args:
        name_or_path: ``None`` (the zoo's default BCM), a zoo name, or a path to a weights file
            (an ``os.PathLike``, or a string ending in ``.safetensors`` or containing ``/``).
        zoo: the :class:`~erl_losses.zoo.Zoo` that resolves names (default: the shipped one).
        **overrides: entries of :data:`OVERRIDABLE` (e.g. ``work_size=None``).

    Raises:
        TypeError: ``name_or_path`` is none of the above.
        erl_losses.zoo.UnknownModelError: an unknown name (the message lists the known ones).
        erl_losses.zoo.ChecksumError: a local file whose sha256 differs from the manifest's.
        erl_losses.zoo.WeightsUnavailableError: not shipped or cached, and offline or the
            download failed.
        ValueError: see :func:`load_bcm`.
    """
    from erl_losses.zoo import default_zoo

    if isinstance(name_or_path, BatchCorrelationModule):
        raise TypeError("Expected a zoo name, a path or None, got a BatchCorrelationModule")
    path, spec = (zoo or default_zoo()).resolve(name_or_path)
    expected = spec.bcm_config if spec is not None else None
    return PretrainedBCM(load_bcm(path, expected_config=expected, **overrides), spec)


def resolve_bcm(
    bcm: BatchCorrelationModule | str | os.PathLike[str] | None = None, **overrides: Any
) -> PretrainedBCM:
    """:func:`load_pretrained`, except that a module is passed through (the overrides applied
    in place, no zoo entry): for constructors that take "a BCM, a zoo name, a path or None"."""
    if not isinstance(bcm, BatchCorrelationModule):
        if bcm is not None and not isinstance(bcm, (str, os.PathLike)):
            raise TypeError(
                "Expected `bcm` to be a BatchCorrelationModule, a zoo name, a path or None, got "
                f"{type(bcm).__name__}"
            )
        return load_pretrained(bcm, **overrides)
    bad = sorted(set(overrides) - set(OVERRIDABLE))
    if bad:
        raise ValueError(f"Expected overrides among {list(OVERRIDABLE)}, got {bad}")
    if "work_size" in overrides:
        bcm.set_work_size(overrides["work_size"])
    return PretrainedBCM(bcm, None)
