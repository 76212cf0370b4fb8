"""The repository paths the documents cite exist (they rot when files move)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Source files a reader is sent to: tests, benchmarks, examples, scripts (outputs such as
#: ``benchmarks/results/*.json`` are written by commands and are not checked).
CITED = re.compile(r"\b((?:tests|benchmarks|examples|scripts)/[\w/.-]+\.py)\b")


def _documents() -> list[Path]:
    return [
        *ROOT.glob("*.md"),
        *(ROOT / "docs").rglob("*.md"),
        *(ROOT / "zoo" / "cards").glob("*.md"),
        *(ROOT / "benchmarks").glob("*.md"),
    ]


def test_every_cited_source_file_exists() -> None:
    missing = [
        f"{doc.relative_to(ROOT)}: {path}"
        for doc in _documents()
        if doc.name != "CHANGELOG.md"  # history may name files that have since moved
        for path in sorted(set(CITED.findall(doc.read_text())))
        if not (ROOT / path).is_file()
    ]
    assert not missing, "documents cite files that do not exist:\n" + "\n".join(missing)


def test_the_check_sees_the_documents() -> None:
    cited = {p for doc in _documents() for p in CITED.findall(doc.read_text())}
    assert "benchmarks/quality.py" in cited
    assert len(_documents()) >= 10
