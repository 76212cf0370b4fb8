"""benchmarks/run_perf.py: one tiny real run on CPU writes every section with its provenance, and
the same results re-rendered as a GPU run give the ``[cuda]`` sections (the path a GPU machine
takes with ``--device cuda``)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def run_perf():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("erl_run_perf", BENCH / "run_perf.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    yield module
    sys.path.remove(str(BENCH))


def test_update_results_replaces_only_its_sections(run_perf, tmp_path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\nintro\n\n## Quality\n\nkept\n\n## Mine [cpu]\n\nold\n")
    run_perf.report.update_results(path, {"Mine [cpu]": "new", "Mine [cuda]": "gpu"})
    text = path.read_text()
    assert "kept" in text and "new" in text and "old" not in text
    assert text.index("## Mine [cpu]") < text.index("## Mine [cuda]")


@pytest.mark.slow
def test_tiny_cpu_run_and_its_gpu_rendering(run_perf, tmp_path) -> None:
    results, raw = tmp_path / "RESULTS.md", tmp_path / "perf.json"
    common = [
        "--sizes",
        "32",
        "--work-sizes",
        "64",
        "--graphs-work-sizes",
        "64",
        "--net",
        "standin",
    ]
    argv = [
        *common, "--e2e-work-sizes", "", "--rounds", "1", "--phase-rounds", "1",
        "--min-run-time", "0.001", "--cold-start-runs", "1", "--cold-start-size", "32",
        "--results", str(results), "--json", str(raw),
    ]  # fmt: skip
    assert run_perf.main(argv) == 0
    text = results.read_text()
    for heading in (
        "PhaseLoss rfft2 vs full fft2 [cpu]",
        "relation overhead per training step [cpu]",
        "work_size cost [cpu]",
        "from_pretrained cold start [cpu]",
    ):
        section = text.split(f"## Performance: {heading}", 1)[1].split("\n## ", 1)[0]
        assert "- Date: " in section and "- Command: `python benchmarks/run_perf.py" in section
        assert "- Machine: " in section
    assert "| 64+graphs |" in text and "Target (design, cpu) >= 2.0x" in text
    data = json.loads(raw.read_text())
    assert set(data["phase"]["32"]) >= {"rfft2", "rfft2-unfused", "fft2", "fused_gain"}

    assert run_perf.main([*common, "--device", "cuda", "--render-json", str(raw),
                          "--results", str(results)]) == 0  # fmt: skip
    text = results.read_text()
    assert "## Performance: PhaseLoss rfft2 vs full fft2 [cuda]" in text
    assert "Target (design, cuda) >= 1.5x" in text
    assert "## Performance: relation overhead per training step [cpu]" in text  # kept
