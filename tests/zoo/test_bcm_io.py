"""The BCM weights file (erl_losses.modules.bcm_io) and the one resolver zoo.resolve_bcm."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from erl_losses import BatchCorrelationModule, SampleRelationLoss, zoo
from erl_losses.cli import main
from erl_losses.modules import bcm_io
from erl_losses.modules.bcm_io import WEIGHTS_FORMAT, load_bcm, read_bcm_metadata, save_bcm
from tests._helpers import TINY_SAVED_BCM as TINY


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_bcm(BatchCorrelationModule(**TINY), tmp_path / "tiny.safetensors", {"name": "t"})


def _write(path: Path, tensors: dict[str, torch.Tensor], config: object) -> Path:
    """A weights file with a hand-made config metadata entry."""
    text = config if isinstance(config, str) else json.dumps(config)
    save_file(tensors, str(path), metadata={"format": WEIGHTS_FORMAT, "config": text})
    return path


def test_round_trip_same_outputs_and_metadata(saved):
    torch.manual_seed(0)
    original = BatchCorrelationModule(**TINY).eval()
    path = save_bcm(original, saved.parent / "again.safetensors", {"recipe": {"seed": 3}})
    loaded = load_bcm(path)
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(loaded(x), original(x))
    assert not loaded.training and all(p.requires_grad for p in loaded.parameters())
    meta = read_bcm_metadata(path)
    assert meta["format"] == WEIGHTS_FORMAT and json.loads(meta["recipe"]) == {"seed": 3}


def test_a_half_precision_file_loads_as_float32(saved):
    tensors = {k: v.half() for k, v in load_bcm(saved).state_dict().items()}
    bcm = load_bcm(_write(saved.parent / "half.safetensors", tensors, TINY))
    assert all(p.dtype == torch.float32 for p in bcm.parameters())


def test_loading_does_not_draw_from_the_global_rng(saved):
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    load_bcm(saved)
    assert torch.equal(torch.rand(3), expected)


def test_save_refuses_reserved_metadata_and_non_modules(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_bcm(BatchCorrelationModule(**TINY), tmp_path / "a.safetensors", {"config": "x"})
    with pytest.raises(TypeError, match="BatchCorrelationModule"):
        save_bcm(torch.nn.Linear(2, 2), tmp_path / "a.safetensors")  # type: ignore[arg-type]


def test_saved_file_has_the_umask_mode_and_no_temp_left(saved):
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(saved, value):
    tensors = load_bcm(saved).state_dict()
    tensors["fuse.weight"] = tensors["fuse.weight"].clone()
    tensors["fuse.weight"][0, 0] = value
    bad = _write(saved.parent / "nan.safetensors", dict(tensors), TINY)
    with pytest.raises(ValueError, match=r"finite weights.*fuse\.weight"):
        load_bcm(bad)
    with pytest.raises(ValueError, match="finite"):
        SampleRelationLoss.from_pretrained(bad)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ("[1, 2]", "JSON object, got list"),
        ("{not json", "to be JSON"),
        ({**TINY, "evil": 1}, "unknown \\['evil'\\]"),
        ({**TINY, "channels": "4"}, "'channels' to be an int"),
        ({**TINY, "channels": True}, "'channels' to be an int"),
        ({**TINY, "channels": 10**9}, "'channels' to be an int in \\[1, 65536\\]"),
        ({**TINY, "work_size": 2.5}, "'work_size'"),
        ({**TINY, "d_model": 9}, "valid BCM config"),  # not divisible by num_heads
    ],
)
def test_bad_config_metadata_is_refused_with_one_clear_error(saved, config, match):
    tensors = load_bcm(saved).state_dict()
    bad = _write(saved.parent / "bad.safetensors", dict(tensors), config)
    with pytest.raises(ValueError, match=match):
        load_bcm(bad)


def test_huge_config_is_checked_against_the_tensors_before_any_allocation(saved, monkeypatch):
    """A config asking for 2048 channels with small tensors fails on shapes, built on meta only."""
    built: list[torch.device] = []

    class Recording(BatchCorrelationModule):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)  # type: ignore[arg-type]
            built.append(self.fuse.weight.device)

    monkeypatch.setattr(bcm_io, "BatchCorrelationModule", Recording)
    tensors = BatchCorrelationModule(**TINY).state_dict()
    bad = _write(saved.parent / "huge.safetensors", tensors, {**TINY, "channels": 2048})
    with pytest.raises(ValueError, match=r"wrong shapes.*\(2048, 2048, 3, 3\)"):
        load_bcm(bad)
    assert built and all(d.type == "meta" for d in built)


def test_truncated_and_missing_files(saved):
    cut = saved.parent / "cut.safetensors"
    cut.write_bytes(saved.read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"(complete|readable) safetensors"):
        load_bcm(cut)
    with pytest.raises(FileNotFoundError, match="no file"):
        load_bcm(saved.parent / "absent.safetensors")


def test_overrides_are_limited_to_work_size(saved):
    assert load_bcm(saved, work_size=None).work_size is None
    with pytest.raises(ValueError, match="overrides among"):
        load_bcm(saved, channels=8)


# -- the one resolver ------------------------------------------------------------------------------
def test_resolve_bcm_passes_a_module_through_and_applies_overrides():
    bcm = BatchCorrelationModule(**TINY)
    assert zoo.resolve_bcm(bcm) is bcm
    assert zoo.resolve_bcm(bcm, work_size=None) is bcm
    assert bcm.work_size is None and bcm.config["work_size"] is None
    with pytest.raises(ValueError, match="work_size"):
        zoo.resolve_bcm(bcm, work_size=3)
    with pytest.raises(ValueError, match="overrides among"):
        zoo.resolve_bcm(bcm, channels=3)


def test_resolve_bcm_names_paths_and_none(saved):
    default = zoo.resolve_bcm()
    assert default.config == zoo.get_spec(zoo.default_name()).bcm_config
    assert zoo.resolve_bcm(zoo.default_name(), work_size=64).work_size == 64
    assert zoo.resolve_bcm(saved).config == TINY
    assert zoo.resolve_bcm(str(saved)).config == TINY
    with pytest.raises(TypeError, match="BatchCorrelationModule, a zoo name"):
        zoo.resolve_bcm(3)  # type: ignore[arg-type]
    with pytest.raises(zoo.UnknownModelError, match="among"):
        zoo.resolve_bcm("no-such-bcm")


def test_from_pretrained_goes_through_the_resolver(saved, monkeypatch):
    calls: list[object] = []
    real = zoo.resolve_bcm

    def spy(bcm: object = None, **overrides: object) -> BatchCorrelationModule:
        calls.append(bcm)
        return real(bcm, **overrides)  # type: ignore[arg-type]

    monkeypatch.setattr(zoo, "resolve_bcm", spy)
    SampleRelationLoss.from_pretrained(saved, work_size=None)
    BatchCorrelationModule.from_pretrained(saved)
    assert calls == [saved, saved]


# -- erl zoo verify FILE -------------------------------------------------------------------------
def test_cli_verify_prints_sha256_and_fails_on_a_nan_file(saved, capsys):
    assert main(["zoo", "verify", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "unregistered" in out and f"sha256 {zoo.file_sha256(saved)}" in out
    assert "matches no registered entry" in out
    tensors = load_bcm(saved).state_dict()
    tensors["fuse.bias"] = torch.full_like(tensors["fuse.bias"], float("nan"))
    bad = _write(saved.parent / "nan.safetensors", dict(tensors), TINY)
    assert main(["zoo", "verify", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "invalid" in out and "finite" in out and f"sha256 {zoo.file_sha256(bad)}" in out


def test_cli_verify_names_the_registered_entry():
    path = zoo.fetch(zoo.default_name())
    assert (
        zoo.verify(path)[0].message == f"sha256 matches the registered entry {zoo.default_name()!r}"
    )
