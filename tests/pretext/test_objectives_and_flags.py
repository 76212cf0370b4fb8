"""The objectives registry, the CLI flags generated from the recipe, the BCM's stage rules."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from erl_losses import BatchCorrelationModule
from erl_losses.cli import build_parser
from erl_losses.cli.pretrain import _command_line
from erl_losses.pretext import (
    PRETEXTS,
    PretextRecipe,
    get_objective,
    objectives,
    read_metadata,
    register_objective,
)
from tests._helpers import TINY_SAVED_BCM as TINY
from tests.pretext._helpers import _recipe, _run


@pytest.fixture
def registry(monkeypatch):  # type: ignore[no-untyped-def]
    """A private copy of the registry, so a test's objective does not outlive the test."""
    monkeypatch.setattr(objectives, "_REGISTRY", dict(objectives._REGISTRY))
    return objectives


def test_builtin_objectives_are_the_papers():
    assert PRETEXTS[:3] == ("phase", "l1", "none")
    assert all(get_objective(name).paper for name in ("phase", "l1", "none"))
    assert not get_objective("none").trains_relation
    with pytest.raises(ValueError, match=r"one of \['phase', 'l1', 'none'"):
        get_objective("mse")


def test_a_registered_objective_trains_stage2_by_name(tmp_path, registry):
    calls: list[tuple[int, ...]] = []

    def mean_match(bcm: BatchCorrelationModule, batch: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(batch.shape))
        rec = bcm.reconstruct(batch, relation=True)
        return (rec.mean(dim=(2, 3)) - batch.mean(dim=(2, 3))).abs().mean()

    register_objective("mean_match", mean_match, description="per-image mean colour (ours)")
    assert "mean_match" in registry.objective_names()
    result = _run(tmp_path, _recipe(pretext="mean_match", stage2_steps=2))
    assert calls == [(3, 3, 16, 16)] * 2  # batch_size 3, crop 16
    assert json.loads(read_metadata(result.weights)["recipe"])["pretext"] == "mean_match"
    card = result.card.read_text()
    assert "per-image mean colour" in card and "ours, not the paper's" in card
    with pytest.raises(ValueError, match="already registered"):
        register_objective("mean_match", mean_match, description="again")


def test_an_objective_may_read_the_recipe(registry):
    seen = []
    register_objective(
        "spy", lambda bcm, batch, recipe: seen.append(recipe.seed) or batch.sum(), description="-"
    )
    get_objective("spy").loss(BatchCorrelationModule(**TINY), torch.rand(2, 3, 16, 16), _recipe())
    assert seen == [7]


# -- erl pretrain flags -----------------------------------------------------------------------------
def _pretrain_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices["pretrain"]


def test_every_recipe_field_has_a_flag_with_its_default():
    parser = _pretrain_parser()
    by_dest = {a.dest: a for a in parser._actions}
    for field in dataclasses.fields(PretextRecipe):
        assert field.name in by_dest, field.name
        assert by_dest[field.name].default == field.default, field.name
    assert by_dest["pretext"].choices == PRETEXTS
    args = parser.parse_args(["--betas", "0.8", "0.95", "--no-flip", "--warmup-fraction", "0.1"])
    from erl_losses.cli.pretrain import _recipe as recipe_of

    recipe = recipe_of(args)
    assert recipe.betas == (0.8, 0.95) and recipe.flip is False and recipe.warmup_fraction == 0.1
    assert recipe_of(parser.parse_args([])) == PretextRecipe()


def test_recorded_command_line_round_trips():
    parser = _pretrain_parser()
    argv = [
        "--betas",
        "0.8",
        "0.95",
        "--no-flip",
        "--stage1-steps",
        "3",
        "--url",
        "a",
        "--url",
        "b",
    ]
    args = parser.parse_args(argv)
    args._command_parser = parser
    words = _command_line(args).split()[2:]
    again = parser.parse_args(words)
    for field in dataclasses.fields(PretextRecipe):
        assert getattr(again, field.name) == getattr(args, field.name)
    assert again.urls == ["a", "b"]


def test_help_lists_the_objectives_without_importing_torch():
    code = (
        "import sys; from erl_losses.cli import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the BCM's per-stage rules ------------------------------------------------------------------------
def test_pretext_parameters_and_mask_follow_the_stage():
    bcm = BatchCorrelationModule(**TINY)
    stage1 = bcm.pretext_parameters(1)
    assert {id(p) for p in stage1} == {id(p) for p in bcm.encoder_decoder_parameters()}
    assert not any(p.requires_grad for p in bcm.t_e.parameters())
    stage2 = bcm.pretext_parameters(2)
    assert all(p is not bcm.fuse.bias for p in stage2) and not bcm.fuse.bias.requires_grad
    assert not any(p.requires_grad for p in bcm.f_e.parameters())
    assert all(p.requires_grad for p in bcm.t_e.parameters())
    assert any(p is bcm.fuse.bias for p in bcm.pretext_parameters(2, fuse_relation_only=False))
    bcm.pretext_parameters(2)
    bcm.reconstruct(torch.rand(2, 3, 16, 16)).mean().backward()
    half = bcm.fuse.weight.shape[1] // 2
    assert bcm.fuse.weight.grad[:, :half].abs().sum() > 0
    bcm.mask_pretext_grad(2)
    assert bcm.fuse.weight.grad[:, :half].abs().sum() == 0
    assert bcm.fuse.weight.grad[:, half:].abs().sum() > 0
    with pytest.raises(ValueError, match="stage"):
        bcm.pretext_parameters(3)
