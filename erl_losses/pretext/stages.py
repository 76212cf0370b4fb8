"""Running the two pretext stages: the step loop, logging, checkpoints and Ctrl-C.

The learning rate is :func:`erl_losses.training.warmup_cosine` positioned at the checkpoint's
step, Adam's moments and the crop generator come back from the checkpoint, and the per-stage
parameter rules are the BCM's own (:meth:`~erl_losses.BatchCorrelationModule.pretext_parameters`,
:meth:`~erl_losses.BatchCorrelationModule.mask_pretext_grad`, shared with the BasicSR pretext
model), so a resumed run ends with the same weights as an uninterrupted one. The first Ctrl-C
stops after the current step, saves a checkpoint and re-raises ``KeyboardInterrupt``.

Crops come from :class:`~erl_losses.pretext.data.CropStream` (a ``DataLoader``, workers cutting
crops while the model trains). The progress bar shows the loss, images/s and the stage's ETA;
each checkpoint prints one line (readable in a log file, where the bar refreshes once a minute).
"""

from __future__ import annotations

import contextlib
import csv
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from erl_losses.modules.bcm import BatchCorrelationModule
from erl_losses.modules.bcm_io import save_bcm
from erl_losses.pretext.checkpoint import save_checkpoint
from erl_losses.pretext.data import CropStream
from erl_losses.pretext.evaluation import random_relation
from erl_losses.pretext.objectives import get_objective
from erl_losses.pretext.recipe import PretextRecipe
from erl_losses.pretext.rundir import RunDir
from erl_losses.training import warmup_cosine

__all__ = ["RunState", "StageOptions", "save_stage1", "stage_loss", "train_stages"]

_LOG_FIELDS = ("stage", "step", "global_step", "loss", "lr", "seconds")


@dataclass
class RunState:
    """The state handed from one step of a run to the next."""

    recipe: PretextRecipe
    files: RunDir
    bcm: BatchCorrelationModule
    crops: CropStream
    provenance: dict[str, Any]
    device: torch.device
    stage1_source: dict[str, Any] | None = None
    global_step: int = 0
    elapsed_before: float = 0.0
    optim_state: dict[str, Any] | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float:
        """Wall time of this session."""
        return time.perf_counter() - self.started

    def state(self) -> dict[str, Any]:
        """The checkpoint's JSON state at the current step."""
        return {
            "recipe": self.recipe.to_dict(),
            "config": self.bcm.config,
            "global_step": self.global_step,
            "seconds": self.elapsed_before + self.seconds,
        }

    def save_checkpoint(self, optimizer: torch.optim.Optimizer | None) -> None:
        save_checkpoint(
            self.files.checkpoint, self.bcm, optimizer, self.crops.state(), self.state()
        )


@dataclass(frozen=True)
class StageOptions:
    """How the step loop reports: checkpoint and log intervals (steps), progress bars, a
    ``callback(global_step, stage, loss)`` after each step."""

    checkpoint_every: int
    log_every: int
    progress: bool
    callback: Callable[[int, int, float], None] | None

    def __post_init__(self) -> None:
        from erl_losses._validation import check_positive_int

        check_positive_int(self.checkpoint_every, "checkpoint_every")
        check_positive_int(self.log_every, "log_every")


class _StopRequest:
    """Turns the first Ctrl-C into a request to stop after the current step (a second one
    interrupts at once); outside the main thread signals cannot be caught and nothing changes."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[_StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def _progress_bar(start: int, stop: int, desc: str, progress: bool) -> Any:
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(
        total=stop, initial=start, desc=desc, unit="step", dynamic_ncols=True, leave=True,
        disable=not progress or stop <= start, mininterval=0.1 if interactive else 60.0,
    )  # fmt: skip


def _checkpoint_line(
    run: RunState, stage: int, loss: float, images_per_s: float, seconds_left: float
) -> str:
    """One line per checkpoint: where the run is, how fast it goes, when the stage ends."""
    from tqdm import tqdm

    eta = tqdm.format_interval(seconds_left)
    return (
        f"{time.strftime('%H:%M:%S')} step {run.global_step}/{sum(run.recipe.stage_steps)} "
        f"(stage {stage}, epoch {run.crops.epoch(stage):.2f}): loss {loss:.5f}, "
        f"{images_per_s:.1f} img/s, stage ETA {eta}; checkpoint {run.files.checkpoint}"
    )


def _stage_optimizer(run: RunState, stage: int, first: int, steps: int) -> tuple[Any, Any]:
    """Adam over the stage's parameters (its moments restored when resuming mid-stage) and
    the warm-up + cosine schedule positioned at the run's step within the stage."""
    recipe = run.recipe
    params = run.bcm.pretext_parameters(stage, fuse_relation_only=recipe.stage2_fuse == "relation")
    peak = recipe.stage1_lr if stage == 1 else recipe.stage2_lr
    optimizer = torch.optim.Adam(params, lr=peak, betas=recipe.betas)
    local = run.global_step - first
    if run.optim_state is not None and local > 0:
        optimizer.load_state_dict(run.optim_state)  # holds `initial_lr`, as LambdaLR needs
    run.optim_state = None
    scheduler = warmup_cosine(
        optimizer, steps, warmup_steps=recipe.warmup_steps(steps),
        min_ratio=recipe.min_lr_ratio, last_step=local - 1,
    )  # fmt: skip
    return optimizer, scheduler


