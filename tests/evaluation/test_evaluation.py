"""Evaluation protocol: 8-bit PSNR against an independent computation, tables, pairing errors."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from erl_losses.data.levels import MSEC_LEVELS
from erl_losses.evaluation import (
    enhance,
    enhance_images,
    evaluate_folders,
    load_state_dict_file,
    metric_backend,
    metrics,
    psnr_uint8,
    run_net_on_dataset,
    ssim_uint8,
)


@pytest.fixture(autouse=True)
def _skimage_metrics(request, monkeypatch) -> None:
    """Use scikit-image metrics, skipping the slow basicsr import probe (tests marked slow probe)."""
    if "slow" not in request.keywords:
        monkeypatch.setattr(metrics, "_basicsr_available", lambda: False)


def numpy_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """The literature's 8-bit PSNR, written independently: MAX = 255 over all channels."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10.0 * np.log10(255.0**2 / mse))


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _noisy(rng: np.random.Generator, gt: np.ndarray, sigma: float) -> np.ndarray:
    noise = rng.normal(0, sigma, gt.shape)
    return np.clip(np.round(gt + noise), 0, 255).astype(np.uint8)


@pytest.fixture
def msec_folders(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """GT of two scenes, predictions whose noise grows with |EV| (so levels differ)."""
    rng = np.random.default_rng(0)
    gts, preds = {}, {}
    sigma = {"N1.5": 20, "N1": 10, "0": 2, "P1": 8, "P1.5": 16}
    for scene in ("s1", "s2_x"):
        gt = rng.integers(30, 220, (24, 28, 3), dtype=np.uint8)
        gts[scene] = gt
        _write(tmp_path / "gt" / f"{scene}.png", gt)
        for level in MSEC_LEVELS:
            pred = _noisy(rng, gt, sigma[level])
            preds[f"{scene}_{level}"] = pred
            _write(tmp_path / "pred" / f"{scene}_{level}.png", pred)
    return tmp_path / "pred", tmp_path / "gt", gts, preds


def test_psnr_matches_independent_numpy() -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        gt = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
        pred = _noisy(rng, gt, float(rng.uniform(1, 40)))
        assert psnr_uint8(pred, gt) == pytest.approx(numpy_psnr(pred, gt), rel=1e-12)
    assert psnr_uint8(gt, gt) == math.inf


def test_ssim_properties() -> None:
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert ssim_uint8(gt, gt) == pytest.approx(1.0)
    mild, strong = _noisy(rng, gt, 5), _noisy(rng, gt, 40)
    assert 0 < ssim_uint8(strong, gt) < ssim_uint8(mild, gt) < 1
    with pytest.raises(ValueError, match="at least 7 x 7"):
        ssim_uint8(gt[:5, :5], gt[:5, :5])
    with pytest.raises(ValueError, match="Expected pred to be"):
        ssim_uint8(gt.astype(np.float32), gt)


def test_metric_backend_selection() -> None:
    assert metric_backend() == "skimage"  # basicsr reported unavailable by the fixture
    assert metric_backend("skimage") == "skimage"
    with pytest.raises(ValueError, match="Expected backend"):
        metric_backend("cv2")
    with pytest.raises(ValueError, match="Expected an importable basicsr"):
        metric_backend("basicsr")


@pytest.mark.slow
def test_backends_agree_when_basicsr_imports() -> None:
    """The real probe (importing basicsr takes ~10 s); both backends give the same numbers."""
    if metric_backend() != "basicsr":
        pytest.skip("basicsr.metrics does not import here")
    rng = np.random.default_rng(7)
    gt = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    pred = _noisy(rng, gt, 12)
    assert psnr_uint8(pred, gt, backend="basicsr") == pytest.approx(numpy_psnr(pred, gt))
    assert ssim_uint8(pred, gt, backend="basicsr") == pytest.approx(
        ssim_uint8(pred, gt, backend="skimage"), abs=1e-3
    )


def test_msec_protocol_levels_and_groups(msec_folders) -> None:
    pred_dir, gt_dir, gts, preds = msec_folders
    report = evaluate_folders(pred_dir, gt_dir, "msec", method="noisy")
    assert len(report.images) == 10
    independent = {
        name: numpy_psnr(pred, gts[name.rsplit("_", 1)[0]]) for name, pred in preds.items()
    }
    for score in report.images:
        assert score.psnr == pytest.approx(independent[Path(score.name).stem], rel=1e-12)
    levels = report.by_level()
    assert list(levels) == list(MSEC_LEVELS)
    for level, row in levels.items():
        expected = np.mean([v for k, v in independent.items() if k.endswith(f"_{level}")])
        assert row.psnr == pytest.approx(expected)
        assert row.count == 2
    groups = report.by_group()
    under = [v for k, v in independent.items() if k.rsplit("_", 1)[1] in ("N1.5", "N1")]
    over = [v for k, v in independent.items() if k.rsplit("_", 1)[1] in ("0", "P1", "P1.5")]
    assert groups["Under"].psnr == pytest.approx(np.mean(under))
    assert groups["Over"].psnr == pytest.approx(np.mean(over))
    assert groups["Average"].psnr == pytest.approx(np.mean(under + over))
    assert (groups["Under"].count, groups["Over"].count, groups["Average"].count) == (4, 6, 10)
    # Noise grows with |EV| so the levels are told apart.
    assert levels["0"].psnr > levels["N1"].psnr > levels["N1.5"].psnr


def test_report_markdown_json_csv(msec_folders, tmp_path: Path) -> None:
    pred_dir, gt_dir, _, _ = msec_folders
    report = evaluate_folders(pred_dir, gt_dir, method="noisy")
    md = report.to_markdown()
    assert "| Method | Under PSNR | Under SSIM | Over PSNR | Over SSIM | Average PSNR |" in md
    g = report.by_group()
    assert f"| noisy | {g['Under'].psnr:.2f} | {g['Under'].ssim:.4f} |" in md
    assert "| P1.5 | over |" in md
    data = json.loads(report.to_json(tmp_path / "r.json"))
    assert json.loads((tmp_path / "r.json").read_text()) == data
    assert list(data["summary"]) == [*MSEC_LEVELS, "Under", "Over", "Average"]
    assert data["summary"]["Average"]["psnr"] == pytest.approx(g["Average"].psnr)
    assert len(data["images"]) == 10
    rows = list(csv.DictReader(io.StringIO(report.to_csv(tmp_path / "r.csv"))))
    assert [r["row"] for r in rows] == [*MSEC_LEVELS, "Under", "Over", "Average"]
    assert float(rows[-1]["psnr"]) == pytest.approx(g["Average"].psnr)
    assert rows[0]["group"] == "under"
    per_image = list(csv.DictReader(io.StringIO(report.to_csv(per_image=True))))
    assert len(per_image) == 10


def test_infinite_psnr_is_left_out_of_the_mean(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    _write(tmp_path / "gt" / "a.png", gt)
    _write(tmp_path / "pred" / "a_0.png", gt)
    _write(tmp_path / "pred" / "a_P1.png", _noisy(rng, gt, 10))
    report = evaluate_folders(tmp_path / "pred", tmp_path / "gt", strict=False)
    over = report.by_group()["Over"]
    assert over.psnr_skipped == 1
    assert over.count == 2
    assert over.psnr == pytest.approx(report.images[1].psnr)
    assert json.loads(report.to_json())["images"][0]["psnr"] is None
    assert "infinite PSNR" in report.to_markdown()


def test_missing_and_mismatched_files_are_listed(msec_folders) -> None:
    pred_dir, gt_dir, gts, _ = msec_folders
    (pred_dir / "s1_P1.png").unlink()
    (pred_dir / "s2_x_N1.png").unlink()
    with pytest.raises(ValueError, match=r"got 2 missing: s1_P1, s2_x_N1"):
        evaluate_folders(pred_dir, gt_dir)
    partial = evaluate_folders(pred_dir, gt_dir, strict=False)
    assert len(partial.images) == 8
    _write(pred_dir / "ghost_N1.png", gts["s1"])
    with pytest.raises(ValueError, match=r"ghost_N1.png -> ghost\.\*"):
        evaluate_folders(pred_dir, gt_dir, strict=False)
    (pred_dir / "ghost_N1.png").unlink()
    _write(pred_dir / "stray.png", gts["s1"])
    with pytest.raises(ValueError, match=r"Expected prediction names.*stray\.png"):
        evaluate_folders(pred_dir, gt_dir, strict=False)
    (pred_dir / "stray.png").unlink()
    _write(pred_dir / "s1_N1.5.png", gts["s1"][:20])
    with pytest.raises(
        ValueError, match=r"Expected prediction s1_N1\.5\.png to have its GT's size"
    ):
        evaluate_folders(pred_dir, gt_dir, strict=False)
    with pytest.raises(ValueError, match="Expected protocol"):
        evaluate_folders(pred_dir, gt_dir, "lol")


def test_sice_protocol_subfolders_and_flat(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    scores = {}
    for i in (4, 38):
        gt = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
        _write(tmp_path / "SICEV2" / "test" / "mid" / f"{i}.JPG".replace(".JPG", ".png"), gt)
        for level, sigma in (("low", 30), ("over", 5)):
            pred = _noisy(rng, gt, sigma)
            scores[(i, level)] = numpy_psnr(pred, gt)
            _write(tmp_path / "sub" / level / f"{i}.png", pred)
            _write(tmp_path / "flat" / f"{i}_{level}.png", pred)
    gt_root = tmp_path / "SICEV2" / "test"  # the folder above mid/ is accepted
    for layout in ("sub", "flat"):
        report = evaluate_folders(tmp_path / layout, gt_root, "sice")
        groups = report.by_group()
        assert groups["Under"].psnr == pytest.approx(
            np.mean([scores[(4, "low")], scores[(38, "low")]])
        )
        assert groups["Over"].psnr == pytest.approx(
            np.mean([scores[(4, "over")], scores[(38, "over")]])
        )
        assert list(report.by_level()) == ["low", "over"]


class _Halve(nn.Module):
    """A net with a parameter, output half the input."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_enhance_identity_round_trips_uint8() -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    np.testing.assert_array_equal(enhance(nn.Identity(), image), image)
    halved = enhance(_Halve(), image)
    np.testing.assert_array_equal(halved, np.round(image / 255.0 * 0.5 * 255.0).astype(np.uint8))


def test_enhance_images_writes_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    paths = []
    for name in ("a.jpg", "b.png"):
        _write(tmp_path / "in" / name, rng.integers(0, 256, (9, 11, 3), dtype=np.uint8))
        paths.append(tmp_path / "in" / name)
    written = enhance_images(nn.Identity(), paths, tmp_path / "out")
    assert [p.name for p in written] == ["a.png", "b.png"]
    with pytest.raises(FileNotFoundError, match="missing"):
        enhance_images(nn.Identity(), [tmp_path / "nope.png"], tmp_path / "out")


def test_run_net_on_dataset_then_evaluate(msec_test_set: Path, tmp_path: Path) -> None:
    run = run_net_on_dataset(nn.Identity(), msec_test_set, tmp_path / "pred")
    assert run.count == 15
    assert run.gt_dir == msec_test_set / "test" / "GT_IMAGES"
    via_net = evaluate_folders(run.pred_dir, run.gt_dir)
    direct = evaluate_folders(msec_test_set / "test" / "INPUT_IMAGES", run.gt_dir)
    assert [s.psnr for s in via_net.images] == [s.psnr for s in direct.images]


def test_load_state_dict_file_formats(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    net = _Halve()
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(
        {"params": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "w.pth"
    )
    for name in ("w.safetensors", "w.pth"):
        state = load_state_dict_file(tmp_path / name)
        assert list(state) == ["scale"]
        assert state["scale"].item() == 0.5
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(ValueError, match=r"Expected a \.safetensors"):
        load_state_dict_file(tmp_path / "w.txt")
    with pytest.raises(FileNotFoundError):
        load_state_dict_file(tmp_path / "missing.pth")


def test_bcm_frechet_distance_matches_an_independent_computation(tmp_path: Path) -> None:
    pytest.importorskip("torch_fidelity")
    scipy_linalg = pytest.importorskip("scipy.linalg")
    from erl_losses import BatchCorrelationModule
    from erl_losses.evaluation.fidelity import BCMFeatureExtractor, fidelity_between_paths
    from tests._helpers import TINY_BCM

    torch.manual_seed(0)
    bcm = BatchCorrelationModule(**TINY_BCM).eval()
    rng = np.random.default_rng(8)
    bright, dark = [], []
    for i in range(6):
        img = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        _write(tmp_path / f"b{i}.png", img)
        _write(tmp_path / f"d{i}.png", (img // 4).astype(np.uint8))
        bright.append(tmp_path / f"b{i}.png")
        dark.append(tmp_path / f"d{i}.png")
    kw = {"bcm": bcm, "size": 24}
    same = fidelity_between_paths(bright, bright, **kw)
    differ = fidelity_between_paths(bright, dark, **kw)
    assert abs(same["bcm_frechet_distance"]) < 1e-6
    assert differ["bcm_frechet_distance"] > max(1e-5, 100 * abs(same["bcm_frechet_distance"]))
    assert differ["bcm_kid_mean"] > same["bcm_kid_mean"]

    # Independent Frechet distance on the same per-sample tokens, pooled to 4 x 4 (TINY: 4 x 4).
    extractor = BCMFeatureExtractor("erl-bcm", ["tokens_pooled"], erl_bcm=bcm)

    def feats(paths):
        batch = torch.stack(
            [torch.from_numpy(np.asarray(Image.open(p)).transpose(2, 0, 1).copy()) for p in paths]
        )
        with torch.no_grad():
            return extractor(batch)[0].double().numpy()

    f1, f2 = feats(bright), feats(dark)
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy_linalg.sqrtm(s1 @ s2).real
    expected = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))
    assert differ["bcm_frechet_distance"] == pytest.approx(expected, rel=1e-3, abs=1e-6)


def test_fidelity_errors(tmp_path: Path) -> None:
    pytest.importorskip("torch_fidelity")
    from erl_losses.evaluation.fidelity import fidelity_between_paths

    rng = np.random.default_rng(9)
    paths = []
    for i in range(2):
        _write(tmp_path / f"{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        paths.append(tmp_path / f"{i}.png")
    with pytest.raises(ValueError, match="at least 2 images"):
        fidelity_between_paths(paths[:1], paths)
    from erl_losses import BatchCorrelationModule
    from tests._helpers import TINY_BCM

    with pytest.raises(FileNotFoundError, match="local Inception weights"):
        fidelity_between_paths(
            paths, paths, bcm=BatchCorrelationModule(**TINY_BCM), size=16,
            inception_weights=tmp_path / "pt_inception.pth",
        )  # fmt: skip


def test_16bit_predictions_are_scored_at_their_values(tmp_path: Path) -> None:
    """A 16-bit grey prediction equal to its 8-bit GT scores as identical."""
    rng = np.random.default_rng(6)
    grey8 = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    _write(tmp_path / "gt" / "s.png", np.repeat(grey8[..., None], 3, axis=2))
    (tmp_path / "pred").mkdir()
    Image.fromarray(grey8.astype(np.uint16) * 257).save(tmp_path / "pred" / "s_N1.png")
    report = evaluate_folders(tmp_path / "pred", tmp_path / "gt", strict=False)
    assert report.images[0].psnr == float("inf")
    assert report.images[0].ssim == pytest.approx(1.0)


def test_workers_give_the_same_report_and_the_same_errors(msec_folders) -> None:
    pred_dir, gt_dir, gts, _ = msec_folders
    alone = evaluate_folders(pred_dir, gt_dir)
    parallel = evaluate_folders(pred_dir, gt_dir, workers=2)
    assert parallel.images == alone.images  # same scores, same order
    _write(pred_dir / "s1_N1.5.png", gts["s1"][:20])
    with pytest.raises(
        ValueError, match=r"^Expected prediction s1_N1\.5\.png to have its GT's size"
    ):
        evaluate_folders(pred_dir, gt_dir, workers=2)  # the worker's error, as is
    with pytest.raises(ValueError, match="Expected `workers`"):
        evaluate_folders(pred_dir, gt_dir, workers=-1)
