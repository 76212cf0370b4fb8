"""Paper table 1 in BasicSR: every shipped configuration parses, builds and trains on CPU.

Each option file of a table-1 cell (4 nets x MSEC/SICE x baseline/+ERL, plus DRBN-ENC's MSEC
stage 1) is loaded as shipped and built into its model, dataset and losses in this process;
only sizes shrink (DRBN units, crop, batch) so that two training steps stay cheap. DRBN-ENC's
MSEC stage 2 gets a saved stage-1 checkpoint in place of its ``experiments/`` path, and the
two stages run end to end through ``erl-basicsr-train`` in ``test_drbn_enc_msec_two_stages``.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.utils.options import ordered_yaml
from PIL import Image
from torch.utils.data import DataLoader

import erl_losses.adapters.basicsr as adapter
from erl_losses.archs import DRBN_ENC
from erl_losses.archs.losses import DRBNLoss
from tests._helpers import TINY_BCM, erl_model_opt

_CELL = re.compile(r"(drbn|drbn_enc|eclnet|fecnet)_(stage1_)?(baseline|erl)_(msec|sice)")
PAPER_FILES = [p for p in adapter.option_files() if _CELL.fullmatch(p.stem)]
STAGE1_WEIGHTS = "experiments/DRBN_ENC_stage1_{variant}_MSEC/models/net_g_latest.pth"


def _load(path: Path) -> dict:
    with open(path) as handle:
        return yaml.load(handle, Loader=ordered_yaml()[0])


def _by_stem(stem: str) -> dict:
    return _load(next(p for p in PAPER_FILES if p.stem == stem))


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny MSEC-layout (rendered) and SICE-layout (``SICEV2/train/{low,over,mid}``) sets."""
    from erl_losses.data import render_dataset

    msec = tmp_path_factory.mktemp("msec")
    render_dataset(msec, crop_size=24, crops_per_photo=1, split="train", train_photos=["astronaut"])
    sice = tmp_path_factory.mktemp("sice")
    rng = np.random.default_rng(0)
    for i in (1, 2):
        for level in ("low", "over", "mid"):
            folder = sice / "SICEV2" / "train" / level
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return {"msec": msec, "sice": sice}


def _shrunk(opt: dict, tmp_path: Path, root: Path) -> dict:
    """The shipped options with CPU, tiny sizes and a local dataroot; nothing else changed."""
    opt = copy.deepcopy(opt)
    opt.update(num_gpu=0, is_train=True, dist=False, rank=0, world_size=1)
    if opt["network_g"]["type"] in ("DRBN", "DRBN_ENC"):
        opt["network_g"]["num_units"] = 1
    opt["path"]["models"] = str(tmp_path)
    train = opt["datasets"]["train"]
    train.pop("mixed_exposure")  # the adapter's loader is not used in-process
    train.update(phase="train", dataroot=str(root), gt_size=16, batch_size_per_gpu=2)
    return opt


