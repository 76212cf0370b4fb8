"""Where zoo weights come from: the Hugging Face Hub or plain HTTP(S), always sha256-verified.

Two kinds of source URL may appear in a manifest entry's ``urls`` (or ``ERL_LOSSES_MIRROR``):

- ``hf://OWNER/REPO/FILE@REVISION`` (``@REVISION`` optional, default ``main``; pin a commit for
  reproducible weights): fetched with ``huggingface_hub.hf_hub_download`` (the ``hub`` extra), so
  the Hub's cache (``HF_HOME``/``HF_HUB_CACHE``), ``HF_ENDPOINT``, ``HF_TOKEN`` and
  ``HF_HUB_OFFLINE`` behave as users of timm or transformers expect: with ``HF_HUB_OFFLINE=1`` a
  file already in the Hub's cache is used and nothing else is requested.
- ``https://...``, ``http://...``, ``file://...``: fetched with
  ``torch.hub.download_url_to_file``.

Either way the bytes are checked against the manifest's size and sha256 AFTER the transfer, in a
temporary file in the destination folder that is renamed into place (``os.replace``, atomic) only
when they match; any failure (HTTP error, refused or cut connection, wrong bytes, Ctrl-C) removes
it, so the zoo cache never holds a partial or wrong file.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from erl_losses._extras import install_hint
from erl_losses._files import atomic_path, file_sha256
from erl_losses.zoo.specs import WeightSpec
from erl_losses.zoo.store import ChecksumError, DownloadError

__all__ = ["HubFile", "download", "hub_offline", "is_hub_url", "parse_hub_url"]

HUB_SCHEME = "hf://"


@dataclass(frozen=True)
class HubFile:
    """A file of a Hugging Face Hub model repository: ``hf://OWNER/REPO/FILE@REVISION``."""

    repo_id: str
    filename: str
    revision: str = "main"

    @property
    def url(self) -> str:
        return f"{HUB_SCHEME}{self.repo_id}/{self.filename}@{self.revision}"


def is_hub_url(url: str) -> bool:
    return url.startswith(HUB_SCHEME)


def parse_hub_url(url: str) -> HubFile:
    """Splits ``hf://OWNER/REPO/FILE[@REVISION]`` (``FILE`` may hold sub-folders)."""
    body = url[len(HUB_SCHEME) :] if is_hub_url(url) else ""
    path, _, revision = body.partition("@")
    parts = path.split("/")
    if len(parts) < 3 or not all(parts) or (_ and not revision):
        raise ValueError(f"Expected a source like 'hf://OWNER/REPO/FILE@REVISION', got {url!r}")
    return HubFile("/".join(parts[:2]), "/".join(parts[2:]), revision or "main")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set (read at each call, unlike huggingface_hub's constant)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download(
    url: str, dest: Path, spec: WeightSpec, *, timeout: float = 30.0, progress: bool | None = None
) -> None:
    """Fetches ``url`` and places its bytes at ``dest`` only if they match ``spec``.

    Args:
        url: an ``hf://`` source or an ``http(s)://``/``file://`` URL.
        dest: the final path (its folder is created).
        spec: the manifest entry whose ``size`` and ``sha256`` the bytes must have.
        timeout: seconds a connection may stall before the attempt fails.
        progress: draw a progress bar (``None``: only when stderr is a terminal).

    Raises:
        DownloadError: the transfer failed (missing hub extra, HTTP error, refused or cut
            connection, too many or too few bytes); nothing is left behind.
        ChecksumError: the bytes arrived but their sha256 differs (discarded).
    """
    show = sys.stderr.isatty() if progress is None else progress
    with atomic_path(dest) as tmp:
        if not is_hub_url(url):
            _from_url(url, tmp, timeout=timeout, progress=show)
            _verify(tmp, spec, url)
        else:
            cached = _from_hub(parse_hub_url(url), tmp, timeout=timeout, progress=show)
            try:
                _verify(tmp, spec, url)
            except (DownloadError, ChecksumError):
                _forget_hub_copy(cached)
                raise


def _verify(path: Path, spec: WeightSpec, url: str) -> None:
    """Raises unless ``path`` holds exactly ``spec``'s bytes (synced to disk first)."""
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())
    size = path.stat().st_size
    if size > spec.size:
        raise DownloadError(f"expected {spec.size} bytes, got more ({size}: wrong file at {url})")
    if size < spec.size:
        raise DownloadError(
            f"interrupted: expected {spec.size} bytes, got {size} (connection closed early)"
        )
    digest = file_sha256(path)
    if digest != spec.sha256:
        raise ChecksumError(
            f"sha256 checksum mismatch of the downloaded {spec.file}: expected {spec.sha256}, "
            f"got {digest} (discarded)"
        )


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # torch.hub.download_url_to_file has no timeout argument; its urlopen uses the default.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _from_url(url: str, tmp: Path, *, timeout: float, progress: bool) -> None:
    import urllib.error

    from torch.hub import download_url_to_file

    try:
        with _socket_timeout(timeout):
            download_url_to_file(url, str(tmp), progress=progress)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise DownloadError(f"cannot connect: {err.reason}") from err
    except Exception as err:  # http.client.IncompleteRead, socket errors, timeouts
        raise DownloadError(f"interrupted: {type(err).__name__}: {err}") from err


class _SilentBar:
    """A tqdm stand-in that draws nothing (huggingface_hub takes a bar class, not a flag)."""

    def __new__(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        from tqdm.auto import tqdm

        kwargs["disable"] = True
        return tqdm(*args, **kwargs)


def _from_hub(source: HubFile, tmp: Path, *, timeout: float, progress: bool) -> Path:
    """Copies the Hub-cache file of ``source`` (downloading it if needed) to ``tmp``; returns
    the Hub-cache path."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as err:
        raise DownloadError(
            f"{source.url} needs the optional package 'huggingface_hub': {install_hint('hub')}"
        ) from err
    options: dict[str, object] = {}
    if not progress and "tqdm_class" in inspect.signature(hf_hub_download).parameters:
        options["tqdm_class"] = _SilentBar  # older huggingface_hub releases lack the argument
    try:
        cached = hf_hub_download(
            source.repo_id,
            source.filename,
            revision=source.revision,
            endpoint=os.environ.get("HF_ENDPOINT") or None,
            local_files_only=hub_offline(),
            etag_timeout=timeout,
            **options,
        )
    except Exception as err:  # huggingface_hub's errors: HTTP, offline, not found, network
        raise DownloadError(_hub_error(err)) from err
    shutil.copyfile(cached, tmp)
    return Path(cached)


def _forget_hub_copy(cached: Path) -> None:
    """Removes a Hub-cache file whose bytes failed verification (the snapshot link and its
    blob), so the next attempt downloads it again instead of serving the same wrong bytes."""
    blob = cached.resolve()
    for path in (cached, blob):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _hub_error(err: Exception) -> str:
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    head = f"HTTP {status}: " if status else ""
    offline = (
        " (HF_HUB_OFFLINE is set and the file is not in the Hub cache)" if hub_offline() else ""
    )
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{head}{type(err).__name__}: {first_line}{offline}"
