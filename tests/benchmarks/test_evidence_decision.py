"""The decision rule and README's conclusion, on synthetic results with known differences."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.benchmarks._evidence import evidence_report

pytest.importorskip("scipy")

NETS = ["ECLNet", "FECNet"]
PRIMARIES = [[n, a] for a in ("phase", "phase-centred") for n in NETS]
SCENES = ["chelsea_c00", "chelsea_c01", "coffee_c00", "coffee_c01"]


def _result(deltas: dict[tuple[str, str], float], seeds: int) -> dict[str, Any]:
    """Runs whose arm - baseline Average PSNR is ``deltas[(net, arm)]`` plus seed noise."""
    rng = np.random.default_rng(0)
    images = [f"{s}_{lvl}.png" for s in SCENES for lvl in ("N1.5", "N1", "0", "P1", "P1.5")]
    runs = []
    for net in NETS:
        for seed in range(seeds):
            base = 20.0 + rng.normal(0, 0.3)
            for arm in ("l1", "phase", "phase-centred"):
                value = base + (0.0 if arm == "l1" else deltas[(net, arm)] + rng.normal(0, 0.02))
                group = {"psnr": value, "ssim": 0.9}
                runs.append({
                    "key": f"{net}|{arm}|s{seed}", "net": net, "arm": arm, "seed": seed,
                    "groups": {"Under": group, "Over": group, "Average": group},
                    "images": {"psnr": [value] * len(images), "ssim": [0.9] * len(images)},
                })  # fmt: skip
    return {
        "split": "test",
        "exploratory": False,
        "protocol": {
            "name": "p",
            "version": 1,
            "sha256": "0" * 64,
            "primaries": PRIMARIES,
            "controls": [],
            "seeds": {"first": 0, "count": 16},
            "decision": {"family_alpha": 0.05},
        },
        "nets": NETS,
        "arm_labels": ["phase", "phase-centred"],
        "image_names": images,
        "input": {"groups": {"Average": {"psnr": 15.0, "ssim": 0.8}}},
        "runs": runs,
    }


def test_partial_results_decide_nothing() -> None:
    result = _result({(n, a): 0.5 for n, a in PRIMARIES}, seeds=8)
    analysis = evidence_report.analyse(result)
    assert analysis["decision"] == {"complete": False, "seeds_needed": 16, "change_default_to": []}
    text = evidence_report.conclusion(result, analysis)
    assert "partial results" in text and "(n=8)" in text


def test_an_arm_above_zero_for_both_nets_changes_the_default() -> None:
    deltas = {(n, "phase"): 0.0 for n in NETS} | {(n, "phase-centred"): 0.3 for n in NETS}
    result = _result(deltas, seeds=16)
    analysis = evidence_report.analyse(result)
    assert analysis["decision"]["change_default_to"] == ["phase-centred"]
    assert "decision rule is met for `phase-centred`" in evidence_report.conclusion(
        result, analysis
    )


def test_one_net_only_keeps_the_default_and_names_what_moved() -> None:
    deltas = {("ECLNet", "phase"): 0.3, ("FECNet", "phase"): 0.0}
    deltas |= {("ECLNet", "phase-centred"): 0.0, ("FECNet", "phase-centred"): -0.3}
    result = _result(deltas, seeds=16)
    analysis = evidence_report.analyse(result)
    assert analysis["decision"] == {"complete": True, "seeds_needed": 16, "change_default_to": []}
    text = evidence_report.conclusion(result, analysis)
    assert "above 0: `phase` on ECLNet" in text and "below 0: `phase-centred` on FECNet" in text
    assert text.count(". ") + text.endswith(".") == 2  # two sentences
