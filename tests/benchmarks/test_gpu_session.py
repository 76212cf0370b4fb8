"""benchmarks/gpu_session.py: the time-boxed GPU session kit, checked on CPU.

The tiny session runs every part at toy size through the same subprocesses a GPU session uses;
the budget tests check that a part overrunning its slice is stopped and that parts that no longer
fit are skipped with the reason; the renderer writes only its delimited block (and, from a perf
JSON, run_perf's own ``[cuda]`` sections) and says "not yet measured" without a GPU session.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
OTHER = (
    "# Benchmark results\n\nintro\n\n## Quality\n\nkept by others\n\n## Other [cpu]\n\nmine too\n"
)


@pytest.fixture(scope="module")
def kit():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("erl_gpu_session", BENCH / "gpu_session.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    yield module
    del sys.modules[spec.name]
    sys.path.remove(str(BENCH))


def test_part_timeout_caps_and_skips(kit) -> None:
    assert kit.part_timeout(kit.Slice(30, 90), 400) == (90, "")
    assert kit.part_timeout(kit.Slice(30, None), 400) == (400, "")
    assert kit.part_timeout(kit.Slice(30, 90), 50) == (50, "")
    timeout, why = kit.part_timeout(kit.Slice(30, 90), 12)
    assert timeout is None and "needs at least 30 s, 12 s of the budget left" in why


def test_quality_plan_fits_seeds_and_workers(kit) -> None:
    # 80 GiB free, 16 cores: 12 workers; 6 runs per seed, 140 s per wave, 60 s set-up.
    seeds, workers, why = kit.quality_plan(200, 80.0, 16)
    assert (seeds, workers) == (2, 12) and "12 workers" in why
    assert kit.quality_plan(340, 80.0, 16)[:2] == (4, 12)
    # Memory bounds the workers: 9 GiB free at 2 GiB each -> 4 workers, 2 seeds need 3 waves.
    assert kit.quality_plan(60 + 3 * 140, 9.0, 16)[:2] == (2, 4)
    seeds, _, why = kit.quality_plan(150, 80.0, 16)
    assert seeds == 0 and "fewer than 2 paired seeds fit" in why
    seeds, workers, why = kit.quality_plan(1000, 1.0, 16)
    assert (seeds, workers) == (0, 0) and "no room" in why


def test_the_quality_slice_is_sized_by_the_registered_protocol(kit, tmp_path, monkeypatch) -> None:
    from tests.benchmarks._evidence import evidence_protocol

    protocol = evidence_protocol.load_protocol(BENCH / "protocol.toml")
    monkeypatch.setenv("ERL_MATE_PHOTOS", str(tmp_path))  # no Debian photos here
    sizing = kit.protocol_sizing(BENCH / "protocol.toml")
    pairs = {*protocol.primaries, *protocol.controls}
    assert sizing["runs_per_seed"] == len({n for n, _ in pairs}) + len(pairs) == 12
    steps = protocol.settings["steps"]
    assert sizing["run_s"] == pytest.approx(kit.QUALITY_STEP_S * sum(steps.values()) / 2)
    assert "mate-backgrounds" in sizing["missing"] and "ERL_MATE_PHOTOS" in sizing["missing"]
    toy = evidence_protocol.toy_protocol(BENCH / "protocol.toml", tmp_path / "toy.toml")
    assert "missing" not in kit.protocol_sizing(toy)  # bundled photos only
    assert kit.protocol_sizing(toy, tiny=True)["runs_per_seed"] == 2

    # Without the test photos the part is skipped with the reason, not run and failed.
    args = kit.parse_args(["--device", "cuda", "--out", str(tmp_path / "s")])
    session = kit.Session.__new__(kit.Session)
    session.args, session.out, session.work = args, tmp_path, tmp_path
    cmd, why, details = session.quality_command(300)
    assert (
        cmd is None and "mate-backgrounds" in why and details["protocol"].endswith("protocol.toml")
    )


def test_cuda_tests_are_selected(kit) -> None:
    files = kit.cuda_test_files()
    assert "tests/losses/test_cuda.py" in files
    assert "tests/benchmarks/test_gpu_session.py" not in files


def _args(kit, out: Path, budget: float) -> argparse.Namespace:
    args = kit.parse_args(
        ["--device", "cpu", "--tiny", "--out", str(out), "--budget-s", str(budget)]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    args.device_ok = True
    return args


def test_a_part_over_its_slice_is_stopped_and_the_rest_skipped(kit, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(
        kit.SLICES,
        "tiny",
        {
            "tests": kit.Slice(1, 2),
            "perf": kit.Slice(1, 1),
            "basicsr": kit.Slice(1000, None),
            "quality": kit.Slice(1000, None),
        },
    )
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    writer = [sys.executable, "-c", f"open({str(tmp_path / 'perf.json')!r}, 'w').write('{{}}')"]
    monkeypatch.setattr(kit.Session, "tests_command", lambda self, t: (sleeper, "", {}))
    monkeypatch.setattr(kit.Session, "perf_command", lambda self, t: (writer, "", {}))
    session = kit.Session(_args(kit, tmp_path, 30))
    assert session.run() == 1  # a stopped part is not a clean session
    summary = json.loads((tmp_path / "summary.json").read_text())
    parts = {p["name"]: p for p in summary["parts"]}
    assert parts["tests"]["status"] == "timeout" and parts["tests"]["seconds"] < 20
    assert "stopped at its 2 s slice" in parts["tests"]["reason"]
    assert parts["perf"]["status"] == "ran" and parts["perf"]["json"] == "perf.json"
    for name in ("basicsr", "quality"):
        assert parts[name]["status"] == "skipped"
        assert "needs at least 1000 s" in parts[name]["reason"]
    assert summary["finished"] and summary["total_s"] < 30


def test_a_budget_too_small_skips_every_part_with_its_reason(kit, tmp_path) -> None:
    session = kit.Session(_args(kit, tmp_path, 6))
    assert session.run() == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [p["name"] for p in summary["parts"]] == list(kit.PART_NAMES)
    for part in summary["parts"]:
        assert part["status"] == "skipped" and "of the budget left" in part["reason"]


def test_render_without_a_session_says_not_yet_measured(kit, tmp_path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(OTHER)
    assert kit.main(["--render", "--results", str(results)]) == 0
    assert kit.main(["--render", "--results", str(results)]) == 0  # replaces, never duplicates
    text = results.read_text()
    assert text.count(kit.BEGIN) == 1 and text.count(kit.END) == 1
    assert text.startswith(OTHER.rstrip("\n")) and "kept by others" in text
    block = text.split(kit.BEGIN, 1)[1].split(kit.END, 1)[0]
    assert "PhaseLoss >= 1.5x" in block and "| not yet measured | not yet measured |" in block
    assert block.count("Verdict: **not yet measured**") == 2


def test_render_refuses_a_cpu_session(kit, tmp_path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"device": "cpu", "parts": []}))
    results = tmp_path / "RESULTS.md"
    results.write_text(OTHER)
    assert kit.main(["--render", str(tmp_path), "--results", str(results)]) == 2
    assert results.read_text() == OTHER


@pytest.mark.slow
def test_tiny_session_writes_every_part_and_renders(kit, tmp_path) -> None:
    out = tmp_path / "session"
    done = subprocess.run(
        [sys.executable, str(BENCH / "gpu_session.py"), "--device", "cpu", "--tiny",
         "--out", str(out), "--budget-s", "280"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and summary["device"] == "cpu" and summary["tiny"]
    parts = {p["name"]: p for p in summary["parts"]}
    assert list(parts) == list(kit.PART_NAMES)
    for name, part in parts.items():
        assert part["status"] == "ran", (name, part)
        assert part["json"] == f"{name}.json" and part["seconds"] > 0
    tests = json.loads((out / "tests.json").read_text())
    assert tests["counts"]["skipped"] > 0 and tests["counts"]["failed"] == 0  # no CUDA here
    assert all("test_cuda" in t["id"] for t in tests["tests"])
    perf = json.loads((out / "perf.json").read_text())
    assert set(perf["phase"]["32"]) >= {"rfft2", "rfft2-unfused", "fft2", "first_call_s"}
    assert set(perf["relation"]) == {"fp32", "bf16"} and perf["complete"]
    assert "64" in perf["relation"]["fp32"]["sizes"]["32"]["graphs_gain"]
    basicsr = json.loads((out / "basicsr.json").read_text())
    assert [r["variant"] for r in basicsr["rows"]] == ["erl"]
    assert basicsr["rows"][0]["flag"]  # l_relation in basicsr's log
    quality = json.loads((out / "quality.json").read_text())
    assert len(quality["runs"]) == quality["planned_runs"] == 4  # 2 seeds x (L1, phase)
    assert quality["split"] == "test" and not quality["exploratory"]  # the registered arms
    assert quality["protocol"]["name"] == "erl-converged-cpu"  # the toy copy of the registered one

    # The same JSONs as if a GPU had measured them: every cell is filled from them.
    fake = tmp_path / "as-cuda"
    shutil.copytree(out, fake)
    summary["device"] = "cuda"
    (fake / "summary.json").write_text(json.dumps(summary))
    results = tmp_path / "RESULTS.md"
    results.write_text(OTHER)
    assert kit.main(["--render", str(fake), "--results", str(results)]) == 0
    text = results.read_text()
    assert "kept by others" in text and "## Other [cpu]\n\nmine too" in text
    assert "## Performance: PhaseLoss rfft2 vs full fft2 [cpu]" in text  # run_perf's sections
    block = text.split(kit.BEGIN, 1)[1].split(kit.END, 1)[0]
    assert "- Command: `python benchmarks/gpu_session.py --device cpu --tiny" in block
    assert "| tests | ran |" in block and "| quality | ran |" in block
    assert "32 px" in block and "+ERL (fecnet_erl_msec)" in block
    assert "4 of 4 planned runs finished" in block and "evidence_report.py" in block
    # No 256 / 512 px figures in a tiny run: those targets stay unmeasured.
    assert "relation term <= 10 % at 256 px" in block and NOT_MEASURED_ROW in block


NOT_MEASURED_ROW = "| not yet measured | not yet measured |"
