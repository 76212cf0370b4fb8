"""How training is started: a vendored ``basicsr/train.py`` run as ``__main__``, the documented
``python -c`` one-liner, and why ``python -m basicsr.train`` is not the route (CPU, subprocesses).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import erl_losses.adapters.basicsr as adapter
from tests._helpers import TINY_BCM

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TINY = next(p for p in adapter.option_files() if p.stem == "tiny_cpu_synthetic")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MIXED = "Mixed-exposure batches for synthetic_train"


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600, check=False
    )


def _options(tmp_path: Path, name: str, total_iter: int) -> Path:
    """The shipped tiny option file, shrunk: a tiny net and BCM, data rendered under tmp_path."""
    opt = yaml.safe_load(TINY.read_text())
    opt["name"] = name
    opt["network_g"] = {"type": "ECLNet", "nc": 4, "num_blocks": 1}
    opt["train"].update(total_iter=total_iter)
    opt["train"]["pixel_opt"]["relation"]["bcm"] = copy.deepcopy(TINY_BCM)
    opt["logger"].update(print_freq=1, save_checkpoint_freq=2)
    opt["val"]["val_freq"] = 1000
    for dataset in opt["datasets"].values():
        dataset["dataroot"] = str(tmp_path / "data")
        dataset["render"] = {"crop_size": 32, "crops_per_photo": 1, "seed": 0}
    opt["datasets"]["train"]["gt_size"] = 24
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(opt))
    return path


def _vendored_train_script(repo: Path) -> Path:
    """basicsr's own train.py, copied into a repo's basicsr/ folder with the adapter imported
    first: run as a script it is ``__main__``, and ``basicsr.train`` is another module."""
    original = Path(importlib.util.find_spec("basicsr.train").origin).read_text()
    script = repo / "basicsr" / "train.py"
    script.parent.mkdir(parents=True)
    script.write_text("import erl_losses.adapters.basicsr  # noqa: F401\n" + original)
    return script


def test_vendored_train_script_mixes_batches_and_resumes_on_cpu(tmp_path: Path) -> None:
    repo = tmp_path / "vendored"
    script = _vendored_train_script(repo)
    options = _options(tmp_path, "vendored", total_iter=4)
    first = _run([sys.executable, str(script), "-opt", str(options)], tmp_path)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    exp = repo / "experiments" / "vendored"  # basicsr roots it at the script's repo
    log = "".join(p.read_text() for p in exp.glob("train_*.log"))
    assert MIXED in log
    assert "NOT mixed" not in first.stderr
    states = exp / "training_states"
    assert sorted(p.name for p in states.iterdir()) == ["2.state", "4.state"]

    # A run killed while saving leaves a truncated latest state: resume from the one before.
    latest = states / "4.state"
    latest.write_bytes(latest.read_bytes()[:100])
    resume = [sys.executable, str(script), "-opt", str(options), "--auto_resume"]
    second = _run([*resume, "--force_yml", "train:total_iter=6"], tmp_path)
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert re.search(r"Skipping the unreadable training state \S*4\.state", second.stderr)
    log = "".join(p.read_text() for p in exp.glob("train_*.log"))
    assert "Resuming training from epoch: 0, iter: 2." in log
    assert (exp / "models" / "net_g_6.pth").is_file()


def _documented_one_liner() -> str:
    docs = (ROOT / "docs" / "basicsr.md").read_text()
    match = re.search(r'^python -c "([^"]+)" -opt FILE$', docs, flags=re.MULTILINE)
    assert match, "docs/basicsr.md lost the python -c route"
    return match.group(1)


def test_the_documented_python_c_route_trains_in_the_current_directory(tmp_path: Path) -> None:
    options = _options(tmp_path, "one_liner", total_iter=2)
    done = _run([sys.executable, "-c", _documented_one_liner(), "-opt", str(options)], tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    exp = tmp_path / "experiments" / "one_liner"
    assert (exp / "models" / "net_g_latest.pth").is_file()
    assert MIXED in "".join(p.read_text() for p in exp.glob("train_*.log"))


def test_python_m_basicsr_train_fails_before_our_code(tmp_path: Path) -> None:
    """What the docs warn about: stock basicsr 1.4.2 cannot import with current torchvision."""
    import torchvision.transforms

    if (Path(torchvision.transforms.__file__).parent / "functional_tensor.py").is_file():
        pytest.skip("this torchvision still has transforms.functional_tensor")
    done = _run([sys.executable, "-m", "basicsr.train", "-opt", str(TINY)], tmp_path)
    assert done.returncode != 0
    assert "functional_tensor" in done.stderr

