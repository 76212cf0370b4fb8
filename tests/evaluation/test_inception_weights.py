"""Inception weights for `--fidelity` are never unpickled (torch-fidelity itself
would call torch.load(weights_only=False) on the user's file)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torch_fidelity")

from erl_losses.data.io import write_png
from erl_losses.evaluation.fidelity import (
    fidelity_between_paths,
    inception_weights_buffer,
)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def images(tmp_path) -> list[Path]:
    rng = np.random.default_rng(0)
    return [
        write_png(tmp_path / f"{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        for i in range(4)
    ]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin"])
def test_pickled_code_is_refused_before_torch_fidelity_sees_it(images, tmp_path, suffix, tiny_bcm):
    marker = tmp_path / "code-ran"
    evil = tmp_path / f"inception{suffix}"
    evil.write_bytes(pickle.dumps({"fc.weight": _Payload(marker)}))
    with pytest.raises(ValueError, match="pickled objects"):
        fidelity_between_paths(
            images[:2], images[2:], bcm=tiny_bcm, size=16, inception_weights=evil
        )
    assert not marker.exists()


def test_a_torch_saved_state_dict_loads_safely(tmp_path):
    state = {"fc.weight": torch.randn(3, 2), "fc.bias": torch.zeros(3)}
    torch.save(state, tmp_path / "w.pth")
    loaded = torch.load(inception_weights_buffer(tmp_path / "w.pth"), weights_only=True)
    assert set(loaded) == set(state)
    torch.testing.assert_close(loaded["fc.weight"], state["fc.weight"])


def test_safetensors_weights_load(tmp_path):
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.ones(2, 2)}, str(tmp_path / "w.safetensors"))
    loaded = torch.load(inception_weights_buffer(tmp_path / "w.safetensors"), weights_only=True)
    assert torch.equal(loaded["fc.weight"], torch.ones(2, 2))


def test_torch_fidelity_builds_inception_from_the_buffer(tmp_path, monkeypatch):
    from safetensors.torch import save_file
    from torch_fidelity import feature_extractor_inceptionv3 as inception_module

    cls = inception_module.FeatureExtractorInceptionV3
    # A randomly initialised Inception with torch-fidelity's own architecture (no download).
    with monkeypatch.context() as patch:
        patch.setattr(inception_module, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(cls, "load_state_dict", lambda self, state: None)
        random_net = cls("inception-v3-compat", ["2048"])
    state = {k: v.contiguous() for k, v in random_net.state_dict().items()}
    save_file(state, str(tmp_path / "inception.safetensors"))
    buffer = inception_weights_buffer(tmp_path / "inception.safetensors")
    net = cls("inception-v3-compat", ["2048"], feature_extractor_weights_path=buffer)
    torch.testing.assert_close(net.fc.weight, state["fc.weight"])
