"""BasicSR multi-process training on CPU/gloo with ERL (``adapters/basicsr/distributed_compat.py``).

The slow test runs the documented command -- ``torchrun --nproc_per_node=2 -m
erl_losses.adapters.basicsr.train -opt FILE --launcher pytorch`` -- for a few iterations of
ECLNet + L1 + 0.1 * SampleRelationLoss(gather=True) on the synthetic renders, with a BCM file that
every rank loads identically.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("yaml")
# Importing the adapter aliases torchvision for basicsr, registers, and applies compat.install().
pytest.importorskip("erl_losses.adapters.basicsr", exc_type=ImportError)

from erl_losses import BatchCorrelationModule
from erl_losses.adapters.basicsr import distributed_compat

ITERS = 3

HOOK = "from erl_losses.adapters.basicsr import distributed_compat; distributed_compat.install()"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _option_file(root: Path, bcm_path: Path) -> Path:
    text = f"""
name: ddp_cpu_erl
model_type: SRModel
num_gpu: 0
manual_seed: 0
datasets:
  train:
    name: synthetic_train
    type: SyntheticExposureDataset
    dataroot: {root / "datasets" / "erl_synthetic"}
    split: train
    render: {{crop_size: 48, crops_per_photo: 1, seed: 0}}
    gt_size: 32
    augment: true
    mixed_exposure: false
    use_shuffle: true
    num_worker_per_gpu: 0
    batch_size_per_gpu: 2
    dataset_enlarge_ratio: 1
network_g: {{type: ECLNet, nc: 8, num_blocks: 2}}
path: {{pretrain_network_g: ~, strict_load_g: true, resume_state: ~}}
train:
  ema_decay: 0
  optim_g: {{type: Adam, lr: 0.001, weight_decay: 0, betas: [0.9, 0.99]}}
  scheduler: {{type: MultiStepLR, milestones: [100], gamma: 0.5}}
  total_iter: {ITERS}
  warmup_iter: -1
  pixel_opt:
    type: ERLCompositeLoss
    base: {{type: L1Loss, loss_weight: 1.0}}
    relation: {{loss_weight: 0.1, gather: true, bcm: {bcm_path}}}
logger:
  print_freq: 1
  save_checkpoint_freq: {ITERS}
  use_tb_logger: false
  wandb: {{project: ~, resume_id: ~}}
"""
    path = root / "ddp_cpu_erl.yml"
    path.write_text(text)
    return path


def test_adapter_applies_the_scale_out_patches() -> None:
    # Importing the adapter runs compat.install(), which must call distributed_compat.install().
    assert distributed_compat.is_installed(), (
        "compat.install() does not apply the scale-out patches; add at its "
        f"`# -- scale-out patches --` marker: {HOOK}"
    )


def test_install_is_idempotent_and_keeps_the_originals() -> None:
    import basicsr.utils.dist_util as dist_util
    from basicsr.models.base_model import BaseModel

    before = dist_util._init_dist_pytorch, BaseModel.model_to_device
    try:
        distributed_compat.install()
        distributed_compat.install()
        assert dist_util._init_dist_pytorch is distributed_compat.init_dist_pytorch
        assert BaseModel.model_to_device is distributed_compat.model_to_device
        originals = distributed_compat._ORIGINALS
        assert originals["_init_dist_pytorch"] is not distributed_compat.init_dist_pytorch
        assert originals["model_to_device"] is not distributed_compat.model_to_device
    finally:  # leave basicsr as the adapter import left it, for the other tests
        dist_util._init_dist_pytorch, BaseModel.model_to_device = before


@pytest.mark.skipif(torch.cuda.is_available(), reason="the patches only act without CUDA")
def test_init_dist_without_torchrun_environment_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="Expected the torchrun environment variable RANK"):
        distributed_compat.init_dist_pytorch("nccl")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the patches only act without CUDA")
def test_cpu_model_to_device_wraps_without_device_ids(tmp_path: Path) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    class FakeModel:
        opt = {"dist": True}  # noqa: RUF012
        device = torch.device("cpu")

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        wrapped = distributed_compat.model_to_device(FakeModel(), torch.nn.Conv2d(3, 3, 1))
        assert isinstance(wrapped, DistributedDataParallel)
        assert wrapped.device_ids is None
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the CPU/gloo path")
def test_two_process_basicsr_run_with_global_relation(tmp_path: Path) -> None:
    bcm = BatchCorrelationModule(channels=8, feat_channels=8, grid=4, d_model=32, num_heads=2)
    from erl_losses.pretext import save_weights

    bcm_path = save_weights(bcm, tmp_path / "bcm.safetensors")
    opt = _option_file(tmp_path, bcm_path)
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun) if torchrun.exists() else "torchrun",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "erl_losses.adapters.basicsr.train",
        "-opt",
        str(opt),
        "--launcher",
        "pytorch",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    experiment = tmp_path / "experiments" / "ddp_cpu_erl"
    assert (experiment / "models" / f"net_g_{ITERS}.pth").is_file(), output[-3000:]
    log = "\n".join(p.read_text() for p in experiment.glob("train_ddp_cpu_erl_*.log"))
    assert "world_size: 2" in log
    assert "dist: True" in log
    assert f"iter:{ITERS:8d}," in log, log[-3000:]  # basicsr's MessageLogger line of the last iter
