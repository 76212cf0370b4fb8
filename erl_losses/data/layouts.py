"""MSEC and SICE folder layouts, and how inputs or predictions pair with their ground truth.

The one home of these rules: :class:`~erl_losses.data.MSECDataset`,
:class:`~erl_losses.data.SICEDataset`, :func:`~erl_losses.evaluation.pair_folders` and
``erl eval`` all call :func:`dataset_pairs` or :func:`pair_with_gt`.

* **MSEC** (Afifi et al. 2021): ``<split>/INPUT_IMAGES/<scene>_<level>.<ext>`` with
  ``<split>/GT_IMAGES/<scene>.<ext>`` (or, for the test split, ``expert_<x>_testing_set``);
  ``<level>`` in ``N1.5, N1, 0, P1, P1.5``, the scene is the name up to the last underscore
  (MSEC's ``gtRead.m``).
* **SICE** (SICEV2 as used by ENC / FECNet / ECLNet): ``<split>/{low,over}/<id>.<ext>`` with
  ``<split>/mid/<id>.<ext>``; predictions may also be flat, ``<id>_{low,over}.<ext>``.
* **paired** (one input per GT, LOL-style): ``<split>/<inputs>/<name>.<ext>`` with
  ``<split>/<gts>/<name>.<ext>``, the two folders one of :data:`PAIRED_FOLDERS` (``low`` +
  ``high``, ``input`` + ``gt``, ``input`` + ``target``, ``lq`` + ``gt``); predictions are named
  as their input. No exposure levels: one group, Average.

Split folders may be named ``train|training``, ``valid|validation|val`` or ``test|testing``
(paired sets: also capitalised, ``Train``/``Test``, and LOL's ``our485``/``eval15``).
Extensions are matched case-insensitively (MSEC has ``.JPG`` inputs and ``.jpg`` GT).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from erl_losses.data.io import format_names, list_images
from erl_losses.data.levels import MSEC_LEVELS, SICE_LEVELS, split_level

__all__ = [
    "PAIRED",
    "PAIRED_FOLDERS",
    "PROTOCOLS",
    "PROTOCOL_LEVELS",
    "SPLIT_FOLDERS",
    "DatasetLayout",
    "LayoutPair",
    "check_protocol",
    "dataset_pairs",
    "find_gt_dir",
    "leveled_images",
    "pair_by_name",
    "pair_with_gt",
    "paired_dataset",
    "resolve_split",
]

#: Exposure levels of each protocol, in EV order.
PROTOCOL_LEVELS: dict[str, tuple[str, ...]] = {"msec": MSEC_LEVELS, "sice": SICE_LEVELS}

#: The one-input-per-GT protocol (LOL-style sets): no levels, predictions named as their input.
PAIRED = "paired"

#: Every protocol name the evaluation accepts.
PROTOCOLS: tuple[str, ...] = ("msec", "sice", PAIRED)

#: (input folder, GT folder) names of paired sets, tried in this order.
PAIRED_FOLDERS: tuple[tuple[str, str], ...] = (
    ("low", "high"),
    ("input", "gt"),
    ("input", "target"),
    ("lq", "gt"),
)

#: LOL v1's split folders, accepted next to :data:`SPLIT_FOLDERS` for paired sets.
_LOL_SPLITS: dict[str, tuple[str, ...]] = {"train": ("our485",), "test": ("eval15",)}

#: Split name -> the folder names that hold it.
SPLIT_FOLDERS: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "valid": ("valid", "validation", "val"),
    "test": ("test", "testing"),
}


class LayoutPair(NamedTuple):
    """One input (or prediction) file, its GT file, its scene name and its exposure level."""

    input: Path
    gt: Path
    scene: str
    level: str


class _Item(NamedTuple):
    path: Path
    scene: str
    level: str
    label: str  # how error messages name the file


@dataclass(frozen=True)
class DatasetLayout:
    """A dataset split on disk: its folder, input and GT folders and the sorted pairs."""

    base: Path
    input_dir: Path
    gt_dir: Path
    pairs: list[LayoutPair]


def check_protocol(protocol: object) -> str:
    """Returns ``protocol`` if it is ``'msec'`` or ``'sice'``, else raises ``ValueError``."""
    if protocol not in PROTOCOL_LEVELS:
        raise ValueError(f"Expected protocol 'msec' or 'sice', got {protocol!r}")
    return str(protocol)


def resolve_split(root: Path, split: str | None) -> Path:
    """The folder of ``split`` under ``root`` (``None``: ``root`` itself is the split folder).

    Raises:
        ValueError: unknown split name.
        FileNotFoundError: none of the split's folder names exists under ``root``.
    """
    if split is None:
        return root
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"Expected split in {[*SPLIT_FOLDERS, None]}, got {split!r}")
    for name in SPLIT_FOLDERS[split]:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(
        f"Expected one of {list(SPLIT_FOLDERS[split])} under {root} for split {split!r}, got none"
    )


def find_gt_dir(folder: Path, protocol: str, *, expert: str = "c") -> Path | None:
    """The GT folder inside a split folder: ``GT_IMAGES`` or ``expert_<expert>_testing_set``
    (MSEC), ``mid`` (SICE); ``None`` when there is none."""
    names = ("GT_IMAGES", f"expert_{expert}_testing_set") if protocol == "msec" else ("mid",)
    return next((folder / name for name in names if (folder / name).is_dir()), None)


def leveled_images(
    folder: Path, protocol: str, levels: Sequence[str] | None = None
) -> tuple[list[_Item], list[str]]:
    """Images of ``folder`` named for an exposure level, and the names that are not.

    SICE folders holding ``low``/``over`` sub-folders are read as such; otherwise names are
    ``<scene>_<level>``. Images of a protocol level not in ``levels`` are skipped.
    """
    all_levels = PROTOCOL_LEVELS[check_protocol(protocol)]
    wanted = all_levels if levels is None else tuple(levels)
    items: list[_Item] = []
    unparsed: list[str] = []
    if protocol == "sice" and any((folder / level).is_dir() for level in all_levels):
        for level in wanted:
            if (folder / level).is_dir():
                for stem, path in list_images(folder / level).items():
                    items.append(_Item(path, stem, level, f"{level}/{path.name}"))
        return items, unparsed
    for stem, path in list_images(folder).items():
        parsed = split_level(stem, all_levels)
        if parsed is None:
            unparsed.append(path.name)
        elif parsed[1] in wanted:
            items.append(_Item(path, *parsed, path.name))
    return items, unparsed


def pair_with_gt(
    items: list[_Item],
    unparsed: list[str],
    gt_dir: Path,
    protocol: str,
    *,
    what: str = "input",
    strict: bool = False,
) -> list[LayoutPair]:
    """Pairs the :func:`leveled_images` of a folder with the images of ``gt_dir``.

    Args:
        what: ``'input'`` or ``'prediction'``, for the error messages.
        strict: also require an item for every (GT scene, protocol level).

    Returns:
        :class:`LayoutPair` s sorted by input path.

    Raises:
        ValueError: unrecognised names, items without a GT image and (``strict``) GT scenes
            lacking items, every problem listed in one message; or no items at all.
    """
    levels = PROTOCOL_LEVELS[check_protocol(protocol)]
    targets = list_images(gt_dir)
    problems: list[str] = []
    if unparsed:
        problems.append(
            f"Expected {what} names <scene>_<level> with level in {list(levels)}, got "
            f"{len(unparsed)} others: {format_names(unparsed)}"
        )
    no_gt = [f"{item.label} -> {item.scene}.*" for item in items if item.scene not in targets]
    if no_gt:
        problems.append(
            f"Expected a GT image in {gt_dir} for every {what}, got {len(no_gt)} missing: "
            f"{format_names(no_gt)}"
        )
    if strict:
        have = {(item.scene, item.level) for item in items}
        absent = [f"{s}_{lv}" for s in sorted(targets) for lv in levels if (s, lv) not in have]
        if absent:
            problems.append(
                f"Expected a {what} for every GT image and level, got {len(absent)} missing: "
                f"{format_names(absent)} (strict=False / --partial evaluates only the "
                f"{what}s present)"
            )
    if problems:
        raise ValueError("; ".join(problems))
    if not items:
        raise ValueError(f"Expected at least one {what} for the GT in {gt_dir}, got none")
    pairs = [LayoutPair(i.path, targets[i.scene], i.scene, i.level) for i in items]
    return sorted(pairs, key=lambda pair: str(pair.input))


def _is_split_folder(folder: Path, protocol: str) -> bool:
    if protocol == "msec":
        return (folder / "INPUT_IMAGES").is_dir()
    return (folder / "mid").is_dir()


def dataset_pairs(
    root: str | Path,
    protocol: str,
    split: str | None = "train",
    *,
    levels: Sequence[str] | None = None,
    expert: str = "c",
) -> DatasetLayout:
    """Finds a dataset split on disk and pairs every input with its GT.

    Args:
        root: the dataset root holding split folders, or a split folder itself (detected by its
            ``INPUT_IMAGES`` / ``mid`` folder, whatever ``split`` says); for SICE the ``SICEV2``
            folder or its parent.
        protocol: ``'msec'`` or ``'sice'``.
        split: ``'train'``, ``'valid'``, ``'test'``, or ``None`` when ``root`` is the split.
        levels: keep only these levels (default: all of the protocol's).
        expert: MSEC test GT ``expert_<expert>_testing_set`` when ``GT_IMAGES`` is absent.

    Raises:
        FileNotFoundError: missing folders.
        ValueError: unknown levels, unrecognised names, inputs without GT (all listed), none.
    """
    check_protocol(protocol)
    unknown = [level for level in levels or () if level not in PROTOCOL_LEVELS[protocol]]
    if unknown:
        raise ValueError(f"Expected levels from {list(PROTOCOL_LEVELS[protocol])}, got {unknown}")
    root = Path(root)
    if protocol == "sice" and (root / "SICEV2").is_dir():
        root = root / "SICEV2"
    base = root if _is_split_folder(root, protocol) else resolve_split(root, split)
    gt_dir = find_gt_dir(base, protocol, expert=expert)
    if gt_dir is None:
        wanted = f"GT_IMAGES or expert_{expert}_testing_set" if protocol == "msec" else "mid"
        raise FileNotFoundError(f"Expected a GT folder {wanted} in {base}, got none")
    input_dir = base / "INPUT_IMAGES" if protocol == "msec" else base
    items, unparsed = leveled_images(input_dir, protocol, levels)
    pairs = pair_with_gt(items, unparsed, gt_dir, protocol)
    return DatasetLayout(base=base, input_dir=input_dir, gt_dir=gt_dir, pairs=pairs)


def _paired_folders(folder: Path) -> tuple[Path, Path] | None:
    for inputs, gts in PAIRED_FOLDERS:
        if (folder / inputs).is_dir() and (folder / gts).is_dir():
            return folder / inputs, folder / gts
    return None


def pair_by_name(
    input_dir: Path, gt_dir: Path, *, what: str = "input", strict: bool = False
) -> list[LayoutPair]:
    """Pairs the images of ``input_dir`` with the GT images of the same name (stem; extensions
    case-insensitive): the paired protocol. Level and scene: :data:`PAIRED` and the stem.

    Args:
        what: ``'input'`` or ``'prediction'``, for the error messages.
        strict: also require an item for every GT image.

    Raises:
        FileNotFoundError: a folder does not exist.
        ValueError: items without a GT image and (``strict``) GT images without an item, every
            problem listed in one message; or no items at all.
    """
    items, targets = list_images(input_dir), list_images(gt_dir)
    problems: list[str] = []
    no_gt = [path.name for stem, path in items.items() if stem not in targets]
    if no_gt:
        problems.append(
            f"Expected a GT image of the same name in {gt_dir} for every {what}, got "
            f"{len(no_gt)} missing: {format_names(no_gt)}"
        )
    if strict:
        absent = [path.name for stem, path in targets.items() if stem not in items]
        if absent:
            problems.append(
                f"Expected a {what} for every GT image, got {len(absent)} missing: "
                f"{format_names(absent)} (strict=False / --partial evaluates only the "
                f"{what}s present)"
            )
    if problems:
        raise ValueError("; ".join(problems))
    if not items:
        raise ValueError(f"Expected at least one {what} image in {input_dir}, got none")
    return [LayoutPair(path, targets[stem], stem, PAIRED) for stem, path in items.items()]


def paired_dataset(root: str | Path, split: str | None = "test") -> DatasetLayout:
    """A one-input-per-GT (LOL-style) split: ``root`` holding one of :data:`PAIRED_FOLDERS`, or
    a split folder of ``root`` that does (``test``/``Test``/``testing``/``eval15``, ...).

    Raises:
        FileNotFoundError: ``root`` is missing, or neither it nor its ``split`` folder holds an
            input and a GT folder.
        ValueError: unknown split; inputs without GT (listed); no inputs.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Expected a dataset folder, got no such folder: {root}")
    found = _paired_folders(root)
    base = root
    if found is None and split is not None:
        if split not in SPLIT_FOLDERS:
            raise ValueError(f"Expected split in {[*SPLIT_FOLDERS, None]}, got {split!r}")
        names = {*SPLIT_FOLDERS[split], *_LOL_SPLITS.get(split, ())}
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name.lower() in names:
                base, found = child, _paired_folders(child)
                if found is not None:
                    break
    if found is None:
        pairs = ", ".join(f"{a}/ + {b}/" for a, b in PAIRED_FOLDERS)
        raise FileNotFoundError(
            f"Expected an input and a GT folder ({pairs}) in {root} or its {split!r} split "
            f"folder, got none"
        )
    input_dir, gt_dir = found
    return DatasetLayout(
        base=base, input_dir=input_dir, gt_dir=gt_dir, pairs=pair_by_name(input_dir, gt_dir)
    )
