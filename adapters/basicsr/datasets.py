"""BasicSR datasets over :mod:`erl_losses.data`: MSEC, SICE and the synthetic renders.

Registered in ``DATASET_REGISTRY`` as ``MSECDataset``, ``SICEDataset`` and
``SyntheticExposureDataset``. Items are the core readers' dicts (``lq``, ``gt``, ``lq_path``,
``gt_path``, ``level``, ``group``), which every BasicSR model consumes like
``PairedImageDataset``'s. Option keys (besides BasicSR's loader keys such as
``batch_size_per_gpu``)::

    type: MSECDataset        # dataroot: MSEC root (holding training/ validation/ testing/)
    dataroot: datasets/MSEC
    split: train             # train | valid | test | null (dataroot is the split folder)
    levels: [N1.5, N1, "0", P1, P1.5]   # optional subset
    expert: c                # test GT when GT_IMAGES is absent (expert_c_testing_set)
    gt_size: 256             # random square crop (training); null: full images
    augment: true            # random h/v flips and 180-degree rotation
    mixed_exposure: true     # train loader: every batch mixes under- and over-exposed samples

``SICEDataset`` takes ``dataroot`` (the ``SICEV2`` folder or its parent), ``split``, ``levels``
(``low``, ``over``), ``gt_size``, ``augment``. ``SyntheticExposureDataset`` reads the MSEC
layout written by :func:`erl_losses.data.render_dataset` and renders it into ``dataroot`` first
when the split is missing, with the ``render`` options (``crop_size``, ``crops_per_photo``,
``seed``, ...), so a tiny option file trains out of the box.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from erl_losses.adapters._options import accepted_keys, check_keys, check_mapping

__all__ = ["LOADER_KEYS", "MSECDataset", "SICEDataset", "SyntheticExposureDataset"]

#: Keys BasicSR (``parse_options``, ``build_dataloader``, ``train_pipeline``) reads from a
#: dataset entry, plus the adapter's ``mixed_exposure``; every exposure dataset accepts them.
LOADER_KEYS: frozenset[str] = frozenset(
    {
        "name",
        "type",
        "phase",
        "scale",
        "batch_size_per_gpu",
        "num_worker_per_gpu",
        "use_shuffle",
        "dataset_enlarge_ratio",
        "prefetch_mode",
        "num_prefetch_queue",
        "pin_memory",
        "persistent_workers",
        "mixed_exposure",
    }
)


class _ExposureDataset(Dataset):
    """Shared option handling: ``opt`` -> a core reader, items passed through."""

    _own_keys: frozenset[str] = frozenset({"dataroot", "split", "gt_size", "augment", "levels"})
    _extra_keys: frozenset[str] = frozenset()
    #: Set by the adapter's ``build_dataloader`` (compat patch 3) when its loader draws
    #: mixed-exposure batches from this dataset.
    mixed_sampler_active: bool = False

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        opt = check_mapping(f"dataset options of {type(self).__name__}", opt)
        check_keys(
            f"dataset {type(self).__name__}", opt, LOADER_KEYS | self._own_keys | self._extra_keys
        )
        if not opt.get("dataroot"):
            raise ValueError(
                f"Expected `dataroot` (a folder) in the options of {type(self).__name__}, "
                f"got {opt.get('dataroot')!r}"
            )
        self.opt = opt
        self.reader = self._build(Path(os.path.expanduser(str(opt["dataroot"]))), opt)
        self._check_mixed = bool(opt.get("mixed_exposure"))

    def _reader_kwargs(self, opt: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "crop": opt.get("gt_size"),
            "augment": bool(opt.get("augment", False)),
        }
        if opt.get("levels") is not None:
            kwargs["levels"] = tuple(str(level) for level in opt["levels"])
        return kwargs

    def _build(self, root: Path, opt: dict[str, Any]) -> Any:
        raise NotImplementedError

    @property
    def groups(self) -> list[str]:
        """Each item's group (``'under'`` | ``'over'``), for the mixed-exposure sampler."""
        return self.reader.groups

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self._check_mixed:
            self._check_mixed = False
            self._warn_unless_mixed()
        return self.reader[index]

    def _warn_unless_mixed(self) -> None:
        """``mixed_exposure: true`` but items are drawn by a loader the adapter did not build."""
        if self.mixed_sampler_active:
            return
        warnings.warn(
            f"`mixed_exposure: true` is set on dataset {self.opt.get('name', type(self).__name__)!r} "
            f"(phase {self.opt.get('phase')!r}) but its batches are NOT mixed: only the train set "
            "of a single-process run whose loader comes from the adapter's build_dataloader gets "
            "the mixed-exposure sampler. Start with erl-basicsr-train, or import "
            "erl_losses.adapters.basicsr before anything from basicsr in your train.py.",
            RuntimeWarning,
            stacklevel=2,
        )


