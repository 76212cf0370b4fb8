"""``erl demo``: ERL vs a plain L1 baseline on a synthetic MSEC-like set, in minutes on a CPU.

:func:`run_demo` runs named steps, with no network: :func:`prepare_data` renders a small set
(:func:`erl_losses.data.render_dataset`; camera-pipeline inputs, expert-retouch GT) split by
photo, the test photos being :data:`erl_losses.data.HELD_OUT`, which no zoo BCM saw;
:func:`train_pair` trains a reference net twice with identical seeds, weights and batches, ``L1``
alone and ``L1 + alpha * relation`` (paper eq. 5) with the zoo's default BCM, logging held-out
PSNR (the paper's fig. 7); :func:`evaluate_runs` scores the EMA of both nets' weights and the
uncorrected input on the full-size test images with the MSEC protocol (table-1 layout);
:func:`erl_losses.demo_figures.draw_demo_figures` and :meth:`DemoResult.write` write
``results.json``, ``table.md``, ``curves.png``, ``grid.png`` and ``attention.png``, and both nets'
weights (``<net>-l1.safetensors``, ``<net>-erl.safetensors``) for ``erl enhance`` on your photos.

A synthetic stand-in, not the paper's protocol: a few hundred steps on crops of ten photos, not
MSEC/SICE for 100k+ iterations. One seed's ERL - baseline difference is of the order of the
seed-to-seed noise; ``benchmarks/quality.py`` measures it over paired seeds.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from erl_losses._runtime import cpu_threads, load_average, machine_description, resolve_device
from erl_losses._validation import check_int, check_positive_int
from erl_losses._version import __version__
from erl_losses.data.pairs import PairBank
from erl_losses.evaluation.bank import TABLE_GROUPS, format_table, group_rows, level_table
from erl_losses.training import TrainResult, default_lr, quantised_psnr, train_net

__all__ = [
    "NETS",
    "PRESETS",
    "DemoData",
    "DemoResult",
    "DemoSettings",
    "evaluate_runs",
    "prepare_data",
    "run_demo",
    "train_pair",
]

#: ``--net`` choices -> :data:`erl_losses.archs.ARCHS` names.
NETS: dict[str, str] = {"eclnet": "ECLNet", "fecnet": "FECNet"}

#: The two runs of a demo, in table order.
RUNS: tuple[str, ...] = ("baseline", "erl")

#: The table's rows: the uncorrected input, then the two runs.
ROWS: tuple[str, ...] = ("input", *RUNS)


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and optimisation settings of a demo run.

    Args:
        steps: optimiser steps of each of the two trainings.
        batch_size: samples per mini-batch (paper: 4); >= 2, every batch mixes under and over.
        crop_size: side of the random training crops and of the held-out curve crops (px).
        render_size: side of the rendered images, train and test (px).
        train_crops: rendered crops per training photo (x 5 exposure levels).
        test_crops: rendered crops per held-out photo (x 5 exposure levels; 3 photos).
        lr: peak Adam learning rate (betas 0.9, 0.99 as the paper; cosine decay to 5 %);
            ``None``: the net's :data:`erl_losses.training.DEFAULT_LR`.
        alpha: weight of the relation term (paper: 0.1).
        ema_decay: the runs are evaluated on an EMA of their weights with this decay.
        curve_points: held-out PSNR evaluations during training (plus one at step 0).
    """

    steps: int = 800
    batch_size: int = 4
    crop_size: int = 64
    render_size: int = 128
    train_crops: int = 6
    test_crops: int = 14
    lr: float | None = None
    alpha: float = 0.1
    ema_decay: float = 0.999
    curve_points: int = 10

    def __post_init__(self) -> None:
        for name in ("steps", "train_crops", "test_crops", "curve_points"):
            check_positive_int(getattr(self, name), name)
        check_int(
            self.batch_size, "batch_size", minimum=2, hint=" (the relation needs other samples)"
        )
        for name in ("crop_size", "render_size"):
            check_int(getattr(self, name), name, minimum=16)
        if self.crop_size > self.render_size:
            raise ValueError(
                f"Expected `crop_size` <= `render_size` ({self.render_size}), got {self.crop_size}"
            )
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"Expected `lr` > 0, got {self.lr!r}")
        if not self.alpha >= 0:
            raise ValueError(f"Expected `alpha` >= 0, got {self.alpha!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"Expected `ema_decay` in [0, 1), got {self.ema_decay!r}")


#: ``run_demo(quick=False)`` and ``run_demo(quick=True)``.
PRESETS: dict[str, DemoSettings] = {
    "full": DemoSettings(),
    "quick": DemoSettings(
        steps=300, crop_size=48, render_size=96, train_crops=3, test_crops=14, curve_points=6
    ),
}


@dataclass
class DemoData:
    """The rendered set of a demo: folders, in-memory banks and the held-out curve crops."""

    root: Path
    train: PairBank
    test: PairBank
    curve_set: tuple[Tensor, Tensor]
    photos: dict[str, list[str]]

    @property
    def test_dir(self) -> Path:
        return self.root / "test"


@dataclass
class DemoResult:
    """Everything a demo measured; :meth:`to_dict` is what ``results.json`` holds."""

    out_dir: Path
    net: str
    seed: int
    quick: bool
    settings: DemoSettings
    device: str
    machine: str
    bcm: dict[str, Any]
    data: dict[str, Any]
    labels: dict[str, str]
    reports: dict[str, Any]
    runs: dict[str, TrainResult]
    attention: dict[str, Any] = field(default_factory=dict)
    #: The uncorrected input's mean PSNR on the crops of the PSNR curves (the level to beat).
    input_curve_psnr: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    load: dict[str, float] = field(default_factory=dict)

    @property
    def files(self) -> dict[str, Path]:
        names = ("results.json", "table.md", "curves.png", "grid.png", "attention.png")
        return {name.split(".")[0]: self.out_dir / name for name in names}

    @property
    def weight_files(self) -> dict[str, Path]:
        """Both nets' weights (the evaluated EMA), for ``erl enhance --weights``."""
        stem = self.net.lower()
        return {
            "baseline": self.out_dir / f"{stem}-l1.safetensors",
            "erl": self.out_dir / f"{stem}-erl.safetensors",
        }

    def enhance_command(self, key: str = "erl") -> str:
        """The ``erl enhance`` command that applies run ``key``'s weights to your photos."""
        return (
            f"erl enhance YOUR_PHOTOS.jpg --net {self.net} --weights {self.weight_files[key]} "
            f"--out {self.out_dir / 'enhanced'}"
        )

    @property
    def rows(self) -> dict[str, dict[str, dict[str, float]]]:
        """Table-1 rows: method label -> group -> ``{"psnr", "ssim", "count"}``."""
        return {self.reports[k].method: group_rows(self.reports[k]) for k in ROWS}

    @property
    def delta(self) -> dict[str, dict[str, float]]:
        """ERL - baseline per table-1 group: ``{"psnr" (dB), "ssim"}``."""
        base, erl = (group_rows(self.reports[k]) for k in RUNS)
        return {g: {m: erl[g][m] - base[g][m] for m in ("psnr", "ssim")} for g in TABLE_GROUPS}

    @property
    def table(self) -> str:
        return format_table(self.rows) + "\n\n" + level_table(self.reports)

    def to_dict(self) -> dict[str, Any]:
        runs = {
            key: {
                "label": self.labels[key],
                "loss": "L1" if key == "baseline" else f"L1 + {self.settings.alpha:g} * relation",
                "groups": group_rows(self.reports[key]),
                "report": self.reports[key].to_dict(),
                "curve": self.runs[key].curve,
                "losses": self.runs[key].losses,
                "train_seconds": self.runs[key].seconds,
            }
            for key in RUNS
        }
        return {
            "erl_losses_version": __version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": self.machine,
            "device": self.device,
            "torch": torch.__version__,
            "net": self.net,
            "seed": self.seed,
            "quick": self.quick,
            "settings": asdict(self.settings),
            "bcm": self.bcm,
            "data": self.data,
            "table": self.table,
            "input": self.reports["input"].to_dict(),
            "runs": runs,
            "delta": self.delta,
            "attention": self.attention,
            "files": {k: str(v) for k, v in self.files.items()},
            "weights": {k: str(v) for k, v in self.weight_files.items()},
            "input_curve_psnr": self.input_curve_psnr,
            "seconds": self.seconds,
            "load_average": self.load,
        }

    def write(self) -> None:
        """Writes ``results.json``, ``table.md`` and both nets' weights into :attr:`out_dir`."""
        from safetensors.torch import save_file

        for key, path in self.weight_files.items():
            state = self.runs[key].net.state_dict()
            save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path))
        cfg = self.settings
        photos = ", ".join(self.data["test_photos"])
        self.files["table"].write_text(
            f"{self.net}, synthetic MSEC-like test set ({self.data['test_images']} images of "
            f"{photos}), seed {self.seed}, {cfg.steps} steps, EMA of the weights, "
            f"{self.machine}\n\n{self.table}\n"
        )
        self.files["results"].write_text(json.dumps(self.to_dict(), indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# The steps
# ---------------------------------------------------------------------------------------------
def _relation(bcm: Any, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The :class:`~erl_losses.SampleRelationLoss` on ``bcm`` (see :func:`run_demo`; loaded by
    :func:`erl_losses.modules.bcm_io.resolve_bcm`) and a JSON-ready description of its BCM."""
    from erl_losses import BatchCorrelationModule, SampleRelationLoss, zoo

    relation = SampleRelationLoss(bcm).to(device)
    if isinstance(bcm, BatchCorrelationModule):
        info: dict[str, Any] = {"source": "module"}
    elif bcm is None or (isinstance(bcm, str) and bcm in zoo.names()):
        name = bcm or zoo.default_name()
        spec = zoo.get_spec(name)
        info = {"source": "zoo", "name": name, "version": spec.version, "sha256": spec.sha256,
                "file": spec.file}  # fmt: skip
    else:
        info = {"source": "file", "path": str(bcm)}
    return relation, {**info, "variant": relation.variant, "config": relation.bcm.config}


def prepare_data(out: Path, cfg: DemoSettings, seed: int, device: torch.device) -> DemoData:
    """Renders the train and held-out test splits into ``out / "data"`` (replaced) and loads them."""
    from erl_losses.data import render_dataset

    root = out / "data"
    if root.exists():
        shutil.rmtree(root)
    photos = {}
    for split, crops in (("train", cfg.train_crops), ("test", cfg.test_crops)):
        rendered = render_dataset(
            root, crop_size=cfg.render_size, crops_per_photo=crops, seed=seed, split=split
        )
        photos[split] = rendered.photos[split]
    test = PairBank.from_msec(root, "test", device)
    return DemoData(
        root=root,
        train=PairBank.from_msec(root, "train", device),
        test=test,
        curve_set=test.center_crops(cfg.crop_size),
        photos=photos,
    )


def train_pair(
    arch: str,
    data: DemoData,
    relation: nn.Module,
    cfg: DemoSettings,
    seed: int,
    progress: bool = True,
) -> dict[str, TrainResult]:
    """The baseline (``L1``) and ERL (``L1 + alpha * relation``) runs, paired by ``seed``."""
    return {
        key: train_net(
            arch,
            data.train,
            steps=cfg.steps,
            batch_size=cfg.batch_size,
            crop_size=cfg.crop_size,
            lr=cfg.lr,
            relation=relation if key == "erl" else None,
            alpha=cfg.alpha,
            seed=seed,
            ema_decay=cfg.ema_decay,
            curve_set=data.curve_set,
            curve_points=cfg.curve_points,
            progress=progress,
            desc=f"{key:>8}",
        )
        for key in RUNS
    }


def evaluate_runs(
    runs: dict[str, TrainResult], data: DemoData, out: Path, labels: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Writes both nets' predictions of the test split under ``out / "predictions"`` (replaced)
    and scores them and the uncorrected inputs with the MSEC protocol.

    Returns:
        ``{"input" | "baseline" | "erl": EvaluationReport}`` and the prediction folders.
    """
    from erl_losses.evaluation import evaluate_folders, run_net_on_dataset

    pred_root = out / "predictions"
    if pred_root.exists():
        shutil.rmtree(pred_root)
    test_dir = data.test_dir
    inputs = test_dir / "INPUT_IMAGES"
    reports = {"input": evaluate_folders(inputs, test_dir, "msec", method=labels["input"])}
    pred_dirs: dict[str, Path] = {}
    for key, run in runs.items():
        pred_dirs[key] = run_net_on_dataset(
            run.net, test_dir, pred_root / key, protocol="msec", split="test"
        ).pred_dir
        reports[key] = evaluate_folders(pred_dirs[key], test_dir, "msec", method=labels[key])
    return reports, pred_dirs


@torch.no_grad()
def batch_attention(relation: nn.Module, bank: PairBank, size: int = 8) -> dict[str, Any]:
    """The BCM's ``(B, B)`` attention (last ``t_e`` layer) on a mixed under/over batch."""
    picks = bank.mixed_indices(min(size, 2 * min(bank.groups.count(g) for g in ("under", "over"))))
    matrix = relation.bcm.batch_attention(bank.lq[picks].float().div(255.0)).float().cpu()
    return {
        "samples": [bank.names[i] for i in picks],
        "groups": [bank.groups[i] for i in picks],
        "levels": [bank.levels[i] for i in picks],
        "matrix": matrix.numpy().round(5).tolist(),
        "indices": picks,
    }


# ---------------------------------------------------------------------------------------------
# The demo
# ---------------------------------------------------------------------------------------------
def _settings(
    quick: bool, steps: int | None, settings: DemoSettings | None, net: str, seed: int
) -> DemoSettings:
    if net not in NETS:
        raise ValueError(f"Expected net to be one of {sorted(NETS)}, got {net!r}")
    check_int(seed, "seed", minimum=0)
    base = settings if settings is not None else PRESETS["quick" if quick else "full"]
    if not isinstance(base, DemoSettings):
        raise TypeError(f"Expected settings to be a DemoSettings, got {type(base).__name__}")
    # Record the rate used, not None: results.json says what ran.
    lr = base.lr if base.lr is not None else default_lr(NETS[net])
    return replace(base, steps=base.steps if steps is None else steps, lr=lr)


def _summary(result: DemoResult) -> str:
    cfg, data = result.settings, result.data
    return (
        f"\n{result.net}, {cfg.steps} steps x 2 runs, batch {cfg.batch_size}, crops "
        f"{cfg.crop_size} px, EMA {cfg.ema_decay:g}, {result.device}; held-out test set: "
        f"{data['test_images']} images ({', '.join(data['test_photos'])}, 5 exposure levels)"
        f"\n\n{result.table}\n\nWrote {result.out_dir}/: "
        + ", ".join(p.name for p in [*result.files.values(), *result.weight_files.values()])
        + f"\n\nApply the ERL net to your own photos (the L1 net: {result.weight_files['baseline'].name}):"
        + f"\n  {result.enhance_command('erl')}"
        + f"\nTotal {result.seconds['total']:.0f} s wall, {result.seconds['cpu']:.0f} s CPU "
        f"(load average {result.load['start']:.1f} -> {result.load['end']:.1f})"
    )


def run_demo(
    out_dir: str | os.PathLike[str] = "erl-demo",
    *,
    quick: bool = False,
    device: str | torch.device | None = None,
    seed: int = 0,
    net: str = "eclnet",
    steps: int | None = None,
    bcm: Any = None,
    settings: DemoSettings | None = None,
    threads: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = print,
) -> DemoResult:
    """Runs the demo and writes its files into ``out_dir``.

    Args:
        out_dir: output folder (created; its ``data/`` and ``predictions/`` are replaced).
        quick: the small preset (:data:`PRESETS` ``"quick"``).
        device: ``None`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        seed: seeds the rendering crops, the net initialisation and the batches (both runs).
        net: ``"eclnet"`` (default) or ``"fecnet"``.
        steps: overrides the preset's (or ``settings``') optimiser steps.
        bcm: the relation term's BCM: ``None`` (the zoo's default), a zoo name, a safetensors
            path or a :class:`~erl_losses.BatchCorrelationModule`.
        settings: replaces the preset entirely.
        threads: torch intra-op threads on the CPU (``None``: 1; restored afterwards).
        progress, echo: draw tqdm bars; where the summary is printed (``None``: silent).

    Returns:
        A :class:`DemoResult`; ``result.to_dict()`` is what ``results.json`` holds and
        ``result.delta["Average"]["psnr"]`` is ERL - baseline in dB.

    Raises:
        ValueError: bad arguments (unknown net, device, steps).
        erl_losses.zoo.WeightsUnavailableError: no default BCM available (pass ``bcm``).
    """
    from erl_losses.demo_figures import draw_demo_figures

    cfg = _settings(quick, steps, settings, net, seed)
    torch_device = resolve_device(device)
    arch = NETS[net]
    started, cpu_started, load = time.perf_counter(), time.process_time(), load_average()
    with cpu_threads(torch_device, threads):
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        relation, bcm_info = _relation(bcm, torch_device)
        data = prepare_data(out, cfg, seed, torch_device)
        render_seconds = time.perf_counter() - started
        labels = {
            "input": "Input (no correction)",
            "baseline": f"{arch} (L1)",
            "erl": f"{arch}+ERL (L1 + {cfg.alpha:g} relation)",
        }
        runs = train_pair(arch, data, relation, cfg, seed, progress)
        reports, pred_dirs = evaluate_runs(runs, data, out, labels)
        result = DemoResult(
            out_dir=out, net=arch, seed=seed, quick=quick, settings=cfg,
            device=str(torch_device), machine=machine_description(torch_device), bcm=bcm_info,
            data={"root": str(data.root), "train_photos": data.photos["train"],
                  "test_photos": data.photos["test"], "train_images": len(data.train),
                  "test_images": len(data.test)},
            labels=labels, reports=reports, runs=runs,
            attention=batch_attention(relation, data.test),
            input_curve_psnr=quantised_psnr(nn.Identity(), *data.curve_set),
        )  # fmt: skip
        draw_demo_figures(result, data, pred_dirs)
        result.seconds = {
            "render": render_seconds,
            "total": time.perf_counter() - started,
            # CPU time of this process: on a shared machine, closer to the unloaded wall time.
            "cpu": time.process_time() - cpu_started,
        }
        result.load = {"start": load, "end": load_average()}
        result.write()
    if echo is not None:
        echo(_summary(result))
    return result
