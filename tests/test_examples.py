"""The examples run as a user runs them (subprocesses), briefly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_one_line_example_trains() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "one_line.py"), "--steps", "3", "--crop", "32"],
        check=True, capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert "step    1" in out.stdout
    assert "psnr" in out.stdout


@pytest.mark.slow
def test_ddp_example_under_torchrun(tmp_path: Path) -> None:
    weights = tmp_path / "net.safetensors"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(ROOT / "examples" / "ddp_train.py"),
        "--steps", "2", "--crop", "32", "--batch-size", "2", "--save", str(weights),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert weights.exists()
