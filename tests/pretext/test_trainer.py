"""The two-stage pretext trainer (erl_losses.pretext.pretrain_bcm) and ``erl pretrain``."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from erl_losses import BatchCorrelationModule
from erl_losses.cli import main
from erl_losses.modules.bcm_io import load_bcm
from erl_losses.pretext import (
    PretextRecipe,
    evaluate_bcm,
    random_relation,
    read_metadata,
)
from erl_losses.zoo import Manifest, WeightSpec
from tests._helpers import TINY_SAVED_BCM as TINY
from tests._helpers import write_image_folder
from tests.pretext._helpers import _equal, _recipe, _run, cli_argv


def _group(bcm: BatchCorrelationModule, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in bcm.state_dict().items() if k.startswith(prefix)}


@pytest.mark.slow
def test_library_run_writes_zoo_ready_outputs(tmp_path):
    result = _run(tmp_path / "run", name="tiny-phase", version="3", urls=["https://x.example/f"])
    out = tmp_path / "run"
    assert result.weights == out / "tiny-phase-v3.safetensors"
    for name in ("checkpoint.safetensors", "stage1.safetensors", "log.csv", "tiny-phase.md"):
        assert (out / name).is_file(), name
    bcm = load_bcm(result.weights)
    assert bcm.config == {**TINY, "in_channels": 3}
    assert _equal(bcm.state_dict(), result.bcm.state_dict())
    meta = read_metadata(result.weights)
    assert json.loads(meta["recipe"])["pretext"] == "phase"
    assert json.loads(meta["data"]) == {"kind": "test-noise"}
    # the manifest entry is a valid WeightSpec whose sha256 matches the file
    entry = json.loads(result.manifest_entry.read_text())
    spec = WeightSpec.from_dict(entry)
    assert spec.file == result.weights.name and spec.urls == ("https://x.example/f",)
    Manifest(specs=(spec,), default=spec.name)
    from erl_losses.zoo import file_sha256

    assert spec.sha256 == file_sha256(result.weights)
    assert spec.size == result.weights.stat().st_size
    # the log holds both stages, one row per step here (log_every defaults to 10 > 4 steps)
    with result.log.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["stage"] for r in rows] == ["1", "2"]
    assert [int(r["global_step"]) for r in rows] == [4, 8]
    assert "tiny-phase" in result.card.read_text()


def test_stage2_freezes_encoder_and_decoder(tmp_path):
    steps: list[tuple[int, int]] = []
    result = _run(tmp_path, callback=lambda step, stage, loss: steps.append((step, stage)))
    assert steps == [(i, 1) for i in range(1, 5)] + [(i, 2) for i in range(5, 9)]
    stage1 = load_bcm(tmp_path / "stage1.safetensors")
    final = result.bcm
    for frozen in ("f_e.", "f_d_head.", "f_d_tail."):
        assert _equal(_group(stage1, frozen), _group(final, frozen)), frozen
    for trained in ("t_e.", "fuse."):
        assert not _equal(_group(stage1, trained), _group(final, trained)), trained
    # by default stage 2 trains only the F'-reading half of W: the auto-encoder path is intact
    half = TINY["feat_channels"]
    assert torch.equal(final.fuse.weight[:, :half], stage1.fuse.weight[:, :half])
    assert torch.equal(final.fuse.bias, stage1.fuse.bias)
    assert not torch.equal(final.fuse.weight[:, half:], stage1.fuse.weight[:, half:])
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(
            final.reconstruct(x, relation=False), stage1.reconstruct(x, relation=False)
        )
    # stage 1 never touches t_e: stage1.safetensors holds the recipe's seeded initial t_e
    torch.manual_seed(7)
    fresh = BatchCorrelationModule(**TINY)
    assert _equal(_group(stage1, "t_e."), _group(fresh, "t_e."))
    assert not _equal(_group(stage1, "f_e."), _group(fresh, "f_e."))  # stage 1 trained f_e


def test_stage2_fuse_all_trains_the_whole_fusion(tmp_path):
    result = _run(tmp_path, _recipe(stage2_fuse="all"))
    stage1 = load_bcm(tmp_path / "stage1.safetensors")
    half = TINY["feat_channels"]
    assert not torch.equal(result.bcm.fuse.bias, stage1.fuse.bias)
    assert not torch.equal(result.bcm.fuse.weight[:, :half], stage1.fuse.weight[:, :half])
    assert _equal(_group(result.bcm, "f_e."), _group(stage1, "f_e."))


def test_pretext_none_skips_stage2_and_l1_trains_it(tmp_path):
    none = _run(tmp_path / "none", _recipe(pretext="none"))
    stage1 = load_bcm(tmp_path / "none" / "stage1.safetensors")
    assert _equal(none.bcm.state_dict(), stage1.state_dict())
    l1 = _run(tmp_path / "l1", _recipe(pretext="l1"))
    assert _equal(_group(l1.bcm, "f_e."), _group(none.bcm, "f_e."))  # same seed, same stage 1
    assert not _equal(_group(l1.bcm, "t_e."), _group(none.bcm, "t_e."))


class _Stop(Exception):
    pass


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint_to_identical_weights(tmp_path):
    straight = _run(tmp_path / "a", checkpoint_every=3)

    def crash(step: int, stage: int, loss: float) -> None:
        if step == 7:
            raise _Stop

    with pytest.raises(_Stop):
        _run(tmp_path / "b", checkpoint_every=3, callback=crash)
    ckpt = tmp_path / "b" / "checkpoint.safetensors"
    assert json.loads(read_metadata(ckpt)["state"])["global_step"] == 6
    assert any(k.startswith("optim.") for k in load_file(str(ckpt)))  # Adam moments, no pickle
    seen: list[int] = []
    resumed = _run(tmp_path / "b", checkpoint_every=3, resume=True,
                   callback=lambda step, stage, loss: seen.append(step))  # fmt: skip
    assert seen == [7, 8]
    assert _equal(resumed.bcm.state_dict(), straight.bcm.state_dict())
    with (tmp_path / "b" / "log.csv").open() as handle:
        assert [int(r["global_step"]) for r in csv.DictReader(handle)] == [4, 8]


def test_resume_with_another_recipe_or_without_checkpoint_fails(tmp_path):
    _run(tmp_path, _recipe(stage2_steps=2))
    with pytest.raises(ValueError, match="stage2_steps"):
        _run(tmp_path, _recipe(stage2_steps=3), resume=True)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        _run(tmp_path / "empty", resume=True)


def test_stage1_from_reuses_another_runs_auto_encoder(tmp_path):
    _run(tmp_path / "phase")
    stage1 = tmp_path / "phase" / "stage1.safetensors"
    l1 = _run(tmp_path / "l1", _recipe(pretext="l1", stage1_steps=0), stage1_from=stage1)
    source = load_bcm(stage1)
    assert _equal(_group(l1.bcm, "f_e."), _group(source, "f_e."))
    # the run's own stage-1 file (its random-t_e baseline) holds the source's W, not the
    # stage-2-trained one
    own = load_bcm(tmp_path / "l1" / "stage1.safetensors")
    assert _equal(_group(own, "fuse."), _group(source, "fuse."))
    assert not _equal(_group(l1.bcm, "fuse."), _group(source, "fuse."))
    assert json.loads(read_metadata(l1.weights)["training"])["stage1_from"]["file"] == stage1.name
    with pytest.raises(ValueError, match="stage1_steps=0"):
        _run(tmp_path / "x", _recipe(), stage1_from=stage1)


def test_evaluate_bcm_on_explicit_batches():
    torch.manual_seed(0)
    bcm = BatchCorrelationModule(**TINY)
    batches = [torch.rand(4, 3, 24, 24) for _ in range(2)]
    metrics = evaluate_bcm(bcm, batches=batches)
    assert metrics["phase_loss"] > 0 and metrics["phase_loss_random_te"] > 0
    assert metrics["recon_psnr_db"] > 0
    # a BCM compared with itself as the baseline has no reduction
    same = evaluate_bcm(bcm, baseline=bcm, batches=batches)
    assert same["phase_loss"] == same["phase_loss_random_te"]
    other = random_relation(bcm, seed=1)
    assert _equal(_group(other, "f_e."), _group(bcm, "f_e."))
    assert not _equal(_group(other, "t_e."), _group(bcm, "t_e."))
    assert _equal(_group(random_relation(bcm, 1), "t_e."), _group(other, "t_e."))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"pretext": "mse"}, "pretext"),
        ({"batch_size": 1}, "batch_size"),
        ({"crop_size": 8}, "crop_size"),
        ({"stage1_lr": 0.0}, "stage1_lr"),
        ({"phase_mode": "abs"}, "phase_mode"),
        ({"stage2_fuse": "some"}, "stage2_fuse"),
        ({"stage2_steps": -1}, "stage2_steps"),
    ],
)
def test_recipe_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        _recipe(**kw)


def test_recipe_round_trip():
    recipe = _recipe(pretext="l1", betas=(0.8, 0.9))
    assert PretextRecipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    with pytest.raises(ValueError, match="unknown"):
        PretextRecipe.from_dict({**recipe.to_dict(), "lr": 1})


@pytest.mark.slow
def test_cli_pretrain_and_resume(tmp_path, capsys):
    images = write_image_folder(tmp_path / "gt")
    out = tmp_path / "cli"
    argv = [
        *cli_argv(images, out, stage1_steps=3, stage2_steps=2), "--name", "cli-bcm",
        "--checkpoint-every", "2", "--eval-batches", "1",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "cli-bcm-v1.safetensors" in printed and "phase loss" in printed
    bcm = load_bcm(out / "cli-bcm-v1.safetensors")
    entry = json.loads((out / "cli-bcm.manifest.json").read_text())
    assert entry["training"]["command"].startswith("erl pretrain ")
    assert "--stage1-steps 3" in entry["training"]["command"]
    assert entry["data"]["kind"] == "image-folder"
    assert set(entry["metrics"]) >= {"recon_psnr_db", "phase_loss", "phase_loss_random_te"}
    assert entry["metrics"]["held_out"]["photos"] == ["chelsea", "coffee", "china"]
    # resuming a finished run changes nothing
    assert main([*argv, "--resume", "--no-eval"]) == 0
    assert torch.equal(
        load_bcm(out / "cli-bcm-v1.safetensors").t_e.in_proj.weight, bcm.t_e.in_proj.weight
    )
    # a user error is one line on stderr, exit code 2
    assert (
        main(["pretrain", "--images", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    )
    assert "directory" in capsys.readouterr().err
