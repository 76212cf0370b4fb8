"""Names shared by the zoo tests (the tiny weights file's name, the cache listing)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

from erl_losses.zoo import Manifest, WeightSpec, Zoo
from tests._helpers import TINY_SAVED_BCM

#: File name of the tiny zoo-format BCM of the ``weights`` fixture (tests/zoo/conftest.py).
FILE = "tiny-v1.safetensors"


def _cache_files(zoo: Zoo) -> list[str]:
    return sorted(p.name for p in zoo.cache_dir.iterdir()) if zoo.cache_dir.exists() else []


def tiny_zoo(tmp_path: Path, weights: bytes, urls: list[str], **kw: object) -> Zoo:
    """A zoo of one entry ``tiny`` (the ``weights`` fixture's bytes) with its package folder and
    cache under ``tmp_path``; online and without a progress bar unless ``kw`` says otherwise."""
    spec = WeightSpec(
        name="tiny", version="1", file=FILE, sha256=hashlib.sha256(weights).hexdigest(),
        size=len(weights), urls=tuple(urls), license="MIT", config=TINY_SAVED_BCM,
    )  # fmt: skip
    (tmp_path / "pkg").mkdir(parents=True, exist_ok=True)
    kw.setdefault("offline", False)
    kw.setdefault("progress", False)
    return Zoo(
        Manifest(specs=(spec,), default="tiny"),
        package_dir=tmp_path / "pkg",
        home=tmp_path / "home",
        **kw,  # type: ignore[arg-type]
    )


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 answering with ``handler``; ``url`` is its root."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
