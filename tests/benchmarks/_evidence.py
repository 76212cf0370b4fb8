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

__all__ = ["BENCHMARKS", "evidence", "evidence_protocol", "evidence_relations", "evidence_report"]


def tiny_protocol(path: Path, **changes: str) -> Path:
    """A protocol on bundled photos only, with settings small enough for a test."""
    text = (BENCHMARKS / "protocol.toml").read_text()
    head, _, rest = text.partition("[splits]")
    _, _, rest = rest.partition("[settings]")
    _, _, arms = rest.partition("[seeds]")
    splits = (
        '[splits]\ntrain = ["astronaut", "rocket"]\nvalidation = ["flower"]\n'
        'test = ["chelsea", "coffee"]\n\n'
    )
    settings = (
        "[settings]\nsteps = 2\nbatch_size = 4\ncrop_size = 32\nrender_size = 48\n"
        "train_crops = 1\nvalidation_crops = 1\ntest_crops = 2\nalpha = 0.1\nema_decay = 0.9\n\n"
        "[settings.lr]\nECLNet = 1e-3\nFECNet = 1e-3\n\n"
    )
    text = head + splits + settings + "[seeds]" + arms
    for old, new in changes.items():
        text = text.replace(old, new)
    path.write_text(text)
    return path
