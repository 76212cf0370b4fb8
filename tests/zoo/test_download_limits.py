"""Download limits: a byte cap at the manifest's size, an overall deadline, no process-wide state,
nothing left in the cache on any exit (Ctrl-C, SIGTERM, malformed URL), and ``force=True``."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from erl_losses.zoo import WeightsUnavailableError
from tests.zoo._helpers import FILE, LocalServer, _cache_files, tiny_zoo


class _Trickle(LocalServer):
    """A local HTTP server: ``/flood`` sends ``flood_bytes`` bytes (no Content-Length),
    ``/slow`` sends one byte every ``interval`` seconds for ever, ``/good`` sends ``body``."""

    def __init__(self, body: bytes, interval: float = 0.2, flood_bytes: int = 60 << 20) -> None:
        self.sent = 0
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                self.send_response(200)
                if self.path.startswith("/good"):
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.end_headers()
                try:
                    if self.path.startswith("/flood"):
                        chunk = b"\0" * (1 << 16)
                        while server.sent < flood_bytes:
                            self.wfile.write(chunk)
                            server.sent += len(chunk)
                    else:
                        for _ in range(10_000):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                            time.sleep(interval)
                except OSError:
                    pass  # the client went away: the point of the test

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)


@pytest.fixture
def trickle(weights: bytes) -> Iterator[_Trickle]:
    server = _Trickle(weights)
    yield server
    server.close()


def test_more_bytes_than_the_manifest_size_are_never_written(tmp_path, weights, trickle):
    zoo = tiny_zoo(tmp_path, weights, [f"{trickle.url}/flood/{FILE}"])
    with pytest.raises(WeightsUnavailableError, match="got more"):
        zoo.fetch("tiny")
    assert _cache_files(zoo) == []
    assert trickle.sent < 16 << 20  # stopped long before the 60 MB the server offered


def test_an_endless_file_url_stops_at_the_cap(tmp_path, weights):
    zoo = tiny_zoo(tmp_path, weights, ["file:///dev/zero"], deadline=120)
    with pytest.raises(WeightsUnavailableError, match="got more"):
        zoo.fetch("tiny")
    assert _cache_files(zoo) == []


def test_a_trickling_server_meets_the_overall_deadline(tmp_path, weights, trickle):
    # one byte every 0.2 s never stalls a read for `timeout`, yet the whole attempt must end
    zoo = tiny_zoo(tmp_path, weights, [f"{trickle.url}/slow/{FILE}"], timeout=5.0, deadline=20)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="longer than 20 s"):
        zoo.fetch("tiny")
    assert time.monotonic() - start < 45
    assert _cache_files(zoo) == []


def test_downloads_leave_the_default_socket_timeout_alone(tmp_path, weights, trickle):
    seen: list[float | None] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(socket.getdefaulttimeout())
            time.sleep(0.01)

    assert socket.getdefaulttimeout() is None
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        good = tiny_zoo(tmp_path / "a", weights, [f"{trickle.url}/good/{FILE}"])
        assert good.fetch("tiny").read_bytes() == weights
        failing = tiny_zoo(tmp_path / "b", weights, [f"{trickle.url}/flood/{FILE}"])
        with pytest.raises(WeightsUnavailableError):
            failing.fetch("tiny")
    finally:
        stop.set()
        watcher.join()
    assert socket.getdefaulttimeout() is None
    assert set(seen) == {None}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_during_a_download_leaves_nothing(tmp_path, weights, trickle):
    zoo = tiny_zoo(tmp_path, weights, [f"{trickle.url}/slow/{FILE}"], deadline=120)

    def ctrl_c() -> None:  # a real SIGINT to the main thread, as a terminal sends it
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]

    # Python's own Ctrl-C handler, as in a user's interpreter (pytest-xdist workers ignore SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(3.0, ctrl_c)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            zoo.fetch("tiny")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert _cache_files(zoo) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_during_a_download_leaves_nothing(tmp_path, weights, trickle):
    zoo = tiny_zoo(tmp_path, weights, [f"{trickle.url}/slow/{FILE}"])
    script = textwrap.dedent(
        f"""
        import hashlib
        from erl_losses.zoo import Manifest, WeightSpec, Zoo
        spec = WeightSpec(name="tiny", version="1", file={FILE!r}, sha256={zoo.spec("tiny").sha256!r},
                          size={len(weights)}, urls=({trickle.url + "/slow/" + FILE!r},),
                          license="MIT", config={{}})
        Zoo(Manifest(specs=(spec,)), package_dir={str(tmp_path / "pkg")!r},
            home={str(zoo.home)!r}, offline=False, progress=False).fetch("tiny")
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 120
        while len(trickle.requests) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)  # the transfer has started: a work folder is in the cache
        assert _cache_files(zoo), "the download never started"
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _cache_files(zoo) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.kill()
    assert _cache_files(zoo) == []


@pytest.mark.parametrize("url", ["http://[::1/x", "http://127.0.0.1:99999/x", "ftp:/x"])
def test_a_malformed_url_leaves_nothing(tmp_path, weights, monkeypatch, url):
    monkeypatch.setenv("ERL_LOSSES_MIRROR", url)
    zoo = tiny_zoo(tmp_path, weights, [])
    with pytest.raises(WeightsUnavailableError):
        zoo.fetch("tiny")
    assert _cache_files(zoo) == []


def test_force_downloads_even_when_a_file_ships(tmp_path, weights, trickle):
    zoo = tiny_zoo(tmp_path, weights, [f"{trickle.url}/good/{FILE}"])
    (zoo.package_dir / FILE).write_bytes(weights)
    assert zoo.fetch("tiny") == zoo.package_dir / FILE and trickle.requests == []
    assert zoo.fetch("tiny", force=True) == zoo.cache_dir / FILE
    assert trickle.requests == [f"/good/{FILE}"]
