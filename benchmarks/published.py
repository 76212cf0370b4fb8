"""Every published quality figure, regenerated from the committed result files.

    python benchmarks/published.py            # rewrite the generated blocks (and the forest plot)
    python benchmarks/published.py --check    # exit 1 naming each block that differs

The generated blocks sit between ``<!-- KIND:KEY:begin -->`` / ``<!-- KIND:KEY:end -->`` markers:

* README.md ``demo:table`` and docs/demo.md ``demo:full`` (with the levels): the table of the
  committed ``erl demo`` run (:data:`DEMO_JSON`, the ``results.json`` of a full ``erl demo``),
  with its seed, steps, machine and date; README.md ``demo:quick``: the same for
  ``erl demo --quick`` (:data:`DEMO_QUICK_JSON`);
* README.md ``evidence:conclusion``: the two sentences :func:`evidence_report.conclusion` draws
  from the registered protocol's test results (:data:`EVIDENCE_JSON`);
* benchmarks/RESULTS.md ``evidence:validation``: the settings sweep on the validation split
  (:data:`VALIDATION_DIR`);
* benchmarks/RESULTS.md ``evidence:test``: the report of those results
  (:func:`evidence_report.render_markdown`), and ``docs/images/forest.png`` (written, not checked:
  pixels differ between matplotlib versions).

``tests/test_published_figures.py`` runs the check, so a figure typed by hand into a block, or a
result file changed without its blocks, fails the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import evidence_report  # noqa: E402

#: The committed ``results.json`` of a full ``erl demo`` run (the README's demo table).
DEMO_JSON = ROOT / "docs" / "demo-results.json"
#: The committed ``results.json`` of ``erl demo --quick`` (README's quick-run table).
DEMO_QUICK_JSON = ROOT / "docs" / "demo-quick-results.json"
#: The registered protocol's test-split results (merged seed ranges).
EVIDENCE_JSON = HERE / "results" / "evidence-test.json"
#: The settings sweep on the validation split (the protocol's settings were chosen from it).
VALIDATION_DIR = HERE / "results" / "validation"
README = ROOT / "README.md"
DEMO_MD = ROOT / "docs" / "demo.md"
RESULTS_MD = HERE / "RESULTS.md"
FOREST_PNG = ROOT / "docs" / "images" / "forest.png"
DEMO_MARKERS = ("<!-- demo:{}:begin -->", "<!-- demo:{}:end -->")


def demo_block(results: dict[str, Any], levels: bool = False) -> str:
    """A demo's table-1 rows (and with ``levels`` its PSNR per exposure level) from its
    ``results.json``, and where they ran."""
    table = results["table"] if levels else results["table"].split("\n\n")[0]
    source = DEMO_QUICK_JSON.name if results["quick"] else DEMO_JSON.name
    settings = results["settings"]
    return (
        f"{table}\n\n{results['net']}, seed {results['seed']}, {settings['steps']} steps, "
        f"{results['data']['test_images']} held-out images of "
        f"{', '.join(results['data']['test_photos'])}; {results['machine']}, "
        f"{results['date']} (`docs/{source}`)."
    )


def validation_block(paths: list[Path]) -> str:
    """The settings sweep on the validation split: each committed validation JSON's L1
    baselines (mean over seeds) against the uncorrected input, and whether they meet the
    converged bar."""
    lines = [
        "| file | net | steps | lr | crops | seeds | L1 Average PSNR | SSIM | input PSNR | SSIM "
        "| bar met (>= +2 dB, SSIM kept) in every seed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        result = evidence_report.load(path)
        if result["split"] != "validation":
            raise ValueError(f"Expected a validation-split result, got {result['split']} in {path}")
        inp = result["input"]["groups"]["Average"]
        s = result["settings"]
        for net in result["nets"]:
            runs = [r for r in result["runs"] if r["net"] == net and r["arm"] == "l1"]
            if not runs:
                continue
            psnr = [r["groups"]["Average"]["psnr"] for r in runs]
            ssim = [r["groups"]["Average"]["ssim"] for r in runs]
            met = all(evidence_report.meets_bar(p, q, inp) for p, q in zip(psnr, ssim, strict=True))
            steps = evidence_report.net_steps(s, [net])[net]
            lines.append(
                f"| `{path.name}` | {net} | {steps} | {s['lr'][net]:g} | {s['crop_size']} px | "
                f"{len(runs)} | {sum(psnr) / len(psnr):.2f} | {sum(ssim) / len(ssim):.4f} | "
                f"{inp['psnr']:.2f} | {inp['ssim']:.4f} | {'yes' if met else 'no'} |"
            )
    return "\n".join(lines)


def evidence() -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The registered test results and their analysis; ``None`` before they are committed."""
    if not EVIDENCE_JSON.exists():
        return None
    result = evidence_report.load(EVIDENCE_JSON)
    return result, evidence_report.analyse(result)


def blocks(
    loaded: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> list[tuple[Path, tuple[str, str], str, str]]:
    """``(file, markers, key, text)`` of every generated block whose source file exists
    (``loaded``: :func:`evidence`'s answer when the caller has it already)."""
    out: list[tuple[Path, tuple[str, str], str, str]] = []
    if DEMO_JSON.exists():
        demo = json.loads(DEMO_JSON.read_text())
        out.append((README, DEMO_MARKERS, "table", demo_block(demo)))
        out.append((DEMO_MD, DEMO_MARKERS, "full", demo_block(demo, levels=True)))
    if DEMO_QUICK_JSON.exists():
        quick = json.loads(DEMO_QUICK_JSON.read_text())
        out.append((README, DEMO_MARKERS, "quick", demo_block(quick, levels=True)))
    validation = sorted(VALIDATION_DIR.glob("*.json"))
    if validation:
        out.append(
            (RESULTS_MD, evidence_report.MARKERS, "validation", validation_block(validation))
        )
    loaded = loaded or evidence()
    if loaded is not None:
        result, analysis = loaded
        title = "Evidence: the registered protocol, test split"
        out.append(
            (README, evidence_report.MARKERS, "conclusion",
             evidence_report.conclusion(result, analysis))
        )  # fmt: skip
        out.append(
            (RESULTS_MD, evidence_report.MARKERS, "test",
             evidence_report.render_markdown(result, analysis, title))
        )  # fmt: skip
    return out


def current(path: Path, markers: tuple[str, str], key: str) -> str | None:
    """The text now between ``key``'s markers in ``path``; ``None`` when they are missing."""
    begin, end = (m.format(key) for m in markers)
    text = path.read_text()
    if begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def check() -> list[str]:
    """One line per generated block that is missing or differs from its source."""
    problems = []
    for path, markers, key, text in blocks():
        found = current(path, markers, key)
        name = f"{path.relative_to(ROOT)} block {markers[0].format(key)}"
        if found is None:
            problems.append(f"{name}: missing")
        elif found != text:
            problems.append(f"{name}: differs from its source; run python benchmarks/published.py")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    loaded = evidence()
    for path, markers, key, text in blocks(loaded):
        evidence_report.write_block(path, key, text, markers=markers)
        print(f"published: {path.relative_to(ROOT)} {markers[0].format(key)}")
    if loaded is not None:
        evidence_report.forest_plot(loaded[1], FOREST_PNG, "ERL arm - L1 baseline, test split")
        print(f"published: {FOREST_PNG.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