class MSECDataset(_ExposureDataset):
    """MSEC pairs (``INPUT_IMAGES/<scene>_<level>`` -> ``GT_IMAGES/<scene>``) for BasicSR.

    Wraps :class:`erl_losses.data.MSECDataset`; see this module's docstring for the keys.
    """

    _extra_keys = frozenset({"expert"})

    def _build(self, root: Path, opt: dict[str, Any]) -> Any:
        from erl_losses.data import MSECDataset as Reader

        kwargs = self._reader_kwargs(opt)
        if "expert" in opt:
            kwargs["expert"] = opt["expert"]
        return Reader(root, opt.get("split", "train"), **kwargs)


class SICEDataset(_ExposureDataset):
    """SICE pairs (``{low,over}/<id>`` -> ``mid/<id>``) for BasicSR.

    Wraps :class:`erl_losses.data.SICEDataset`; see this module's docstring for the keys.
    """

    def _build(self, root: Path, opt: dict[str, Any]) -> Any:
        from erl_losses.data import SICEDataset as Reader

        return Reader(root, opt.get("split", "train"), **self._reader_kwargs(opt))


def ensure_rendered(root: Path, split: str, render: dict[str, Any]) -> None:
    """Renders the synthetic set into ``root`` unless ``root/<split>/INPUT_IMAGES`` exists.

    A missing ``root`` is rendered into a temporary sibling folder and renamed into place, so
    concurrent runs (several ranks, parallel tests) never see a half-written set.
    """
    from erl_losses.data import render_dataset

    check_keys(
        "`render` of SyntheticExposureDataset",
        render,
        accepted_keys(render_dataset) - {"out_dir", "split", "overwrite"},
    )
    if (root / split / "INPUT_IMAGES").is_dir():
        return
    if root.exists():
        render_dataset(root, split=split, **render)  # type: ignore[arg-type]
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        render_dataset(tmp, split="both", **render)
        try:
            tmp.rename(root)
        except OSError:
            if not (root / split / "INPUT_IMAGES").is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class SyntheticExposureDataset(MSECDataset):
    """The synthetic renderer's MSEC-layout set, rendered into ``dataroot`` on first use.

    Keys: those of :class:`MSECDataset` (``split`` is ``train`` or ``test``) plus ``render``, a
    mapping of :func:`erl_losses.data.render_dataset` options used only when the split is
    missing (e.g. ``{crop_size: 64, crops_per_photo: 2, seed: 0}``).
    """

    _extra_keys = frozenset({"render"})

    def _build(self, root: Path, opt: dict[str, Any]) -> Any:
        from erl_losses.data import MSECDataset as Reader

        split = opt.get("split", "train")
        if split not in ("train", "test"):
            raise ValueError(
                f"Expected `split` of SyntheticExposureDataset to be 'train' or 'test', got {split!r}"
            )
        render = check_mapping("`render` of SyntheticExposureDataset", opt.get("render") or {})
        ensure_rendered(root, split, render)
        return Reader(root, split, **self._reader_kwargs(opt))
