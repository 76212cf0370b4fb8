"""What the zoo accepts: strict names for everything that becomes a path, a URL or a card line,
and the one size + sha256 check of a weights file.

Every name, revision, file name and path read from a manifest, a model card or the command line
goes through these patterns before it is used: no ``..``, no absolute path, no separator in a
revision, no ``@`` (which splits ``hf://`` sources), no whitespace or control character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from erl_losses._files import file_sha256
from erl_losses.zoo.errors import ChecksumError

if TYPE_CHECKING:
    from erl_losses.zoo.specs import WeightSpec

__all__ = [
    "HUB_SCHEME",
    "HubFile",
    "check_card_path",
    "check_file",
    "check_hub_filename",
    "check_license",
    "check_repo_id",
    "check_revision",
    "check_version",
    "is_hub_url",
    "parse_hub_url",
]

# One path segment: starts with a letter or digit (so never '.', '..' or a hidden name).
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_SEGMENT_RE = re.compile(rf"^{_SEGMENT}$")
_REPO_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_LICENSE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,63}$")

HUB_SCHEME = "hf://"

#: The largest ``size`` a manifest may declare (1 TiB): far above any BCM, small enough for floats.
MAX_SIZE = 1 << 40


def _segment(value: object, what: str, limit: int = 255) -> str:
    if not isinstance(value, str) or len(value) > limit or not _SEGMENT_RE.match(value):
        raise ValueError(
            f"Expected {what} of letters, digits, '.', '_' or '-' starting with a letter or "
            f"digit, got {value!r}"
        )
    if ".." in value:
        raise ValueError(f"Expected {what} without '..', got {value!r}")
    return value


def _relative_path(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"Expected {what} to be a relative path, got {value!r}")
    for part in value.split("/"):
        _segment(part, f"{what} (a relative path of plain names)")
    return value


def check_repo_id(repo: object) -> str:
    """``OWNER/REPO`` as the Hub names it (each part letters, digits, ``.``, ``_``, ``-``)."""
    parts = repo.split("/") if isinstance(repo, str) else []
    if len(parts) != 2 or not all(_REPO_PART.match(p) and ".." not in p for p in parts):
        raise ValueError(f"Expected `repo` as OWNER/REPO (letters, digits, '.', '_', '-'), got {repo!r}")
    return repo  # type: ignore[return-value]


def check_revision(revision: object) -> str:
    """A branch, tag or commit name without separators (it becomes a file in the Hub cache)."""
    return _segment(revision, "`revision`", limit=128)


def check_hub_filename(filename: object) -> str:
    """A file inside a Hub repository: plain names joined by ``/``."""
    return _relative_path(filename, "the Hub file name")


def check_card_path(card: object) -> str:
    """A model card: a relative ``.md`` path inside the zoo folder."""
    path = _relative_path(card, "`card`")
    if not path.endswith(".md"):
        raise ValueError(f"Expected `card` to be a '.md' file, got {card!r}")
    return path


def check_license(license: object) -> str:
    """A license identifier (``MIT``, ``CC-BY-4.0``, ...): one word, it goes into a YAML header."""
    if not isinstance(license, str) or not _LICENSE.match(license):
        raise ValueError(
            f"Expected `license` as one identifier such as 'MIT' or 'CC-BY-4.0', got {license!r}"
        )
    return license


def check_version(version: object) -> str:
    """A version label (``1``, ``2.0``, ``v3``)."""
    return _segment(str(version) if isinstance(version, int) else version, "`version`", 64)


def check_file(path: Path, spec: WeightSpec, where: str = "", remedy: str = "") -> str:
    """Returns the sha256 of ``path`` if it has ``spec``'s size and sha256, else raises
    :class:`ChecksumError` (``where``: ``"shipped"``, ``"cached"``, ...; ``remedy``: what to do)."""
    size = path.stat().st_size
    digest = file_sha256(path)
    if size != spec.size or digest != spec.sha256:
        place = f"the {where} file" if where else "the file"
        raise ChecksumError(
            f"sha256 checksum mismatch for {place} {str(path)!r} of zoo entry {spec.name!r}: "
            f"expected sha256 {spec.sha256} ({spec.size} bytes), got {digest} ({size} bytes). "
            f"It was NOT loaded{'; ' + remedy if remedy else '.'}"
        )
    return digest


@dataclass(frozen=True)
class HubFile:
    """A file of a Hugging Face Hub model repository: ``hf://OWNER/REPO/FILE@REVISION``.

    Every part is checked on construction: the revision and file name become paths in the Hub
    cache, so ``..``, absolute paths and a separator in the revision are refused.
    """

    repo_id: str
    filename: str
    revision: str = "main"

    def __post_init__(self) -> None:
        check_repo_id(self.repo_id)
        check_hub_filename(self.filename)
        check_revision(self.revision)

    @property
    def url(self) -> str:
        return f"{HUB_SCHEME}{self.repo_id}/{self.filename}@{self.revision}"


def is_hub_url(url: str) -> bool:
    return url.startswith(HUB_SCHEME)


def parse_hub_url(url: str) -> HubFile:
    """Splits ``hf://OWNER/REPO/FILE[@REVISION]`` (``FILE`` may hold sub-folders)."""
    body = url[len(HUB_SCHEME) :] if isinstance(url, str) and is_hub_url(url) else ""
    path, at, revision = body.partition("@")
    parts = path.split("/")
    try:
        if len(parts) < 3 or (at and not revision):
            raise ValueError("malformed")
        return HubFile("/".join(parts[:2]), "/".join(parts[2:]), revision or "main")
    except ValueError as err:
        raise ValueError(
            f"Expected a source like 'hf://OWNER/REPO/FILE@REVISION' of plain names, got {url!r}"
        ) from err
