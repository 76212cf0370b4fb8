"""The pretrained-BCM zoo: manifest, resolution, the real download path, the failure contract."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from erl_losses import BatchCorrelationModule, SampleRelationLoss
from erl_losses.cli import main
from erl_losses.modules.bcm_io import load_pretrained
from erl_losses.zoo import (
    ChecksumError,
    Manifest,
    UnknownModelError,
    WeightSpec,
    WeightsUnavailableError,
    Zoo,
)
from erl_losses.zoo import specs as zoo_specs
from tests._helpers import TINY_SAVED_BCM as TINY
from tests.zoo._helpers import FILE, _cache_files


class _Server:
    """A local HTTP server with fixed routes: path -> (status, body, declared length)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        self.requests: list[str] = []
        routes, requests = self.routes, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                status, body, length = routes.get(self.path, (404, b"not found", None))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True  # a short body + close = a cut connection

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(weights: bytes) -> Iterator[_Server]:
    srv = _Server()
    wrong = bytearray(weights)
    wrong[len(wrong) // 2] ^= 0xFF
    srv.routes.update(
        {
            f"/good/{FILE}": (200, weights, None),
            f"/wrong/{FILE}": (200, bytes(wrong), None),
            f"/cut/{FILE}": (200, weights[: len(weights) // 2], len(weights)),
            f"/long/{FILE}": (200, weights + b"0" * 100, None),
        }
    )
    yield srv
    srv.close()


def _spec(weights: bytes, urls: list[str]) -> WeightSpec:
    return WeightSpec(
        name="tiny",
        version="1",
        file=FILE,
        sha256=hashlib.sha256(weights).hexdigest(),
        size=len(weights),
        urls=tuple(urls),
        license="MIT",
        config=TINY,
    )


def _zoo(tmp_path: Path, weights: bytes, urls: list[str], **kw: object) -> Zoo:
    manifest = Manifest(specs=(_spec(weights, urls),), default="tiny")
    (tmp_path / "pkg").mkdir(exist_ok=True)
    kw.setdefault("offline", False)
    return Zoo(manifest, package_dir=tmp_path / "pkg", home=tmp_path / "home", **kw)  # type: ignore[arg-type]


# -- the real download path ---------------------------------------------------------------------
def test_download_good_file_is_verified_cached_and_loadable(tmp_path, weights, server):
    zoo = _zoo(tmp_path, weights, [f"{server.url}/good/{FILE}"])
    path = zoo.fetch("tiny")
    assert path == zoo.cache_dir / FILE
    assert path.read_bytes() == weights
    assert _cache_files(zoo) == [FILE]
    umask = os.umask(0)
    os.umask(umask)
    # the umask's mode (0644 under umask 022), not mkstemp's 0600: a shared cache stays readable
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    bcm = load_pretrained("tiny", zoo=zoo).bcm
    assert bcm.config == TINY
    assert not bcm.training
    # second use: served from the cache, no new request
    load_pretrained(zoo=zoo)
    assert server.requests == [f"/good/{FILE}"]


@pytest.mark.parametrize(
    ("route", "words"),
    [
        ("wrong", ["sha256", "discarded"]),
        ("cut", ["interrupted"]),
        ("404", ["HTTP 404"]),
        ("long", ["got more"]),
    ],
)
def test_failed_download_leaves_nothing_in_the_cache(tmp_path, weights, server, route, words):
    zoo = _zoo(tmp_path, weights, [f"{server.url}/{route}/{FILE}"])
    with pytest.raises(WeightsUnavailableError) as info:
        zoo.fetch("tiny")
    message = str(info.value)
    for word in words:
        assert word in message
    assert FILE in message and str(zoo.cache_dir / FILE) in message  # where to put it
    assert _cache_files(zoo) == []  # no partial, no temp file
    with pytest.raises(WeightsUnavailableError):
        load_pretrained("tiny", zoo=zoo)


def test_download_falls_back_to_the_next_url(tmp_path, weights, server):
    zoo = _zoo(tmp_path, weights, [f"{server.url}/404/{FILE}", f"{server.url}/cut/{FILE}",
                                   f"{server.url}/good/{FILE}"])  # fmt: skip
    assert zoo.fetch("tiny").read_bytes() == weights
    assert _cache_files(zoo) == [FILE]
    assert len(server.requests) == 3


def test_connection_refused_is_a_clear_error(tmp_path, weights, server):
    url = server.url
    server.close()
    zoo = _zoo(tmp_path, weights, [f"{url}/good/{FILE}"], timeout=5.0)
    with pytest.raises(WeightsUnavailableError, match=r"cannot connect|interrupted"):
        zoo.fetch("tiny")
    assert _cache_files(zoo) == []


def test_mirror_environment_variable(tmp_path, weights, server, monkeypatch):
    monkeypatch.setenv("ERL_LOSSES_MIRROR", f"{server.url}/404 {server.url}/good")
    zoo = _zoo(tmp_path, weights, [])
    assert zoo.fetch("tiny").read_bytes() == weights


def test_offline_never_touches_the_network(tmp_path, weights, server, monkeypatch):
    monkeypatch.setenv("ERL_LOSSES_OFFLINE", "1")
    zoo = _zoo(tmp_path, weights, [f"{server.url}/good/{FILE}"], offline=None)
    with pytest.raises(WeightsUnavailableError) as info:
        load_pretrained("tiny", zoo=zoo)
    message = str(info.value)
    assert "ERL_LOSSES_OFFLINE" in message
    assert FILE in message and str(zoo.cache_dir / FILE) in message
    assert server.requests == []
    # putting the file where the message says makes it work offline
    (zoo.cache_dir).mkdir(parents=True)
    (zoo.cache_dir / FILE).write_bytes(weights)
    assert load_pretrained("tiny", zoo=zoo).bcm.config == TINY


def test_no_url_says_where_to_put_the_file(tmp_path, weights):
    zoo = _zoo(tmp_path, weights, [])
    with pytest.raises(WeightsUnavailableError, match="no download URL") as info:
        zoo.fetch("tiny")
    assert str(zoo.cache_dir / FILE) in str(info.value)


# -- tampered files -----------------------------------------------------------------------------
def _tampered(weights: bytes) -> bytes:
    data = bytearray(weights)
    data[-1] ^= 0x01  # the last byte of the last tensor: still a valid safetensors file
    return bytes(data)


def test_tampered_shipped_file_is_refused(tmp_path, weights, server):
    zoo = _zoo(tmp_path, weights, [f"{server.url}/good/{FILE}"])
    shipped = zoo.package_dir / FILE
    shipped.write_bytes(_tampered(weights))
    for call in (
        lambda: zoo.fetch("tiny"),
        lambda: load_pretrained("tiny", zoo=zoo).bcm,
        lambda: load_pretrained(zoo=zoo).bcm,
    ):
        with pytest.raises(ChecksumError) as info:
            call()
        assert "sha256" in str(info.value) and str(shipped) in str(info.value)
    assert server.requests == []  # a damaged install is reported, not papered over
    [result] = zoo.verify("tiny")
    assert result.status == "checksum-mismatch" and not result.ok
    shipped.write_bytes(weights)
    assert zoo.fetch("tiny") == shipped
    assert zoo.verify()[0].status == "ok"


def test_tampered_cached_file_is_refused_and_force_refetches(tmp_path, weights, server):
    zoo = _zoo(tmp_path, weights, [f"{server.url}/good/{FILE}"])
    zoo.cache_dir.mkdir(parents=True)
    cached = zoo.cache_dir / FILE
    cached.write_bytes(_tampered(weights))
    with pytest.raises(ChecksumError) as info:
        load_pretrained("tiny", zoo=zoo)
    message = str(info.value)
    assert "checksum" in message and str(cached) in message and "--force" in message
    assert server.requests == []
    assert zoo.fetch("tiny", force=True).read_bytes() == weights
    assert _cache_files(zoo) == [FILE]


def test_truncated_explicit_path_is_refused(tmp_path, weights):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ValueError, match="safetensors"):
        load_pretrained(path, zoo=_zoo(tmp_path, weights, []))


# -- names, paths, overrides --------------------------------------------------------------------
def test_unknown_name_lists_the_known_names(tmp_path, weights):
    zoo = _zoo(tmp_path, weights, [])
    with pytest.raises(UnknownModelError, match=r"\['tiny'\].*'nope'"):
        load_pretrained("nope", zoo=zoo)
    with pytest.raises(UnknownModelError) as info:
        BatchCorrelationModule.from_pretrained("no-such-bcm")
    from erl_losses import zoo as shipped

    for name in shipped.names():
        assert name in str(info.value)


def test_explicit_path_and_overrides(tmp_path, weights):
    zoo = _zoo(tmp_path, weights, [])
    path = tmp_path / "mine.safetensors"
    path.write_bytes(weights)
    for arg in (path, str(path)):
        assert load_pretrained(arg, zoo=zoo).bcm.config == TINY
    assert load_pretrained(path, work_size=None, zoo=zoo).bcm.work_size is None
    with pytest.raises(ValueError, match="Expected overrides among"):
        load_pretrained(path, channels=8, zoo=zoo)
    with pytest.raises(FileNotFoundError):
        load_pretrained(tmp_path / "missing.safetensors", zoo=zoo)
    with pytest.raises(TypeError, match="name_or_path"):
        load_pretrained(3, zoo=zoo)  # type: ignore[arg-type]


def test_a_safetensors_file_without_bcm_metadata_is_refused(tmp_path, weights):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file(BatchCorrelationModule(**TINY).state_dict(), str(path))
    with pytest.raises(ValueError, match="config"):
        load_pretrained(path, zoo=_zoo(tmp_path, weights, []))


def test_manifest_config_must_match_the_file(tmp_path, weights):
    spec = dataclasses.replace(_spec(weights, []), config={**TINY, "channels": 8})
    zoo = Zoo(Manifest(specs=(spec,), default="tiny"), package_dir=tmp_path, home=tmp_path)
    (tmp_path / FILE).write_bytes(weights)
    with pytest.raises(ValueError, match="match the manifest"):
        load_pretrained(zoo=zoo)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("sha256", "abc", "sha256"),
        ("file", "../evil.safetensors", "file"),
        ("file", "weights.pt", "file"),
        ("size", 0, "size"),
        ("name", "Bad Name", "name"),
        ("urls", ("ftp://x/y",), "URLs"),
    ],
)
def test_spec_validation(weights, field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(_spec(weights, []), **{field: value})


def test_manifest_rejects_unknown_keys_and_bad_default(weights):
    entry = _spec(weights, []).to_dict()
    with pytest.raises(ValueError, match="unknown"):
        WeightSpec.from_dict({**entry, "sha": "x"})
    with pytest.raises(ValueError, match="default"):
        Manifest.from_dict({"format": 1, "default": "other", "models": [entry]})
    assert Manifest.from_dict({"format": 1, "default": "tiny", "models": [entry]}).names() == [
        "tiny"
    ]


# -- the shipped zoo ----------------------------------------------------------------------------
def test_shipped_manifest_files_and_cards():
    from erl_losses import zoo

    manifest = zoo.load_manifest()
    assert manifest.default in zoo.names()
    assert zoo.default_name() == manifest.default
    raw = json.loads(zoo_specs.MANIFEST.read_text())
    assert raw["format"] == 1
    for spec in manifest.specs:
        path = zoo_specs.MANIFEST.parent / spec.file
        assert path.is_file(), f"{spec.file} is listed but not shipped"
        assert path.stat().st_size == spec.size <= 8 * 1024 * 1024
        assert zoo.file_sha256(path) == spec.sha256
        assert spec.card and (zoo_specs.MANIFEST.parent / spec.card).is_file()
        assert spec.license and spec.data and spec.recipe and spec.training
    assert all(v.ok and v.status == "ok" for v in zoo.verify())


def test_default_bcm_was_really_trained():
    from erl_losses import zoo

    spec = zoo.get_spec("bcm-phase-photos")  # the default: the paper-literal BCM
    assert spec.recipe["pretext"] == "phase"
    m = spec.metrics
    assert m["recon_psnr_db"] >= 25.0
    assert m["phase_loss"] < 0.9 * m["phase_loss_random_te"]
    assert zoo.get_spec("bcm-l1-photos").recipe["pretext"] == "l1"
    assert zoo.get_spec("bcm-none-photos").recipe["pretext"] == "none"
    bcm = BatchCorrelationModule.from_pretrained("bcm-phase-photos")
    assert bcm.config == spec.bcm_config


@pytest.mark.slow
def test_default_bcm_numbers_reproduce_on_the_held_out_photos():
    """Re-measures the manifest's numbers: the baseline of a pretext run is its stage-1 file,
    i.e. the shipped ``none`` variant (same stage 1, the recipe's seeded random t_e)."""
    from erl_losses import zoo
    from erl_losses.data.photos import split_photos
    from erl_losses.pretext import evaluate_bcm

    spec = zoo.get_spec("bcm-phase-photos")
    held = spec.metrics["held_out"]
    assert sorted(held["photos"]) == sorted(split_photos()[1])
    assert not set(spec.data["photos"]) & set(split_photos()[1])  # never trained on test photos
    bcm, none = (
        BatchCorrelationModule.from_pretrained("bcm-phase-photos"),
        BatchCorrelationModule.from_pretrained("bcm-none-photos"),
    )
    assert torch.equal(bcm.f_e[0].weight, none.f_e[0].weight)
    measured = evaluate_bcm(
        bcm, baseline=none, num_batches=held["num_batches"], batch_size=held["batch_size"],
        crop_size=held["crop_size"], seed=held["seed"],
    )  # fmt: skip
    for key in ("recon_psnr_db", "recon_psnr_db_relation", "phase_loss", "phase_loss_random_te"):
        assert measured[key] == pytest.approx(spec.metrics[key], abs=2e-3), key
    assert measured["recon_psnr_db"] >= 25.0
    assert measured["phase_loss"] < 0.9 * measured["phase_loss_random_te"]


def test_from_pretrained_offline_on_a_fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ERL_LOSSES_HOME", str(tmp_path / "fresh"))
    monkeypatch.setenv("ERL_LOSSES_OFFLINE", "1")
    monkeypatch.delenv("ERL_LOSSES_MIRROR", raising=False)
    loss = SampleRelationLoss.from_pretrained()
    pred = torch.rand(4, 3, 48, 48, requires_grad=True)
    value = loss(pred, torch.rand(4, 3, 48, 48))
    value.backward()
    assert torch.isfinite(value) and pred.grad is not None
    assert not (tmp_path / "fresh").exists()  # nothing downloaded or written
    assert SampleRelationLoss.from_pretrained(work_size=None).bcm.work_size is None


# -- the CLI ------------------------------------------------------------------------------------
def test_cli_list_fetch_verify(capsys, tmp_path):
    from erl_losses import zoo

    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    for name in zoo.names():
        assert name in out
    assert main(["zoo", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in listed] == zoo.names()
    default = zoo.default_name()
    assert main(["zoo", "fetch", default]) == 0
    assert capsys.readouterr().out.strip() == str(zoo.fetch(default))
    assert main(["zoo", "verify"]) == 0
    assert main(["zoo", "verify", str(zoo.fetch(default))]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / zoo.get_spec(default).file
    bad.write_bytes(_tampered(zoo.fetch(default).read_bytes()))
    assert main(["zoo", "verify", str(bad)]) == 1
    assert "checksum" in capsys.readouterr().out
    assert main(["zoo", "fetch", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
