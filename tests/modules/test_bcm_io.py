"""The BCM weights file and the one loader (erl_losses.modules.bcm_io) behind both
``from_pretrained`` doors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from erl_losses import BatchCorrelationModule, SampleRelationLoss, zoo
from erl_losses.cli import main
from erl_losses.modules import bcm_io
from erl_losses.modules.bcm_io import (
    WEIGHTS_FORMAT,
    load_bcm,
    load_pretrained,
    read_bcm_metadata,
    resolve_bcm,
    save_bcm,
)
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


# -- the one loader --------------------------------------------------------------------------------
def test_resolve_bcm_passes_a_module_through_and_applies_overrides():
    bcm = BatchCorrelationModule(**TINY)
    assert resolve_bcm(bcm).bcm is bcm
    assert resolve_bcm(bcm).spec is None and resolve_bcm(bcm).variant == "paper"
    assert resolve_bcm(bcm, work_size=None).bcm is bcm
    assert bcm.work_size is None and bcm.config["work_size"] is None
    with pytest.raises(ValueError, match="work_size"):
        resolve_bcm(bcm, work_size=3)
    with pytest.raises(ValueError, match="overrides among"):
        resolve_bcm(bcm, channels=3)


def test_load_pretrained_names_paths_and_none(saved):
    default = load_pretrained()
    spec = zoo.get_spec(zoo.default_name())
    assert default.bcm.config == spec.bcm_config and default.spec == spec
    assert default.variant == spec.loss_variant  # the variant travels with the entry
    assert load_pretrained(zoo.default_name(), work_size=64).bcm.work_size == 64
    for path in (saved, str(saved)):
        loaded = load_pretrained(path)
        assert loaded.bcm.config == TINY and loaded.spec is None and loaded.variant == "paper"
    with pytest.raises(TypeError, match="BatchCorrelationModule, a zoo name"):
        resolve_bcm(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got a BatchCorrelationModule"):
        BatchCorrelationModule.from_pretrained(BatchCorrelationModule(**TINY))  # type: ignore[arg-type]
    with pytest.raises(zoo.UnknownModelError, match="among"):
        load_pretrained("no-such-bcm")


def test_both_doors_build_through_the_one_loader(saved, monkeypatch):
    """from_pretrained on the module and on the loss, and the loss built from a name, reach a
    module through bcm_io.load_bcm, and the zoo is asked once per load."""
    built: list[object] = []
    resolved: list[object] = []
    real_load, real_resolve = bcm_io.load_bcm, zoo.Zoo.resolve

    def spy_load(path, **kw):  # type: ignore[no-untyped-def]
        built.append(Path(path))
        return real_load(path, **kw)

    def spy_resolve(self, name_or_path=None):  # type: ignore[no-untyped-def]
        resolved.append(name_or_path)
        return real_resolve(self, name_or_path)

    monkeypatch.setattr(bcm_io, "load_bcm", spy_load)
    monkeypatch.setattr(zoo.Zoo, "resolve", spy_resolve)
    SampleRelationLoss.from_pretrained(saved, work_size=None)
    BatchCorrelationModule.from_pretrained(saved)
    SampleRelationLoss(str(saved))
    assert built == [saved, saved, saved]
    name = zoo.default_name()
    built.clear()
    loss = SampleRelationLoss.from_pretrained(name)
    assert resolved[-1] == name and resolved.count(name) == 1  # the variant came with the spec
    assert loss.variant == zoo.get_spec(name).loss_variant and len(built) == 1
    assert SampleRelationLoss(name).variant == loss.variant


def test_the_zoo_has_no_loader_of_its_own():
    """Names resolve to files in the zoo; modules are built in bcm_io only (the import
    direction is tests/test_layering.py's)."""
    for gone in ("load_bcm", "resolve_bcm", "load_bcm_file", "OVERRIDABLE"):
        assert not hasattr(zoo, gone), gone
    assert not hasattr(zoo.Zoo, "load_bcm")
    path, spec = zoo.resolve()
    assert spec is not None and spec.name == zoo.default_name() and path.is_file()


def test_resolving_a_name_imports_no_torch():
    code = (
        "import sys; from erl_losses import zoo; path, spec = zoo.resolve(); "
        "assert path.is_file() and spec.loss_variant; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


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
