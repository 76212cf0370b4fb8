"""Where zoo weights come from: the Hugging Face Hub or plain HTTP(S), always sha256-verified.

Two kinds of source URL may appear in a manifest entry's ``urls`` (or ``ERL_LOSSES_MIRROR``):

- ``hf://OWNER/REPO/FILE@REVISION`` (``@REVISION`` optional, default ``main``; pin a commit for
  reproducible weights): fetched with ``huggingface_hub.hf_hub_download`` (the ``hub`` extra) and
  used in place from the Hub's cache, as timm does, so ``HF_HOME``/``HF_HUB_CACHE``,
  ``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE`` behave as users of timm or transformers
  expect. A cached copy whose bytes differ from the manifest is fetched again with
  ``force_download=True``; the Hub cache's files are never deleted (other tools share them).
- ``https://...``, ``http://...``, ``file://...``: fetched with
  ``torch.hub.download_url_to_file`` and the full sha256 as ``hash_prefix``, into a private work
  folder inside the zoo cache, then renamed into place (``os.replace``, atomic).

Every transfer runs in a child process (:mod:`erl_losses.zoo._child`) so that it has a byte cap
(the manifest's size), a stall timeout and an overall deadline without changing anything in the
caller's process (no ``socket.setdefaulttimeout``, no signal handler). Any failure (HTTP error,
refused or cut connection, wrong or too many bytes, deadline, Ctrl-C, SIGTERM) removes the work
folder, so the zoo cache never holds a partial or wrong file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from erl_losses._extras import install_hint
from erl_losses._flags import env_flag
from erl_losses.zoo.checks import HubFile, check_file, is_hub_url, parse_hub_url
from erl_losses.zoo.errors import ChecksumError, DownloadError
from erl_losses.zoo.specs import WeightSpec

__all__ = ["HubFile", "cached_hub_file", "download", "hub_offline", "is_hub_url", "parse_hub_url"]

#: Seconds a whole download may take by default (a 5 MB BCM needs well under one).
DEFAULT_DEADLINE = 600.0


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set (read at each call, unlike huggingface_hub's constant)."""
    return env_flag("HF_HUB_OFFLINE")


def cached_hub_file(url: str, spec: WeightSpec) -> Path | None:
    """The Hub-cache file of the ``hf://`` source ``url`` if it is there and matches ``spec``
    (no network); ``None`` otherwise or without huggingface_hub."""
    found = _in_hub_cache(parse_hub_url(url))
    try:
        return found if found is not None and check_file(found, spec) else None
    except (ChecksumError, OSError):
        return None


def _in_hub_cache(source: HubFile) -> Path | None:
    """The Hub-cache path of ``source``, unverified (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(source.repo_id, source.filename, revision=source.revision)
    return Path(found) if isinstance(found, str) else None


def download(
    url: str,
    dest: Path,
    spec: WeightSpec,
    *,
    timeout: float = 30.0,
    deadline: float = DEFAULT_DEADLINE,
    progress: bool | None = None,
    force: bool = False,
) -> Path:
    """Fetches ``url`` and returns a local file that holds exactly ``spec``'s bytes.

    Args:
        url: an ``hf://`` source or an ``http(s)://``/``file://`` URL.
        dest: where a plain URL's file goes (its folder is created); ``hf://`` files stay in the
            Hub cache and their path there is returned.
        spec: the manifest entry whose ``size`` and ``sha256`` the bytes must have.
        timeout: seconds a connection may stall before the attempt fails.
        deadline: seconds the whole attempt may take.
        progress: draw a progress bar (``None``: only when stderr is a terminal).
        force: download an ``hf://`` file again (``force_download``) even if the Hub cache
            holds a matching copy.

    Raises:
        DownloadError: the transfer failed (missing hub extra, HTTP error, refused or cut
            connection, more bytes than ``spec.size``, deadline); nothing is left behind.
        ChecksumError: the bytes arrived but their sha256 differs (discarded, or left in the
            Hub cache, which is not ours to delete from).
    """
    show = sys.stderr.isatty() if progress is None else progress
    job: dict[str, Any] = {
        "sha256": spec.sha256, "size": spec.size, "stall": timeout, "progress": show,
    }  # fmt: skip
    if is_hub_url(url):
        return _from_hub(parse_hub_url(url), spec, job, deadline, force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".download", dir=dest.parent))
    job.update(kind="url", url=url, dest=str(work / dest.name), final=str(dest), work=str(work))
    try:
        path = Path(_run(job, deadline))
        try:
            check_file(path, spec)
        except ChecksumError:
            path.unlink()  # written by this call: never served
            raise
        return path
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _from_hub(
    source: HubFile, spec: WeightSpec, job: dict[str, Any], deadline: float, force: bool
) -> Path:
    try:
        import huggingface_hub  # noqa: F401  (only whether it is installed)
    except ImportError as err:
        raise DownloadError(
            f"{source.url} needs the optional package 'huggingface_hub': {install_hint('hub')}"
        ) from err
    cached = None if force else cached_hub_file(source.url, spec)
    if cached is not None:
        return cached
    if hub_offline():
        raise DownloadError(
            f"{source.url}: not in the Hub cache with the manifest's sha256 (HF_HUB_OFFLINE is "
            "set and the file is not in the Hub cache)"
        )
    # a copy that is there but wrong is fetched again (force_download), never deleted
    job.update(
        kind="hub", repo_id=source.repo_id, filename=source.filename, revision=source.revision,
        endpoint=os.environ.get("HF_ENDPOINT") or None, force=force or _in_hub_cache(source) is not None,
    )  # fmt: skip
    path = Path(_run(job, deadline))
    check_file(path, spec, "downloaded Hub", "the Hub file differs from the manifest")
    return path


def _run(job: dict[str, Any], deadline: float) -> str:
    """Runs one transfer in a child process; returns the path it reports or raises."""
    command = [sys.executable, "-m", "erl_losses.zoo._child", json.dumps(job)]
    end = time.monotonic() + deadline
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        out, _ = child.communicate(timeout=max(end - time.monotonic(), 0.0))
    except subprocess.TimeoutExpired:
        _stop(child)
        raise DownloadError(f"interrupted: the download took longer than {deadline:g} s") from None
    except BaseException:  # Ctrl-C: stop the transfer before the caller's cleanup runs
        _stop(child)
        raise
    lines = out.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        answer = {}
    if "path" in answer:
        return str(answer["path"])
    error = ChecksumError if answer.get("kind") == "checksum" else DownloadError
    raise error(answer.get("error") or f"interrupted: the download process exited with {child.returncode}")


def _stop(child: subprocess.Popen[str]) -> None:
    """SIGTERM (the child removes its work folder), then SIGKILL if it lingers."""
    child.terminate()
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=10)
