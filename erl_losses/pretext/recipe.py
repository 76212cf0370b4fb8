"""The pretext recipe: every setting that determines a run (with the BCM config and the data).

Each field carries its ``erl pretrain`` help in ``metadata["help"]`` (and, where the values are
a fixed set, a ``metadata["choices"]`` callable): the command line's recipe flags are generated
from these fields (:mod:`erl_losses.cli.pretrain`), so the two cannot drift.
This module imports no torch at import time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from erl_losses.pretext.objectives import get_objective, objective_names

if TYPE_CHECKING:
    from erl_losses.modules.bcm import BatchCorrelationModule

__all__ = ["STAGE2_FUSE", "PretextRecipe", "default_name"]

#: What stage 2 trains of the fusion ``W``: the ``F'``-reading half only, or all of it.
STAGE2_FUSE: tuple[str, ...] = ("relation", "all")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass(frozen=True)
class PretextRecipe:
    """Everything that determines a pretext run (together with the BCM config and the data).

    Args:
        pretext: stage-2 objective, a name of :func:`~erl_losses.pretext.objective_names`
            (``"phase"``: paper eq. 3; ``"l1"``, ``"none"``: table-2 ablations).
        stage1_steps: optimiser steps of the auto-encoder stage (0 skips it, e.g. when the run
            starts from a stage-1 file).
        stage2_steps: optimiser steps of the relation stage (ignored for ``pretext="none"``).
        stage1_batch_size: images per stage-1 step.
        batch_size: images per stage-2 mini-batch, the batch the relation is learnt over
            (paper: 4).
        crop_size: side in pixels of the square stage-2 crops; ``None`` uses the BCM's
            ``work_size`` (128 by default), the resolution the relation loss sees.
        stage1_crop_size: side of the stage-1 crops; ``None`` uses ``crop_size``.
        stage1_lr, stage2_lr: peak Adam learning rates.
        betas: Adam betas (paper: 0.9, 0.99).
        warmup_fraction: linear warm-up share of each stage; a cosine decay to
            ``min_lr_ratio * lr`` follows (:func:`erl_losses.training.warmup_cosine`).
        min_lr_ratio: final learning rate as a fraction of the peak.
        phase_mode: ``mode`` of :func:`~erl_losses.phase_loss` for ``pretext="phase"``.
        stage2_fuse: ``"relation"`` (default): stage 2 trains only the weights of ``W`` that
            read ``F'``, so ``reconstruct(x, relation=False)`` stays exactly the stage-1
            auto-encoder; ``"all"``: the whole ``W``, a literal reading of "t_e (+ W)".
        flip: random horizontal/vertical flips of the crops.
        seed: seeds the model initialisation (so the random ``t_e`` of ``"none"`` is
            reproducible) and the crop sampler.
    """

    pretext: str = field(
        default="phase", metadata=_help("stage-2 objective", choices=objective_names)
    )
    stage1_steps: int = field(default=2000, metadata=_help("auto-encoder steps (stage 1)"))
    stage2_steps: int = field(default=1000, metadata=_help("relation steps (stage 2)"))
    stage1_batch_size: int = field(default=8, metadata=_help("images per stage-1 step"))
    batch_size: int = field(default=4, metadata=_help("stage-2 mini-batch (paper: 4)"))
    crop_size: int | None = field(
        default=None, metadata=_help("stage-2 crop side (default: the BCM's work_size)", type=int)
    )
    stage1_crop_size: int | None = field(
        default=None, metadata=_help("stage-1 crop side (default: --crop-size)", type=int)
    )
    stage1_lr: float = field(default=2e-3, metadata=_help("peak Adam lr of stage 1"))
    stage2_lr: float = field(default=5e-4, metadata=_help("peak Adam lr of stage 2"))
    betas: tuple[float, float] = field(default=(0.9, 0.99), metadata=_help("Adam betas"))
    warmup_fraction: float = field(default=0.05, metadata=_help("linear warm-up share per stage"))
    min_lr_ratio: float = field(default=0.05, metadata=_help("final lr as a fraction of the peak"))
    phase_mode: str = field(
        default="paper", metadata=_help("phase-loss mode: paper (eq. 3) or wrapped")
    )
    stage2_fuse: str = field(
        default="relation",
        metadata=_help(
            "stage 2 trains only the F'-reading half of W (relation: the auto-encoder path stays "
            "the stage-1 one) or all of W",
            choices=lambda: STAGE2_FUSE,
        ),
    )
    flip: bool = field(default=True, metadata=_help("random flips of the crops"))
    seed: int = field(default=0, metadata=_help("seeds the initialisation and the crops"))

    def __post_init__(self) -> None:
        from erl_losses._validation import check_choice, check_positive_int
        from erl_losses.functional.phase import PHASE_MODES

        get_objective(self.pretext)  # an unknown name lists the registered ones
        check_choice(self.stage2_fuse, "stage2_fuse", STAGE2_FUSE)
        check_choice(self.phase_mode, "phase_mode", PHASE_MODES)
        for name in ("stage1_steps", "stage2_steps", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Expected `{name}` to be an int >= 0, got {value!r}")
        check_positive_int(self.stage1_batch_size, "stage1_batch_size")
        if check_positive_int(self.batch_size, "batch_size") < 2:
            raise ValueError(
                "Expected `batch_size` to be an int >= 2 (the relation needs other samples), "
                f"got {self.batch_size!r}"
            )
        for name in ("crop_size", "stage1_crop_size"):
            value = getattr(self, name)
            if value is not None and (check_positive_int(value, name) < 16):
                raise ValueError(f"Expected `{name}` to be None or an int >= 16, got {value!r}")
        for name in ("stage1_lr", "stage2_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Expected `{name}` > 0, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"Expected `warmup_fraction` in [0, 1), got {self.warmup_fraction!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"Expected `min_lr_ratio` in [0, 1], got {self.min_lr_ratio!r}")
        if len(self.betas) != 2:
            raise ValueError(f"Expected `betas` to be two numbers, got {self.betas!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    @property
    def effective_stage2_steps(self) -> int:
        """Stage-2 steps actually run: 0 for an objective that skips stage 2 (``"none"``)."""
        return self.stage2_steps if get_objective(self.pretext).trains_relation else 0

    @property
    def stage_steps(self) -> tuple[int, int]:
        """``(stage1_steps, effective_stage2_steps)``."""
        return self.stage1_steps, self.effective_stage2_steps

    def warmup_steps(self, stage_steps: int) -> int:
        """Warm-up steps of a stage of ``stage_steps`` steps (at least 1)."""
        return max(1, int(self.warmup_fraction * stage_steps))

    def crop_sizes(self, bcm: BatchCorrelationModule) -> tuple[int, int]:
        """``(stage1_crop, stage2_crop)`` in pixels for ``bcm``."""
        stage2 = self.crop_size or bcm.work_size or 128
        return self.stage1_crop_size or stage2, stage2

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict; :meth:`from_dict` inverts it."""
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretextRecipe:
        """Builds a recipe from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Expected recipe keys among {sorted(known)}, got unknown {unknown}")
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        return cls(**data)


def default_name(recipe: PretextRecipe) -> str:
    """``bcm-<pretext>`` (e.g. ``bcm-phase``), the default output name."""
    return f"bcm-{recipe.pretext}"
