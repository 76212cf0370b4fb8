"""Registry-free ERL losses for repos that vendor BasicSR (Retinexformer, Restormer-derived code).

The test builds the vendored layout in ``tmp_path``: a ``basicsr`` package of its own (no
registries, no pip basicsr) whose ``basicsr/models/losses/__init__.py`` gains ERL with one import
line, and whose model looks losses up as those repos do:
``getattr(importlib.import_module('basicsr.models.losses'), type)``.
"""

from __future__ import annotations

import os
import subprocess
import sys
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

HOST_MODEL = '''
import importlib

loss_module = importlib.import_module("basicsr.models.losses")


def build_pixel_loss(train_opt):
    pixel_type = train_opt["pixel_opt"].pop("type")
    cri_pix_cls = getattr(loss_module, pixel_type)
    return cri_pix_cls(**train_opt["pixel_opt"])
'''

HOST_TRAIN = '''
import sys

import torch
import yaml

from basicsr.models.image_restoration_model import build_pixel_loss

torch.manual_seed(0)
with open(sys.argv[1]) as handle:
    opt = yaml.safe_load(handle)
cri_pix = build_pixel_loss(opt["train"])
net = torch.nn.Conv2d(3, 3, 3, padding=1)
optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
lq, gt = torch.rand(4, 3, 16, 16) * 0.3, torch.rand(4, 3, 16, 16)
for _ in range(3):
    optimizer.zero_grad()
    loss = cri_pix(net(lq), gt)
    loss.backward()
    optimizer.step()
    print(f"loss {loss.item():.6f} relation {cri_pix.last_terms['relation'].item():.6f}")
shadowed = [m for m in ("basicsr.utils.registry", "basicsr.train") if m in sys.modules]
print("basicsr from", sys.modules["basicsr"].__file__, "pip modules", shadowed)
'''


def _vendored_repo(root: Path) -> Path:
    """A Retinexformer-style checkout: its own ``basicsr`` package, no registries."""
    losses = root / "basicsr" / "models" / "losses"
    losses.mkdir(parents=True)
    (root / "basicsr" / "__init__.py").write_text("")
    (root / "basicsr" / "models" / "__init__.py").write_text("")
    (losses / "losses.py").write_text(HOST_LOSSES)
    (losses / "__init__.py").write_text("from .losses import L1Loss  # noqa: F401\n" + IMPORT_LINE)
    (root / "basicsr" / "models" / "image_restoration_model.py").write_text(HOST_MODEL)
    (root / "basicsr" / "train.py").write_text(HOST_TRAIN)
    return root


def _env(pythonpath: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), str(ROOT)])}


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


@pytest.mark.slow
def test_a_vendored_repo_trains_with_one_import_line(tmp_path: Path) -> None:
    repo = _vendored_repo(tmp_path / "Retinexformer")
    options = {
        "train": {
            "pixel_opt": {
                "type": "ERLCompositeLoss",
                "base": {"type": "L1Loss", "loss_weight": 1.0},
                "relation": {"loss_weight": 0.1, "bcm": dict(TINY_BCM)},
            }
        }
    }
    option_file = repo / "Options" / "erl.yml"
    option_file.parent.mkdir()
    option_file.write_text(yaml.safe_dump(options))
    done = subprocess.run(
        [sys.executable, "basicsr/train.py", str(option_file)],
        cwd=repo,
        env=_env(repo),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line.split() for line in done.stdout.splitlines() if line.startswith("loss ")]
    assert len(lines) == 3
    assert all(float(rel) > 0 and float(loss) > float(rel) for _, loss, _, rel in lines)
    # The vendored copy, not a pip basicsr, served every import.
    assert f"basicsr from {repo / 'basicsr' / '__init__.py'} pip modules []" in done.stdout


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


def test_vendored_composite_without_a_host_names_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vendored, "HOST_LOSS_MODULE", "no_such_repo.models.losses")
    with pytest.raises(ValueError, match=r"no_such_repo\.models\.losses.*ModuleNotFoundError"):
        vendored.ERLCompositeLoss(base={"type": "L1Loss"}, relation={"bcm": TINY_BCM})


def test_docs_show_the_tested_import_line() -> None:
    line = IMPORT_LINE.split("  #")[0]
    assert line in (ROOT / "docs" / "basicsr.md").read_text()
    assert line in (vendored.__doc__ or "")
