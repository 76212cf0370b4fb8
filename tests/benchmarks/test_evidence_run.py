"""The evidence benchmark end to end on a tiny protocol: runs, per-image scores, the protocol
hash, Holm, the bootstrap over test photos, the report block, merging and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks._evidence import evidence, evidence_report, tiny_protocol

pytestmark = pytest.mark.slow
pytest.importorskip("scipy")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evidence")
    protocol = tiny_protocol(root / "protocol.toml")
    out = {}
    for name, first in (("a", 0), ("b", 2)):
        out[name] = root / f"{name}.json"
        argv = [
            "--protocol", str(protocol), "--split", "test", "--nets", "ECLNet",
            "--arms", "phase,centred-pixels", "--seeds", "2", "--first-seed", str(first),
            "--workers", "1", "--device", "cpu", "--out", str(out[name]),
        ]  # fmt: skip
        assert evidence.main(argv) == 0
    out["protocol"] = protocol
    return out


def test_a_result_records_the_protocol_and_every_image(runs) -> None:
    import hashlib

    result = json.loads(runs["a"].read_text())
    assert result["protocol"]["sha256"] == hashlib.sha256(runs["protocol"].read_bytes()).hexdigest()
    assert len(result["runs"]) == 2 * 3  # 2 seeds x (baseline, phase, centred-pixels)
    images = len(result["image_names"])
    assert images == 2 * 2 * 5  # 2 photos x 2 crops x 5 levels
    for run in result["runs"]:
        assert len(run["images"]["psnr"]) == len(run["images"]["ssim"]) == images
    assert result["arms"]["centred-pixels"]["scale"] > 0  # calibrated on validation


def test_merge_then_analyse(runs, tmp_path: Path) -> None:
    merged = tmp_path / "m.json"
    assert evidence.main(["--merge", str(runs["a"]), str(runs["b"]), "--out", str(merged)]) == 0
    result = evidence_report.load(merged)
    assert result["seeds"] == [0, 1, 2, 3]
    analysis = evidence_report.analyse(result)
    rows = {(r["net"], r["arm"]): r for r in analysis["rows"]}
    primary, control = rows[("ECLNet", "phase")], rows[("ECLNet", "centred-pixels")]
    assert primary["status"] == "primary" and control["status"] == "control"
    assert primary["level"] == pytest.approx(1 - 0.05)  # the one primary present: m = 1
    assert control["level"] == 0.95 and "p_holm" not in control
    assert primary["scenes"] == 2 and set(primary["per_photo"]) == {"chelsea", "coffee"}  # photos
    low, high = primary["scene_ci"]
    assert low <= high
    # one net only: the rule needs every registered primary with the protocol's seed count
    assert analysis["decision"]["complete"] is False
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n")
    assert (
        evidence_report.main([str(merged), "--md", str(md), "--plot", str(tmp_path / "f.png")]) == 0
    )
    text = md.read_text()
    assert "<!-- evidence:test:begin -->" in text and "| ECLNet | phase | primary |" in text
    assert (tmp_path / "f.png").stat().st_size > 0
    evidence_report.main([str(merged), "--md", str(md)])
    assert md.read_text().count("<!-- evidence:test:begin -->") == 1  # replaced, not appended


def test_merge_refusals(runs, tmp_path: Path) -> None:
    a = json.loads(runs["a"].read_text())
    with pytest.raises(ValueError, match="distinct files"):
        evidence_report.merge([a, a], ["a.json", "a.json"])
    with pytest.raises(ValueError, match="each run once"):
        evidence_report.merge([a, a], ["a.json", "copy.json"])
    other = {**a, "settings": {**a["settings"], "steps": 99}}
    with pytest.raises(ValueError, match="'settings'"):
        evidence_report.merge([a, other], ["a.json", "o.json"])
    bad = json.loads(runs["b"].read_text())
    bad["runs"][0]["groups"]["Average"]["psnr"] = float("nan")
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="finite"):
        evidence_report.load(path)
