"""Exposure levels and the paper's under/over groups (MSEC and SICE naming)."""

from __future__ import annotations

__all__ = [
    "GROUPS",
    "LEVELS",
    "LEVEL_EV",
    "MSEC_LEVELS",
    "SICE_LEVELS",
    "group_of",
    "split_level",
]

#: MSEC relative exposure levels in EV order, as they appear in file names ``<stem>_<level>``.
MSEC_LEVELS: tuple[str, ...] = ("N1.5", "N1", "0", "P1", "P1.5")
#: SICE (SICEV2 as used by ENC/FECNet/ECLNet) input folders: ``low`` = under, ``over`` = over.
SICE_LEVELS: tuple[str, ...] = ("low", "over")
#: Every level name known to the readers and the evaluation.
LEVELS: tuple[str, ...] = (*MSEC_LEVELS, *SICE_LEVELS)
#: Exposure value (stops) of each MSEC level.
LEVEL_EV: dict[str, float] = {"N1.5": -1.5, "N1": -1.0, "0": 0.0, "P1": 1.0, "P1.5": 1.5}
#: The paper's groups (table 1): Under = N1.5 + N1 (SICE low), Over = 0 + P1 + P1.5 (SICE over).
GROUPS: dict[str, tuple[str, ...]] = {
    "under": ("N1.5", "N1", "low"),
    "over": ("0", "P1", "P1.5", "over"),
}


def group_of(level: str) -> str:
    """The paper's group of an exposure level: ``'under'`` or ``'over'``.

    Raises:
        ValueError: when ``level`` is not one of :data:`LEVELS`.
    """
    for group, members in GROUPS.items():
        if level in members:
            return group
    raise ValueError(f"Expected level to be one of {list(LEVELS)}, got {level!r}")


def split_level(stem: str, levels: tuple[str, ...] = MSEC_LEVELS) -> tuple[str, str] | None:
    """Splits ``'<scene>_<level>'`` at the last underscore (MSEC's ``gtRead.m`` convention).

    Returns:
        ``(scene, level)``, or ``None`` when the name has no underscore or the suffix is not in
        ``levels``.
    """
    scene, sep, level = stem.rpartition("_")
    if not sep or not scene or level not in levels:
        return None
    return scene, level
