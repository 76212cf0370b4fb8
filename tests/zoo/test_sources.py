"""Zoo sources: hf:// through huggingface_hub against a local Hub stand-in (HF_ENDPOINT), plain
HTTP through torch.hub, and the guarantees of both (verified bytes, nothing partial left)."""

from __future__ import annotations

import hashlib
import http.server
from collections.abc import Iterator
from pathlib import Path

import pytest

from erl_losses.modules.bcm_io import load_pretrained
from erl_losses.zoo import Manifest, WeightSpec, WeightsUnavailableError, Zoo
from erl_losses.zoo.sources import HubFile, parse_hub_url
from tests._helpers import TINY_SAVED_BCM as TINY
from tests.zoo._helpers import FILE, LocalServer, _cache_files

pytest.importorskip("huggingface_hub")

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class _Hub(LocalServer):
    """Answers the Hub's ``/{repo}/resolve/{revision}/{file}`` HEAD and GET requests.

    ``files`` maps ``repo/revision/file`` (or, for plain HTTP, the URL path) to the bytes
    served; anything else is a 404 with the Hub's ``X-Error-Code: EntryNotFound``. ``cut`` serves half the bytes after announcing all.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, with_body: bool) -> None:
                hub.requests.append((self.command, self.path))
                repo, sep, rest = self.path.lstrip("/").partition("/resolve/")
                revision, _, name = rest.partition("/")
                key = f"{repo}/{revision}/{name}" if sep else self.path
                body = hub.files.get(key)
                if body is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    cut = key in hub.cut
                    self.wfile.write(body[: len(body) // 2] if cut else body)
                    if cut:
                        self.close_connection = True

            def do_HEAD(self) -> None:
                self._answer(with_body=False)

            def do_GET(self) -> None:
                self._answer(with_body=True)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_Hub]:
    server = _Hub()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # huggingface_hub reads its cache folder at import time: point the constants at tmp_path.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # the transfer's process
    yield server
    server.close()


def _zoo(tmp_path: Path, weights: bytes, urls: list[str], offline: bool | None = False) -> Zoo:
    spec = WeightSpec(
        name="tiny", version="1", file=FILE, sha256=hashlib.sha256(weights).hexdigest(),
        size=len(weights), urls=tuple(urls), license="MIT", config=TINY,
    )  # fmt: skip
    (tmp_path / "pkg").mkdir(parents=True, exist_ok=True)
    return Zoo(
        Manifest(specs=(spec,), default="tiny"),
        package_dir=tmp_path / "pkg",
        home=tmp_path / "home",
        offline=offline,
        progress=False,
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("hf://me/bcm/w.safetensors@v1", HubFile("me/bcm", "w.safetensors", "v1")),
        ("hf://me/bcm/w.safetensors", HubFile("me/bcm", "w.safetensors", "main")),
        ("hf://me/bcm/sub/w.safetensors@" + COMMIT, HubFile("me/bcm", "sub/w.safetensors", COMMIT)),
    ],
)
def test_hub_urls_parse_and_print_back(url: str, expected: HubFile) -> None:
    assert parse_hub_url(url) == expected
    assert parse_hub_url(expected.url) == expected


@pytest.mark.parametrize(
    "url", ["hf://me/w.safetensors", "hf://me//w", "hf://a/b/c@", "s3://a/b/c"]
)
def test_bad_hub_urls_are_named(url: str) -> None:
    with pytest.raises(ValueError, match="hf://OWNER/REPO/FILE@REVISION"):
        parse_hub_url(url)


def test_hub_source_is_downloaded_verified_and_cached(tmp_path, weights, hub):
    hub.files[f"me/bcm/v1/{FILE}"] = weights
    zoo = _zoo(tmp_path, weights, [f"hf://me/bcm/{FILE}@v1"])
    path = zoo.fetch("tiny")
    # used in place from the Hub cache, as timm does: no copy in the zoo cache
    assert path.read_bytes() == weights and _cache_files(zoo) == []
    assert tmp_path / "hf-cache" in path.parents
    assert load_pretrained("tiny", zoo=zoo).bcm.config == TINY
    assert ("GET", f"/me/bcm/resolve/v1/{FILE}") in hub.requests


def test_hub_offline_uses_the_hub_cache_and_nothing_else(tmp_path, weights, hub, monkeypatch):
    hub.files[f"me/bcm/v1/{FILE}"] = weights
    first = _zoo(tmp_path / "a", weights, [f"hf://me/bcm/{FILE}@v1"])
    first.fetch("tiny")  # fills the Hub cache
    hub.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    second = _zoo(tmp_path / "b", weights, [f"hf://me/bcm/{FILE}@v1"])
    assert second.fetch("tiny").read_bytes() == weights
    assert hub.requests == []
    third = _zoo(tmp_path / "c", weights, [f"hf://me/bcm/{FILE}@v2"])
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE"):
        third.fetch("tiny")
    assert hub.requests == [] and _cache_files(third) == []


def test_erl_losses_offline_never_asks_the_hub(tmp_path, weights, hub, monkeypatch):
    hub.files[f"me/bcm/v1/{FILE}"] = weights
    monkeypatch.setenv("ERL_LOSSES_OFFLINE", "1")
    zoo = _zoo(tmp_path, weights, [f"hf://me/bcm/{FILE}@v1"], offline=None)
    with pytest.raises(WeightsUnavailableError, match="ERL_LOSSES_OFFLINE"):
        zoo.fetch("tiny")
    assert hub.requests == []


def test_hub_404_is_named_and_leaves_nothing(tmp_path, weights, hub):
    zoo = _zoo(tmp_path, weights, [f"hf://me/bcm/{FILE}@v1"])
    with pytest.raises(WeightsUnavailableError, match="HTTP 404"):
        zoo.fetch("tiny")
    assert _cache_files(zoo) == []


def test_hub_wrong_bytes_are_refused_and_never_served(tmp_path, weights, hub):
    wrong = bytearray(weights)
    wrong[len(wrong) // 2] ^= 0xFF
    hub.files[f"me/bcm/v1/{FILE}"] = bytes(wrong)
    zoo = _zoo(tmp_path, weights, [f"hf://me/bcm/{FILE}@v1"])
    with pytest.raises(WeightsUnavailableError, match="sha256"):
        zoo.fetch("tiny")
    assert _cache_files(zoo) == []
    # the wrong copy stays in the Hub cache (not ours to delete) and is never served
    with pytest.raises(WeightsUnavailableError, match="sha256"):
        zoo.fetch("tiny")
    assert zoo.locate("tiny") is None


def test_hub_cut_transfer_leaves_nothing(tmp_path, weights, hub):
    hub.files[f"me/bcm/v1/{FILE}"] = weights
    hub.cut.add(f"me/bcm/v1/{FILE}")
    zoo = _zoo(tmp_path, weights, [f"hf://me/bcm/{FILE}@v1"])
    with pytest.raises(WeightsUnavailableError):
        zoo.fetch("tiny")
    assert _cache_files(zoo) == []


def test_hub_404_falls_back_to_a_plain_https_source(tmp_path, weights, hub):
    hub.files[f"/mirror/{FILE}"] = weights
    zoo = _zoo(tmp_path, weights, [f"hf://me/bcm/{FILE}@v1", f"{hub.url}/mirror/{FILE}"])
    assert zoo.fetch("tiny").read_bytes() == weights
    assert _cache_files(zoo) == [FILE]
    assert ("GET", f"/mirror/{FILE}") in hub.requests


def test_missing_hub_extra_names_it(tmp_path, weights, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_hub(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("huggingface_hub"):
            raise ImportError("No module named 'huggingface_hub'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    zoo = _zoo(tmp_path, weights, [f"hf://me/bcm/{FILE}@v1"])
    with pytest.raises(WeightsUnavailableError, match=r"erl-losses\[hub\]"):
        zoo.fetch("tiny")


def test_a_valid_shared_hub_cache_file_is_never_deleted(tmp_path, weights, hub):
    hub.files[f"me/bcm/v1/{FILE}"] = weights
    good = _zoo(tmp_path / "a", weights, [f"hf://me/bcm/{FILE}@v1"])
    good.fetch("tiny")
    [shared] = (tmp_path / "hf-cache").rglob(FILE)  # the snapshot entry other tools read
    other = bytearray(weights)
    other[-1] ^= 0x01  # a manifest that expects other bytes than the Hub serves
    stricter = _zoo(tmp_path / "b", bytes(other), [f"hf://me/bcm/{FILE}@v1"])
    with pytest.raises(WeightsUnavailableError, match="sha256"):
        stricter.fetch("tiny")
    assert shared.read_bytes() == weights  # other tools rely on the Hub cache


@pytest.mark.parametrize("revision", ["../../../x", "a/b", "..", "main\nx"])
def test_a_revision_cannot_escape_the_hub_cache(tmp_path, weights, hub, revision):
    with pytest.raises(ValueError, match="REVISION"):
        parse_hub_url(f"hf://o/r/{FILE}@{revision}")
    with pytest.raises(ValueError):
        _zoo(tmp_path, weights, [f"hf://o/r/{FILE}@{revision}"])
    assert hub.requests == []
    assert not any(p.name == "x" for p in tmp_path.rglob("*"))
