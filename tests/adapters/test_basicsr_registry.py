"""BasicSR adapter without training: registration, option keys, losses, option files, patches."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import (
    ARCH_REGISTRY,
    DATASET_REGISTRY,
    LOSS_REGISTRY,
    MODEL_REGISTRY,
    Registry,
)

import erl_losses
import erl_losses.adapters.basicsr as adapter
from erl_losses.adapters.basicsr import models
from tests._helpers import TINY_BCM, erl_model_opt

REGISTRIES = {
    "loss": LOSS_REGISTRY,
    "arch": ARCH_REGISTRY,
    "model": MODEL_REGISTRY,
    "dataset": DATASET_REGISTRY,
}
OPTION_FILES = adapter.option_files()
PAPER_NETS = ("drbn", "drbn_enc", "eclnet", "fecnet")
#: Each net's own loss, as the paper's option files must name it in `train.net_loss_opt`.
OWN_LOSS = {
    "DRBN": "DRBNLoss",
    "DRBN_ENC": "DRBNLoss",
    "ECLNet": "ECLNetLoss",
    "FECNet": "FECNetLoss",
}


# -- registration ------------------------------------------------------------------------------
def test_every_name_is_registered_and_is_the_adapters() -> None:
    for kind, names in adapter.REGISTERED.items():
        for name in names:
            obj = REGISTRIES[kind].get(name)
            assert obj.__module__.startswith("erl_losses.adapters."), (kind, name)


def test_register_again_is_a_no_op() -> None:
    before = {kind: dict(iter(reg)) for kind, reg in REGISTRIES.items()}
    assert adapter.register() == {"loss": [], "arch": [], "model": [], "dataset": []}
    assert {kind: dict(iter(reg)) for kind, reg in REGISTRIES.items()} == before


def test_import_twice_in_a_fresh_interpreter() -> None:
    code = (
        "import importlib, sys\n"
        "assert 'basicsr' not in sys.modules\n"
        "import erl_losses.adapters.basicsr as a\n"
        "importlib.reload(a)\n"  # re-executes the module: must not hit basicsr's duplicate assert
        "import erl_losses.adapters.basicsr\n"
        "from basicsr.utils.registry import LOSS_REGISTRY\n"
        "assert 'ERLCompositeLoss' in LOSS_REGISTRY\n"
        "import torchvision.transforms._functional_tensor as private\n"
        "assert sys.modules['torchvision.transforms.functional_tensor'] is private\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_no_name_clashes_with_basicsr_and_foreign_names_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for kind, names in adapter.REGISTERED.items():
        for name in names:
            assert not REGISTRIES[kind].get(name).__module__.startswith("basicsr")
    foreign = Registry("loss")

    class PhaseLoss(torch.nn.Module):  # somebody else's loss of the same name
        pass

    foreign.register(PhaseLoss)
    monkeypatch.setitem(adapter._REGISTRIES, "loss", foreign)
    with pytest.raises(ValueError, match="'PhaseLoss' to be free"):
        adapter.register()


# -- unknown keys ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("builder", "opt", "bad"),
    [
        (build_loss, {"type": "PhaseLoss", "mdoe": "paper"}, "mdoe"),
        (build_loss, {"type": "SampleRelationLoss", "bcm": TINY_BCM, "alpha": 0.1}, "alpha"),
        (build_loss, {"type": "SampleRelationLoss", "bcm": {**TINY_BCM, "chanels": 4}}, "chanels"),
        (build_network, {"type": "FECNet", "nc": 8, "num_blocks": 4}, "num_blocks"),
        (build_network, {"type": "BatchCorrelationModule", "gird": 4}, "gird"),
    ],
)
def test_unknown_keys_are_named_with_the_accepted_ones(builder, opt, bad: str) -> None:
    with pytest.raises(
        ValueError, match=rf"Expected option keys .* got unknown key\(s\) \['{bad}'\]"
    ):
        builder(copy.deepcopy(opt))


def test_unknown_key_lists_accepted_keys() -> None:
    with pytest.raises(ValueError) as info:
        build_network({"type": "ECLNet", "nc": 8, "blocks": 4})
    assert "num_blocks" in str(info.value) and "theta" in str(info.value)


def test_composite_rejects_unknown_keys_and_bad_parts() -> None:
    with pytest.raises(
        ValueError,
        match=r"\['base', 'log_terms', 'loss_weight', 'reduction', 'relation'\], got unknown key\(s\) \['relaton'\]",
    ):
        build_loss({"type": "ERLCompositeLoss", "base": {"type": "L1Loss"}, "relaton": {}})
    with pytest.raises(ValueError, match="Expected `base` of ERLCompositeLoss"):
        build_loss({"type": "ERLCompositeLoss", "relation": {}})
    with pytest.raises(ValueError, match="name its loss with `type:`"):
        build_loss({"type": "ERLCompositeLoss", "base": {"loss_weight": 1.0}})
    with pytest.raises(ValueError, match=r"relation\.type"):
        build_loss(
            {"type": "ERLCompositeLoss", "base": {"type": "L1Loss"}, "relation": {"type": "L1Loss"}}
        )
    with pytest.raises(ValueError, match="'mean' or 'sum'"):
        build_loss({"type": "ERLCompositeLoss", "base": {"type": "L1Loss"}, "reduction": "none"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['bcm_name'\]"):
        build_loss(
            {
                "type": "ERLCompositeLoss",
                "base": {"type": "L1Loss"},
                "relation": {"bcm_name": "x"},
            }
        )


def test_dataset_rejects_unknown_keys(tmp_path: Path) -> None:
    from basicsr.data import build_dataset

    opt = {"name": "x", "type": "MSECDataset", "phase": "train", "dataroot": str(tmp_path)}
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['crop_size'\]"):
        build_dataset({**opt, "crop_size": 64})


# -- losses ------------------------------------------------------------------------------------
def test_composite_equals_base_plus_weighted_relation() -> None:
    torch.manual_seed(0)
    loss = build_loss(
        {
            "type": "ERLCompositeLoss",
            "base": {"type": "L1Loss", "loss_weight": 1.0},
            "relation": {"loss_weight": 0.1, "bcm": TINY_BCM},
        }
    )
    assert list(loss.parameters()) == []  # the BCM never reaches an optimiser
    pred = torch.rand(4, 3, 32, 32, requires_grad=True)
    gt = torch.rand(4, 3, 32, 32)
    total = loss(pred, gt)
    relation = erl_losses.SampleRelationLoss(loss.relation.bcm)(pred, gt)
    expected = (pred - gt).abs().mean() + 0.1 * relation
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(loss.last_terms["relation"], 0.1 * relation.detach())
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_phase_loss_entry_matches_core_and_refuses_pixel_weights() -> None:
    loss = build_loss({"type": "PhaseLoss", "loss_weight": 0.5, "mode": "wrapped"})
    pred, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(loss(pred, gt), 0.5 * erl_losses.PhaseLoss("wrapped")(pred, gt))
    with pytest.raises(ValueError, match="weight=None"):
        loss(pred, gt, weight=torch.ones_like(pred))


def test_relation_bcm_from_a_path(tmp_path: Path) -> None:
    from erl_losses.pretext import save_weights

    bcm = erl_losses.BatchCorrelationModule(**TINY_BCM)
    path = save_weights(bcm, tmp_path / "mine.safetensors")
    loss = build_loss({"type": "SampleRelationLoss", "bcm": str(path), "work_size": 16})
    assert loss.bcm.work_size == 16
    for key, value in bcm.state_dict().items():
        torch.testing.assert_close(loss.bcm.state_dict()[key], value)


# -- option files ------------------------------------------------------------------------------
def _load(path: Path) -> dict:
    with open(path) as handle:
        return yaml.load(handle, Loader=ordered_yaml()[0])


def test_every_paper_configuration_ships() -> None:
    names = {p.stem for p in OPTION_FILES}
    expected = {
        f"{net}_{variant}_{ds}"
        for net in PAPER_NETS
        for variant in ("baseline", "erl")
        for ds in ("msec", "sice")
    }
    assert expected <= names
    assert {"bcm_pretext_msec", "tiny_cpu_synthetic"} <= names


@pytest.mark.parametrize("path", OPTION_FILES, ids=lambda p: p.stem)
def test_option_file_builds_its_net_and_losses(path: Path) -> None:
    opt = _load(path)
    train = opt["train"]
    for key in ("lr", "eta_min"):
        for section in (
            train.get("optim_g", {}),
            train.get("optim_stage2") or {},
            train["scheduler"],
        ):
            if key in section:
                assert isinstance(section[key], float), (path.name, key, section[key])
    net = build_network(copy.deepcopy(opt["network_g"]))
    assert sum(p.numel() for p in net.parameters()) > 0
    for key in ("pixel_opt", "relation_opt"):
        if key in train:
            loss = build_loss(copy.deepcopy(train[key]))
            x = torch.rand(2, 3, 32, 32)
            assert torch.isfinite(loss(net(x) if opt["model_type"] != "BCMPretextModel" else x, x))
    if "net_loss_opt" in train:
        criterion = build_loss(copy.deepcopy(train["net_loss_opt"]))
        torch.manual_seed(0)
        lq, gt = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
        l_net, pred = criterion.compute(net, lq, gt)
        assert pred.shape == lq.shape, f"Expected {tuple(lq.shape)}, got {tuple(pred.shape)}"
        assert l_net.ndim == 0 and torch.isfinite(l_net), f"Expected a finite scalar, got {l_net}"
        l_net.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    if path.stem.rsplit("_", 2)[0] in PAPER_NETS:
        # The paper's recipe: each net trains with its own loss (+ 0.1 * L_r for `erl`).
        expected = OWN_LOSS[opt["network_g"]["type"]]
        assert train["net_loss_opt"]["type"] == expected, (path.name, train["net_loss_opt"])
        assert "pixel_opt" not in train and "perceptual_opt" not in train, path.name
    if opt["model_type"] == "ERLModel":
        assert "relation_opt" in train or "net_loss_opt" in train
        models.erl_model_class(opt.get("base_model_type", "SRModel"))
    for phase, dataset in opt["datasets"].items():
        cls = DATASET_REGISTRY.get(dataset["type"])
        assert cls.__module__.startswith("erl_losses.adapters.basicsr"), phase


def test_erl_option_files_differ_from_baselines_only_by_the_relation() -> None:
    for net in PAPER_NETS:
        for ds in ("msec", "sice"):
            base = _load(next(p for p in OPTION_FILES if p.stem == f"{net}_baseline_{ds}"))
            erl = _load(next(p for p in OPTION_FILES if p.stem == f"{net}_erl_{ds}"))
            assert erl["model_type"] == base["model_type"] == "ERLModel"
            assert erl["base_model_type"] == base["base_model_type"] == "SRModel"
            assert erl["train"]["relation_opt"]["loss_weight"] == 0.1
            assert "relation_opt" not in base["train"]
            for key in ("network_g", "datasets"):
                assert erl[key] == base[key]
            relation = erl["train"].pop("relation_opt")
            assert relation["type"] == "SampleRelationLoss"
            assert erl["train"] == base["train"]


def test_paper_hyper_parameters() -> None:
    fec = _load(next(p for p in OPTION_FILES if p.stem == "fecnet_erl_msec"))
    assert fec["train"]["optim_g"]["lr"] == pytest.approx(4e-4)
    assert fec["train"]["total_iter"] == 353600
    assert list(fec["train"]["scheduler"]["milestones"]) == [176800, 265200]
    assert fec["datasets"]["train"]["batch_size_per_gpu"] == 8
    assert fec["datasets"]["train"]["gt_size"] == 384
    ecl = _load(next(p for p in OPTION_FILES if p.stem == "eclnet_baseline_sice"))
    assert ecl["train"]["total_iter"] == 64000
    assert ecl["network_g"]["num_blocks"] == 4


# -- models and patches without a pipeline -----------------------------------------------------
def test_erl_model_class_is_a_subclass_of_its_base() -> None:
    from basicsr.models.sr_model import SRModel

    cls = models.erl_model_class("SRModel")
    assert issubclass(cls, SRModel) and issubclass(cls, models.ERLModel)
    assert models.erl_model_class("SRModel") is cls
    with pytest.raises(ValueError, match="registered BasicSR model"):
        models.erl_model_class("NoSuchModel")
    with pytest.raises(ValueError, match="base model such as SRModel"):
        models.erl_model_class("BCMPretextModel")


@pytest.mark.parametrize("base", ["SwinIRModel", "SRGANModel", "ESRGANModel"])
def test_erl_model_class_over_other_base_models(base: str) -> None:
    cls = models.erl_model_class(base)
    assert issubclass(cls, MODEL_REGISTRY.get(base)) and issubclass(cls, models.ERLModel)
    assert cls.__name__ == f"ERLModel[{base}]"
    # the mixin's hooks come first, the base's training step is reused
    assert cls.optimize_parameters is models._ERLMixin.optimize_parameters


def test_erl_model_logs_pixel_and_relation_separately(tmp_path: Path) -> None:
    train = {
        "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0},
        "relation_opt": {"type": "SampleRelationLoss", "loss_weight": 0.1, "bcm": TINY_BCM},
    }
    opt = erl_model_opt(tmp_path, train)
    model = MODEL_REGISTRY.get("ERLModel")(opt)
    assert type(model).__name__ == "ERLModel[SRModel]"
    model.feed_data({"lq": torch.rand(4, 3, 24, 24), "gt": torch.rand(4, 3, 24, 24)})
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert list(log) == ["l_pix", "l_relation"]
    l1 = (model.output.detach() - model.gt).abs().mean().item()
    # `output` is the pre-step prediction, so the logged pixel loss is exactly its L1.
    assert log["l_pix"] == pytest.approx(l1, rel=1e-5)
    assert log["l_relation"] > 0
    no_relation = copy.deepcopy(opt)
    del no_relation["train"]["relation_opt"]
    with pytest.raises(ValueError, match="relation_opt"):
        MODEL_REGISTRY.get("ERLModel")(no_relation)


def _net_loss_opt(tmp_path: Path, **train: object) -> dict:
    return erl_model_opt(
        tmp_path, {"net_loss_opt": {"type": "ECLNetLoss", "augment": False}, **train}
    )


def test_net_losses_are_registered_with_key_checks_and_weight() -> None:
    from erl_losses.archs import losses as core

    for name in ("FECNetLoss", "ECLNetLoss", "DRBNLoss"):
        cls = LOSS_REGISTRY.get(name)
        assert issubclass(cls, getattr(core, name)), f"Expected a {name} subclass, got {cls}"
    with pytest.raises(ValueError, match=r"got unknown key\(s\) \['ssim_wieght'\]"):
        build_loss({"type": "ECLNetLoss", "ssim_wieght": 0.1})
    torch.manual_seed(0)
    net = erl_losses.archs.FECNet(nc=4)
    lq, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    one = build_loss({"type": "FECNetLoss"}).compute(net, lq, gt)[0]
    three = build_loss({"type": "FECNetLoss", "loss_weight": 3.0}).compute(net, lq, gt)[0]
    torch.testing.assert_close(three, 3 * one)
    torch.testing.assert_close(one, core.FECNetLoss().compute(net, lq, gt)[0])


def test_erl_model_with_net_loss_logs_net_and_relation(tmp_path: Path) -> None:
    from erl_losses.archs.losses import ssim

    relation = {"type": "SampleRelationLoss", "loss_weight": 0.1, "bcm": TINY_BCM}
    model = MODEL_REGISTRY.get("ERLModel")(_net_loss_opt(tmp_path, relation_opt=relation))
    assert type(model).__name__ == "ERLModel[SRModel]" and model.cri_pix is None
    before = [p.detach().clone() for p in model.net_g.parameters()]
    model.feed_data({"lq": torch.rand(4, 3, 24, 24), "gt": torch.rand(4, 3, 24, 24)})
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert list(log) == ["l_net", "l_relation"], f"Expected l_net, l_relation, got {list(log)}"
    # `output` is the pre-step prediction: the logged l_net is ECLNetLoss (augment off) of it.
    pred, gt = model.output, model.gt
    expected = (pred - gt).abs().mean() + 0.1 * (1 - ssim(pred, gt))
    assert log["l_net"] == pytest.approx(expected.item(), rel=1e-5)
    assert log["l_relation"] > 0
    after = list(model.net_g.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_erl_model_with_net_loss_only_is_the_baseline_and_updates_ema(tmp_path: Path) -> None:
    model = MODEL_REGISTRY.get("ERLModel")(_net_loss_opt(tmp_path, ema_decay=0.5))
    assert model.cri_relation is None
    ema_before = [p.detach().clone() for p in model.net_g_ema.parameters()]
    model.feed_data({"lq": torch.rand(2, 3, 16, 16), "gt": torch.rand(2, 3, 16, 16)})
    model.optimize_parameters(1)
    assert list(model.get_current_log()) == ["l_net"]
    for old, ema, net in zip(
        ema_before, model.net_g_ema.parameters(), model.net_g.parameters(), strict=True
    ):
        torch.testing.assert_close(ema, 0.5 * old + 0.5 * net.detach())


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (
            {"pixel_opt": {"type": "L1Loss"}},
            ValueError,
            r"no `train.pixel_opt`.*got \['pixel_opt'\]",
        ),
        ({"net_loss_opt": {"type": "L1Loss"}}, TypeError, r"compute\(net, lq, gt\).*got L1Loss"),
        ({"net_loss_opt": {"ssim_weight": 0.1}}, ValueError, "name its loss with `type:`"),
        ({"net_loss_opt": None}, ValueError, "or `train.net_loss_opt`.*got neither"),
    ],
)
def test_erl_model_net_loss_refusals(tmp_path: Path, change: dict, error: type, match: str) -> None:
    opt = _net_loss_opt(tmp_path)
    opt["train"].update(change)
    with pytest.raises(error, match=match):
        MODEL_REGISTRY.get("ERLModel")(opt)


def test_erl_model_net_loss_refuses_gan_bases(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"non-GAN subclass.*got 'SRGANModel'"):
        models.erl_model_class("SRGANModel")(
            {**_net_loss_opt(tmp_path), "base_model_type": "SRGANModel"}
        )


def test_core_options_pass_through_to_the_relation_loss() -> None:
    loss = build_loss(
        {
            "type": "ERLCompositeLoss",
            "base": {"type": "CharbonnierLoss", "loss_weight": 1.0},
            "relation": {"bcm": TINY_BCM, "gather": True, "check_nonfinite": True},
        }
    )
    assert loss.relation.loss.gather is True
    assert loss.relation.loss.check_nonfinite is True
    assert loss.relation.loss_weight == 0.1  # the paper's alpha by default
    assert type(loss.base).__name__ == "CharbonnierLoss"
    with pytest.raises(ValueError, match=r"(?i)nan|finite"):
        loss(torch.full((2, 3, 16, 16), float("nan")), torch.rand(2, 3, 16, 16))
