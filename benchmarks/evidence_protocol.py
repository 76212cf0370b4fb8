"""The registered quality protocol (``benchmarks/protocol.toml``): loading, checking, planning.

A protocol names the photo splits (train / validation / test, by source photo), the training
settings (chosen on validation), the seeds, the loss arms, the primary comparisons with their
multiplicity correction, the controls and the decision rule. :func:`load_protocol` validates it
and keeps its sha256, which every result JSON records; :func:`plan` lists the training runs a
split needs and refuses test-split arms the protocol does not register unless ``exploratory``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

#: Label of the L1 baseline (no relation term) in jobs and results.
BASELINE = "l1"
#: What produces an arm's relation features (see ``evidence_relations.py``).
ARM_KINDS = ("bcm", "identity-te", "pixels")
VARIANTS = ("paper", "centred")
SPLITS = ("validation", "test")
NETS = ("ECLNet", "FECNet")
_SETTINGS_INT = (
    "batch_size",
    "crop_size",
    "render_size",
    "train_crops",
    "validation_crops",
    "test_crops",
)


class ProtocolError(ValueError):
    """The protocol file is malformed, or a run asked for something it does not register."""


@dataclass(frozen=True)
class Arm:
    """A loss arm: ``L1 + alpha * relation`` with features from ``kind`` (a BCM's ``t_e`` output,
    its ``f_e`` tokens with ``t_e`` replaced by the identity, or pixel thumbnails)."""

    label: str
    kind: str
    variant: str
    title: str
    bcm: str | None = None


@dataclass(frozen=True)
class Job:
    """One training run; ``arm`` is an arm label or :data:`BASELINE`."""

    net: str
    arm: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.net}|{self.arm}|s{self.seed}"


@dataclass(frozen=True)
class Protocol:
    """A validated protocol file; ``sha256`` is the digest of its bytes."""

    path: Path
    sha256: str
    name: str
    version: int
    decision: dict[str, Any]
    splits: dict[str, list[str]]
    settings: dict[str, Any]
    lr: dict[str, float]
    first_seed: int
    seeds: int
    arms: dict[str, Arm]
    primaries: list[tuple[str, str]]
    controls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def registered(self) -> set[tuple[str, str]]:
        """``(net, arm)`` pairs the protocol lets the test split score (baselines included)."""
        pairs = {*self.primaries, *self.controls}
        return pairs | {(net, BASELINE) for net, _ in pairs}

    def seed_range(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def summary(self) -> dict[str, Any]:
        """What a result JSON records of the protocol."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "name": self.name,
            "version": self.version,
            "decision": self.decision,
            "seeds": {"first": self.first_seed, "count": self.seeds},
            "primaries": [list(p) for p in self.primaries],
            "controls": [list(c) for c in self.controls],
        }


def _need(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in table:
        raise ProtocolError(f"Expected `{key}` in {where}, got keys {sorted(table)}")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProtocolError(f"Expected `{where}.{key}` of type {kind}, got {value!r}")
    return value


def _arms(table: dict[str, Any]) -> dict[str, Arm]:
    arms = {}
    for label, spec in table.items():
        where = f"arms.{label}"
        if label == BASELINE:
            raise ProtocolError(f"Expected no arm named {BASELINE!r} (the baseline's label)")
        kind = _need(spec, "kind", str, where)
        variant = _need(spec, "variant", str, where)
        if kind not in ARM_KINDS or variant not in VARIANTS:
            raise ProtocolError(
                f"Expected {where}.kind in {ARM_KINDS} and variant in {VARIANTS}, got "
                f"{kind!r}, {variant!r}"
            )
        bcm = spec.get("bcm")
        if (kind == "pixels") != (bcm is None):
            raise ProtocolError(f"Expected {where}.bcm exactly when kind is not 'pixels'")
        arms[label] = Arm(label, kind, variant, str(spec.get("title", label)), bcm)
    return arms


def _pairs(rows: list[dict[str, Any]], arms: dict[str, Arm], what: str) -> list[tuple[str, str]]:
    pairs = []
    for row in rows:
        net, arm = _need(row, "net", str, what), _need(row, "arm", str, what)
        if net not in NETS or arm not in arms:
            raise ProtocolError(
                f"Expected {what} net in {NETS} and arm in {sorted(arms)}, got {net!r}, {arm!r}"
            )
        pairs.append((net, arm))
    if len(set(pairs)) != len(pairs):
        raise ProtocolError(f"Expected each {what} comparison once, got {pairs}")
    return pairs


def _per_net(value: Any, key: str) -> dict[str, int]:
    """``settings.<key>``: one positive integer for every net, or a table with one per net."""
    table = dict.fromkeys(NETS, value) if isinstance(value, int) else value
    if (
        not isinstance(table, dict)
        or set(table) != set(NETS)
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in table.values())
    ):
        raise ProtocolError(
            f"Expected settings.{key} as an integer or a table with one per net {NETS}, "
            f"got {value!r}"
        )
    if min(table.values()) < 1:
        raise ProtocolError(f"Expected settings.{key} >= 1, got {value!r}")
    return {net: table[net] for net in NETS}