def _save_stage1(opt: dict, path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    net = build_network(copy.deepcopy(opt["network_g"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": net.state_dict()}, path)
    return path


def test_every_table1_cell_ships() -> None:
    cells = {p.stem for p in PAPER_FILES}
    for net in ("drbn", "drbn_enc", "eclnet", "fecnet"):
        for variant in ("baseline", "erl"):
            for dataset in ("msec", "sice"):
                assert f"{net}_{variant}_{dataset}" in cells
    assert {"drbn_enc_stage1_baseline_msec", "drbn_enc_stage1_erl_msec"} <= cells
    assert len(PAPER_FILES) == 18


@pytest.mark.parametrize("path", PAPER_FILES, ids=lambda p: p.stem)
def test_paper_option_file_trains_two_cpu_steps(
    path: Path, roots: dict[str, Path], tmp_path: Path
) -> None:
    shipped = _load(path)
    dataset = "sice" if path.stem.endswith("_sice") else "msec"
    opt = _shrunk(shipped, tmp_path, roots[dataset])
    teacher_path = opt["path"].get("pretrain_network_teacher")
    if teacher_path is not None:
        assert opt["path"]["pretrain_network_g"] == teacher_path  # stage 2 starts from its teacher
        weights = _save_stage1(opt, tmp_path / "stage1.pth", seed=3)
        opt["path"].update(pretrain_network_g=str(weights), pretrain_network_teacher=str(weights))
    train_set = build_dataset(opt["datasets"]["train"])
    batch = next(iter(DataLoader(train_set, batch_size=2, shuffle=False)))
    torch.manual_seed(0)
    model = build_model(opt)
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    for step in (1, 2):
        model.feed_data(batch)
        model.optimize_parameters(step)
        log = model.get_current_log()
        expected = ["l_net", "l_relation"] if "relation_opt" in opt["train"] else ["l_net"]
        assert list(log) == expected, f"Expected logs {expected}, got {list(log)}"
        assert all(np.isfinite(v) for v in log.values()), log
    after = model.net_g.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "no parameter moved"
    teacher = model.net_teacher
    assert (teacher is not None) == (teacher_path is not None)
    if teacher is not None:
        assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
        saved = torch.load(weights, map_location="cpu", weights_only=True)["params"]
        for key, value in teacher.state_dict().items():
            torch.testing.assert_close(value, saved[key], rtol=0, atol=0)


def test_drbn_enc_files_select_the_released_variant() -> None:
    for variant in ("baseline", "erl"):
        sice = _by_stem(f"drbn_enc_{variant}_sice")
        assert sice["network_g"]["variant"] == "sice"  # DRBNIN3, the SICE yml's net
        assert "pretrain_network_teacher" not in sice["path"]
        for stem in (f"drbn_enc_stage1_{variant}_msec", f"drbn_enc_{variant}_msec"):
            assert _by_stem(stem)["network_g"].get("variant", "msec") == "msec"


@pytest.mark.parametrize("variant", ["baseline", "erl"])
def test_drbn_enc_msec_stage2_is_stage1_plus_teacher(variant: str) -> None:
    stage1 = _by_stem(f"drbn_enc_stage1_{variant}_msec")
    stage2 = _by_stem(f"drbn_enc_{variant}_msec")
    weights = STAGE1_WEIGHTS.format(variant=variant)
    assert stage1["name"] == f"DRBN_ENC_stage1_{variant}_MSEC"  # where stage 1 saves
    assert stage1["path"]["pretrain_network_g"] is None
    assert stage2["path"]["pretrain_network_g"] == weights
    assert stage2["path"]["pretrain_network_teacher"] == weights
    assert stage1["train"]["net_loss_opt"]["distill_weight"] == 0
    assert stage2["train"]["net_loss_opt"]["distill_weight"] == pytest.approx(0.1)
    for key in ("network_g", "datasets"):
        assert stage1[key] == stage2[key]
    # Same schedule as the release's (stage-2) yml; only the distillation weight differs.
    stage1["train"]["net_loss_opt"].pop("distill_weight")
    stage2["train"]["net_loss_opt"].pop("distill_weight")
    assert stage1["train"] == stage2["train"]
    assert stage2["train"]["optim_g"]["lr"] == pytest.approx(5e-5)
    assert stage2["train"]["total_iter"] == 353600


def _teacher_opt(tmp_path: Path, weights: Path, loss: dict) -> dict:
    relation = {"type": "SampleRelationLoss", "loss_weight": 0.1, "bcm": TINY_BCM}
    return erl_model_opt(
        tmp_path,
        {"net_loss_opt": loss, "relation_opt": relation},
        name="teacher",
        network_g={"type": "DRBN_ENC", "num_units": 1},
        path={"models": str(tmp_path), "pretrain_network_teacher": str(weights)},
    )


def test_teacher_adds_the_distillation_term_on_the_gt(tmp_path: Path) -> None:
    opt = _teacher_opt(tmp_path, tmp_path / "t.pth", {"type": "DRBNLoss", "distill_weight": 0.1})
    weights = _save_stage1(opt, tmp_path / "t.pth", seed=7)
    torch.manual_seed(0)
    model = build_model(opt)
    student = copy.deepcopy(model.net_g)
    teacher = DRBN_ENC(num_units=1)
    teacher.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["params"])
    lq, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    model.feed_data({"lq": lq, "gt": gt})
    model.optimize_parameters(1)
    expected, _ = DRBNLoss(distill_weight=0.1).compute(student, lq, gt, teacher=teacher)
    plain, _ = DRBNLoss(distill_weight=0.1).compute(student, lq, gt)
    assert expected.item() > plain.item()  # the term is there, and it is the teacher's
    assert model.get_current_log()["l_net"] == pytest.approx(expected.item(), rel=1e-5)


def test_teacher_is_refused_by_a_loss_that_cannot_use_it(tmp_path: Path) -> None:
    opt = _teacher_opt(tmp_path, tmp_path / "t.pth", {"type": "ECLNetLoss", "augment": False})
    with pytest.raises(ValueError, match=r"uses a teacher \(DRBNLoss\).*got ECLNetLoss"):
        build_model(opt)
    del opt["train"]["net_loss_opt"]
    opt["train"]["pixel_opt"] = {"type": "L1Loss", "loss_weight": 1.0}
    with pytest.raises(ValueError, match=r"uses a teacher .*got no net_loss_opt"):
        build_model(opt)


def test_resume_reloads_the_teacher_from_stage_1() -> None:
    from basicsr.utils.misc import check_resume

    opt = _by_stem("drbn_enc_erl_msec")
    opt["path"].update(resume_state="experiments/x/training_states/4.state", models="m")
    check_resume(opt, 4)
    assert opt["path"]["pretrain_network_g"] == os.path.join("m", "net_g_4.pth")
    assert opt["path"]["pretrain_network_teacher"] == STAGE1_WEIGHTS.format(variant="erl")


# -- end to end ------------------------------------------------------------------------------
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _cpu_run(stem: str, root: Path, cwd: Path) -> str:
    """Trains the shipped file ``stem`` for 2 steps through ``erl-basicsr-train``; the log."""
    opt = _load(next(p for p in PAPER_FILES if p.stem == stem))
    opt = _shrunk(opt, cwd, root)
    for key in ("is_train", "dist", "rank", "world_size"):
        opt.pop(key)
    opt["path"].pop("models")
    del opt["datasets"]["val"], opt["val"]  # no validation: two steps only
    opt["datasets"]["train"].update(num_worker_per_gpu=0, mixed_exposure=True)
    opt["train"]["total_iter"] = 2
    opt["logger"].update(print_freq=1, save_checkpoint_freq=100, use_tb_logger=False)
    path = cwd / f"{stem}.yml"
    path.write_text(yaml.dump(opt, Dumper=ordered_yaml()[1]))
    script = Path(sys.executable).parent / "erl-basicsr-train"
    done = subprocess.run(
        [str(script), "-opt", str(path)],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    logs = sorted((cwd / "experiments" / opt["name"]).glob("train_*.log"))
    return logs[-1].read_text()


@pytest.mark.slow
def test_drbn_enc_msec_two_stages(roots: dict[str, Path], tmp_path: Path) -> None:
    """Stage 1, then stage 2 from the very path the shipped stage-2 file names."""
    log1 = _cpu_run("drbn_enc_stage1_erl_msec", roots["msec"], tmp_path)
    assert len(re.findall(r"l_net: \S+ l_relation: \S+", log1)) == 2
    weights = STAGE1_WEIGHTS.format(variant="erl")
    assert (tmp_path / weights).is_file()
    log2 = _cpu_run("drbn_enc_erl_msec", roots["msec"], tmp_path)
    # Loaded twice: the warm start of net_g and the frozen teacher.
    assert len(re.findall(rf"Loading DRBN_ENC model from {re.escape(weights)}", log2)) == 2
    assert len(re.findall(r"l_net: \S+ l_relation: \S+", log2)) == 2
    final = torch.load(
        tmp_path / "experiments/DRBN_ENC_erl_MSEC/models/net_g_latest.pth", weights_only=True
    )
    stage1 = torch.load(tmp_path / weights, weights_only=True)
    assert set(final["params"]) == set(stage1["params"])  # the teacher is not saved with net_g