def stage_loss(
    bcm: BatchCorrelationModule, recipe: PretextRecipe, stage: int, x: torch.Tensor
) -> torch.Tensor:
    """The loss of one step of ``stage`` on the batch ``x`` ``(B, 3, H, W)`` in [0, 1]: the
    auto-encoder's L1 (stage 1) or the recipe's pretext objective (stage 2)."""
    if stage == 1:
        return (bcm.reconstruct(x, relation=False) - x).abs().mean()
    return get_objective(recipe.pretext).loss(bcm, x, recipe)


def _run_stage(
    run: RunState,
    stage: int,
    log: Any,
    stop: _StopRequest,
    *,
    options: StageOptions,
) -> None:
    """Runs the remaining steps of ``stage``, logging, checkpointing and honouring Ctrl-C."""
    recipe, steps = run.recipe, run.recipe.stage_steps
    first = sum(steps[: stage - 1])
    last = first + steps[stage - 1]
    optimizer, scheduler = _stage_optimizer(run, stage, first, steps[stage - 1])
    run.bcm.train()
    crop = recipe.crop_sizes(run.bcm)[stage - 1]
    batch = recipe.stage1_batch_size if stage == 1 else recipe.batch_size
    fuse_only = recipe.stage2_fuse == "relation"
    window: list[float] = []
    desc = f"stage {stage}/2 " + ("auto-encoder" if stage == 1 else recipe.pretext)
    bar = _progress_bar(run.global_step - first, last - first, desc, options.progress)
    batches = run.crops.batches(stage, batch, crop, last - run.global_step)
    started, start_step, shown = time.perf_counter(), run.global_step, float("nan")
    with bar, contextlib.closing(batches):
        for step, images in zip(range(run.global_step, last), batches, strict=True):
            lr = optimizer.param_groups[0]["lr"]
            x = images.to(run.device, non_blocking=True).float().div_(255.0)
            loss = stage_loss(run.bcm, run.recipe, stage, x)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"Expected a finite stage-{stage} loss, got {float(loss)} at step "
                    f"{step - first}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.bcm.mask_pretext_grad(stage, fuse_relation_only=fuse_only)
            optimizer.step()
            scheduler.step()
            run.global_step = step + 1
            window.append(float(loss.detach()))
            if options.callback is not None:
                options.callback(run.global_step, stage, window[-1])
            per_step = (time.perf_counter() - started) / (run.global_step - start_step)
            images_per_s = batch / per_step
            bar.update(1)
            if len(window) == options.log_every or run.global_step == last:
                seconds = run.elapsed_before + run.seconds
                shown = sum(window) / len(window)
                log.writerow(
                    (stage, step - first + 1, run.global_step, f"{shown:.6f}", f"{lr:.3e}",
                     f"{seconds:.1f}")
                )  # fmt: skip
                window = []
                bar.set_postfix(loss=f"{shown:.4f}", img_s=f"{images_per_s:.1f}", refresh=False)
            if run.global_step % options.checkpoint_every == 0 or run.global_step == last:
                run.save_checkpoint(optimizer)
                if not bar.disable:
                    now = sum(window) / len(window) if window else shown
                    left = (last - run.global_step) * per_step
                    bar.write(_checkpoint_line(run, stage, now, images_per_s, left))
            if stop.requested:
                run.save_checkpoint(optimizer)
                raise KeyboardInterrupt(
                    f"pretext run stopped at step {run.global_step}; checkpoint saved in "
                    f"{str(run.files.checkpoint)!r} (continue with --resume)"
                )


def train_stages(run: RunState, options: StageOptions) -> None:
    """Both stages, the stage-1 snapshot, and a final checkpoint."""
    steps = run.recipe.stage_steps
    if run.global_step == steps[0] and not run.files.stage1.exists():
        # stage 1 comes from `stage1_from`, or a resumed run stopped right after stage 1
        save_stage1(run)
    with run.files.log.open("a", newline="") as handle, _StopRequest().installed() as stop:
        log = csv.writer(handle)
        if run.files.log.stat().st_size == 0:
            log.writerow(_LOG_FIELDS)
        for stage in (1, 2):
            if run.global_step >= sum(steps[:stage]) or steps[stage - 1] == 0:
                continue
            _run_stage(run, stage, _Flushing(log, handle), stop, options=options)
            if stage == 1:
                save_stage1(run)
    if sum(steps) == 0 or not run.files.checkpoint.exists():
        run.save_checkpoint(None)


class _Flushing:
    """A csv writer that flushes each row (the log is read while a run is going)."""

    def __init__(self, writer: Any, handle: Any) -> None:
        self.writer, self.handle = writer, handle

    def writerow(self, row: Sequence[object]) -> None:
        self.writer.writerow(row)
        self.handle.flush()


def save_stage1(run: RunState) -> None:
    """Stage-1 weights with the seeded random ``t_e`` (= the ``"none"`` variant)."""
    snapshot = random_relation(run.bcm, seed=run.recipe.seed).cpu()
    extra = {"stage1_from": run.stage1_source} if run.stage1_source else {}
    save_bcm(
        snapshot,
        run.files.stage1,
        {
            "name": "stage1",
            "version": "0",
            "recipe": {**run.recipe.to_dict(), "pretext": "none"},
            "data": run.provenance,
            **extra,
        },
    )
