"""CUDA checks: run on a GPU machine, skipped elsewhere (the suite never needs a GPU)."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import pytest
import torch

from erl_losses import BatchCorrelationModule, SampleRelationLoss, phase_loss

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture
def relation() -> SampleRelationLoss:
    return SampleRelationLoss(BatchCorrelationModule()).cuda()


@pytest.mark.parametrize("size", [(256, 256), (255, 257)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_phase_loss_under_autocast_matches_float32(size, dtype) -> None:
    pred = torch.rand(4, 3, *size, device="cuda", requires_grad=True)
    target = torch.rand(4, 3, *size, device="cuda")
    reference = phase_loss(pred, target, mode="wrapped")
    with torch.autocast("cuda", dtype=dtype):
        # Non-power-of-two sizes would fail in cuFFT half precision: the FFT must stay float32.
        loss = phase_loss(pred.to(dtype), target.to(dtype), mode="wrapped")
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=0.05)
    loss.backward()
    assert torch.isfinite(pred.grad).all()


def test_phase_loss_cuda_equals_cpu() -> None:
    pred, target = torch.rand(2, 3, 37, 50), torch.rand(2, 3, 37, 50)
    for mode in ("paper", "wrapped"):
        cpu = phase_loss(pred, target, mode=mode)
        gpu = phase_loss(pred.cuda(), target.cuda(), mode=mode)
        assert gpu.item() == pytest.approx(cpu.item(), rel=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_relation_under_autocast(relation: SampleRelationLoss, dtype) -> None:
    pred = torch.rand(4, 3, 256, 256, device="cuda", requires_grad=True)
    gt = torch.rand(4, 3, 256, 256, device="cuda")
    reference = relation(pred, gt)
    with torch.autocast("cuda", dtype=dtype):
        loss = relation(pred, gt)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=1e-4)
    loss.backward()
    assert torch.isfinite(pred.grad).all()


def test_relation_cuda_equals_cpu() -> None:
    bcm = BatchCorrelationModule()
    relation = SampleRelationLoss(bcm)
    pred, gt = torch.rand(4, 3, 96, 96), torch.rand(4, 3, 96, 96)
    cpu = relation(pred, gt).item()
    relation.cuda()
    assert relation.bcm.fuse.weight.is_cuda
    assert relation(pred.cuda(), gt.cuda()).item() == pytest.approx(cpu, rel=1e-3)


def test_relation_with_torch_compile_inductor(relation: SampleRelationLoss) -> None:
    compiled = torch.compile(relation)
    pred = torch.rand(4, 3, 128, 128, device="cuda", requires_grad=True)
    gt = torch.rand(4, 3, 128, 128, device="cuda")
    value = compiled(pred, gt)
    value.backward()
    assert value.item() == pytest.approx(relation(pred, gt).item(), rel=1e-3)
    assert torch.isfinite(pred.grad).all()


def test_the_one_line_loss_follows_cuda_inputs() -> None:
    """``SampleRelationLoss.from_pretrained()`` as written, in a CUDA trainer: no `.to()`."""
    relation = SampleRelationLoss.from_pretrained()
    pred = torch.rand(2, 3, 64, 64, device="cuda", requires_grad=True)
    gt = torch.rand(2, 3, 64, 64, device="cuda")
    cpu = relation(pred.detach().cpu(), gt.cpu()).item()
    value = relation(pred, gt)
    value.backward()
    assert relation.bcm.device == pred.device and relation.bcm.fuse.weight.dtype == torch.float32
    assert value.item() == pytest.approx(cpu, rel=1e-3) and torch.isfinite(pred.grad).all()


def test_a_cuda_input_with_a_cpu_bcm_names_pred_in_the_functional() -> None:
    from erl_losses import sample_relation_loss

    x = torch.rand(2, 3, 32, 32, device="cuda")
    with pytest.raises(ValueError, match="`pred` and `target` on the BCM's device cpu"):
        sample_relation_loss(x, x, BatchCorrelationModule())


def test_to_empty_on_cuda_keeps_the_bcm() -> None:
    relation = SampleRelationLoss(BatchCorrelationModule().eval())
    x = torch.rand(2, 3, 32, 32)
    before = relation(x, x + 0.1).item()
    relation.to_empty(device="cuda")
    assert relation(x.cuda(), x.cuda() + 0.1).item() == pytest.approx(before, rel=1e-4)


# -- the fused phase node, CUDA graphs of the BCM, a BasicSR run -----------------------------------
@pytest.mark.parametrize("mode", ["paper", "wrapped"])
@pytest.mark.parametrize("size", [(256, 256), (255, 257)])
def test_compiled_fused_phase_equals_the_unfused_graph(monkeypatch, mode, size) -> None:
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(4, 3, *size, generator=gen).cuda().requires_grad_()
    target = torch.rand(4, 3, *size, generator=gen).cuda()
    out = {}
    for setting in ("off", "eager", "auto"):  # auto: the same bodies through torch.compile
        monkeypatch.setenv("ERL_LOSSES_FUSED_PHASE", setting)
        pred.grad = None
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a compile fallback must not hide
            loss = phase_loss(pred, target, mode=mode)
            loss.backward()
        out[setting] = (loss.detach(), pred.grad.clone())
    for setting in ("eager", "auto"):
        torch.testing.assert_close(out[setting][0], out["off"][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out[setting][1], out["off"][1], rtol=1e-4, atol=1e-9)


def test_compiled_phase_bodies_are_not_compiled_again_per_image_size(monkeypatch) -> None:
    from torch._dynamo.utils import counters

    import erl_losses.functional.phase_fused as fused

    monkeypatch.setenv("ERL_LOSSES_FUSED_PHASE", "auto")
    torch._dynamo.reset()
    fused._compiled.cache_clear()
    graphs = []
    for size in [(64, 64), (96, 80), (130, 128), (255, 257)]:
        pred = torch.rand(2, 3, *size, device="cuda", requires_grad=True)
        phase_loss(pred, torch.rand_like(pred)).backward()
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[1] == graphs[-1], graphs  # the first new size may turn shapes dynamic, once


def _relation_pair(work_size: int | None = 128) -> tuple[SampleRelationLoss, SampleRelationLoss]:
    torch.manual_seed(0)
    bcm = BatchCorrelationModule(work_size=work_size)
    return (
        SampleRelationLoss(bcm, cuda_graphs=False).cuda(),
        SampleRelationLoss(copy.deepcopy(bcm), cuda_graphs=True).cuda(),
    )


def _value_grad(loss_fn, pred, target):  # type: ignore[no-untyped-def]
    pred = pred.detach().clone().requires_grad_()
    value = loss_fn(pred, target)
    value.backward()
    return value.detach(), pred.grad


@pytest.mark.parametrize("work_size", [128, None])
def test_cuda_graphs_give_the_eager_loss_and_gradient(work_size) -> None:
    eager, graphed = _relation_pair(work_size)
    for step, batch in enumerate((4, 4, 4, 6, 6, 6, 4)):  # a new batch size: captured again
        pred = torch.rand(batch, 3, 256, 256, device="cuda")
        target = torch.rand(batch, 3, 256, 256, device="cuda")
        want, got = _value_grad(eager, pred, target), _value_grad(graphed, pred, target)
        torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-7, msg=f"step {step}")
        torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=1e-9, msg=f"step {step}")
    cache = graphed._graphed.cache
    assert cache.captures >= 4  # (pred with grad, target without) x (batch 4, batch 6)


def test_cuda_graph_outputs_are_not_overwritten_by_the_next_replay() -> None:
    eager, graphed = _relation_pair()
    inputs = [
        (torch.rand(4, 3, 128, 128, device="cuda"), torch.rand(4, 3, 128, 128, device="cuda"))
        for _ in range(2)
    ]
    for _ in range(3):  # captured by now
        graphed(*inputs[0]).item()
    results = []
    for loss_fn in (eager, graphed):
        preds = [p.clone().requires_grad_() for p, _ in inputs]
        # two relation terms before one backward: the first's saved tensors must survive
        total = loss_fn(preds[0], inputs[0][1]) + 2 * loss_fn(preds[1], inputs[1][1])
        total.backward()
        results.append((total.detach(), [p.grad for p in preds]))
    (want_value, want_grads), (got_value, got_grads) = results
    torch.testing.assert_close(got_value, want_value, rtol=1e-5, atol=1e-7)
    for got, want in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-9)


def test_cuda_graphs_under_bf16_autocast_with_a_network() -> None:
    from erl_losses.archs import FECNet

    eager, graphed = _relation_pair()
    torch.manual_seed(0)
    net = FECNet().cuda()
    x, gt = torch.rand(4, 3, 256, 256, device="cuda"), torch.rand(4, 3, 256, 256, device="cuda")
    values = {}
    for name, loss_fn in (("eager", eager), ("graphed", graphed)):
        for _ in range(3):
            net.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = net(x)
                loss = (out.float() - gt).abs().mean() + 0.1 * loss_fn(out, gt)
            loss.backward()
        values[name] = (loss.item(), [p.grad.clone() for p in net.parameters()])
    assert values["graphed"][0] == pytest.approx(values["eager"][0], rel=1e-5)
    for got, want in zip(values["graphed"][1], values["eager"][1], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-6)


@pytest.mark.slow
def test_shipped_option_file_trains_and_resumes_on_the_gpu(tmp_path) -> None:
    """fecnet_erl_msec.yml through ``erl-basicsr-train`` on CUDA: 4 iterations with
    ``l_relation`` logged and the BCM replayed from CUDA graphs, then a resume to 6."""
    pytest.importorskip("erl_losses.adapters.basicsr")  # first: it applies the torchvision alias
    import re
    import subprocess
    import sys

    import yaml
    from basicsr.utils.options import ordered_yaml

    from erl_losses.data import render_dataset
    from tests.adapters.test_paper_options import PAPER_FILES, _load, _shrunk

    root = tmp_path / "msec"
    render_dataset(root, crop_size=64, crops_per_photo=2, split="train", train_photos=["astronaut"])
    opt = _shrunk(
        _load(next(p for p in PAPER_FILES if p.stem == "fecnet_erl_msec")), tmp_path, root
    )
    for key in ("is_train", "dist", "rank", "world_size"):
        opt.pop(key)
    opt["path"].pop("models")
    del opt["datasets"]["val"], opt["val"]
    opt["num_gpu"] = 1
    opt["datasets"]["train"].update(
        num_worker_per_gpu=0, mixed_exposure=True, gt_size=64, batch_size_per_gpu=4
    )
    opt["train"]["total_iter"] = 4
    opt["logger"].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    path = tmp_path / "fecnet_erl_msec_gpu.yml"
    path.write_text(yaml.dump(opt, Dumper=ordered_yaml()[1]))
    script = str(Path(sys.executable).parent / "erl-basicsr-train")
    env = {**os.environ, "ERL_LOSSES_CUDA_GRAPHS": "1"}

    def train(*extra: str) -> str:
        done = subprocess.run(
            [script, "-opt", str(path), *extra],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        logs = sorted((tmp_path / "experiments" / opt["name"]).glob("train_*.log"))
        return logs[-1].read_text()

    log = train()
    assert len(re.findall(r"l_net: \S+ l_relation: \S+", log)) == 4
    opt["train"]["total_iter"] = 6
    path.write_text(yaml.dump(opt, Dumper=ordered_yaml()[1]))
    log = train("--auto_resume")
    assert re.search(r"Resuming training from epoch: \d+, iter: 4\.", log), log[-2000:]
    assert (tmp_path / "experiments" / opt["name"] / "models" / "net_g_6.pth").is_file()
