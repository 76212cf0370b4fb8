"""erl_losses._runtime: device resolution and the machine line of results files."""

from __future__ import annotations

import pytest
import torch

from erl_losses._runtime import machine_description, resolve_device


def test_resolve_device_defaults_and_explicit() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("device", ["tpu", "meta", 3.5])
def test_resolve_device_rejects_unknown(device) -> None:
    with pytest.raises(ValueError, match="Expected device 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_rejects_missing_cuda() -> None:
    with pytest.raises(ValueError, match="Expected an available CUDA device"):
        resolve_device("cuda")


def test_machine_description_names_cores_and_threads() -> None:
    import os

    text = machine_description("cpu")
    assert f"{os.cpu_count()} cores visible" in text
    assert f"torch threads={torch.get_num_threads()}" in text
    assert text.endswith("(CPU run)")


def test_cpu_threads_sets_and_restores() -> None:
    from erl_losses._runtime import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads("cpu", 2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    bad = pytest.raises(ValueError, match="Expected `threads` to be a positive int or None, got 0")
    with bad, cpu_threads("cpu", 0):
        pass
