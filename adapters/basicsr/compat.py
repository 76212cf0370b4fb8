"""Every compatibility patch the adapter applies to basicsr 1.4.2, in one place.

Each patch is narrow (it replaces one name, or adds one module alias), idempotent, and applied
only by :func:`install_torchvision_alias` (before basicsr is first imported) and
:func:`install` (after; called by :func:`erl_losses.adapters.basicsr.register`). Nothing here
changes what basicsr does on the configurations it already supports.

Patches:

1. ``torchvision.transforms.functional_tensor`` alias -- :func:`install_torchvision_alias`.
   *Why:* basicsr 1.4.2 (``basicsr/data/degradations.py``, imported by ``import basicsr``)
   imports ``torchvision.transforms.functional_tensor``; torchvision >= 0.17 renamed it
   ``_functional_tensor``, so ``import basicsr`` fails. BasicSR's master fixed the import but no
   release carries the fix.
   *When:* only when importing ``torchvision.transforms.functional_tensor`` fails and
   ``torchvision.transforms._functional_tensor`` exists; the alias is then registered in
   ``sys.modules`` before the first basicsr import. With an old torchvision nothing happens.

2. CPU resume -- :func:`load_resume_state` replaces ``basicsr.train.load_resume_state``.
   *Why:* basicsr's version loads the training state with
   ``map_location=lambda storage, loc: storage.cuda(torch.cuda.current_device())``, which raises
   on a machine without CUDA, so ``--auto_resume`` or ``path.resume_state`` cannot resume a
   ``num_gpu: 0`` run.
   *When:* the replacement finds the state file exactly as basicsr does and then delegates to
   basicsr's own function whenever the run uses CUDA (``num_gpu != 0`` and CUDA available);
   only CPU runs take the new path, which loads the state with ``map_location="cpu"`` and then
   calls basicsr's ``check_resume`` as the original does.

3. Mixed-exposure batches -- :func:`build_dataloader` replaces ``basicsr.train.build_dataloader``.
   *Why:* ERL's relation term needs under- and over-exposed samples in the same mini-batch, and
   basicsr's loader only shuffles (a batch of 4 from MSEC's five levels is single-group about
   15% of the time).
   *When:* only for the ``train`` dataset of a non-distributed run whose options set
   ``mixed_exposure: true`` (a key of the adapter's exposure datasets); the loader then uses
   :class:`erl_losses.data.MixedExposureBatchSampler` over the dataset's ``groups``. Every other
   call goes to basicsr's function unchanged.

4. Multi-process CPU (gloo) training -- :mod:`.distributed_compat`, applied by :func:`install`.
   *Why:* ``init_dist`` hard-codes ``torch.cuda.set_device`` and the nccl backend, and
   ``BaseModel.model_to_device`` passes ``device_ids=[torch.cuda.current_device()]`` to DDP, so
   ``--launcher pytorch`` cannot run on CPU.
   *When:* only without CUDA (4a, ``_init_dist_pytorch`` joins the torchrun group with gloo) and
   only for a distributed run whose model lives on the CPU (4b, DDP without ``device_ids``);
   CUDA runs take basicsr's code. See that module for the details.
"""

from __future__ import annotations

import importlib
import importlib.util
import os.path as osp
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["build_dataloader", "install", "install_torchvision_alias", "load_resume_state"]

_ALIAS = "torchvision.transforms.functional_tensor"
_PRIVATE = "torchvision.transforms._functional_tensor"

#: basicsr's original functions, saved by :func:`install` before they are replaced.
_ORIGINALS: dict[str, Callable[..., Any]] = {}


def install_torchvision_alias() -> bool:
    """Patch 1: aliases ``torchvision.transforms.functional_tensor`` when it is missing.

    Returns:
        ``True`` when the alias was installed by this call, ``False`` when nothing was needed
        (the module exists, the alias is already there, or torchvision has neither module).
    """
    if _ALIAS in sys.modules:
        return False
    try:
        importlib.import_module(_ALIAS)
        return False
    except ImportError:
        pass
    try:
        private = importlib.import_module(_PRIVATE)
    except ImportError:
        return False
    sys.modules[_ALIAS] = private
    return True


