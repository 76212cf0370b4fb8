"""`erl render`, `erl eval` and `erl enhance` end to end on a tiny rendered set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from erl_losses.cli import main
from erl_losses.data.levels import MSEC_LEVELS


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "set"
    code = main(
        ["render", "--out", str(out), "--crop-size", "32", "--crops-per-photo", "1", "--seed", "1"]
    )
    assert code == 0
    return out


def test_render_writes_both_splits(rendered: Path) -> None:
    assert len(list((rendered / "train" / "GT_IMAGES").iterdir())) == 7
    assert len(list((rendered / "test" / "GT_IMAGES").iterdir())) == 3
    assert len(list((rendered / "test" / "INPUT_IMAGES").iterdir())) == 3 * len(MSEC_LEVELS)
    assert json.loads((rendered / "manifest.json").read_text())["seed"] == 1


def test_render_refuses_a_non_empty_folder(rendered: Path, capsys) -> None:
    assert main(["render", "--out", str(rendered), "--crop-size", "32"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_eval_inputs_against_gt(rendered: Path, tmp_path: Path, capsys) -> None:
    code = main(
        [
            "eval",
            "--protocol",
            "msec",
            "--pred",
            str(rendered / "test" / "INPUT_IMAGES"),
            "--gt",
            str(rendered / "test"),
            "--json",
            str(tmp_path / "r.json"),
            "--csv",
            str(tmp_path / "r.csv"),
            "--method",
            "input",
            "--metrics",
            "skimage",
            "--workers",
            "2",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| Method | Under PSNR |" in out
    assert "| input |" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["Average"]["count"] == 15
    assert report["backend"] == "skimage"
    # Inputs are mis-exposed: under/over PSNRs are those of the renders, not of a copy.
    assert report["summary"]["N1.5"]["psnr"] < 25
    assert (tmp_path / "r.csv").read_text().splitlines()[
        0
    ] == "row,group,psnr,ssim,count,psnr_skipped"


def test_eval_reports_missing_files(rendered: Path, capsys) -> None:
    code = main(
        ["eval", "--pred", str(rendered / "test" / "INPUT_IMAGES"), "--gt", str(rendered / "train")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "Expected a GT image" in err
    assert "missing" in err


def test_eval_argument_errors(rendered: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--pred", str(rendered), "--gt", str(rendered), "--workers", "-1"])
    assert "--workers" in capsys.readouterr().err
    assert main(["eval", "--pred", str(rendered)]) == 2
    assert "Expected --pred and --gt" in capsys.readouterr().err
    assert main(["eval", "--net", "ECLNet", "--data", str(rendered)]) == 2
    assert "Expected --weights and --data" in capsys.readouterr().err


@pytest.fixture(scope="module")
def eclnet_weights(tmp_path_factory) -> dict[str, Path]:
    archs = pytest.importorskip("erl_losses.archs")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = archs.build_arch("ECLNet")
    folder = tmp_path_factory.mktemp("weights")
    save_file(net.state_dict(), str(folder / "eclnet.safetensors"))
    torch.save(net.state_dict(), folder / "eclnet.pth")
    return {"safetensors": folder / "eclnet.safetensors", "pth": folder / "eclnet.pth"}


@pytest.mark.slow
def test_eval_runs_a_net(msec_test_set, eclnet_weights, tmp_path: Path, capsys) -> None:
    code = main(
        [
            "eval",
            "--net",
            "ECLNet",
            "--weights",
            str(eclnet_weights["safetensors"]),
            "--data",
            str(msec_test_set),
            "--out",
            str(tmp_path / "pred"),
            "--json",
            str(tmp_path / "r.json"),
            "--metrics",
            "skimage",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert len(list((tmp_path / "pred").iterdir())) == 15
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["method"] == "ECLNet"
    assert report["summary"]["Average"]["count"] == 15
    assert "| ECLNet |" in capsys.readouterr().out


def test_eval_rejects_a_wrong_state_dict(msec_test_set, eclnet_weights, capsys) -> None:
    weights, data = str(eclnet_weights["safetensors"]), str(msec_test_set)
    assert main(["eval", "--net", "FECNet", "--weights", weights, "--data", data]) == 2
    assert "Expected weights for FECNet" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # refused by argparse, before torch is needed
        main(["eval", "--net", "NoNet", "--weights", weights, "--data", data])
    assert exit_.value.code == 2
    assert "argument --net: Expected one of" in capsys.readouterr().err


def test_enhance_images(rendered, eclnet_weights, tmp_path: Path, capsys) -> None:
    images = sorted((rendered / "test" / "INPUT_IMAGES").glob("c*_N1.5.png"))
    code = main(
        [
            "enhance",
            *map(str, images),
            "--net",
            "ECLNet",
            "--weights",
            str(eclnet_weights["pth"]),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == [p.with_suffix(".png").name for p in images]
    for src, dst in zip(images, written, strict=True):
        with Image.open(src) as a, Image.open(dst) as b:
            assert a.size == b.size
            assert np.asarray(b).dtype == np.uint8


@pytest.mark.slow
def test_eval_fidelity_offline(rendered: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("torch_fidelity")
    args = [
        "eval",
        "--pred",
        str(rendered / "test" / "INPUT_IMAGES"),
        "--gt",
        str(rendered / "test"),
    ]
    with pytest.warns(UserWarning, match="pretrained BCM") if _no_default_bcm() else _nullcontext():
        code = main(
            [*args, "--fidelity", "--metrics", "skimage", "--json", str(tmp_path / "r.json")]
        )
    assert code == 0
    fidelity = json.loads((tmp_path / "r.json").read_text())["fidelity"]
    assert set(fidelity) == {"bcm_frechet_distance", "bcm_kid_mean", "bcm_kid_std"}
    assert fidelity["bcm_frechet_distance"] > 0
    assert "| bcm_frechet_distance |" in capsys.readouterr().out
    missing = str(tmp_path / "inception.pth")
    assert main([*args, "--fidelity", "--inception-weights", missing]) == 2
    assert "local Inception weights" in capsys.readouterr().err


def _no_default_bcm() -> bool:
    from erl_losses import BatchCorrelationModule

    try:
        BatchCorrelationModule.from_pretrained()
    except Exception:
        return True
    return False


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()
