"""Registry-free ERL losses for repos that vendor BasicSR (Retinexformer, Restormer-derived code).

The end-to-end test builds a layout faithful to Retinexformer's in ``tmp_path``: a ``basicsr/``
folder WITHOUT ``__init__.py`` (a namespace package), whose ``basicsr/models/losses/__init__.py``
gains ERL with one import line, whose model looks losses up as those repos do
(``getattr(importlib.import_module('basicsr.models.losses'), type)``) and logs only ``l_pix``,
and whose ``basicsr/train.py`` takes ``--opt`` and runs as ``__main__`` from the repo root with
``PYTHONPATH=.``. It runs in an environment without pip basicsr, as ``scripts/setup.sh
--no-basicsr`` makes one: a venv whose site-packages links every package of this one but
basicsr.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import erl_losses
from erl_losses.adapters import vendored
from tests._helpers import TINY_BCM

ROOT = Path(__file__).resolve().parents[2]
IMPORT_LINE = (
    "from erl_losses.adapters.vendored import ERLCompositeLoss, PhaseLoss, SampleRelationLoss"
    "  # noqa: F401\n"
)

HOST_LOSSES = '''
import torch.nn.functional as F
from torch import nn


class L1Loss(nn.Module):
    """The vendored copy's own L1 (BasicSR's signature)."""

    def __init__(self, loss_weight=1.0, reduction="mean"):
        super().__init__()
        self.loss_weight, self.reduction = loss_weight, reduction

    def forward(self, pred, target, weight=None, **kwargs):
        return self.loss_weight * F.l1_loss(pred, target, reduction=self.reduction)
'''

HOST_MODELS_INIT = """
import importlib


def create_model(opt):
    module = importlib.import_module("basicsr.models.image_restoration_model")
    return getattr(module, opt["model_type"])(opt)
"""

# A model shaped like the vendored copies': it sums its pixel criterion over the net's outputs
# and logs only `l_pix` through reduce_loss_dict.
HOST_MODEL = """
import importlib
from collections import OrderedDict

import torch

loss_module = importlib.import_module("basicsr.models.losses")


class ImageCleanModel:
    def __init__(self, opt):
        self.opt = opt
        self.net_g = torch.nn.Conv2d(3, 3, 3, padding=1)
        pixel_opt = dict(opt["train"]["pixel_opt"])
        self.cri_pix = getattr(loss_module, pixel_opt.pop("type"))(**pixel_opt)
        self.optimizer_g = torch.optim.Adam(self.net_g.parameters(), lr=1e-2)
        self.log_dict = OrderedDict()

    def feed_data(self, data):
        self.lq, self.gt = data["lq"], data["gt"]

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        preds = [self.net_g(self.lq)]
        loss_dict = OrderedDict()
        l_pix = 0.0
        for pred in preds:
            l_pix += self.cri_pix(pred, self.gt)
        loss_dict["l_pix"] = l_pix
        l_pix.backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)

    def reduce_loss_dict(self, loss_dict):
        with torch.no_grad():
            return OrderedDict((name, value.mean().item()) for name, value in loss_dict.items())

    def get_current_log(self):
        return self.log_dict
"""

HOST_TRAIN = """
import argparse
import logging
import os
import sys

import torch
import yaml

from basicsr.models import create_model


def parse_options():
    parser = argparse.ArgumentParser()
    parser.add_argument("--opt", type=str, required=True, help="Path to option YAML file.")
    with open(parser.parse_args().opt) as handle:
        return yaml.safe_load(handle)


def main():
    opt = parse_options()
    torch.manual_seed(opt["manual_seed"])
    log_dir = os.path.join("experiments", opt["name"])
    os.makedirs(log_dir, exist_ok=True)
    logger = logging.getLogger("basicsr")
    logger.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(f"{log_dir}/train.log")):
        logger.addHandler(handler)
    model = create_model(opt)
    for current_iter in range(1, opt["train"]["total_iter"] + 1):
        model.feed_data({"lq": torch.rand(4, 3, 16, 16) * 0.3, "gt": torch.rand(4, 3, 16, 16)})
        model.optimize_parameters(current_iter)
        message = " ".join(f"{k}: {v:.4e}" for k, v in model.get_current_log().items())
        logger.info(f"[iter:{current_iter:4d}] {message}")
    logger.info(f"basicsr from {sorted(sys.modules['basicsr'].__path__)}")


if __name__ == "__main__":
    main()