def _resume_state_path(opt: dict[str, Any]) -> str | None:
    """The state file basicsr's ``load_resume_state`` would resume from (same rules)."""
    from basicsr.utils import scandir

    if opt.get("auto_resume"):
        state_dir = opt["path"].get("training_states") or osp.join(
            "experiments", opt["name"], "training_states"
        )
        if osp.isdir(state_dir):
            states = list(scandir(state_dir, suffix="state", recursive=False, full_path=False))
            if states:
                latest = max(float(name.split(".state")[0]) for name in states)
                path = osp.join(state_dir, f"{latest:.0f}.state")
                opt["path"]["resume_state"] = path
                return path
        return None
    return opt["path"].get("resume_state") or None


def _uses_cuda(opt: dict[str, Any]) -> bool:
    import torch

    return opt.get("num_gpu", 0) != 0 and torch.cuda.is_available()


def load_resume_state(opt: dict[str, Any]) -> dict[str, Any] | None:
    """Patch 2: basicsr's ``load_resume_state`` that also resumes on CPU.

    CUDA runs go to basicsr's original; CPU runs (``num_gpu: 0`` or no CUDA) load the state with
    ``map_location="cpu"``.
    """
    import torch
    from basicsr.utils import check_resume

    if _uses_cuda(opt):
        return _ORIGINALS["load_resume_state"](opt)
    path = _resume_state_path(opt)
    if path is None:
        return None
    state = torch.load(path, map_location="cpu")
    check_resume(opt, state["iter"])
    return state


def build_dataloader(
    dataset: Any,
    dataset_opt: dict[str, Any],
    num_gpu: int = 1,
    dist: bool = False,
    sampler: Any = None,
    seed: int | None = None,
) -> Any:
    """Patch 3: basicsr's ``build_dataloader``, with mixed-exposure batches on request.

    Only a ``train`` dataset with ``mixed_exposure: true`` in a non-distributed run changes: its
    loader draws batches from :class:`erl_losses.data.MixedExposureBatchSampler` (every batch
    holds under- and over-exposed samples). Everything else is basicsr's function.
    """
    original = _ORIGINALS["build_dataloader"]
    if not (dataset_opt.get("mixed_exposure") and dataset_opt.get("phase") == "train"):
        return original(dataset, dataset_opt, num_gpu, dist, sampler, seed)
    if dist:
        raise ValueError(
            "Expected `mixed_exposure: false` for distributed training (the mixed-exposure "
            "sampler is single-process), got `mixed_exposure: true` with a launcher"
        )
    import torch

    from erl_losses.data import MixedExposureBatchSampler

    groups = getattr(dataset, "groups", None)
    if groups is None:
        raise ValueError(
            "Expected a dataset with a `groups` list for `mixed_exposure: true` (the adapter's "
            f"MSECDataset, SICEDataset or SyntheticExposureDataset), got {type(dataset).__name__}"
        )
    multiplier = max(num_gpu, 1)
    batch_sampler = MixedExposureBatchSampler(
        groups,
        dataset_opt["batch_size_per_gpu"] * multiplier,
        drop_last=True,
        seed=0 if seed is None else int(seed),
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=dataset_opt["num_worker_per_gpu"] * multiplier,
        pin_memory=dataset_opt.get("pin_memory", False),
        persistent_workers=dataset_opt.get("persistent_workers", False),
    )


def install() -> None:
    """Applies patches 2-4 to the imported basicsr (idempotent; patch 1 must come earlier)."""
    import basicsr.train as basicsr_train

    for name, replacement in (
        ("load_resume_state", load_resume_state),
        ("build_dataloader", build_dataloader),
    ):
        current = getattr(basicsr_train, name)
        if current is not replacement:
            _ORIGINALS.setdefault(name, current)
            setattr(basicsr_train, name, replacement)
    # -- scale-out patches --
    from erl_losses.adapters.basicsr import distributed_compat

    distributed_compat.install()


def is_installed() -> bool:
    """Whether :func:`install` has patched the imported basicsr."""
    if importlib.util.find_spec("basicsr") is None or "basicsr.train" not in sys.modules:
        return False
    module = sys.modules["basicsr.train"]
    return module.load_resume_state is load_resume_state
