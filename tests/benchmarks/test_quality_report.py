"""The quality benchmark's plan and tables (benchmarks/quality_*.py) on made-up runs, no training."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _import(*names: str) -> list:
    """The ``benchmarks/`` scripts ``names`` as modules (benchmarks/ is not a package)."""
    import importlib

    sys.path.insert(0, str(BENCHMARKS))
    try:
        return [importlib.import_module(name) for name in names]
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def modules():
    return tuple(_import("quality_plan", "quality_report"))


@pytest.fixture(scope="module")
def quality():
    """``benchmarks/quality.py`` as a module."""
    return _import("quality")[0]


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
    assert plan.FULL.test_scenes >= 200  # distinct held-out crops, x 5 levels
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


def test_first_seed_shifts_the_plan_and_ablation_covers_both_nets(modules) -> None:
    plan, _ = modules
    jobs = plan.plan_jobs(["ablation"], 2, first_seed=5)
    assert {j.seed for j in jobs} == {5, 6}
    for net in plan.NETS:
        assert {j.arm for j in jobs if j.net == net} == {None, *plan.ABLATION_ARMS}


def test_ablation_tables_per_net_with_the_seed_note(modules) -> None:
    _, report = modules
    runs = _runs({"none": [0.3, -0.1, 0.2, -0.4], "l1": [0.1, 0.1, 0.1, 0.2]})
    tables = report.build_tables(runs, ["ablation"], [])
    assert set(tables["ablation"]) == {"ECLNet", "FECNet"}
    cmp = tables["ablation"]["FECNet"]["none"]
    assert cmp["per_seed"] == pytest.approx({"0": 0.3, "1": -0.1, "2": 0.2, "3": -0.4})
    note = report._seed_note(cmp)
    assert "Median Δ +0.05 dB" in note
    assert "largest |Δ| -0.40 (seed 3)" in note
    assert "ERL lower on seeds: 1, 3." in note


def _keyed_runs(deltas: dict[str, list[float]]) -> list[dict]:
    """:func:`_runs` with the ``key`` every run of a result file has."""
    return [{**r, "key": f"{r['net']}|{r['arm']}|s{r['seed']}"} for r in _runs(deltas)]


def _result(runs: list[dict], seeds: int, first_seed: int = 0, **settings) -> dict:
    return {
        "first_seed": first_seed,
        "date": "d",
        "machine": "m",
        "command": "c",
        "quick": True,
        "sections": ["main"],
        "main_arms": ["phase"],
        "planned_runs": len(runs),
        "settings": {"seeds": seeds, "steps": 10, **settings},
        "bcms": {"phase": {"source": "zoo bcm-phase-photos (sha 1)"}},
        "diagnostics": {},
        "runs": runs,
        "seconds": {"total": 2.0},
    }


def test_merge_joins_disjoint_seeds_and_refuses_a_run_twice(modules) -> None:
    _, report = modules
    runs = [
        {**r, "key": f"{r['net']}|{r['arm']}|s{r['seed']}"} for r in _runs({"phase": [0.1] * 4})
    ]
    low = [r for r in runs if r["seed"] < 2]
    high = [r for r in runs if r["seed"] >= 1]  # seed 1 in both files
    with pytest.raises(ValueError, match="each run in one file"):
        report.merge_results([_result(low, 2), _result(high, 3, first_seed=1)], ["a", "b"])
    with pytest.raises(ValueError, match="distinct result files"):
        report.merge_results([_result(low, 2), _result(low, 2)], ["a.json", "a.json"])
    high = [r for r in runs if r["seed"] >= 2]
    merged = report.merge_results(
        [_result(low, 2), _result(high, 2, first_seed=2)], ["a.json", "b.json"]
    )
    assert len(merged["runs"]) == len(runs)
    assert merged["settings"]["seeds"] == 4
    assert merged["planned_runs"] == len(runs)
    assert merged["seconds"]["total"] == 4.0
    tables = report.build_tables(merged["runs"], merged["sections"], merged["main_arms"])
    assert tables["main"]["ECLNet"]["phase"]["seeds"] == [0, 1, 2, 3]


def test_merge_records_the_nets_of_its_files(modules) -> None:
    _, report = modules
    runs = [
        {**r, "key": f"{r['net']}|{r['arm']}|s{r['seed']}"} for r in _runs({"phase": [0.1] * 4})
    ]
    fec = [r for r in runs if r["net"] == "FECNet"]
    only_fec = {**_result(fec[:4], 2), "nets": ["FECNet"]}
    also_fec = {**_result(fec[4:], 2, first_seed=2), "nets": ["FECNet"]}
    merged = report.merge_results([only_fec, also_fec], ["a", "b"])
    assert merged["nets"] == ["FECNet"]
    assert merged["planned_runs"] == len(fec)  # the plan of FECNet alone
    older = _result([r for r in runs if r["net"] == "ECLNet"], 4)  # written before --nets: both
    assert report.merge_results([only_fec, older], ["a", "b"])["nets"] == ["ECLNet", "FECNet"]


def test_merge_refuses_other_settings_bcms_or_scores(modules) -> None:
    _, report = modules
    runs = [
        {**r, "key": f"{r['net']}|{r['arm']}|s{r['seed']}"} for r in _runs({"phase": [0.1] * 4})
    ]
    a = _result(runs, 4)
    with pytest.raises(ValueError, match="settings"):
        report.merge_results([a, _result(runs, 4, steps=20)], ["a", "b"])
    other_bcm = _result(runs, 4)
    other_bcm["bcms"] = {"phase": {"source": "zoo bcm-phase-photos (sha 2)"}}
    with pytest.raises(ValueError, match="one BCM"):
        report.merge_results([a, other_bcm], ["a", "b"])
    low, high = [r for r in runs if r["seed"] < 2], [r for r in runs if r["seed"] >= 2]
    for field, value in (("path", "/other.safetensors"), ("variant", "centred")):
        other = _result(high, 2, first_seed=2)
        other["bcms"] = {"phase": {**a["bcms"]["phase"], field: value}}
        with pytest.raises(ValueError, match=f"one BCM, got {field}"):
            report.merge_results([_result(low, 2), other], ["a", "b"])
    one, two = _result(low, 2), _result(high, 2, first_seed=2)
    one["diagnostics"] = {"phase": {"relational_index": 0.1, "seconds": 1.0}}
    two["diagnostics"] = {"phase": {"relational_index": 0.2, "seconds": 1.0}}
    with pytest.raises(ValueError, match="one set of diagnostics"):
        report.merge_results([one, two], ["a", "b"])
    two["diagnostics"] = {"phase": {"relational_index": 0.1, "seconds": 9.0}}  # timing may differ
    assert report.merge_results([one, two], ["a", "b"])["diagnostics"]["phase"]


def test_render_only_merges_two_files_into_out_and_the_markdown(modules, quality, tmp_path) -> None:
    runs = _keyed_runs({"phase": [0.2] * 4})
    extra = {
        "workers": 2,
        "torch": "x",
        "data": {"train_images": 1, "train_photos": ["a"], "test_images": 1, "test_photos": ["b"]},
        "input": {"groups": {g: {"psnr": 15.0, "ssim": 0.7} for g in ("Under", "Over", "Average")}},
        "tables": {"stale": "rebuilt from the runs"},
    }
    settings = {"crop_size": 32, "render_size": 48, "lr": 1e-3, "ema_decay": 0.9}
    files = []
    for name, part in (("low", runs[: len(runs) // 2]), ("high", runs[len(runs) // 2 :])):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**_result(part, 2, **settings), **extra}))
        files.append(str(path))
    with pytest.raises(SystemExit):  # several files need --out
        quality.parse_args(["--render-only", *files])
    out, md = tmp_path / "merged.json", tmp_path / "RESULTS.md"
    assert quality.main(["--render-only", *files, "--out", str(out), "--md", str(md)]) == 0
    merged = json.loads(out.read_text())
    assert merged["merged_from"] == files
    assert len(merged["runs"]) == len(runs) and "stale" not in merged["tables"]
    assert "<!-- quality:quick -->" in md.read_text()
    assert "+0.20 [" in md.read_text()
    md.write_text("untouched\n")
    out.unlink()
    argv = ["--render-only", *files, "--out", str(out), "--md", str(md), "--no-md"]
    assert quality.main(argv) == 0
    assert md.read_text() == "untouched\n" and out.is_file()


def test_render_only_reports_bad_inputs_in_one_line(modules, quality, tmp_path, capsys) -> None:
    runs = _keyed_runs({"phase": [0.2] * 4})
    runs[0]["groups"]["Average"]["psnr"] = math.nan
    path = tmp_path / "nan.json"
    path.write_text(json.dumps({**_result(runs, 4), "tables": {"x": 1}}))
    md = tmp_path / "RESULTS.md"
    assert quality.main(["--render-only", str(path), "--md", str(md)]) == 1
    err = capsys.readouterr().err.strip()
    assert "finite" in err and "\n" not in err and not md.exists()
    runs[0]["groups"]["Average"]["psnr"] = 20.0
    path.write_text(json.dumps({**_result(runs, 4), "tables": {"x": 1}}))
    argv = ["--render-only", str(path), str(path), "--out", str(tmp_path / "o.json")]
    assert quality.main(argv) == 1
    assert "distinct" in capsys.readouterr().err


def test_a_failing_run_is_reported_and_the_others_are_kept(modules, tmp_path, monkeypatch) -> None:
    from tests._helpers import quality_job_failing_on_seed_1

    plan, _ = modules
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the spawned workers unpickle quality_plan.Job
    import quality

    jobs = [plan.Job("ECLNet", None, 4, 0.0, seed) for seed in range(3)]
    log = tmp_path / "runs.jsonl"
    runs, failures = quality.run_jobs(
        jobs, 2, (), log, run_job=quality_job_failing_on_seed_1, initializer=None
    )
    assert sorted(r["key"] for r in runs) == [jobs[0].key, jobs[2].key]
    assert failures == [{"key": jobs[1].key, "error": "RuntimeError('run failed on purpose')"}]
    assert len(log.read_text().splitlines()) == 2  # the finished runs are logged
    assert all(json.loads(line)["key"] != jobs[1].key for line in log.read_text().splitlines())


def test_nets_restrict_the_plan_and_bad_flags_are_refused(modules, monkeypatch) -> None:
    plan, _ = modules
    jobs = plan.plan_jobs(["main", "batch"], 2, nets=("FECNet",))
    assert {j.net for j in jobs} == {"FECNet"}  # the batch section is ECLNet's: nothing planned
    assert {j.batch_size for j in jobs} == {4}
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import quality

    assert quality.parse_args(["--nets", "FECNet", "--lr", "5e-4"]).nets == ["FECNet"]
    for argv in (["--nets", "DRBN"], ["--nets", ","], ["--lr", "0"], ["--lr", "-1e-3"]):
        with pytest.raises(SystemExit):
            quality.parse_args(argv)
