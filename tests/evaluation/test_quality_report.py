"""The quality benchmark's plan and tables (benchmarks/quality_*.py) on made-up runs, no training."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def modules():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import quality_plan
        import quality_report
    finally:
        sys.path.remove(str(BENCHMARKS))
    return quality_plan, quality_report


def _run(net: str, arm: str | None, seed: int, average: float) -> dict:
    groups = {
        g: {"psnr": average + offset, "ssim": 0.8 + average / 1000}
        for g, offset in (("Under", -1.0), ("Over", 1.0), ("Average", 0.0))
    }
    return {
        "net": net,
        "arm": arm,
        "batch_size": 4,
        "alpha": 0.1 if arm else 0.0,
        "seed": seed,
        "groups": groups,
    }


def _runs(deltas: dict[str, list[float]]) -> list[dict]:
    runs = []
    for net in ("ECLNet", "FECNet"):
        for seed, base in enumerate((20.0, 21.0, 19.5, 20.5)):
            runs.append(_run(net, None, seed, base))
            for arm, d in deltas.items():
                runs.append(_run(net, arm, seed, base + d[seed]))
    return runs


def test_plan_pairs_every_arm_with_a_baseline_per_seed(modules) -> None:
    plan, _ = modules
    jobs = plan.plan_jobs(["main"], 3)
    keys = {(j.net, j.arm, j.seed) for j in jobs}
    assert len(jobs) == len(keys) == 2 * 3 * (1 + len(plan.MAIN_ARMS))
    for net in plan.NETS:
        for seed in range(3):
            assert (net, None, seed) in keys
    assert jobs[0].net == "FECNet"  # the slowest first
    assert plan.arms_of(jobs) == list(plan.MAIN_ARMS)
    assert plan.FULL.seeds >= 24
    assert plan.FULL.test_images >= 200
    assert plan.QUICK.test_images >= 200


def test_tables_hold_the_paired_statistics(modules) -> None:
    _, report = modules
    deltas = {"phase": [0.3, 0.1, 0.2, 0.4], "phase-centred": [-0.1, 0.0, -0.3, 0.1]}
    tables = report.build_tables(_runs(deltas), ["main"], list(deltas))
    cmp = tables["main"]["ECLNet"]["phase"]
    d = cmp["delta"]["Average"]["psnr"]
    assert cmp["seeds"] == [0, 1, 2, 3]
    assert d["mean"] == pytest.approx(0.25)
    assert d["sd"] == pytest.approx(math.sqrt(sum((x - 0.25) ** 2 for x in deltas["phase"]) / 3))
    assert d["ci_low"] < 0.25 < d["ci_high"]
    assert d["wins"] == 4
    assert cmp["baseline"]["Average"]["psnr"]["mean"] == pytest.approx(20.25)
    centred = tables["main"]["FECNet"]["phase-centred"]["delta"]["Average"]["psnr"]
    assert (centred["wins"], centred["losses"]) == (1, 2)


def test_markdown_reports_ci_p_mde_and_diagnostics(modules) -> None:
    _, report = modules
    deltas = {"phase": [0.3, 0.1, 0.2, 0.4]}
    runs = _runs(deltas)
    result = {
        "date": "today",
        "machine": "test",
        "torch": "x",
        "command": "python benchmarks/quality.py --quick",
        "quick": True,
        "workers": 2,
        "settings": {
            "seeds": 4,
            "steps": 10,
            "crop_size": 32,
            "render_size": 48,
            "lr": 1e-3,
            "ema_decay": 0.999,
        },
        "data": {
            "train_images": 5,
            "train_photos": ["a"],
            "test_images": 5,
            "test_photos": ["b"],
        },
        "input": {"groups": {g: {"psnr": 15.0, "ssim": 0.7} for g in report.GROUPS}},
        "bcms": {"phase": {"source": "zoo bcm-phase-photos"}},
        "diagnostics": {
            "phase": {
                "relational_index": -0.17,
                "attention_entropy_fraction": 0.99,
                "cross_sample_gradient_share": 0.12,
            }
        },
        "tables": report.build_tables(runs, ["main"], ["phase"]),
        "runs": runs,
        "seconds": {"total": 1.0},
    }
    text = report.render_markdown(result)
    assert "### Quick CPU run" in text
    assert "Input (no correction)" in text
    assert "+0.25 [" in text  # mean delta with its interval
    assert "| 4/4 |" in text  # wins
    assert "-0.170 | 0.990 | 0.120" in text  # diagnostics next to the arm
    assert "80 % power needs" in text