def load_protocol(path: str | Path) -> Protocol:
    """Reads and validates a protocol file.

    Raises:
        ProtocolError: a missing or mistyped field, overlapping splits, an unknown arm or net.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ProtocolError(f"Expected a TOML protocol file, got {path}: {err}") from err
    splits_table = _need(data, "splits", dict, "the protocol")
    splits = {s: list(_need(splits_table, s, list, "splits")) for s in ("train", *SPLITS)}
    seen: dict[str, str] = {}
    for split, photos in splits.items():
        for photo in photos:
            if photo in seen:
                raise ProtocolError(
                    f"Expected disjoint splits, got photo {photo!r} in {seen[photo]} and {split}"
                )
            seen[photo] = split
    settings = dict(_need(data, "settings", dict, "the protocol"))
    lr_table = settings.pop("lr", None)
    settings["steps"] = _per_net(settings.get("steps"), "steps")
    for key in _SETTINGS_INT:
        if _need(settings, key, int, "settings") < 1:
            raise ProtocolError(f"Expected settings.{key} >= 1, got {settings[key]}")
    for key in ("alpha", "ema_decay"):
        _need(settings, key, (int, float), "settings")
    if not isinstance(lr_table, dict) or set(lr_table) != set(NETS):
        raise ProtocolError(f"Expected settings.lr with one rate per net {NETS}, got {lr_table!r}")
    seeds = _need(data, "seeds", dict, "the protocol")
    arms = _arms(_need(data, "arms", dict, "the protocol"))
    decision = _need(data, "decision", dict, "the protocol")
    if decision.get("correction") != "holm":
        raise ProtocolError(
            f"Expected decision.correction 'holm', got {decision.get('correction')!r}"
        )
    return Protocol(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        name=_need(data, "name", str, "the protocol"),
        version=_need(data, "version", int, "the protocol"),
        decision=decision,
        splits=splits,
        settings=settings,
        lr={net: float(lr_table[net]) for net in NETS},
        first_seed=_need(seeds, "first", int, "seeds"),
        seeds=_need(seeds, "count", int, "seeds"),
        arms=arms,
        primaries=_pairs(_need(data, "primary", list, "the protocol"), arms, "primary"),
        controls=_pairs(data.get("control", []), arms, "control"),
    )


def plan(
    protocol: Protocol,
    split: str,
    nets: list[str],
    arms: list[str],
    seeds: list[int],
    *,
    exploratory: bool = False,
) -> list[Job]:
    """The runs of ``arms`` (plus the baseline) for ``nets`` and ``seeds``: the baselines and the
    primary comparisons seed by seed, then the controls seed by seed, then any other arm, the slow
    net first within a seed. A run stopped early leaves complete pairs, and the primaries get
    their seeds before the controls take any time.

    Raises:
        ProtocolError: an unknown split, net or arm; on ``split="test"``, an arm the protocol does
            not register for that net (unless ``exploratory``).
    """
    if split not in SPLITS:
        raise ProtocolError(f"Expected split in {SPLITS}, got {split!r}")
    unknown = [a for a in arms if a not in protocol.arms]
    if unknown or set(nets) - set(NETS):
        raise ProtocolError(
            f"Expected arms from {sorted(protocol.arms)} and nets from {NETS}, got {arms}, {nets}"
        )
    labels = [BASELINE, *arms]
    if split == "test" and not exploratory:
        outside = [(n, a) for n in nets for a in labels if (n, a) not in protocol.registered]
        if outside:
            raise ProtocolError(
                f"Expected only registered (net, arm) pairs on the test split, got {outside}; "
                "pass --exploratory to score them anyway (the results are labelled exploratory)"
            )
    order = sorted(nets, key=lambda n: n != "FECNet")
    tiers: list[list[tuple[str, str]]] = [[], [], []]
    for net in order:
        for arm in labels:
            tier = {"primary": 0, "control": 1}.get(is_registered(protocol, net, arm), 2)
            tiers[0 if arm == BASELINE else tier].append((net, arm))
    return [Job(net, arm, seed) for tier in tiers for seed in seeds for net, arm in tier]


def is_registered(protocol: Protocol, net: str, arm: str) -> str:
    """``"primary"``, ``"control"`` or ``"exploratory"`` for a ``(net, arm)`` comparison."""
    if (net, arm) in protocol.primaries:
        return "primary"
    if (net, arm) in protocol.controls:
        return "control"
    return "exploratory"


#: Settings of :func:`toy_protocol`: a handful of steps on small crops.
TOY_SETTINGS = """[settings]
batch_size = 4
crop_size = 32
render_size = 48
train_crops = 1
validation_crops = 1
test_crops = 2
alpha = 0.1
ema_decay = 0.9
steps = 2

[settings.lr]
ECLNet = 1e-3
FECNet = 1e-3

"""
#: Splits of :func:`toy_protocol`: bundled photos only, so it runs on any machine.
TOY_SPLITS = """[splits]
train = ["astronaut", "rocket"]
validation = ["flower"]
test = ["chelsea", "coffee"]

"""


def toy_protocol(source: str | Path, path: str | Path, **changes: str) -> Path:
    """Writes to ``path`` the protocol ``source`` with :data:`TOY_SPLITS` and
    :data:`TOY_SETTINGS` (its arms, primaries, controls and seeds kept), then each ``old=new``
    text replacement of ``changes``: a run of the real machinery in seconds (tests, the GPU
    kit's CPU check). Its sha256 differs from the source's, so its results never pass for the
    registered protocol's."""
    text = Path(source).read_text()
    head, _, rest = text.partition("[splits]")
    _, _, rest = rest.partition("[settings]")
    _, _, seeds = rest.partition("[seeds]")
    if not seeds:
        raise ProtocolError(f"Expected [splits], [settings] and [seeds] tables in {source}")
    text = head + TOY_SPLITS + TOY_SETTINGS + "[seeds]" + seeds
    for old, new in changes.items():
        text = text.replace(old, new)
    out = Path(path)
    out.write_text(text)
    return out
