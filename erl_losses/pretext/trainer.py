"""The two-stage pretext trainer: check -> prepare -> resume -> run the stages -> evaluate ->
export.

Everything is seeded (model initialisation, crops, flips); checkpoints hold the model, Adam's
moments and the crop streams' positions (:mod:`.checkpoint`, :mod:`.data`), so an interrupted run
resumed from its checkpoint ends with the same weights as an uninterrupted one (:mod:`.stages`),
whatever the number of data workers. A folder of images is scanned first: every file decoded
once into the on-disk cache, the undecodable ones skipped with one warning naming them. Output names
and the output folder are checked, and the folder locked, before any work (:mod:`.rundir`).
"""

from __future__ import annotations

import copy
import csv
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from erl_losses._files import atomic_path, file_sha256
from erl_losses._runtime import machine_description, resolve_device
from erl_losses._version import __version__
from erl_losses.data.images import FolderImages, PhotoImages
from erl_losses.modules.bcm import BatchCorrelationModule
from erl_losses.modules.bcm_io import load_bcm, read_bcm_metadata, save_bcm
from erl_losses.pretext.card import model_card
from erl_losses.pretext.checkpoint import load_checkpoint
from erl_losses.pretext.data import CropStream, default_workers
from erl_losses.pretext.evaluation import evaluate_bcm, random_relation
from erl_losses.pretext.objectives import get_objective
from erl_losses.pretext.recipe import PretextRecipe, default_name
from erl_losses.pretext.rundir import RunDir, run_lock
from erl_losses.pretext.stages import RunState, StageOptions, train_stages

__all__ = ["PretrainResult", "pretrain_bcm"]


@dataclass
class PretrainResult:
    """What :func:`pretrain_bcm` wrote and measured.

    Attributes:
        bcm: the trained module (eval mode).
        weights: the zoo-format safetensors file.
        manifest_entry: the JSON file with a ready :mod:`erl_losses.zoo` manifest entry.
        card: the model-card draft (markdown).
        log: the CSV log of both stages (stage, step, global_step, loss, lr, seconds).
        metrics: :func:`evaluate_bcm` output (empty if evaluation was skipped).
        seconds: wall time of this call's training (excluding earlier, resumed sessions).
        total_seconds: wall time over every session of the run.
        skipped: the image files left out because they cannot be decoded (paths).
    """

    bcm: BatchCorrelationModule
    weights: Path
    manifest_entry: Path
    card: Path
    log: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    total_seconds: float = 0.0
    skipped: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# prepare
# ---------------------------------------------------------------------------------------------
def _is_folders(images: Any) -> bool:
    if isinstance(images, (str, os.PathLike)):
        return True
    return isinstance(images, (list, tuple)) and all(
        isinstance(item, (str, os.PathLike)) for item in images
    )


def _image_source(images: Any, max_side: int | None, cache_dir: Any) -> Any:
    if images is None:
        return PhotoImages(max_side=max_side)
    if _is_folders(images):
        return FolderImages(images, max_side=max_side, cache_dir=cache_dir)
    return images


def _take_stage1(bcm: BatchCorrelationModule, stage1_from: str | os.PathLike[str]) -> dict:
    """Copies ``f_e``, ``W``, ``f_d`` of a BCM file into ``bcm``; returns the file's provenance."""
    source = load_bcm(stage1_from)
    if source.config != bcm.config:
        raise ValueError(
            f"Expected `stage1_from` with the BCM config {bcm.config}, got {source.config}"
        )
    own_te = copy.deepcopy(bcm.t_e.state_dict())
    bcm.load_state_dict(source.state_dict())
    bcm.t_e.load_state_dict(own_te)  # stage 2 starts from this recipe's seeded t_e
    return {
        "file": Path(stage1_from).name,
        "sha256": file_sha256(stage1_from),
        "recipe": json.loads(read_bcm_metadata(stage1_from).get("recipe", "null")),
    }


