"""A zoo entry's recorded loss variant travels with its name (SampleRelationLoss, BasicSR)."""

from __future__ import annotations

import hashlib

import pytest
import torch

import erl_losses.zoo as zoo_pkg
from erl_losses import BatchCorrelationModule, SampleRelationLoss
from erl_losses.adapters.vendored import SampleRelationLoss as BasicSRRelationLoss
from erl_losses.modules.bcm_io import save_bcm
from erl_losses.zoo import Manifest, WeightSpec, Zoo
from tests._helpers import TINY_SAVED_BCM


@pytest.fixture
def centred_zoo(tmp_path, monkeypatch) -> Zoo:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    path = save_bcm(BatchCorrelationModule(**TINY_SAVED_BCM), pkg / "tiny-v1.safetensors")
    data = path.read_bytes()
    spec = WeightSpec(
        name="tiny", version="1", file=path.name, sha256=hashlib.sha256(data).hexdigest(),
        size=len(data), license="MIT", config=TINY_SAVED_BCM, loss_variant="centred",
    )  # fmt: skip
    zoo = Zoo(Manifest(specs=(spec,), default="tiny"), package_dir=pkg, home=tmp_path / "home")
    monkeypatch.setattr(zoo_pkg, "default_zoo", lambda: zoo)
    return zoo


def test_the_name_brings_its_variant(centred_zoo) -> None:
    assert SampleRelationLoss.from_pretrained("tiny").variant == "centred"
    assert SampleRelationLoss.from_pretrained().variant == "centred"  # the default entry
    assert SampleRelationLoss("tiny").variant == "centred"
    assert SampleRelationLoss.from_pretrained("tiny", variant="paper").variant == "paper"
    module = SampleRelationLoss.from_pretrained("tiny").bcm
    assert SampleRelationLoss(module).variant == "paper"  # a module carries no variant


def test_basicsr_option_files_get_it_too(centred_zoo) -> None:
    assert BasicSRRelationLoss(bcm="tiny").loss.variant == "centred"
    assert BasicSRRelationLoss(bcm="tiny", variant="paper").loss.variant == "paper"


def test_unknown_variants_are_refused() -> None:
    with pytest.raises(ValueError, match="loss_variant"):
        WeightSpec(
            name="x", version="1", file="x.safetensors", sha256="0" * 64, size=1,
            loss_variant="centered",
        )  # fmt: skip


def test_every_shipped_entry_records_its_diagnostics() -> None:
    for name in zoo_pkg.names():
        spec = zoo_pkg.get_spec(name)
        diagnostics = spec.diagnostics
        assert diagnostics["variant"] == spec.loss_variant, name
        for key in ("relational_index", "attention_entropy_fraction"):
            assert isinstance(diagnostics[key], float), (name, key)


def test_a_variant_change_changes_the_loss(centred_zoo) -> None:
    pred, target = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    centred = SampleRelationLoss.from_pretrained("tiny")(pred, target)
    paper = SampleRelationLoss.from_pretrained("tiny", variant="paper")(pred, target)
    assert not torch.isclose(centred, paper)


@pytest.mark.slow
def test_the_relational_bcm_is_relational_as_loaded_by_its_name() -> None:
    """The relational BCM's targets, re-measured: R >= +0.2 on the held-out photos and batch attention
    <= 90 % of uniform entropy, from the zoo name alone; the manifest's numbers reproduce."""
    from erl_losses.diagnostics import probe

    name = "bcm-batchexp-photos"
    spec = zoo_pkg.get_spec(name)
    measured = probe(SampleRelationLoss.from_pretrained(name)).as_dict()
    assert measured["variant"] == spec.loss_variant
    for key in ("relational_index", "attention_entropy_fraction", "cross_sample_gradient_share"):
        assert measured[key] == pytest.approx(spec.diagnostics[key], abs=2e-3), key
    assert measured["relational_index"] >= 0.2
    assert measured["attention_entropy_fraction"] <= 0.9
    assert zoo_pkg.get_spec("bcm-phase-photos").diagnostics["relational_index"] <= 0
