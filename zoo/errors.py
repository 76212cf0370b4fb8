"""The zoo's errors, in their own module so that every zoo module can raise them."""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "DownloadError",
    "PublishError",
    "UnknownModelError",
    "WeightsUnavailableError",
    "ZooError",
]


class ZooError(Exception):
    """Base class of the zoo's errors."""


class UnknownModelError(ZooError, ValueError):
    """A name that is not in the manifest; the message lists the known names."""


class ChecksumError(ZooError, ValueError):
    """A file whose sha256 (or size) differs from the manifest's; it is never loaded."""


class WeightsUnavailableError(ZooError, FileNotFoundError):
    """The weights are neither shipped nor cached and cannot be downloaded (offline, failed)."""


class DownloadError(ZooError, OSError):
    """One download attempt failed (the temporary file is already removed)."""


class PublishError(ZooError, OSError):
    """Creating or uploading a Hub repository failed (network, credentials, permissions)."""