def _prepare(
    recipe: PretextRecipe,
    files: RunDir,
    *,
    images: Any,
    max_side: int | None,
    bcm_config: dict[str, Any] | None,
    stage1_from: str | os.PathLike[str] | None,
    device: torch.device,
    data: dict[str, Any],
) -> RunState:
    """Builds the seeded BCM (stage 1 from a file if asked), scans an image folder and builds the
    seeded crop stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        bcm = BatchCorrelationModule(**(bcm_config or {}))
    stage1_source = _take_stage1(bcm, stage1_from) if stage1_from is not None else None
    source = _image_source(images, max_side, data["cache_dir"])
    workers = default_workers(source) if data["workers"] is None else data["workers"]
    if isinstance(source, FolderImages):
        source.scan(workers=workers, cache=data["cache"], progress=data["progress"])
    provenance = source.provenance() if hasattr(source, "provenance") else {"kind": "custom"}
    crops = CropStream(
        source, seed=recipe.seed + 1, flip=recipe.flip, workers=workers,
        pin_memory=device.type == "cuda",
    )  # fmt: skip
    return RunState(recipe, files, bcm.to(device), crops, provenance, device, stage1_source)


# ---------------------------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------------------------
def _resume(run: RunState) -> None:
    """Restores model, crop generator, step and Adam state from the checkpoint."""
    checkpoint = load_checkpoint(run.files.checkpoint)
    saved = PretextRecipe.from_dict(checkpoint.state["recipe"])
    if saved != run.recipe or checkpoint.state["config"] != run.bcm.config:
        diff = sorted(k for k, v in run.recipe.to_dict().items() if saved.to_dict().get(k) != v)
        raise ValueError(
            "Expected the same recipe and BCM config as the checkpoint to resume, got "
            f"differences in {diff or ['config']}"
        )
    run.bcm.load_state_dict(checkpoint.model, strict=True)
    try:
        run.crops.set_state(checkpoint.crops_state)
    except ValueError:  # a checkpoint of the single-threaded sampler: position by the step
        warnings.warn(
            "The checkpoint holds the crop generator of an earlier erl-losses; the run goes on "
            "with this version's crop stream at the checkpoint's step (the crops differ from "
            "those of an uninterrupted run)",
            UserWarning,
            stacklevel=3,
        )
        step, (first, _) = int(checkpoint.state["global_step"]), run.recipe.stage_steps
        run.crops.seek(
            min(step, first) * run.recipe.stage1_batch_size,
            max(0, step - first) * run.recipe.batch_size,
        )
    run.global_step = int(checkpoint.state["global_step"])
    run.elapsed_before = float(checkpoint.state["seconds"])
    run.optim_state = checkpoint.optimizer
    _truncate_log(run.files.log, run.global_step)


def _truncate_log(log_path: Path, global_step: int) -> None:
    """Drops log rows written after the checkpoint being resumed."""
    if not log_path.exists():
        return
    with log_path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    kept = [rows[0]] + [r for r in rows[1:] if int(r[2]) <= global_step] if rows else []
    with log_path.open("w", newline="") as handle:
        csv.writer(handle).writerows(kept)


# ---------------------------------------------------------------------------------------------
# evaluate and export
# ---------------------------------------------------------------------------------------------
def _evaluate(run: RunState, eval_batches: int) -> dict[str, Any]:
    """:func:`evaluate_bcm` against the stage-1 weights with the recipe's random ``t_e``."""
    if run.files.stage1.exists():
        baseline = load_bcm(run.files.stage1).to(run.device)
        baseline_text = "stage-1 weights with the recipe's seeded random t_e"
    else:  # resumed mid-stage-2 without the stage-1 file: keep the trained W
        baseline = random_relation(run.bcm, seed=run.recipe.seed)
        baseline_text = "this BCM with the recipe's seeded random t_e"
    metrics = evaluate_bcm(
        run.bcm, baseline=baseline, num_batches=eval_batches, batch_size=run.recipe.batch_size,
        crop_size=run.recipe.crop_sizes(run.bcm)[1], phase_mode=run.recipe.phase_mode,
    )  # fmt: skip
    metrics["baseline"] = baseline_text
    return metrics


def _description(recipe: PretextRecipe) -> str:
    objective = get_objective(recipe.pretext)
    if recipe.pretext == "phase":
        origin = "paper eq. 3"
    elif objective.paper:
        origin = "table-2 ablation"
    else:
        origin = "ours, not the paper's"
    return f"BCM pretrained with the {recipe.pretext!r} pretext ({origin})"


