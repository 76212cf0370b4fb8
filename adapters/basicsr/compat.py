"""Every compatibility patch the adapter applies to basicsr 1.4.2, in one place.

Each patch is narrow, idempotent, and applied only by :func:`install_torchvision_alias` (before
basicsr is first imported) and :func:`install` (after; called by
:func:`erl_losses.adapters.basicsr.register`). Patches replace a function AT ITS SOURCE
(``basicsr.data.build_dataloader``, ``basicsr.utils.options.parse_options``) and every binding
of it already made by ``from ... import`` (``basicsr.train``, ``basicsr.test``, ``basicsr``,
``__main__``), so they work however the training script is started: ``erl-basicsr-train``, a
downstream ``train.py`` calling ``train_pipeline``, or a vendored ``basicsr/train.py`` run as
``__main__`` with ``import erl_losses.adapters.basicsr`` as its first import.

Patches:

1. ``torchvision.transforms.functional_tensor`` alias -- :func:`install_torchvision_alias`
   (:mod:`erl_losses._torchvision_alias`). *Why:* basicsr 1.4.2 imports that module,
   which torchvision >= 0.17 renamed ``_functional_tensor``. *When:* only when the public module
   is missing and the private one exists.

2. Resume -- :func:`load_resume_state` replaces ``load_resume_state`` in every loaded train
   script: ``basicsr.train`` and, when ``basicsr/train.py`` runs as a script, ``__main__``
   (rebound by the :func:`parse_options` wrapper, which ``train_pipeline`` calls first).
   *Why:* basicsr's version maps the state to ``torch.cuda.current_device()``, which raises
   without CUDA, so ``--auto_resume`` cannot resume a ``num_gpu: 0`` run; and a truncated latest
   ``.state`` (a run killed while saving) stops ``--auto_resume`` with a zip error.
   *What:* the state file is found by basicsr's rules, loaded with ``weights_only=True`` onto the
   CPU (``num_gpu: 0`` or no CUDA) or the current CUDA device (as basicsr does); with
   ``--auto_resume``, an unreadable state is skipped with a warning for the next-newest one.

3. Mixed-exposure batches -- :func:`build_dataloader` replaces ``basicsr.data.build_dataloader``.
   *Why:* ERL's relation term needs under- and over-exposed samples in the same mini-batch, and
   basicsr's loader only shuffles (a batch of 4 from MSEC's five levels is single-group about
   15% of the time). *When:* only for the ``train`` dataset of a non-distributed run whose
   options set ``mixed_exposure: true``; the loader then uses
   :class:`erl_losses.data.MixedExposureBatchSampler` over the dataset's ``groups``. Every other
   call goes to basicsr's function unchanged. A dataset with ``mixed_exposure: true`` whose
   loader was NOT built here warns on its first item (see :mod:`.datasets`).

4. Multi-process CPU (gloo) training -- :mod:`.distributed_compat`, applied by :func:`install`.
   *Why:* ``init_dist`` hard-codes ``torch.cuda.set_device`` and the nccl backend, and
   ``BaseModel.model_to_device`` passes ``device_ids=[torch.cuda.current_device()]`` to DDP.
   *When:* only without CUDA / for a model on the CPU. See that module.
"""

from __future__ import annotations

import importlib.util
import os.path as osp
import pickle
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

from erl_losses._torchvision_alias import install_torchvision_alias

__all__ = [
    "build_dataloader",
    "install",
    "install_torchvision_alias",
    "is_installed",
    "load_resume_state",
    "parse_options",
]

#: basicsr's original functions, saved by :func:`install` before they are replaced.
_ORIGINALS: dict[str, Callable[..., Any]] = {}

#: What a truncated, empty or corrupt ``.state`` file raises from ``torch.load``.
_UNREADABLE = (RuntimeError, EOFError, OSError, pickle.UnpicklingError)


def _state_iteration(name: str) -> float | None:
    try:
        return float(name.split(".state")[0])
    except ValueError:
        return None


def _resume_candidates(opt: dict[str, Any]) -> list[str]:
    """The state files to resume from, newest first (basicsr's rules for which folder)."""
    from basicsr.utils import scandir

    if not opt.get("auto_resume"):
        path = opt["path"].get("resume_state")
        return [path] if path else []
    state_dir = opt["path"].get("training_states") or osp.join(
        "experiments", opt["name"], "training_states"
    )
    if not osp.isdir(state_dir):
        return []
    names = scandir(state_dir, suffix="state", recursive=False, full_path=False)
    iterations = sorted({it for it in map(_state_iteration, names) if it is not None}, reverse=True)
    return [osp.join(state_dir, f"{it:.0f}.state") for it in iterations]


