"""``erl demo``: end-to-end on a tiny setting, the CLI, bad arguments."""

from __future__ import annotations

import json

import pytest
import torch

from erl_losses import BatchCorrelationModule
from erl_losses.cli import main as erl_main
from erl_losses.demo import DemoResult, DemoSettings, run_demo
from tests._helpers import TINY_BCM

TINY = DemoSettings(
    steps=4, crop_size=24, render_size=32, train_crops=1, test_crops=1, curve_points=2
)


@pytest.fixture
def tiny_bcm_module() -> BatchCorrelationModule:
    torch.manual_seed(0)
    return BatchCorrelationModule(**TINY_BCM).eval()


@pytest.mark.slow
def test_run_demo_writes_every_artefact(tmp_path, tiny_bcm_module) -> None:
    out = tmp_path / "demo"
    results = run_demo(
        out,
        quick=True,
        device="cpu",
        bcm=tiny_bcm_module,
        settings=TINY,
        progress=False,
        echo=None,
    )
    for name in ("results.json", "table.md", "curves.png", "grid.png", "attention.png"):
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
    for name in ("curves.png", "grid.png", "attention.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    saved = json.loads((out / "results.json").read_text())
    assert set(saved["runs"]) == {"baseline", "erl"}
    for key in ("baseline", "erl"):
        run = saved["runs"][key]
        assert set(run["groups"]) == {"Under", "Over", "Average"}
        for group in run["groups"].values():
            assert 0.0 < group["psnr"] < 100.0
            assert -1.0 <= group["ssim"] <= 1.0
        assert [p["step"] for p in run["curve"]] == [0, 2, 4]
        assert run["report"]["protocol"] == "msec"
    # Same seed and initial weights: the curves start at the same PSNR and only the loss differs.
    assert saved["runs"]["baseline"]["curve"][0] == saved["runs"]["erl"]["curve"][0]
    assert all(p["relation"] == 0.0 for p in saved["runs"]["baseline"]["losses"])
    assert all(p["relation"] > 0.0 for p in saved["runs"]["erl"]["losses"])
    # The test set is the held-out photos, split by photo.
    assert sorted(saved["data"]["test_photos"]) == ["chelsea", "china", "coffee"]
    assert not set(saved["data"]["train_photos"]) & set(saved["data"]["test_photos"])
    # The attention matrix is (B, B), row-stochastic, on a batch that mixes under and over.
    matrix = torch.tensor(saved["attention"]["matrix"])
    assert matrix.shape[0] == matrix.shape[1] == len(saved["attention"]["samples"])
    torch.testing.assert_close(matrix.sum(1), torch.ones(len(matrix)), atol=1e-3, rtol=0)
    assert set(saved["attention"]["groups"]) == {"under", "over"}
    # The returned result is what was written, and the table has the paper's three groups.
    assert isinstance(results, DemoResult)
    assert results.to_dict()["runs"]["erl"]["groups"] == saved["runs"]["erl"]["groups"]
    assert results.delta["Average"]["psnr"] == pytest.approx(saved["delta"]["Average"]["psnr"])
    assert saved["input"]["method"] == "Input (no correction)"
    assert saved["seconds"]["total"] >= saved["seconds"]["render"] > 0
    assert set(saved["load_average"]) == {"start", "end"}
    for label in ("Under PSNR", "Over SSIM", "Average PSNR", "ERL - baseline"):
        assert label in saved["table"]
    assert saved["settings"]["steps"] == 4
    # Both nets' weights, loadable by `erl enhance`, and the command that applies them.
    from erl_losses.evaluation.inference import load_net

    for key, name in (("baseline", "eclnet-l1.safetensors"), ("erl", "eclnet-erl.safetensors")):
        assert saved["weights"][key] == str(out / name)
        net = load_net("ECLNet", out / name)
        x = torch.rand(1, 3, 24, 24)
        with torch.no_grad():
            torch.testing.assert_close(net(x), results.runs[key].net.cpu().eval()(x))
    command = results.enhance_command()
    assert command.startswith("erl enhance YOUR_PHOTOS.jpg --net ECLNet --weights ")
    assert str(out / "eclnet-erl.safetensors") in command
    # The input's level on the curves' crops: what the nets start from and must beat.
    assert 0.0 < saved["input_curve_psnr"] < 100.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"net": "drbn"}, "Expected net to be one of"),
        ({"seed": -1}, "Expected `seed` to be an int >= 0, got -1"),
        ({"seed": True}, "Expected `seed` to be an int >= 0, got True"),
        ({"threads": 0}, "Expected `threads` to be a positive int or None, got 0"),
        ({"steps": 0}, "Expected `steps` to be a positive int, got 0"),
        ({"device": "tpu"}, "Expected device 'cpu', 'cuda' or 'cuda:N'"),
    ],
)
def test_run_demo_rejects_bad_arguments(tmp_path, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        run_demo(tmp_path, progress=False, echo=None, **kwargs)
    assert not (tmp_path / "results.json").exists()


def test_demo_settings_validation() -> None:
    with pytest.raises(ValueError, match="Expected `batch_size` to be an int >= 2"):
        DemoSettings(batch_size=1)
    with pytest.raises(ValueError, match="Expected `crop_size` <= `render_size`"):
        DemoSettings(crop_size=64, render_size=32)
    with pytest.raises(ValueError, match="Expected `alpha` >= 0"):
        DemoSettings(alpha=-0.1)


def test_cli_demo_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        erl_main(["demo", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--out", "--quick", "--device", "--steps", "--net", "--bcm"):
        assert option in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--steps", "0"], "argument --steps: Expected a positive int, got 0"),
        (["demo", "--steps", "many"], "Expected a positive int, got 'many'"),
        (["demo", "--net", "drbn"], "invalid choice: 'drbn'"),
        (["demo", "--device", "tpu"], "invalid choice: 'tpu'"),
        (["demo", "--seed", "-2"], "argument --seed: Expected an int >= 0, got -2"),
    ],
)
def test_cli_demo_rejects_bad_arguments(capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as exit_info:
        erl_main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_demo_reports_a_missing_bcm_file(tmp_path, capsys) -> None:
    missing = tmp_path / "nope.safetensors"
    code = erl_main(["demo", "--out", str(tmp_path / "o"), "--bcm", str(missing), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("erl demo: error:") and "nope.safetensors" in err


def test_quality_markdown_replaces_only_its_own_block(tmp_path, monkeypatch) -> None:
    import importlib.util
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "quality.py"
    spec = importlib.util.spec_from_file_location("quality_script", script)
    quality = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, quality)  # dataclasses look their module up
    spec.loader.exec_module(quality)

    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\n## Performance\n\nkeep me\n\n## Other\n\nkeep me too\n")
    quality.write_results_md(md, "### Full run\nfirst\n", quick=False)
    quality.write_results_md(md, "### Quick CPU check\nquick\n", quick=True)
    quality.write_results_md(md, "### Full run\nsecond\n", quick=False)
    text = md.read_text()
    assert text.count("## Quality") == 1
    assert "first" not in text and text.count("second") == 1 and text.count("quick\n") == 1
    assert text.startswith("# Results\n\n## Performance\n\nkeep me\n\n## Other\n\nkeep me too\n")
    # Blocks keep their place (the first written first), separated by a blank line.
    assert "<!-- /quality:full -->\n\n<!-- quality:quick -->" in text

    # An existing section between others: the following section stays after it, untouched.
    md.write_text("## Quality\n\nintro\n\n## Later\n\nlast\n")
    quality.write_results_md(md, "### Full run\nx\n", quick=False)
    text = md.read_text()
    assert text.endswith("## Later\n\nlast\n")
    assert text.index("intro") < text.index("### Full run") < text.index("## Later")


def test_plots_never_import_the_demo() -> None:
    import subprocess
    import sys

    code = "import sys, erl_losses.plots; assert 'erl_losses.demo' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_attention_figure_marks_the_uniform_weight(tmp_path) -> None:
    import numpy as np

    from erl_losses.plots import plot_attention

    matrix = np.full((4, 4), 0.25) + np.eye(4) * 0.01 - 0.0025
    thumbs = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    plot_attention(matrix, thumbs, list("abcd"), tmp_path / "a.png", "t")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
