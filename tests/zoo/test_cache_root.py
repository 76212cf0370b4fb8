"""Where the zoo caches weights: ``zoo.store.home_dir``.

The default root is ``torch.hub.get_dir() / "erl-losses"``, so ``TORCH_HOME`` and
``torch.hub.set_dir`` move it; ``ERL_LOSSES_HOME`` wins over both; without torch imported the
same folder comes from torch's own rule (``TORCH_HOME``, else ``XDG_CACHE_HOME/torch``, else
``~/.cache/torch``; then ``hub``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.hub

from erl_losses.zoo.store import home_dir

ENV = ("ERL_LOSSES_HOME", "TORCH_HOME", "XDG_CACHE_HOME")


@pytest.fixture(autouse=True)
def _clean(monkeypatch, tmp_path):
    """No cache variables, a home of our own, and torch.hub's set_dir() value restored after."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # torch.hub.set_dir() stores its folder here; None means "no set_dir()", which set_dir itself
    # cannot restore, so monkeypatch puts the attribute back.
    monkeypatch.setattr(torch.hub, "_hub_dir", None)


def _torch_free(monkeypatch) -> Path:
    """``home_dir()`` as a process without torch computes it (its torch-free branch)."""
    with monkeypatch.context() as m:
        m.delitem(sys.modules, "torch")
        return home_dir()


def test_default_root_is_under_torch_hub_get_dir() -> None:
    assert home_dir() == Path(torch.hub.get_dir()) / "erl-losses"
    assert home_dir() == Path.home() / ".cache" / "torch" / "hub" / "erl-losses"


def test_torch_home_moves_the_root(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert Path(torch.hub.get_dir()) == tmp_path / "th" / "hub"
    assert home_dir() == tmp_path / "th" / "hub" / "erl-losses"


def test_torch_hub_set_dir_moves_the_root(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    torch.hub.set_dir(str(tmp_path / "hub-dir"))  # wins over TORCH_HOME, as in torch
    assert home_dir() == tmp_path / "hub-dir" / "erl-losses"


def test_erl_losses_home_wins_over_torch_home_and_set_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    torch.hub.set_dir(str(tmp_path / "hub-dir"))
    monkeypatch.setenv("ERL_LOSSES_HOME", str(tmp_path / "erl"))
    assert home_dir() == tmp_path / "erl"
    monkeypatch.setenv("ERL_LOSSES_HOME", "~/erl-cache")  # expanded, read at each call
    assert home_dir() == tmp_path / "home" / "erl-cache"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"TORCH_HOME": "{tmp}/th"},
        {"XDG_CACHE_HOME": "{tmp}/xdg"},
        {"TORCH_HOME": "{tmp}/th", "XDG_CACHE_HOME": "{tmp}/xdg"},  # TORCH_HOME wins
        {"TORCH_HOME": "~/th-tilde"},
    ],
)
def test_torch_free_fallback_agrees_with_torch(monkeypatch, tmp_path, env) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    expected = Path(torch.hub.get_dir()) / "erl-losses"
    assert home_dir() == expected
    assert _torch_free(monkeypatch) == expected
    assert "torch" in sys.modules  # restored


def test_home_dir_without_torch_in_a_fresh_process(tmp_path) -> None:
    code = (
        "import sys; from erl_losses.zoo.store import home_dir; "
        "assert 'torch' not in sys.modules; print(home_dir())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == tmp_path / "xdg" / "torch" / "hub" / "erl-losses"
