"""``erl zoo list`` and manifest sizes: a size no file can have is a manifest error, and the
listing's formatting is integer arithmetic (no float overflow)."""

from __future__ import annotations

import json

import pytest

from erl_losses.cli import main
from erl_losses.cli.zoo import _megabytes
from erl_losses.zoo import default_name, get_spec, specs


def test_a_huge_size_is_a_manifest_error_and_list_says_so(tmp_path, monkeypatch, capsys) -> None:
    entry = get_spec(default_name()).to_dict()
    entry["size"] = 10**400
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"format": 1, "default": entry["name"], "models": [entry]}))
    with pytest.raises(ValueError, match="size"):
        specs.load_manifest(path)
    from erl_losses import zoo

    monkeypatch.setattr(zoo, "load_manifest", lambda: specs.load_manifest(path))
    assert main(["zoo", "list"]) == 2
    err = capsys.readouterr().err
    assert "size" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("size", "text"), [(1, "0.00MB"), (5_473_180, "5.47MB"), (10**400, "1" + "0" * 394 + ".00MB")]
)
def test_megabytes(size: int, text: str) -> None:
    assert _megabytes(size) == text