def _uses_cuda(opt: dict[str, Any]) -> bool:
    import torch

    return opt.get("num_gpu", 0) != 0 and torch.cuda.is_available()


def load_resume_state(opt: dict[str, Any]) -> dict[str, Any] | None:
    """Patch 2: basicsr's ``load_resume_state``, on CPU too, past a truncated latest state.

    Sets ``opt['path']['resume_state']`` to the state used and calls basicsr's
    ``check_resume`` (which points ``pretrain_network_g`` at the matching weights).

    Raises:
        RuntimeError: no readable state among the candidates (each one named with its error).
    """
    import torch
    from basicsr.utils import check_resume

    candidates = _resume_candidates(opt)
    if not candidates:
        return None
    device = f"cuda:{torch.cuda.current_device()}" if _uses_cuda(opt) else "cpu"
    errors = []
    for path in candidates:
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except _UNREADABLE as err:
            first_line = (str(err).splitlines() or [""])[0]
            errors.append(f"{path}: {type(err).__name__}: {first_line}")
            if opt.get("auto_resume") and path != candidates[-1]:
                warnings.warn(
                    f"Skipping the unreadable training state {path} ({errors[-1]}); "
                    "resuming from the previous one",
                    RuntimeWarning,
                    stacklevel=2,
                )
            continue
        opt["path"]["resume_state"] = path
        check_resume(opt, state["iter"])
        return state
    raise RuntimeError(
        f"Expected a readable training state to resume from, got {'; '.join(errors)}"
    )


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
    from basicsr.utils import get_root_logger

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
    dataset.mixed_sampler_active = True
    get_root_logger().info(
        f"Mixed-exposure batches for {dataset_opt.get('name', 'train')}: every batch of "
        f"{batch_sampler.batch_size} holds under- and over-exposed samples "
        "(erl_losses.data.MixedExposureBatchSampler)."
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=dataset_opt["num_worker_per_gpu"] * multiplier,
        pin_memory=dataset_opt.get("pin_memory", False),
        persistent_workers=dataset_opt.get("persistent_workers", False),
    )


def parse_options(*args: Any, **kwargs: Any) -> Any:
    """basicsr's ``parse_options`` (unchanged result), then :func:`_rebind` for the caller.

    ``train_pipeline`` / ``test_pipeline`` call it first, when a ``basicsr/train.py`` run as
    ``__main__`` has defined all its names: patch 2 reaches that script's own
    ``load_resume_state`` here.
    """
    result = _ORIGINALS["parse_options"](*args, **kwargs)
    _rebind()
    return result


_REPLACEMENTS: dict[str, Callable[..., Any]] = {
    "build_dataloader": build_dataloader,
    "parse_options": parse_options,
}


def _is_train_script(module: ModuleType) -> bool:
    resume = getattr(module, "load_resume_state", None)
    return (
        callable(getattr(module, "train_pipeline", None))
        and callable(resume)
        and resume is not load_resume_state
        and getattr(resume, "__module__", None) == module.__name__
    )


def _rebind() -> None:
    """Replaces the originals wherever ``from ... import`` bound them, and patch 2 in every
    loaded train script (``basicsr.train``; ``__main__`` when it is one)."""
    for name, module in list(sys.modules.items()):
        if not (name == "__main__" or name == "basicsr" or name.startswith("basicsr.")):
            continue
        if module is None:
            continue
        for attr, replacement in _REPLACEMENTS.items():
            original = _ORIGINALS.get(attr)
            if original is not None and getattr(module, attr, None) is original:
                setattr(module, attr, replacement)
        if _is_train_script(module):
            module.load_resume_state = load_resume_state  # type: ignore[attr-defined]


def install() -> None:
    """Applies patches 2-4 to the imported basicsr (idempotent; patch 1 must come earlier)."""
    import basicsr.data
    import basicsr.utils.options

    sources = ((basicsr.data, "build_dataloader"), (basicsr.utils.options, "parse_options"))
    for module, name in sources:
        current = getattr(module, name)
        if current is not _REPLACEMENTS[name]:
            _ORIGINALS.setdefault(name, current)
            setattr(module, name, _REPLACEMENTS[name])
    _rebind()
    # -- scale-out patches --
    from erl_losses.adapters.basicsr import distributed_compat

    distributed_compat.install()


def is_installed() -> bool:
    """Whether :func:`install` has patched the imported basicsr at every source."""
    if importlib.util.find_spec("basicsr") is None or "basicsr.train" not in sys.modules:
        return False
    data = sys.modules.get("basicsr.data")
    options = sys.modules.get("basicsr.utils.options")
    return (
        sys.modules["basicsr.train"].load_resume_state is load_resume_state
        and getattr(data, "build_dataloader", None) is build_dataloader
        and getattr(options, "parse_options", None) is parse_options
    )
