"""Finding, downloading, verifying and loading zoo weights.

Resolution order for a zoo name: the file shipped inside the package -> the cache
(``ERL_LOSSES_HOME``, default ``torch.hub.get_dir()/erl-losses``; files
live in its ``zoo/`` folder) -> a download from ``ERL_LOSSES_MIRROR`` (base URLs, space-separated)
and the manifest's URLs. Every file is sha256-verified before use; a download goes to a temporary
file in the cache folder and is renamed into place (``os.replace``, atomic) only once its size and
sha256 match, so an interrupted or corrupted download leaves nothing behind. ``ERL_LOSSES_OFFLINE=1``
forbids the network. Weights are read with ``safetensors`` only (nothing is ever unpickled) and
loaded with ``strict=True``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from erl_losses._files import file_sha256
from erl_losses._flags import env_flag
from erl_losses.zoo import sources
from erl_losses.zoo.checks import check_file
from erl_losses.zoo.errors import (
    ChecksumError,
    DownloadError,
    UnknownModelError,
    WeightsUnavailableError,
    ZooError,
)
from erl_losses.zoo.specs import MANIFEST, Manifest, WeightSpec, load_manifest

# The weights file itself (format, metadata, validation, loading) lives in
# erl_losses.modules.bcm_io; the zoo only turns a name into a verified path.

__all__ = [
    "ChecksumError",
    "DownloadError",
    "UnknownModelError",
    "Verification",
    "WeightsUnavailableError",
    "Zoo",
    "ZooError",
    "file_sha256",
    "home_dir",
    "is_offline",
]


def home_dir() -> Path:
    """The cache root: ``ERL_LOSSES_HOME``, else ``torch.hub.get_dir() / "erl-losses"``
    (``$TORCH_HOME/hub/erl-losses``, default ``~/.cache/torch/hub/erl-losses``), next to the
    weights of torchvision and timm; read at each call, so changing the environment takes effect.
    """
    env = os.environ.get("ERL_LOSSES_HOME")
    if env:
        return Path(env).expanduser()
    if "torch" in sys.modules:  # honours torch.hub.set_dir(), which needs torch imported
        from torch.hub import get_dir

        return Path(get_dir()) / "erl-losses"
    # torch.hub.get_dir()'s own rule, without importing torch (`erl zoo list` stays torch-free).
    cache = os.environ.get("XDG_CACHE_HOME", "~/.cache")
    torch_home = os.environ.get("TORCH_HOME", os.path.join(cache, "torch"))
    return Path(torch_home).expanduser() / "hub" / "erl-losses"


def is_offline() -> bool:
    """Whether ``ERL_LOSSES_OFFLINE`` forbids downloads (``1``, ``true``, ``yes`` or ``on``; any
    value other than these and ``0``, ``false``, ``no``, ``off`` is an error)."""
    return env_flag("ERL_LOSSES_OFFLINE")


def _mirrors() -> list[str]:
    return os.environ.get("ERL_LOSSES_MIRROR", "").split()


# ---------------------------------------------------------------------------------------------
# Verification report
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verification:
    """The outcome of :meth:`Zoo.verify` for one entry or path.

    Attributes:
        name: the zoo name (``None`` for a file that matches no entry).
        path: the file checked (``None`` if there is none locally).
        status: ``"ok"``, ``"checksum-mismatch"``, ``"missing"`` (not shipped, not cached),
            ``"unregistered"`` (a loadable BCM file whose sha256 is in no manifest entry) or
            ``"invalid"`` (not a loadable BCM file).
        ok: whether the file is usable as it is (``"ok"`` or ``"unregistered"``).
        message: details for people.
        sha256: the file's digest, if there is a file.
    """

    name: str | None
    path: Path | None
    status: str
    ok: bool
    message: str
    sha256: str | None = None


# ---------------------------------------------------------------------------------------------
# The zoo
# ---------------------------------------------------------------------------------------------
class Zoo:
    """A set of weight specs with a package folder and a cache folder.

    The module-level functions of :mod:`erl_losses.zoo` use the zoo of the shipped manifest;
    tests and mirrors can build their own.

    Args:
        manifest: the specs (default: the shipped ``manifest.json``).
        package_dir: where shipped files live (default: the zoo package folder).
        home: the cache root (default: :func:`home_dir`, read at each call).
        offline: forbid downloads (default: :func:`is_offline`, read at each call).
        timeout: seconds a download may stall before it fails.
        deadline: seconds a whole download attempt may take.
        progress: draw a tqdm bar while downloading (``None``: only on a terminal).
    """

    def __init__(
        self,
        manifest: Manifest | str | os.PathLike[str] | None = None,
        *,
        package_dir: str | os.PathLike[str] | None = None,
        home: str | os.PathLike[str] | None = None,
        offline: bool | None = None,
        timeout: float = 30.0,
        deadline: float = sources.DEFAULT_DEADLINE,
        progress: bool | None = None,
    ) -> None:
        if manifest is None or isinstance(manifest, (str, os.PathLike)):
            manifest = load_manifest(manifest or MANIFEST)
        self.manifest = manifest
        self._by_name = {s.name: s for s in manifest.specs}
        self.package_dir = Path(package_dir) if package_dir is not None else MANIFEST.parent
        self._home = Path(home) if home is not None else None
        self._offline = offline
        self.timeout = timeout
        self.deadline = deadline
        self.progress = progress

    # -- names ----------------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        """The cache root."""
        return self._home if self._home is not None else home_dir()

    @property
    def cache_dir(self) -> Path:
        """Where downloaded files live: ``home / "zoo"``."""
        return self.home / "zoo"

    @property
    def offline(self) -> bool:
        return self._offline if self._offline is not None else is_offline()

    def names(self) -> list[str]:
        """The known names, in manifest order."""
        return self.manifest.names()

    @property
    def default(self) -> str:
        """The name :meth:`resolve` uses for ``None``."""
        if self.manifest.default is None:
            raise WeightsUnavailableError("Expected the zoo manifest to name a default, got none")
        return self.manifest.default

    def spec(self, name: str) -> WeightSpec:
        """The spec of ``name``; an unknown name raises :class:`UnknownModelError`."""
        if not isinstance(name, str):
            raise TypeError(f"Expected `name` to be a str, got {type(name).__name__}")
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownModelError(
                f"Expected a zoo name among {self.names()}, got {name!r} "
                "(or pass a path to a '.safetensors' file)"
            ) from None

    # -- locating and fetching ------------------------------------------------------------------
    def shipped_path(self, spec: WeightSpec) -> Path:
        return self.package_dir / spec.file

    def cached_path(self, spec: WeightSpec) -> Path:
        return self.cache_dir / spec.file

    def locate(self, name: str) -> Path | None:
        """The local (shipped or cached) file of ``name`` without verifying it, or ``None``
        (an ``hf://`` source's file in the Hub cache counts only if it matches the manifest)."""
        spec = self.spec(name)
        for path in (self.shipped_path(spec), self.cached_path(spec)):
            if path.is_file():
                return path
        return self._in_hub_cache(spec)

    def _in_hub_cache(self, spec: WeightSpec) -> Path | None:
        hub_urls = (u for u in spec.urls if sources.is_hub_url(u))
        return next(filter(None, (sources.cached_hub_file(u, spec) for u in hub_urls)), None)

    def _where_to_put(self, spec: WeightSpec) -> str:
        return (
            f"put {spec.file} (sha256 {spec.sha256}, {spec.size} bytes) at "
            f"{str(self.cached_path(spec))!r} (the cache; set ERL_LOSSES_HOME to move it), or "
            "pass the file's path instead of the name"
        )

    def fetch(self, name: str | None = None, *, force: bool = False) -> Path:
        """The verified local file of ``name`` (``None``: the default), downloading if needed.

        Args:
            name: a zoo name.
            force: download again even if a shipped, cached or Hub-cached copy exists (an
                ``hf://`` source with ``force_download=True``).

        Raises:
            UnknownModelError: ``name`` is not in the manifest.
            ChecksumError: the shipped or cached file does not match the manifest's sha256.
            WeightsUnavailableError: no local file and offline, no URL, or every download failed.
        """
        spec = self.spec(self.default if name is None else name)
        found = None if force else self._local(spec)
        if found is not None:
            return found
        cached = self.cached_path(spec)
        if self.offline:
            raise WeightsUnavailableError(
                f"The weights of {spec.name!r} are not shipped or cached and ERL_LOSSES_OFFLINE "
                f"forbids downloading them: {self._where_to_put(spec)}."
            )
        urls = [f"{m.rstrip('/')}/{spec.file}" for m in _mirrors()] + list(spec.urls)
        if not urls:
            raise WeightsUnavailableError(
                f"The weights of {spec.name!r} are not shipped or cached and the manifest lists no "
                f"download URL (set ERL_LOSSES_MIRROR to a base URL): {self._where_to_put(spec)}."
            )
        failures = []
        for url in urls:
            try:
                return sources.download(
                    url, cached, spec, timeout=self.timeout, deadline=self.deadline,
                    progress=self.progress, force=force,
                )  # fmt: skip
            except (DownloadError, ChecksumError, ValueError) as err:
                failures.append(f"  {url}: {err}")
        raise WeightsUnavailableError(
            f"Could not download the weights of {spec.name!r}:\n" + "\n".join(failures) + "\n"
            f"Nothing was left in the cache; {self._where_to_put(spec)}."
        )

    def _local(self, spec: WeightSpec) -> Path | None:
        """The verified shipped, cached or Hub-cached file of ``spec``, or ``None``."""
        shipped = self.shipped_path(spec)
        if shipped.is_file():
            check_file(
                shipped, spec, "shipped",
                "reinstall erl-losses (pip install --force-reinstall erl-losses).",
            )  # fmt: skip
            return shipped
        cached = self.cached_path(spec)
        if cached.is_file():
            check_file(
                cached, spec, "cached",
                f"delete it or run `erl zoo fetch {spec.name} --force` to download it again.",
            )  # fmt: skip
            return cached
        return self._in_hub_cache(spec)

    # -- resolving ------------------------------------------------------------------------------
    def resolve(
        self, name_or_path: str | os.PathLike[str] | None = None
    ) -> tuple[Path, WeightSpec | None]:
        """A local weights file and its spec: for ``None`` (the default) or a zoo name the
        sha256-verified file (fetched if needed) and its entry; for a path the path and ``None``.

        Args:
            name_or_path: ``None``, a zoo name, or a path to a safetensors file (an
                ``os.PathLike``, or a string ending in ``.safetensors`` or containing a path
                separator).

        Raises:
            TypeError: ``name_or_path`` is none of the above.
            UnknownModelError, ChecksumError, WeightsUnavailableError: see :meth:`fetch`.
        """
        if _is_path(name_or_path):
            return Path(name_or_path), None  # type: ignore[arg-type]
        spec = self.spec(self.default if name_or_path is None else name_or_path)  # type: ignore[arg-type]
        return self.fetch(spec.name), spec

    # -- verification ---------------------------------------------------------------------------
    def verify(
        self,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        load_check: Callable[[Path], str] | None = None,
    ) -> list[Verification]:
        """Checks local files against the manifest without downloading anything.

        Args:
            name_or_path: ``None`` checks every entry; a name checks that entry's local file; a
                path checks that file: its sha256 is looked up in the manifest.
            load_check: for a path that matches no entry: loads it and describes it, raising
                ``ValueError`` or ``FileNotFoundError`` if it is not a usable BCM file (``erl zoo
                verify`` passes one built on :mod:`erl_losses.modules.bcm_io`; the zoo itself
                builds no modules). Without it such a file counts as ``unregistered``, unloaded.

        Returns:
            One :class:`Verification` per entry or file.
        """
        if name_or_path is None:
            return [self._verify_name(name) for name in self.names()]
        if _is_path(name_or_path):
            return [self._verify_path(Path(name_or_path), load_check)]  # type: ignore[arg-type]
        return [self._verify_name(name_or_path)]  # type: ignore[arg-type]

    def _verify_name(self, name: str) -> Verification:
        spec = self.spec(name)
        path = self.locate(name)
        if path is None:
            return Verification(
                name, None, "missing", False, f"not shipped or cached; {self._where_to_put(spec)}"
            )
        try:
            digest = check_file(path, spec)
        except ChecksumError as err:
            return Verification(
                name, path, "checksum-mismatch", False, str(err), file_sha256(path)
            )  # fmt: skip
        where = "shipped" if path == self.shipped_path(spec) else "cached"
        return Verification(name, path, "ok", True, f"{where}, sha256 ok", digest)

    def _verify_path(self, path: Path, load_check: Callable[[Path], str] | None) -> Verification:
        """A file is ``ok`` if its sha256 is a manifest entry's; else, with ``load_check``, it
        must pass it to count as ``unregistered`` rather than ``invalid``."""
        if not path.is_file():
            return Verification(None, path, "missing", False, "no such file")
        digest = file_sha256(path)
        for spec in self.manifest.specs:
            if spec.sha256 == digest:
                return Verification(
                    spec.name, path, "ok", True,
                    f"sha256 matches the registered entry {spec.name!r}", digest,
                )  # fmt: skip
        same_file = [s for s in self.manifest.specs if s.file == path.name]
        if same_file:
            spec = same_file[0]
            return Verification(
                spec.name, path, "checksum-mismatch", False,
                f"sha256 checksum mismatch with zoo entry {spec.name!r}: expected {spec.sha256}, "
                f"got {digest}", digest,
            )  # fmt: skip
        if load_check is None:
            return Verification(
                None, path, "unregistered", True,
                "matches no registered entry (not loaded)", digest,
            )  # fmt: skip
        try:
            description = load_check(path)
        except (ValueError, FileNotFoundError) as err:
            return Verification(
                None, path, "invalid", False,
                f"matches no registered entry and is not loadable: {err}", digest,
            )  # fmt: skip
        return Verification(
            None, path, "unregistered", True,
            f"matches no registered entry; {description}", digest,
        )  # fmt: skip


def _is_path(value: object) -> bool:
    if isinstance(value, os.PathLike):
        return True
    if isinstance(value, str):
        return value.endswith(".safetensors") or os.sep in value or "/" in value
    if value is not None:
        raise TypeError(
            f"Expected `name_or_path` to be None, a zoo name or a path, got {type(value).__name__}"
        )
    return False
