"""The registered protocol: validation, its hash, and what the test split may score."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.benchmarks._evidence import BENCHMARKS, evidence, evidence_protocol, tiny_protocol

load_protocol, plan = evidence_protocol.load_protocol, evidence_protocol.plan
ProtocolError = evidence_protocol.ProtocolError


def test_the_committed_protocol_registers_the_primaries_and_controls() -> None:
    protocol = load_protocol(BENCHMARKS / "protocol.toml")
    assert (
        protocol.sha256 == hashlib.sha256((BENCHMARKS / "protocol.toml").read_bytes()).hexdigest()
    )
    for net in ("ECLNet", "FECNet"):
        assert (net, "phase") in protocol.primaries
        assert (net, "phase-centred") in protocol.primaries
        for control in ("centred-identity-te", "centred-random-te", "centred-pixels"):
            assert (net, control) in protocol.controls
    assert protocol.seeds >= 16
    assert protocol.decision["correction"] == "holm"
    photos = [p for split in protocol.splits.values() for p in split]
    assert len(photos) == len(set(photos))  # disjoint by photo


def test_the_test_split_scores_registered_arms_only(tmp_path: Path) -> None:
    protocol = load_protocol(tiny_protocol(tmp_path / "p.toml"))
    jobs = plan(protocol, "test", ["ECLNet"], ["phase"], [0, 1])
    assert [(j.arm, j.seed) for j in jobs] == [("l1", 0), ("phase", 0), ("l1", 1), ("phase", 1)]
    # the primaries get every seed before the controls take any time; the slow net first
    jobs = plan(protocol, "test", ["ECLNet", "FECNet"], ["centred-pixels", "phase"], [0, 1])
    primaries = [(j.net, j.arm, j.seed) for j in jobs[:8]]
    assert primaries[:4] == [
        ("FECNet", "l1", 0), ("FECNet", "phase", 0), ("ECLNet", "l1", 0), ("ECLNet", "phase", 0)
    ]  # fmt: skip
    assert {a for _, a, _ in primaries} == {"l1", "phase"}
    assert [(j.arm, j.seed) for j in jobs[8:]] == [("centred-pixels", s) for s in (0, 0, 1, 1)]
    unregistered = load_protocol(
        tiny_protocol(tmp_path / "r.toml", **{'[[primary]]\nnet = "ECLNet"\narm = "phase"\n': ""})
    )
    with pytest.raises(ProtocolError, match=r"registered.*--exploratory"):
        plan(unregistered, "test", ["ECLNet"], ["phase"], [0])
    assert plan(unregistered, "test", ["ECLNet"], ["phase"], [0], exploratory=True)
    assert plan(unregistered, "validation", ["ECLNet"], ["phase"], [0])  # validation: anything


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('validation = ["flower"]', 'validation = ["chelsea"]', "disjoint splits"),
        ("steps = 2", "steps = 0", "settings.steps >= 1"),
        ("steps = 2", "steps = 2.5", "settings.steps as an integer"),
        ("steps = 2", "[settings.steps]\nECLNet = 2", "one per net"),
        ('correction = "holm"', 'correction = "none"', "holm"),
        ('kind = "pixels"', 'kind = "magic"', "kind in"),
        ("FECNet = 1e-3\n", "", "one rate per net"),
        ('arm = "phase"', 'arm = "nope"', "arm in"),
    ],
)
def test_malformed_protocols_are_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        load_protocol(tiny_protocol(tmp_path / "p.toml", **{old: new}))


def test_steps_may_differ_per_net(tmp_path: Path) -> None:
    text = "[settings.steps]\nECLNet = 3\nFECNet = 2\n\n[seeds]"
    protocol = load_protocol(
        tiny_protocol(tmp_path / "p.toml", **{"steps = 2\n": "", "[seeds]": text})
    )
    assert protocol.settings["steps"] == {"ECLNet": 3, "FECNet": 2}
    assert load_protocol(tiny_protocol(tmp_path / "q.toml")).settings["steps"] == {
        "ECLNet": 2, "FECNet": 2
    }  # fmt: skip
    assert load_protocol(BENCHMARKS / "protocol.toml").settings["steps"]["ECLNet"] >= 1


def test_test_split_overrides_are_refused() -> None:
    with pytest.raises(SystemExit):
        evidence.parse_args(["--split", "test", "--steps", "10"])
    args = evidence.parse_args(["--split", "validation", "--steps", "10", "--lr", "ECLNet=1e-2"])
    assert args.steps == 10