def _export(run: RunState, metrics: dict[str, Any], zoo: dict[str, Any]) -> PretrainResult:
    """Writes the weights, the manifest entry and the model card (each atomically)."""
    total_seconds = run.elapsed_before + run.seconds
    seconds = run.seconds
    training = {
        "seconds": round(total_seconds, 1),
        "machine": machine_description(run.device),
        "command": zoo["command"] or f"erl_losses.pretext.pretrain_bcm({run.recipe!r})",
        "torch": torch.__version__,
        "erl_losses": __version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    if run.stage1_source is not None:
        training["stage1_from"] = run.stage1_source
    files = run.files
    meta = {"name": files.name, "version": files.version, "recipe": run.recipe.to_dict()}
    meta.update(data=run.provenance, metrics=metrics, training=training)
    weights = save_bcm(run.bcm.cpu(), files.weights, meta)
    run.bcm.to(run.device)
    entry = {
        "name": files.name,
        "version": files.version,
        "file": weights.name,
        "sha256": file_sha256(weights),
        "size": weights.stat().st_size,
        "urls": list(zoo["urls"]),
        "license": zoo["license"],
        "description": _description(run.recipe),
        "config": run.bcm.config,
        "recipe": run.recipe.to_dict(),
        "data": run.provenance,
        "metrics": metrics,
        "training": training,
        "card": f"cards/{files.name}.md",
    }
    _write_text(files.manifest_entry, json.dumps(entry, indent=2, sort_keys=False) + "\n")
    _write_text(files.card, model_card(entry))
    return PretrainResult(
        bcm=run.bcm.eval(), weights=weights, manifest_entry=files.manifest_entry,
        card=files.card, log=files.log, metrics=metrics, seconds=seconds,
        total_seconds=total_seconds, skipped=_skipped(run.crops.images),
    )  # fmt: skip


def _skipped(source: Any) -> tuple[str, ...]:
    return tuple(str(path) for path, _ in getattr(source, "skipped", ()))


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# the public entry point
# ---------------------------------------------------------------------------------------------
def pretrain_bcm(
    recipe: PretextRecipe,
    out_dir: str | os.PathLike[str],
    *,
    images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Any | None = None,
    max_side: int | None = None,
    workers: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    bcm_config: dict[str, Any] | None = None,
    stage1_from: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int = 200,
    log_every: int = 10,
    name: str | None = None,
    version: str = "1",
    license: str = "MIT",
    urls: Sequence[str] = (),
    evaluate: bool = True,
    eval_batches: int = 16,
    command: str | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
    callback: Callable[[int, int, float], None] | None = None,
) -> PretrainResult:
    """Runs the two-stage pretext training of a BCM and writes a zoo-ready weights file.

    Writes in ``out_dir`` (each file atomically; a lock refuses a second run into the folder):
    ``checkpoint.safetensors``, ``stage1.safetensors`` (the ``"none"`` variant), ``log.csv``,
    ``<name>-v<version>.safetensors``, ``<name>.manifest.json`` and ``<name>.md`` (model card).

    Args:
        recipe: the training recipe.
        out_dir: output folder (created). One holding an earlier run is refused unless
            ``resume`` or ``overwrite``.
        images: ``None`` for random crops of the bundled pretext-train photos, a folder of
            normal-exposure images (e.g. MSEC's ``GT_IMAGES``; nested folders are read too) or
            a list of folders, or an image source object (see
            :class:`~erl_losses.pretext.data.CropStream`). A folder is scanned before training:
            each file decoded once, the undecodable ones skipped with one warning.
        max_side: area-downscale images whose longer side exceeds this many pixels (with a
            folder, 512 is the usual choice for MSEC/SICE-style training).
        workers: ``DataLoader`` processes that decode and cut crops (``None``: one per core but
            one for a folder, none for images in memory); the crops are the same for any value.
        cache: keep each folder image, decoded and resized to ``max_side``, in an on-disk
            cache keyed by the file's sha256 and ``max_side`` (only with ``max_side``).
        cache_dir: the cache root (default
            :func:`erl_losses.data.image_cache.default_cache_dir`).
        bcm_config: :class:`~erl_losses.BatchCorrelationModule` arguments (default: its defaults).
        stage1_from: a BCM weights file (e.g. another run's ``stage1.safetensors``) whose
            ``f_e``, ``W`` and ``f_d`` replace stage 1; ``recipe.stage1_steps`` must then be 0.
        resume: continue from ``out_dir/checkpoint.safetensors`` (the recipe must match).
        overwrite: delete an earlier run's files in ``out_dir`` first.
        checkpoint_every: steps between checkpoints.
        log_every: steps between CSV log rows (loss averaged over the interval).
        name, version, license, urls: the zoo entry (``name`` defaults to ``bcm-<pretext>``;
            ``name`` and ``version`` must be plain file names, checked before any work).
        evaluate: run :func:`~erl_losses.pretext.evaluate_bcm` on held-out crops at the end.
        eval_batches: held-out batches for the evaluation.
        command: the command line to record in the card (default: a Python call).
        progress: draw tqdm progress bars.
        device: where to train.
        callback: called as ``callback(global_step, stage, loss)`` after each step (tests).

    Raises:
        KeyboardInterrupt: on Ctrl-C, after the checkpoint of the last finished step is saved.
    """
    files = RunDir(Path(out_dir), default_name(recipe) if name is None else name, version)
    if stage1_from is not None and recipe.stage1_steps:
        raise ValueError(
            "Expected `stage1_steps=0` with `stage1_from` (stage 1 comes from the file), got "
            f"{recipe.stage1_steps}"
        )
    device = resolve_device(device)
    options = StageOptions(checkpoint_every, log_every, progress, callback)
    with run_lock(files.root):
        earlier = files.check(resume=resume, overwrite=overwrite)
        data = {"workers": workers, "cache": cache, "cache_dir": cache_dir, "progress": progress}
        run = _prepare(
            recipe, files, images=images, max_side=max_side, bcm_config=bcm_config,
            stage1_from=stage1_from, device=device, data=data,
        )  # fmt: skip
        if earlier:  # `overwrite`, and the inputs proved good: only now is anything deleted
            files.clear()
        if resume:
            _resume(run)
        train_stages(run, options)
        run.bcm.requires_grad_(False).eval()
        metrics = _evaluate(run, eval_batches) if evaluate else {}
        zoo = {"command": command, "urls": urls, "license": license}
        return _export(run, metrics, zoo)