"""


def _vendored_repo(root: Path) -> Path:
    """A Retinexformer-style checkout: ``basicsr/`` without ``__init__.py``, no registries."""
    models = root / "basicsr" / "models"
    (models / "losses").mkdir(parents=True)
    (models / "__init__.py").write_text(HOST_MODELS_INIT)
    (models / "losses" / "losses.py").write_text(HOST_LOSSES)
    (models / "losses" / "__init__.py").write_text(
        "from .losses import L1Loss  # noqa: F401\n" + IMPORT_LINE
    )
    (models / "image_restoration_model.py").write_text(HOST_MODEL)
    (root / "basicsr" / "train.py").write_text(HOST_TRAIN)
    return root


@pytest.fixture(scope="module")
def env_without_basicsr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a venv holding every package of this one but pip basicsr (what
    ``scripts/setup.sh --no-basicsr`` makes, without downloading torch again)."""
    venv = tmp_path_factory.mktemp("venv") / "no-basicsr"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ours = Path(sysconfig.get_paths()["purelib"])
    theirs = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for entry in ours.iterdir():
        if not entry.name.lower().startswith("basicsr") and not (theirs / entry.name).exists():
            (theirs / entry.name).symlink_to(entry)
    return venv / "bin" / "python"


def test_the_module_never_imports_basicsr() -> None:
    code = (
        "import sys\n"
        "sys.modules['basicsr'] = None  # as in a core install: basicsr unimportable\n"
        "from erl_losses.adapters.vendored import ERLCompositeLoss, PhaseLoss, SampleRelationLoss\n"
        "loss = SampleRelationLoss(bcm=dict(channels=8, feat_channels=4, grid=4, d_model=16,"
        " num_heads=2, num_layers=2))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('basicsr', 'torchvision')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "['basicsr']"  # only the blocking None entry


def test_pip_basicsr_shadows_a_namespace_basicsr(tmp_path: Path) -> None:
    """Why the vendored route needs an environment without pip basicsr."""
    repo = _vendored_repo(tmp_path / "Retinexformer")
    done = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('basicsr').origin)"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": "."},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "site-packages" in done.stdout  # pip basicsr, although PYTHONPATH=. comes first


@pytest.mark.slow
def test_a_vendored_repo_trains_with_one_import_line(
    tmp_path: Path, env_without_basicsr: Path
) -> None:
    repo = _vendored_repo(tmp_path / "Retinexformer")
    assert not (repo / "basicsr" / "__init__.py").exists()
    options = {
        "name": "erl_vendored",
        "model_type": "ImageCleanModel",
        "manual_seed": 0,
        "train": {
            "total_iter": 3,
            "pixel_opt": {
                "type": "ERLCompositeLoss",
                "base": {"type": "L1Loss", "loss_weight": 1.0},
                "relation": {"loss_weight": 0.1, "bcm": dict(TINY_BCM)},
            },
        },
    }
    option_file = repo / "Options" / "erl.yml"
    option_file.parent.mkdir()
    option_file.write_text(yaml.safe_dump(options))
    # As the docs say: from the repo root, PYTHONPATH=., the repo's train.py with --opt.
    done = subprocess.run(
        [str(env_without_basicsr), "basicsr/train.py", "--opt", "Options/erl.yml"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": ".", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = (repo / "experiments" / "erl_vendored" / "train.log").read_text()
    lines = re.findall(r"l_pix: (\S+) l_base: (\S+) l_relation: (\S+)", log)
    assert len(lines) == 3, log
    for pix, base, relation in lines:
        assert float(relation) > 0
        assert float(pix) == pytest.approx(float(base) + float(relation), rel=1e-3)
    # The vendored copy, not a pip basicsr, served every import.
    assert f"basicsr from ['{repo / 'basicsr'}']" in log


def test_vendored_composite_equals_host_base_plus_weighted_relation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _vendored_repo(tmp_path / "repo")
    # The in-process interpreter already imported pip basicsr (the adapters' conftest): point
    # the lookup at the vendored copy's loss module under another name.
    monkeypatch.syspath_prepend(str(repo / "basicsr" / "models"))
    monkeypatch.setattr(vendored, "HOST_LOSS_MODULE", "losses")
    monkeypatch.delitem(sys.modules, "losses", raising=False)
    loss = vendored.ERLCompositeLoss(
        base={"type": "L1Loss"}, relation={"bcm": dict(TINY_BCM)}, loss_weight=2.0
    )
    assert type(loss.base).__module__ == "losses.losses"
    pred, gt = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    relation = erl_losses.SampleRelationLoss(loss.relation.bcm)(pred, gt)
    expected = 2.0 * (F.l1_loss(pred, gt) + 0.1 * relation)
    torch.testing.assert_close(loss(pred, gt), expected)
    with pytest.raises(ValueError, match=r"`base.type`.*'CharbonierLoss'"):
        vendored.ERLCompositeLoss(base={"type": "CharbonierLoss"}, relation={"bcm": TINY_BCM})


def test_vendored_composite_without_a_host_names_the_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(vendored, "HOST_LOSS_MODULE", "no_such_repo.models.losses")
    with pytest.raises(ValueError, match=r"no_such_repo\.models\.losses.*ModuleNotFoundError"):
        vendored.ERLCompositeLoss(base={"type": "L1Loss"}, relation={"bcm": TINY_BCM})


def test_docs_show_the_tested_import_line() -> None:
    line = IMPORT_LINE.split("  #")[0]
    assert line in (ROOT / "docs" / "basicsr.md").read_text()
    assert line in (vendored.__doc__ or "")
