"""End-to-end BasicSR runs on CPU through the console scripts (a few iterations each).

Each test runs the real pipeline in a subprocess with the temporary folder as the working
directory (so ``experiments/`` and ``results/`` land there) on data rendered by
:mod:`erl_losses.data`.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import erl_losses.adapters.basicsr as adapter
from tests._helpers import TINY_BCM

pytestmark = pytest.mark.slow

SCRIPTS = Path(sys.executable).parent
TINY = next(p for p in adapter.option_files() if p.stem == "tiny_cpu_synthetic")
# One thread per process: the CI and dev machines are small and shared.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FAST = ["logger:print_freq=1", "logger:save_checkpoint_freq=2", "val:val_freq=2"]


def _run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


def _script(name: str) -> str:
    path = SCRIPTS / name
    assert path.is_file(), f"console script {name} is not installed next to {sys.executable}"
    return str(path)


def _log(root: Path, pattern: str) -> str:
    logs = sorted(root.glob(pattern))
    assert logs, f"no log matching {pattern} under {root}"
    return logs[-1].read_text()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from erl_losses.data import render_dataset

    root = tmp_path_factory.mktemp("data") / "synthetic"
    render_dataset(root, crop_size=32, crops_per_photo=1, seed=0)
    return root


def _tiny_variant(synthetic: Path, name: str) -> dict:
    with open(TINY) as handle:
        opt = yaml.safe_load(handle)
    opt["name"] = name
    opt["train"]["total_iter"] = 4
    opt["logger"].update(print_freq=1, save_checkpoint_freq=2)
    opt["val"]["val_freq"] = 2
    for dataset in opt["datasets"].values():
        dataset["dataroot"] = str(synthetic)
        dataset.pop("render")
    opt["datasets"]["train"]["gt_size"] = 24
    return opt


def test_stock_srmodel_with_composite_loss_trains_resumes_and_tests(tmp_path: Path) -> None:
    """(a) The shipped tiny option file, unchanged but for fewer iterations, then resume + test."""
    out = _run(
        [
            _script("erl-basicsr-train"),
            "-opt",
            str(TINY),
            "--force_yml",
            "train:total_iter=4",
            *FAST,
        ],
        tmp_path,
    )
    exp = tmp_path / "experiments" / "tiny_cpu_eclnet_erl_synthetic"
    assert (tmp_path / "datasets" / "erl_synthetic" / "train" / "INPUT_IMAGES").is_dir()
    log = _log(exp, "train_*.log")
    assert "Loss [ERLCompositeLoss] is created." in log
    assert re.search(r"l_pix: \d", log)
    assert re.search(r"# psnr: \d+\.\d+", log), out[-2000:]
    for name in ("net_g_2.pth", "net_g_4.pth", "net_g_latest.pth"):
        assert (exp / "models" / name).is_file()
    assert (exp / "training_states" / "4.state").is_file()

    # Resume on CPU from the latest state (basicsr's own loader needs CUDA; see compat).
    _run(
        [
            _script("erl-basicsr-train"),
            "-opt",
            str(TINY),
            "--auto_resume",
            "--force_yml",
            "train:total_iter=6",
            *FAST,
        ],
        tmp_path,
    )
    log = _log(exp, "train_*.log")
    assert "Resuming training from epoch: 0, iter: 4." in log
    assert (exp / "models" / "net_g_6.pth").is_file()

    # Test pipeline on the trained weights.
    with open(TINY) as handle:
        opt = yaml.safe_load(handle)
    test_opt = {
        "name": "tiny_test",
        "model_type": "SRModel",
        "num_gpu": 0,
        "manual_seed": 0,
        "datasets": {"test_1": opt["datasets"]["val"]},
        "network_g": opt["network_g"],
        "path": {
            "pretrain_network_g": str(exp / "models" / "net_g_latest.pth"),
            "strict_load_g": True,
        },
        "val": {"save_img": True, "suffix": None, "metrics": opt["val"]["metrics"]},
    }
    test_file = tmp_path / "test.yml"
    test_file.write_text(yaml.safe_dump(test_opt))
    _run([_script("erl-basicsr-test"), "-opt", str(test_file)], tmp_path)
    results = tmp_path / "results" / "tiny_test"
    assert re.search(r"# psnr: \d+\.\d+", _log(results, "test_*.log"))
    assert list((results / "visualization").rglob("*.png"))


def test_erl_model_logs_relation_separately(tmp_path: Path, synthetic: Path) -> None:
    """(b) model_type ERLModel + relation_opt, through ``python -m ...train``."""
    opt = _tiny_variant(synthetic, "erl_model")
    opt["model_type"] = "ERLModel"
    opt["base_model_type"] = "SRModel"
    opt["train"]["pixel_opt"] = {"type": "L1Loss", "loss_weight": 1.0}
    opt["train"]["relation_opt"] = {
        "type": "SampleRelationLoss",
        "loss_weight": 0.1,
        "bcm": copy.deepcopy(TINY_BCM),
    }
    path = tmp_path / "erl.yml"
    path.write_text(yaml.safe_dump(opt))
    _run([sys.executable, "-m", "erl_losses.adapters.basicsr.train", "-opt", str(path)], tmp_path)
    exp = tmp_path / "experiments" / "erl_model"
    log = _log(exp, "train_*.log")
    assert "Model [ERLModel[SRModel]] is created." in log
    lines = re.findall(r"l_pix: (\S+) l_relation: (\S+)", log)
    assert len(lines) == 4
    assert all(float(rel) > 0 for _, rel in lines)
    assert re.search(r"# psnr: \d+\.\d+", log)
    # The checkpoint is the plain net's: no BCM weights leak into it.
    state = torch.load(exp / "models" / "net_g_latest.pth", map_location="cpu", weights_only=True)[
        "params"
    ]
    assert not any(k.startswith(("f_e", "t_e", "_bcm")) for k in state)


def test_erl_model_trains_with_the_nets_own_loss(tmp_path: Path, synthetic: Path) -> None:
    """(d) ERLModel + net_loss_opt (ECLNetLoss) + relation_opt through ``erl-basicsr-train``."""
    opt = _tiny_variant(synthetic, "net_loss")
    opt["model_type"] = "ERLModel"
    opt["base_model_type"] = "SRModel"
    opt["network_g"] = {"type": "ECLNet", "nc": 4, "num_blocks": 1}
    opt["train"]["total_iter"] = 3
    opt["val"]["val_freq"] = 3
    del opt["train"]["pixel_opt"]
    opt["train"]["net_loss_opt"] = {"type": "ECLNetLoss", "box_size": 8}
    opt["train"]["relation_opt"] = {
        "type": "SampleRelationLoss",
        "loss_weight": 0.1,
        "bcm": copy.deepcopy(TINY_BCM),
    }
    path = tmp_path / "net_loss.yml"
    path.write_text(yaml.safe_dump(opt))
    _run([_script("erl-basicsr-train"), "-opt", str(path)], tmp_path)
    exp = tmp_path / "experiments" / "net_loss"
    log = _log(exp, "train_*.log")
    assert "Model [ERLModel[SRModel]] is created." in log
    lines = re.findall(r"l_net: (\S+) l_relation: (\S+)", log)
    assert len(lines) == 3, f"Expected 3 logged iterations with l_net and l_relation, got {lines}"
    assert all(float(net) > 0 and float(rel) > 0 for net, rel in lines)
    assert "l_pix" not in log
    assert re.search(r"# psnr: \d+\.\d+", log)
    assert (exp / "models" / "net_g_latest.pth").is_file()


def test_bcm_pretext_model_runs_both_stages(tmp_path: Path, synthetic: Path) -> None:
    """(c) model_type BCMPretextModel: stage 1 then stage 2, a zoo-format file at the end."""
    opt = _tiny_variant(synthetic, "pretext")
    opt["model_type"] = "BCMPretextModel"
    opt["network_g"] = {"type": "BatchCorrelationModule", **TINY_BCM}
    opt["train"] = {
        "pretext": "phase",
        "stage1_iter": 2,
        "total_iter": 4,
        "optim_g": {"type": "Adam", "lr": 1e-3},
        "optim_stage2": {"type": "Adam", "lr": 5e-4},
        "scheduler": {"type": "MultiStepLR", "milestones": [100], "gamma": 0.5},
    }
    opt["datasets"]["train"].pop("mixed_exposure")  # the pretext reads only the GT images
    path = tmp_path / "pretext.yml"
    path.write_text(yaml.safe_dump(opt))
    _run([_script("erl-basicsr-train"), "-opt", str(path)], tmp_path)
    exp = tmp_path / "experiments" / "pretext"
    log = _log(exp, "train_*.log")
    assert len(re.findall(r"l_stage1: \d", log)) == 2
    assert len(re.findall(r"l_stage2: \d", log)) == 2
    assert re.search(r"# psnr: \d+\.\d+", log)
    # Stage 2 (iterations 3-4) trains only t_e and W's F'-reading half: the auto-encoder saved
    # at the end of stage 1 (iteration 2) is intact.
    stage1 = torch.load(exp / "models" / "net_g_2.pth", map_location="cpu", weights_only=True)[
        "params"
    ]
    final = torch.load(exp / "models" / "net_g_latest.pth", map_location="cpu", weights_only=True)[
        "params"
    ]
    half = final["fuse.weight"].shape[1] // 2
    for key, value in stage1.items():
        if key.startswith(("f_e.", "f_d_head.", "f_d_tail.")) or key == "fuse.bias":
            torch.testing.assert_close(final[key], value, rtol=0, atol=0)
    torch.testing.assert_close(final["fuse.weight"][:, :half], stage1["fuse.weight"][:, :half])
    assert not torch.equal(final["fuse.weight"][:, half:], stage1["fuse.weight"][:, half:])
    assert any(not torch.equal(final[k], stage1[k]) for k in stage1 if k.startswith("t_e."))
    weights = exp / "models" / "bcm_phase.safetensors"
    assert weights.is_file()
    from erl_losses import SampleRelationLoss

    relation = SampleRelationLoss.from_pretrained(weights)
    x = torch.rand(2, 3, 16, 16)
    assert torch.isfinite(relation(x, x.flip(0)))
