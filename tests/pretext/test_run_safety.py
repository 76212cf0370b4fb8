"""Nothing lost, nothing outside --out, one run per folder, Ctrl-C keeps the work."""

from __future__ import annotations

import csv
import json
import os
import signal
import stat

import pytest
import torch

from erl_losses._files import atomic_path
from erl_losses.cli import main
from erl_losses.pretext import read_metadata
from erl_losses.pretext.rundir import LOCK_NAME, check_output_name, run_lock
from erl_losses.training import warmup_cosine_factor
from tests._helpers import write_image_folder
from tests.pretext._helpers import _equal, _recipe, _run, cli_argv


def _snapshot(folder):  # type: ignore[no-untyped-def]
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- 13.2: a second run into the same --out ------------------------------------------------------
def test_a_second_run_without_resume_refuses_and_keeps_the_earlier_run(tmp_path):
    _run(tmp_path, _recipe(stage2_steps=2))
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"earlier run.*--resume.*--overwrite"):
        _run(tmp_path, _recipe(stage2_steps=2))
    assert _snapshot(tmp_path) == before


def test_overwrite_replaces_the_run_only_once_the_inputs_are_good(tmp_path):
    _run(tmp_path, _recipe(stage2_steps=2))
    before = _snapshot(tmp_path)
    with pytest.raises(FileNotFoundError, match="directory"):
        _run(tmp_path, _recipe(stage2_steps=2), overwrite=True, images=tmp_path / "missing")
    assert _snapshot(tmp_path) == before  # nothing deleted for a run that could not start
    result = _run(tmp_path, _recipe(pretext="l1", stage2_steps=2), overwrite=True)
    assert json.loads(read_metadata(result.weights)["recipe"])["pretext"] == "l1"
    # only the files this run writes are replaced: the earlier run's differently named weights stay
    assert (tmp_path / "bcm-phase-v1.safetensors").read_bytes() == before[
        "bcm-phase-v1.safetensors"
    ]
    assert result.log.read_bytes() != before["log.csv"]
    with pytest.raises(ValueError, match="at most one"):
        _run(tmp_path, _recipe(), overwrite=True, resume=True)


def test_cli_rerun_names_both_flags(tmp_path, capsys):
    images = write_image_folder(tmp_path / "gt")
    argv = [*cli_argv(images, tmp_path / "o", stage1_steps=1, stage2_steps=1), "--no-eval"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert main([*argv, "--overwrite"]) == 0


# -- 13.4: output names ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a/../../x", "..", "a/b", "a\\b", "", ".hidden", "x/"])
def test_bad_names_are_refused_before_any_work(tmp_path, name):
    out = tmp_path / "out"
    steps: list[int] = []
    with pytest.raises(ValueError, match="name"):
        _run(out, name=name, callback=lambda *a: steps.append(1))
    with pytest.raises(ValueError, match="version"):
        _run(out, version="1/../../2")
    assert steps == [] and not out.exists()
    assert check_output_name("bcm-phase_2", "name") == "bcm-phase_2"


def test_cli_bad_name_writes_nothing_anywhere(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["pretrain", "--name", "a/../../x", "--stage1-steps", "1", "--no-progress"])
    assert code == 2 and "--name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # not even runs/


# -- 13.5: two runs into one --out ----------------------------------------------------------------
def test_a_second_concurrent_run_is_refused_while_the_first_holds_the_lock(tmp_path):
    with run_lock(tmp_path) as lock:
        assert lock.read_text().strip() == f"pid {os.getpid()}"
        with pytest.raises(ValueError, match=rf"other pretext run.*pid {os.getpid()}"):
            _run(tmp_path)
    assert not (tmp_path / LOCK_NAME).exists()  # released and removed
    _run(tmp_path, _recipe(stage2_steps=1))  # the folder is usable again
    assert not (tmp_path / LOCK_NAME).exists()


def test_temporary_files_are_unique_and_get_the_umask_mode(tmp_path):
    dest = tmp_path / "checkpoint.safetensors"
    with atomic_path(dest) as first, atomic_path(dest) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("a")
        second.write_text("b")
    assert dest.read_text() == "a"  # the last to finish wins, atomically; no temp is left
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o666 & ~umask

    def fail_half_way() -> None:
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert dest.read_text() == "a" and len(list(tmp_path.iterdir())) == 1


# -- Ctrl-C ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path):
    straight = _run(tmp_path / "a", checkpoint_every=100)

    def interrupt(step: int, stage: int, loss: float) -> None:
        if step == 6:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match="--resume"):
        _run(tmp_path / "b", checkpoint_every=100, callback=interrupt)
    state = json.loads(read_metadata(tmp_path / "b" / "checkpoint.safetensors")["state"])
    assert state["global_step"] == 6  # stopped after the step it was in, nothing lost
    assert not (tmp_path / "b" / LOCK_NAME).exists()
    resumed = _run(tmp_path / "b", checkpoint_every=100, resume=True)
    assert _equal(resumed.bcm.state_dict(), straight.bcm.state_dict())


def test_ctrl_c_in_the_cli_exits_130_and_says_where_the_checkpoint_is(
    tmp_path, capsys, monkeypatch
):
    from erl_losses.pretext import stages

    real = stages.stage_loss
    calls: list[int] = []

    def loss_then_interrupt(bcm, recipe, stage, x):  # type: ignore[no-untyped-def]
        calls.append(stage)
        if len(calls) == 2:  # during the second step
            os.kill(os.getpid(), signal.SIGINT)
        return real(bcm, recipe, stage, x)

    monkeypatch.setattr(stages, "stage_loss", loss_then_interrupt)
    images = write_image_folder(tmp_path / "gt")
    out = tmp_path / "o"
    argv = [*cli_argv(images, out, stage1_steps=3, stage2_steps=1), "--no-eval"]
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a pytest-xdist worker
    assert main(argv) == 130
    assert "checkpoint.safetensors" in capsys.readouterr().err
    assert json.loads(read_metadata(out / "checkpoint.safetensors")["state"])["global_step"] == 2
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler restored


# -- the schedule ---------------------------------------------------------------------------------
def test_logged_lr_is_the_shared_warmup_cosine_schedule(tmp_path):
    recipe = _recipe(stage1_steps=6, stage2_steps=5, warmup_fraction=0.34, min_lr_ratio=0.1)
    result = _run(tmp_path, recipe, log_every=1)
    with result.log.open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        stage, local = int(row["stage"]), int(row["step"]) - 1
        total = recipe.stage_steps[stage - 1]
        peak = recipe.stage1_lr if stage == 1 else recipe.stage2_lr
        factor = warmup_cosine_factor(local, total, recipe.warmup_steps(total), 0.1)
        assert float(row["lr"]) == pytest.approx(peak * factor, rel=1e-3)
    assert torch.isfinite(result.bcm.fuse.weight).all()
