"""The built wheel: one import namespace, the zoo's files and the option files inside."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import erl_losses
from erl_losses.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_maps_three_folders_into_one_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         str(ROOT), "-w", str(tmp_path)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("erl_losses-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    # Never a top-level `adapters` or `zoo` module: only erl_losses and its metadata.
    assert {n.split("/")[0] for n in names} == {
        "erl_losses",
        f"erl_losses-{erl_losses.__version__}.dist-info",
    }
    for required in (
        "erl_losses/py.typed",
        "erl_losses/zoo/manifest.json",
        "erl_losses/zoo/bcm-phase-photos-v1.safetensors",
        "erl_losses/zoo/cards/bcm-phase-photos.md",
        "erl_losses/adapters/basicsr/__init__.py",
        "erl_losses/adapters/basicsr/options/tiny_cpu_synthetic.yml",
    ):
        assert required in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("erl =", "erl-basicsr-train =", "erl-basicsr-test ="):
        assert script in scripts


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert erl_losses.__version__ in capsys.readouterr().out
    assert main([]) == 0
    listed = capsys.readouterr().out
    for command in ("demo", "eval", "enhance", "pretrain", "render", "zoo"):
        assert command in listed


def test_core_import_pulls_in_no_optional_dependency() -> None:
    code = (
        "import sys, erl_losses; "
        "bad = [m for m in ('basicsr', 'torchvision', 'torch_fidelity', 'skimage', 'matplotlib') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
