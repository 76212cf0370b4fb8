"""``erl zoo publish``: the upload-ready folder, the model card's front matter, the manifest entry,
and the upload step (huggingface_hub stood in for: no network)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from erl_losses.cli import main
from erl_losses.zoo import WeightSpec, default_name, file_sha256, get_spec
from erl_losses.zoo.publish import prepare_folder, upload
from erl_losses.zoo.sources import parse_hub_url

hub = pytest.importorskip("huggingface_hub")


def _front_matter(text: str) -> dict[str, object]:
    """The YAML front matter of a model card, read with the Hub's own card parser."""
    from huggingface_hub import ModelCard

    return ModelCard(text).data.to_dict()


def test_folder_holds_verified_weights_card_and_entry(tmp_path) -> None:
    name = default_name()
    spec = get_spec(name)
    prepared = prepare_folder(name, "me/erl-bcm", tmp_path / "out", revision="v1")
    assert sorted(p.name for p in prepared.folder.iterdir()) == sorted(
        [spec.file, "README.md", f"{name}.manifest.json"]
    )
    assert file_sha256(prepared.weights) == spec.sha256
    card = prepared.card.read_text()
    meta = _front_matter(card)
    assert meta["license"] == "mit" and meta["library_name"] == "erl-losses"
    assert "exposure-correction" in meta["tags"]
    assert spec.sha256 in card and "not taken from the paper" in card
    entry = json.loads(prepared.entry_path.read_text())
    restored = WeightSpec.from_dict(entry)
    assert restored.sha256 == spec.sha256 and restored.config == spec.config
    source = parse_hub_url(entry["urls"][0])
    assert (source.repo_id, source.filename, source.revision) == ("me/erl-bcm", spec.file, "v1")


@pytest.mark.parametrize("repo", ["me", "me/", "/x", "me/a/b", "me/a@v1", "../x", "me/.."])
def test_bad_repo_is_named(tmp_path, repo: str) -> None:
    with pytest.raises(ValueError, match="OWNER/REPO"):
        prepare_folder(default_name(), repo, tmp_path)


def _fake_hub(monkeypatch, token: str | None) -> list[dict[str, object]]:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(hub, "get_token", lambda: token)
    monkeypatch.setattr(hub, "create_repo", lambda repo, **kw: calls.append({"create": repo}))

    def upload_folder(**kw: object) -> SimpleNamespace:
        calls.append(kw)
        return SimpleNamespace(oid="f" * 40)

    monkeypatch.setattr(hub, "upload_folder", upload_folder)
    return calls


def test_upload_sends_the_folder_and_pins_the_commit(tmp_path, monkeypatch) -> None:
    calls = _fake_hub(monkeypatch, token="hf_test")
    prepared = prepare_folder(default_name(), "me/erl-bcm", tmp_path)
    assert upload(prepared, "me/erl-bcm") == "f" * 40
    assert calls[0] == {"create": "me/erl-bcm"}
    assert calls[1]["repo_id"] == "me/erl-bcm"
    assert calls[1]["folder_path"] == str(tmp_path)
    entry = json.loads(prepared.entry_path.read_text())
    assert parse_hub_url(entry["urls"][0]).revision == "f" * 40


def test_without_credentials_nothing_is_sent(tmp_path, monkeypatch) -> None:
    calls = _fake_hub(monkeypatch, token=None)
    prepared = prepare_folder(default_name(), "me/erl-bcm", tmp_path)
    assert upload(prepared, "me/erl-bcm") is None
    assert calls == []


def test_cli_publish(tmp_path, monkeypatch, capsys) -> None:
    calls = _fake_hub(monkeypatch, token=None)
    out = tmp_path / "hub"
    assert main(["zoo", "publish", default_name(), "--repo", "me/erl-bcm", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "not uploaded" in printed and "hf upload me/erl-bcm" in printed
    assert "hf://me/erl-bcm/" in printed
    assert (out / "README.md").is_file() and calls == []
    _fake_hub(monkeypatch, token="hf_test")
    assert main(["zoo", "publish", default_name(), "--repo", "me/erl-bcm", "--out", str(out),
                 "--no-upload", "--overwrite"]) == 0  # fmt: skip
    assert "--no-upload" in capsys.readouterr().out


# -- what publish writes and sends -------------------------------------------------------------
def test_a_non_empty_out_is_refused_without_overwrite(tmp_path) -> None:
    (tmp_path / "README.md").write_text("mine")
    (tmp_path / ".env").write_text("SECRET=1")
    with pytest.raises(ValueError, match="--overwrite"):
        prepare_folder(default_name(), "me/erl-bcm", tmp_path)
    assert (tmp_path / "README.md").read_text() == "mine"
    assert main(["zoo", "publish", default_name(), "--repo", "me/x", "--out", str(tmp_path),
                 "--no-upload"]) == 2  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "README.md"]


def test_overwrite_uploads_exactly_the_files_written_to_a_private_repo(tmp_path, monkeypatch) -> None:
    (tmp_path / ".env").write_text("SECRET=1")
    (tmp_path / "data").mkdir()
    calls = _fake_hub(monkeypatch, token="hf_test")
    monkeypatch.setattr(
        hub, "create_repo", lambda repo, **kw: calls.append({"create": repo, **kw})
    )
    prepared = prepare_folder(default_name(), "me/erl-bcm", tmp_path, overwrite=True)
    upload(prepared, "me/erl-bcm")
    assert calls[0]["private"] is True
    assert sorted(calls[1]["allow_patterns"]) == sorted(prepared.files)
    assert ".env" not in prepared.files and (tmp_path / ".env").read_text() == "SECRET=1"
    upload(prepared, "me/erl-bcm", public=True)
    assert calls[2]["private"] is False


def test_an_offline_upload_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys) -> None:
    _fake_hub(monkeypatch, token="hf_test")

    def unreachable(repo: str, **kw: object) -> None:
        raise ConnectionError("[Errno -3] Temporary failure in name resolution\nframe 2\nframe 3")

    monkeypatch.setattr(hub, "create_repo", unreachable)
    out = tmp_path / "hub"
    assert main(["zoo", "publish", default_name(), "--repo", "me/x", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Could not upload" in err and "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("file", "bcm@v2.safetensors"), ("license", "MIT\nextra: injected"), ("card", "../x.md"),
     ("card", "/etc/passwd.md"), ("version", "1\n2")],
)  # fmt: skip
def test_entries_publish_could_not_read_back_are_refused(field: str, value: str) -> None:
    entry = get_spec(default_name()).to_dict()
    entry[field] = value
    with pytest.raises(ValueError, match=field):
        WeightSpec.from_dict(entry)


@pytest.mark.parametrize("revision", ["", "../x", "a/b", "v1@main"])
def test_a_bad_revision_is_refused(tmp_path, revision: str) -> None:
    with pytest.raises(ValueError, match="revision"):
        prepare_folder(default_name(), "me/erl-bcm", tmp_path / "o", revision=revision)
    assert not (tmp_path / "o").exists()
