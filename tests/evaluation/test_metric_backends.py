"""The PSNR/SSIM backend: chosen by what is installed (never by import order), basicsr usable in
a full install (torchvision alias applied), and named next to every printed table."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from erl_losses.evaluation import metrics
from erl_losses.evaluation.bank import level_table
from erl_losses.evaluation.protocol import evaluate_folders

HAS_BASICSR = importlib.util.find_spec("basicsr") is not None
LEVELS = ("N1.5", "N1", "0", "P1", "P1.5")


def _fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(not HAS_BASICSR, reason="the basicsr extra is not installed")
def test_auto_picks_basicsr_when_installed_whatever_was_imported_before() -> None:
    out = _fresh(
        "import sys\n"
        "from erl_losses.evaluation.metrics import metric_backend\n"
        "print(metric_backend(), 'erl_losses.adapters.basicsr' in sys.modules)\n"
    )
    # basicsr itself, not the adapter (no registration, no patches): only the alias.
    assert out.split() == ["basicsr", "False"]


def test_requested_basicsr_that_is_missing_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "basicsr" else real_find_spec(name, *a),
    )
    metrics._basicsr_available.cache_clear()
    try:
        assert metrics.metric_backend() == "skimage"
        with pytest.raises(ValueError, match=r"basicsr is not installed.*erl-losses\[basicsr\]"):
            metrics.metric_backend("basicsr")
    finally:
        metrics._basicsr_available.cache_clear()


def test_backend_label_names_the_package_version() -> None:
    from importlib.metadata import version

    assert metrics.backend_label("skimage") == f"skimage {version('scikit-image')}"
    with pytest.raises(ValueError, match="backend"):
        metrics.backend_label("cv2")


def _msec_folders(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    pred_dir, gt_dir = root / "pred", root / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    gt = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(gt).save(gt_dir / "a.png")
    for k, level in enumerate(LEVELS):
        noise = rng.normal(0, 4 + 4 * k, gt.shape)
        pred = np.clip(gt + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pred).save(pred_dir / f"a_{level}.png")
    return pred_dir, gt_dir


def test_every_table_names_its_backend(tmp_path: Path) -> None:
    pred_dir, gt_dir = _msec_folders(tmp_path)
    report = evaluate_folders(pred_dir, gt_dir, "msec", backend="skimage", method="m")
    assert "metrics: skimage" in report.to_markdown()
    assert level_table({"m": report}).splitlines()[-1].startswith("PSNR/SSIM computed with skimage ")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_BASICSR, reason="the basicsr extra is not installed")
def test_erl_eval_metrics_basicsr_in_a_fresh_process(tmp_path: Path) -> None:
    pred_dir, gt_dir = _msec_folders(tmp_path)
    erl = str(Path(sys.executable).parent / "erl")
    reports = {}
    for backend in ("basicsr", "skimage"):
        out_json = tmp_path / f"{backend}.json"
        command = [erl, "eval", "--pred", str(pred_dir), "--gt", str(gt_dir)]
        done = subprocess.run(
            [*command, "--metrics", backend, "--json", str(out_json)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"metrics: {backend}" in done.stdout
        reports[backend] = json.loads(out_json.read_text())
    for a, b in zip(reports["basicsr"]["images"], reports["skimage"]["images"], strict=True):
        assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-6)
        assert a["ssim"] == pytest.approx(b["ssim"], abs=1e-3)
