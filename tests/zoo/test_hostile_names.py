"""The same hostile strings at every entry point that turns a name into a path, a URL or a card
line: hf:// sources, manifest entries, publish (function and command line) and fetch."""

from __future__ import annotations

import pytest

from erl_losses.cli import main
from erl_losses.zoo import WeightSpec, default_name, get_spec
from erl_losses.zoo.checks import HubFile
from erl_losses.zoo.publish import prepare_folder
from erl_losses.zoo.sources import parse_hub_url

HOSTILE = ["", "..", "../x", "../../../x", "/abs", "a/../b", "a\nb", "a b", "a@b", "C:\\x", "a\\b",
           ".hidden", "a\x00b"]  # fmt: skip


@pytest.mark.parametrize("bad", HOSTILE)
def test_hub_sources_refuse_it_in_every_part(bad: str) -> None:
    for url in (f"hf://{bad}/r/f.safetensors", f"hf://o/{bad}/f.safetensors",
                f"hf://o/r/{bad}@main", f"hf://o/r/f.safetensors@{bad}"):  # fmt: skip
        if url == "hf://o/r/f.safetensors@":
            continue  # an empty revision after '@' is refused by the pattern test below
        with pytest.raises(ValueError):
            parse_hub_url(url)
    for parts in ((f"{bad}/r", "f"), ("o/r", bad), ("o/r", "f", bad)):
        with pytest.raises(ValueError):
            HubFile(*parts)


@pytest.mark.parametrize("bad", HOSTILE)
@pytest.mark.parametrize("field", ["name", "file", "card", "license", "version"])
def test_manifest_entries_refuse_it(bad: str, field: str) -> None:
    entry = get_spec(default_name()).to_dict()
    entry[field] = bad
    with pytest.raises(ValueError):
        WeightSpec.from_dict(entry)
    entry = get_spec(default_name()).to_dict()
    entry["urls"] = [f"hf://o/r/f.safetensors@{bad}"]
    with pytest.raises(ValueError):
        WeightSpec.from_dict(entry)


@pytest.mark.parametrize("bad", HOSTILE)
def test_publish_refuses_it_and_writes_nothing(tmp_path, bad: str, capsys) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError):
        prepare_folder(default_name(), bad, out)
    with pytest.raises(ValueError):
        prepare_folder(default_name(), "me/x", out, revision=bad)
    args = ["zoo", "publish", default_name(), "--out", str(out), "--no-upload"]
    assert main([*args, "--repo", bad]) == 2
    assert main([*args, "--repo", "me/x", "--revision", bad]) == 2
    assert main(["zoo", "fetch", bad]) != 0
    capsys.readouterr()
    assert not out.exists()
