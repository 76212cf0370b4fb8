"""One transfer, run in a child process by :mod:`erl_losses.zoo.sources`.

``python -m erl_losses.zoo._child JOB`` (``JOB``: JSON) calls the library that does the work,
``torch.hub.download_url_to_file`` with the full sha256 as ``hash_prefix`` or
``huggingface_hub.hf_hub_download``, and prints one JSON line: ``{"path": ...}`` or
``{"error": ..., "kind": "download" | "checksum"}``.

A child process is what lets a download have a byte cap, a stall timeout and an overall
deadline without touching the caller's process: neither library takes a deadline or a cap, and
their only knobs are process-wide (``socket.setdefaulttimeout``), which here belong to the child
alone. The child caps every file it writes at the expected size (``RLIMIT_FSIZE``), removes its
work folder on SIGTERM and exits when its parent dies (its parent cannot clean up after a signal).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from typing import Any


def _cap_file_size(limit: int) -> None:
    """Makes a write past ``limit`` bytes fail with EFBIG (Python ignores SIGXFSZ)."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


class _Capped:
    """A response that fails past ``cap`` bytes, or when it ends before its Content-Length
    (``http.client`` returns a short body without complaint when the connection drops)."""

    def __init__(self, response: Any, cap: int) -> None:
        self._response, self._cap, self._count = response, cap, 0
        length = response.headers.get("Content-Length") if response.headers else None
        self._declared = int(length) if length and length.isdigit() else None

    def __enter__(self) -> _Capped:
        return self

    def __exit__(self, *exc: object) -> None:
        self._response.close()

    def info(self) -> Any:
        return self._response.info()

    def read(self, amount: int = -1) -> bytes:
        data = self._response.read(min(amount, self._cap + 1 - self._count))
        self._count += len(data)
        if self._count > self._cap:
            raise _Failure(f"expected {self._cap} bytes, got more (wrong file)")
        if not data and self._declared is not None and self._count < self._declared:
            raise _Failure(
                f"interrupted: expected {self._declared} bytes, got {self._count} (connection "
                "closed early)"
            )
        return data


def _exit_with_parent(work: str | None) -> None:
    """Removes ``work`` and exits as soon as the parent process is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.1)
        if work:
            shutil.rmtree(work, ignore_errors=True)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def _from_url(job: dict[str, Any]) -> str:
    import urllib.error
    import urllib.request

    import torch.hub

    def capped_urlopen(request: Any) -> _Capped:
        return _Capped(urllib.request.urlopen(request, timeout=job["stall"]), job["size"])

    # this process only: torch.hub opens the URL through its module's `urlopen`
    torch.hub.urlopen = capped_urlopen  # type: ignore[attr-defined]
    _cap_file_size(job["size"])
    try:
        torch.hub.download_url_to_file(
            job["url"], job["dest"], hash_prefix=job["sha256"], progress=job["progress"]
        )
    except _Failure:
        raise
    except urllib.error.HTTPError as err:
        raise _Failure(f"HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise _Failure(f"cannot connect: {err.reason}") from err
    except OSError as err:
        if err.errno == 27:  # EFBIG: the cap
            raise _Failure(f"expected {job['size']} bytes, got more (wrong file)") from err
        raise _Failure(f"interrupted: {type(err).__name__}: {err}") from err
    except RuntimeError as err:
        if "invalid hash value" in str(err):
            raise _Failure(
                f"sha256 checksum mismatch: expected {job['sha256']} (discarded)", "checksum"
            ) from err
        raise _Failure(f"interrupted: {type(err).__name__}: {err}") from err
    except Exception as err:  # http.client.IncompleteRead, malformed URLs
        raise _Failure(f"interrupted: {type(err).__name__}: {err}") from err
    os.replace(job["dest"], job["final"])  # same folder: atomic, and done before the parent could die
    return job["final"]


class _SilentBar:
    """A tqdm stand-in that draws nothing (huggingface_hub takes a bar class, not a flag)."""

    def __new__(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        from tqdm.auto import tqdm

        kwargs["disable"] = True
        return tqdm(*args, **kwargs)


def _from_hub(job: dict[str, Any]) -> str:
    import inspect

    from huggingface_hub import hf_hub_download

    options: dict[str, Any] = {}
    if not job["progress"] and "tqdm_class" in inspect.signature(hf_hub_download).parameters:
        options["tqdm_class"] = _SilentBar  # older huggingface_hub releases lack the argument
    _check_hub_size(job)
    # the Hub cache also writes refs and locks: never cap below a small floor
    _cap_file_size(max(job["size"], 1 << 16))
    try:
        return str(
            hf_hub_download(
                job["repo_id"],
                job["filename"],
                revision=job["revision"],
                endpoint=job["endpoint"],
                force_download=job["force"],
                etag_timeout=job["stall"],
                **options,
            )
        )
    except Exception as err:  # huggingface_hub's errors: HTTP, offline, not found, network
        raise _Failure(_hub_error(err)) from err


def _check_hub_size(job: dict[str, Any]) -> None:
    """Refuses a Hub file whose announced size is not the manifest's before any byte moves."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(job["repo_id"], job["filename"], revision=job["revision"], endpoint=job["endpoint"])
    try:
        meta = get_hf_file_metadata(url, timeout=job["stall"])
    except Exception as err:
        raise _Failure(_hub_error(err)) from err
    if meta.size is not None and meta.size != job["size"]:
        raise _Failure(f"expected {job['size']} bytes, the Hub announces {meta.size} (wrong file)")


def _hub_error(err: Exception) -> str:
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    head = f"HTTP {status}: " if status else ""
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{head}{type(err).__name__}: {first_line}"


class _Failure(Exception):
    def __init__(self, message: str, kind: str = "download") -> None:
        super().__init__(message)
        self.kind = kind


def main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    work = job.get("work")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: the finally below runs
    _exit_with_parent(work)
    try:
        answer: dict[str, Any] = {"path": _from_hub(job) if job["kind"] == "hub" else _from_url(job)}
    except _Failure as err:
        answer = {"error": str(err), "kind": err.kind}
    finally:
        if work:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
