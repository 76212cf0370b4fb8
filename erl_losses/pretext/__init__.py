"""Two-stage pretext training of the batch-correlation module (ERL paper sec. 3.2).

Stage 1 trains the convolutional encoder ``f_e``, the fusion ``W`` and the decoder ``f_d`` as a
plain auto-encoder (``F'`` replaced by zeros) with an L1 reconstruction loss on normal-exposure
images. Stage 2 freezes ``f_e`` and ``f_d`` and trains the batch transformer ``t_e`` and ``W`` on
mini-batches (paper: 4 images) with a pretext objective chosen by name
(:mod:`.objectives`): ``"phase"`` (the paper's eq. 3), ``"l1"`` and ``"none"`` (the table-2
ablations; ``"none"`` skips stage 2 and keeps the seeded random ``t_e``).

The package, one concept per module:

* :mod:`.recipe`: :class:`PretextRecipe`, every setting of a run (``erl pretrain``'s flags are
  generated from its fields);
* :mod:`.objectives`: the stage-2 objectives registry (:func:`register_objective`);
* :mod:`.rundir`: output names, the refusal to clobber an earlier run, the run lock;
* :mod:`.data`: :class:`CropStream`, the seeded, resumable crop ``DataLoader`` (workers);
* :mod:`.checkpoint`: pickle-free checkpoints (model, Adam moments, crop-stream positions);
* :mod:`.stages`: the step loop (warm-up + cosine lr, logging, checkpoints, Ctrl-C);
* :mod:`.trainer`: :func:`pretrain_bcm`, prepare -> resume -> stages -> evaluate -> export;
* :mod:`.evaluation`: :func:`evaluate_bcm` on held-out photo crops;
* :mod:`.card`: the model-card draft.

The image sources live in :mod:`erl_losses.data.images` and the weights file in
:mod:`erl_losses.modules.bcm_io`; their names stay importable from here. Imports are lazy (PEP
562), so reading the recipe or the objective names does not import torch.

Example:
    >>> from erl_losses.pretext import PretextRecipe, pretrain_bcm
    >>> recipe = PretextRecipe(stage1_steps=2, stage2_steps=2, crop_size=32)
    >>> result = pretrain_bcm(recipe, "runs/tiny", progress=False)   # doctest: +SKIP
    >>> result.weights                                               # doctest: +SKIP
    PosixPath('runs/tiny/bcm-phase-v1.safetensors')
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from erl_losses.modules.bcm import BatchCorrelationModule

__all__ = [
    "IMAGE_EXTENSIONS",
    "PRETEXTS",
    "STAGE2_FUSE",
    "WEIGHTS_FORMAT",
    "CropStream",
    "FolderImages",
    "Objective",
    "PhotoImages",
    "PretextRecipe",
    "PretrainResult",
    "RandomCrops",
    "default_name",
    "evaluate_bcm",
    "get_objective",
    "load_weights",
    "model_card",
    "objective_names",
    "pretrain_bcm",
    "random_relation",
    "read_metadata",
    "register_objective",
    "save_weights",
]

# public name -> (module, attribute)
_LAZY: dict[str, tuple[str, str]] = {
    "IMAGE_EXTENSIONS": ("erl_losses.data.io", "IMAGE_EXTENSIONS"),
    "WEIGHTS_FORMAT": ("erl_losses.modules.bcm_io", "WEIGHTS_FORMAT"),
    "load_weights": ("erl_losses.modules.bcm_io", "load_bcm"),
    "read_metadata": ("erl_losses.modules.bcm_io", "read_bcm_metadata"),
    "CropStream": ("erl_losses.pretext.data", "CropStream"),
    "FolderImages": ("erl_losses.data.images", "FolderImages"),
    "PhotoImages": ("erl_losses.data.images", "PhotoImages"),
    "RandomCrops": ("erl_losses.data.images", "RandomCrops"),
    "STAGE2_FUSE": ("erl_losses.pretext.recipe", "STAGE2_FUSE"),
    "PretextRecipe": ("erl_losses.pretext.recipe", "PretextRecipe"),
    "default_name": ("erl_losses.pretext.recipe", "default_name"),
    "Objective": ("erl_losses.pretext.objectives", "Objective"),
    "get_objective": ("erl_losses.pretext.objectives", "get_objective"),
    "objective_names": ("erl_losses.pretext.objectives", "objective_names"),
    "register_objective": ("erl_losses.pretext.objectives", "register_objective"),
    "PretrainResult": ("erl_losses.pretext.trainer", "PretrainResult"),
    "pretrain_bcm": ("erl_losses.pretext.trainer", "pretrain_bcm"),
    "evaluate_bcm": ("erl_losses.pretext.evaluation", "evaluate_bcm"),
    "random_relation": ("erl_losses.pretext.evaluation", "random_relation"),
    "model_card": ("erl_losses.pretext.card", "model_card"),
}


def __getattr__(name: str) -> Any:
    if name == "PRETEXTS":  # computed: objectives registered by later modules count too
        from erl_losses.pretext.objectives import objective_names

        return objective_names()
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def save_weights(
    bcm: BatchCorrelationModule, path: str | os.PathLike[str], **metadata: Any
) -> Path:
    """Writes ``bcm`` as a weights file: :func:`erl_losses.modules.bcm_io.save_bcm` with the
    metadata given as keywords (``name=...``, ``recipe=...``)."""
    from erl_losses.modules.bcm_io import save_bcm

    return save_bcm(bcm, path, metadata)
