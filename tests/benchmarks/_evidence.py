"""Loads the evidence benchmark's modules from benchmarks/ (not a package) for the tests."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import evidence  # noqa: E402
import evidence_protocol  # noqa: E402
import evidence_relations  # noqa: E402
import evidence_report  # noqa: E402
import published  # noqa: E402

__all__ = [
    "BENCHMARKS",
    "evidence",
    "evidence_protocol",
    "evidence_relations",
    "evidence_report",
    "published",
]


def tiny_protocol(path: Path, **changes: str) -> Path:
    """The registered protocol on bundled photos only, with settings small enough for a test."""
    return evidence_protocol.toy_protocol(BENCHMARKS / "protocol.toml", path, **changes)
