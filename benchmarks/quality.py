"""Quality benchmark: ERL vs an L1 baseline on the synthetic exposure set, N paired seeds.

Each seed trains the baseline (``L1``) and every ERL arm (``L1 + alpha * relation``) from the
same initial weights on the same batches (``erl_losses.training.train_net``), evaluates the EMA
of the weights on the held-out photos with the MSEC protocol, and the report compares each arm
with the baseline seed by seed (``erl_losses.evaluation.stats.paired_comparison``: mean Δ with a
95 % confidence interval, paired t and p, wins, and the smallest effect the run could detect at
80 % power). Next to each arm it prints the relational diagnostics of its BCM and loss variant
(``erl_losses.diagnostics.probe``: R, attention entropy, cross-sample gradient share).

Sections (``--sections``; ``main`` by default):

* ``main``: ECLNet and FECNet; arms ``phase`` (the zoo's phase-pretext BCM, the paper's eq. 4)
  and ``phase-centred`` (the same BCM with the centred relation feature, our extension);
  ``--arms`` picks others, ``--arm LABEL=BCM[:VARIANT]`` adds one (a zoo name or a path).
* ``ablation``: the paper's table 2 on ECLNet (random t_e, L1 pretext, phase pretext).
* ``batch`` / ``alpha``: fig. 9 on ECLNet (batch 2/4/8; relation weight 0.01/0.1/1).

Modes: ``--quick`` is the CPU mode (150 steps, 6 seeds by default: what fits in about an hour on
2 shared cores); the default is the GPU mode (1200 steps, 24 seeds; several worker processes share
the GPU, since these small nets are launch-bound). The data is rendered once into a temporary
folder. Results: ``--out`` (JSON with every run) and this mode's block in the ``## Quality``
section of ``benchmarks/RESULTS.md``; ``--render-only JSON`` re-renders an earlier run's block.

Examples::

    python benchmarks/quality.py --device cuda --workers 12          # GPU mode, 24 seeds
    nice python benchmarks/quality.py --quick --workers 2            # CPU quick mode
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import multiprocessing
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
if str(HERE) not in sys.path:  # the sibling modules, also when loaded by file path
    sys.path.insert(0, str(HERE))

from quality_plan import (  # noqa: E402
    ARMS,
    FULL,
    MAIN_ARMS,
    NETS,
    QUICK,
    SECTIONS,
    Arm,
    Job,
    Settings,
    arms_of,
    plan_jobs,
)
from quality_report import (  # noqa: E402
    complete_result,
    load_result,
    merge_results,
    render_markdown,
    write_results_md,
)

__all__ = ["main", "render_markdown", "write_results_md"]


# ---------------------------------------------------------------------------------------------
# BCMs and their diagnostics
# ---------------------------------------------------------------------------------------------
def resolve_arms(labels: list[str]) -> dict[str, dict[str, Any]]:
    """``{label: {"path", "variant", "source", "ours"}}`` of each ERL arm's BCM."""
    from erl_losses import zoo

    out: dict[str, dict[str, Any]] = {}
    for label in labels:
        arm = ARMS[label]
        if arm.bcm in zoo.names():
            spec = zoo.get_spec(arm.bcm)
            path, source = (
                zoo.fetch(arm.bcm),
                f"zoo {arm.bcm} v{spec.version} (sha256 {spec.sha256[:12]})",
            )
        else:
            path, source = Path(arm.bcm), f"file {arm.bcm}"
        out[label] = {
            "path": str(path),
            "variant": arm.variant,
            "source": f"{source}, loss variant {arm.variant}"
            + (" (our extension)" if arm.ours else ""),
            "ours": arm.ours,
        }
    return out


def run_diagnostics(bcms: dict[str, dict[str, Any]], device: str) -> dict[str, dict[str, Any]]:
    """``erl_losses.diagnostics.probe`` of each arm (its BCM with its loss variant), on the
    default held-out crops; ``{}`` per arm when the diagnostics module is not installed."""
    try:
        from erl_losses.diagnostics import probe
    except ImportError:
        return {label: {} for label in bcms}
    from erl_losses import SampleRelationLoss

    out = {}
    for label, bcm in bcms.items():
        started = time.perf_counter()
        relation = SampleRelationLoss(bcm["path"], variant=bcm["variant"]).to(device)
        out[label] = {**probe(relation).as_dict(), "seconds": time.perf_counter() - started}
        print(f"quality: diagnostics of {label}: {out[label]}", flush=True)
    return out


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------
_STATE: dict[str, Any] = {}


def _init_worker(data_dir: str, device: str, bcms: dict[str, dict], settings: dict) -> None:
    import torch

    from erl_losses.data import PairBank

    torch.set_num_threads(1)
    _STATE.update(
        device=torch.device(device),
        train=PairBank.from_msec(data_dir, "train", device),
        test=PairBank.from_msec(data_dir, "test", device),
        bcms=bcms,
        settings=Settings(**settings),
        relations={},
    )
    _STATE["curve"] = _STATE["test"].center_crops(_STATE["settings"].crop_size)


def _relation(label: str) -> Any:
    from erl_losses import SampleRelationLoss

    cache = _STATE["relations"]
    if label not in cache:
        bcm = _STATE["bcms"][label]
        cache[label] = SampleRelationLoss(bcm["path"], variant=bcm["variant"]).to(_STATE["device"])
    return cache[label]


def _scores(report: Any) -> dict[str, Any]:
    return {
        "groups": {row: {"psnr": s.psnr, "ssim": s.ssim} for row, s in report.by_group().items()},
        "levels": {row: {"psnr": s.psnr, "ssim": s.ssim} for row, s in report.by_level().items()},
    }


def _run_job(job: Job) -> dict[str, Any]:
    from erl_losses.evaluation import evaluate_bank
    from erl_losses.training import train_net

    settings: Settings = _STATE["settings"]
    result = train_net(
        job.net,
        _STATE["train"],
        steps=settings.steps,
        batch_size=job.batch_size,
        crop_size=settings.crop_size,
        lr=settings.lr,
        relation=_relation(job.arm) if job.arm else None,
        alpha=job.alpha,
        seed=job.seed,
        ema_decay=settings.ema_decay,
        curve_set=_STATE["curve"],
        curve_points=settings.curve_points,
        progress=False,
    )
    last = result.losses[-1] if result.losses else {}
    return {
        **asdict(job),
        "key": job.key,
        **_scores(evaluate_bank(result.net, _STATE["test"], job.key)),
        "curve": result.curve,
        "final_l1": last.get("l1"),
        "final_relation": last.get("relation"),
        "seconds": result.seconds,
    }


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def _add_arm(spec: str) -> str:
    """Registers ``LABEL=BCM[:VARIANT]`` in :data:`ARMS` and returns the label."""
    label, sep, rest = spec.partition("=")
    if not sep or not label or not rest:
        raise argparse.ArgumentTypeError(f"Expected LABEL=BCM[:VARIANT], got {spec!r}")
    bcm, variant = rest, "paper"
    head, _, tail = rest.rpartition(":")
    if head and tail in ("paper", "centred"):
        bcm, variant = head, tail
    ARMS[label] = Arm(label, bcm, variant=variant, title=f"{bcm} ({variant})")
    return label


#: Settings fields the command line may override, and what they are.
_SETTING_FLAGS = {
    "seeds": "paired seeds per configuration",
    "steps": "optimiser steps per run",
    "crop_size": "training crop side, px",
    "render_size": "rendered image side, px",
    "train_crops": "rendered crops per training photo",
    "test_crops": "rendered crops per held-out photo",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    add("--quick", action="store_true", help="the CPU quick mode (150 steps, 6 seeds)")
    add(
        "--out",
        type=Path,
        default=None,
        help="JSON (default benchmarks/results/quality[-quick].json)",
    )
    add("--sections", default="main", help=f"comma list of {', '.join(SECTIONS)} (default main)")
    add("--arms", default=",".join(MAIN_ARMS), help="ERL arms of the main section, comma list")
    add(
        "--arm",
        action="append",
        default=[],
        type=_add_arm,
        metavar="LABEL=BCM[:VARIANT]",
        help="an extra main-section arm: a zoo name or weights path, loss variant paper|centred",
    )
    for name, what in _SETTING_FLAGS.items():
        add(f"--{name.replace('_', '-')}", type=int, default=None, help=f"{what} (mode default)")
    add(
        "--workers", type=int, default=None, help="worker processes (default: cores, <= 12 on CUDA)"
    )
    add("--md", type=Path, default=RESULTS_MD, help="markdown file with the ## Quality section")
    add("--no-md", action="store_true", help="do not touch the markdown file")
    add("--no-diagnostics", action="store_true", help="skip the relational diagnostics")
    add("--nets", default=",".join(NETS), help=f"comma list of {', '.join(NETS)} (default both)")
    add("--lr", type=float, default=None, help="peak learning rate (mode default)")
    add(
        "--first-seed",
        type=int,
        default=0,
        help="first paired seed (default 0): runs of disjoint seed ranges can be merged",
    )
    add(
        "--render-only",
        type=Path,
        nargs="+",
        default=None,
        metavar="JSON",
        help="re-render the markdown of an earlier run's JSON into --md; several JSONs (same "
        "settings, e.g. disjoint --first-seed ranges) are merged into --out first; trains nothing",
    )
    args = parser.parse_args(argv)
    args.sections = [s for s in args.sections.split(",") if s]
    if not args.sections or set(args.sections) - set(SECTIONS):
        parser.error(f"Expected --sections from {list(SECTIONS)}, got {args.sections!r}")
    args.arms = [a for a in args.arms.split(",") if a] + args.arm
    if set(args.arms) - set(ARMS):
        parser.error(f"Expected --arms from {list(ARMS)}, got {args.arms!r}")
    for name in (*_SETTING_FLAGS, "workers"):
        value, least = getattr(args, name), 2 if name == "seeds" else 1
        if value is not None and value < least:
            parser.error(f"Expected --{name.replace('_', '-')} >= {least}, got {value}")
    args.nets = [n for n in args.nets.split(",") if n]
    if not args.nets or set(args.nets) - set(NETS):
        parser.error(f"Expected --nets from {list(NETS)}, got {args.nets!r}")
    if args.lr is not None and not args.lr > 0:
        parser.error(f"Expected --lr > 0, got {args.lr}")
    if args.first_seed < 0:
        parser.error(f"Expected --first-seed >= 0, got {args.first_seed}")
    if args.render_only is not None and len(args.render_only) > 1 and args.out is None:
        parser.error("Expected --out for the merged JSON when --render-only is given several files")
    return args


def prepare_data(data_dir: Path, settings: Settings) -> dict[str, Any]:
    """Renders the train and test splits and scores the uncorrected test inputs."""
    from torch import nn

    from erl_losses.data import PairBank, render_dataset
    from erl_losses.evaluation import evaluate_bank

    for split, crops in (("train", settings.train_crops), ("test", settings.test_crops)):
        render_dataset(data_dir, crop_size=settings.render_size, crops_per_photo=crops, split=split)
    manifest = json.loads((data_dir / "manifest.json").read_text())
    test = PairBank.from_msec(data_dir, "test")
    return {
        "train_photos": sorted({r["photo"] for r in manifest["splits"]["train"]}),
        "test_photos": sorted({r["photo"] for r in manifest["splits"]["test"]}),
        "train_images": len(PairBank.from_msec(data_dir, "train")),
        "test_images": len(test),
        "input": _scores(evaluate_bank(nn.Identity(), test, "input")),
    }


def run_jobs(
    jobs: list[Job],
    workers: int,
    init_args: tuple,
    log: Path | None,
    *,
    run_job: Callable[[Job], dict[str, Any]] = _run_job,
    initializer: Callable[..., None] | None = _init_worker,
) -> tuple[list[dict], list[dict]]:
    """Runs the jobs on a spawn process pool; one line per finished run (also to ``log``).

    A run that raises is reported (its key and error) and the others go on: one failure must
    not discard the runs in flight, whose results arrive only through this loop. ``run_job`` and
    ``initializer`` (called with ``init_args`` in each worker) must be importable by name.

    Returns:
        ``(runs, failures)``; a failure is ``{"key", "error"}``.
    """
    runs: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=initializer, initargs=init_args
    ) as pool:
        pending = {pool.submit(run_job, job): job for job in jobs}
        for done in futures.as_completed(pending):
            finished, elapsed = len(runs) + len(failures) + 1, time.perf_counter() - started
            count = f"[{finished}/{len(jobs)} {elapsed:.0f} s]"
            try:
                run = done.result()
            except Exception as err:
                failures.append({"key": pending[done].key, "error": repr(err)})
                print(f"{count} {pending[done].key}: FAILED {err!r}", flush=True)
                continue
            runs.append(run)
            line = (
                f"{count} {run['key']}: Average {run['groups']['Average']['psnr']:.2f} dB "
                f"({run['seconds']:.0f} s)"
            )
            print(line, flush=True)
            if log is not None:
                with log.open("a") as handle:
                    handle.write(json.dumps(run) + "\n")
    return runs, failures


def _render_only(paths: list[Path], md: Path | None, out: Path | None) -> int:
    """Re-renders a finished result (or a partial one), or merges several into ``out``; ``md``
    ``None`` leaves the markdown alone. A malformed input is one line on stderr, exit 1."""
    try:
        results = [load_result(path) for path in paths]
        if len(results) > 1:
            result = merge_results(results, [str(p) for p in paths])
    except (ValueError, KeyError, OSError) as err:
        print(f"quality: {err}", file=sys.stderr)
        return 1
    if len(results) == 1:
        result, out = results[0], out or paths[0]
    else:
        complete_result(result, result["runs"], None)
    if out is None:  # parse_args requires --out for several files
        raise ValueError("Expected --out")
    out.write_text(json.dumps(result, indent=2) + "\n")
    block = render_markdown(result)
    print(block)
    if md is not None:
        write_results_md(md, block, bool(result["quick"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only is not None:
        return _render_only(args.render_only, None if args.no_md else args.md, args.out)
    import torch

    from erl_losses._runtime import machine_description, resolve_device

    device = str(resolve_device(args.device))
    overrides = {
        k: getattr(args, k) for k in (*_SETTING_FLAGS, "lr") if getattr(args, k) is not None
    }
    settings = replace(QUICK if args.quick else FULL, **overrides)
    default_out = f"quality{'-quick' if args.quick else ''}.json"
    out = args.out or ROOT / "benchmarks" / "results" / default_out
    jobs = plan_jobs(
        args.sections, settings.seeds, tuple(args.arms), args.first_seed, tuple(args.nets)
    )
    cores = os.cpu_count() or 1
    default_workers = min(12, cores) if device.startswith("cuda") else cores
    workers = min(args.workers or default_workers, len(jobs))
    torch.set_num_threads(1 if device == "cpu" else min(4, cores))
    print(f"quality: {len(jobs)} runs of {settings.steps} steps on {device}, {workers} workers")
    started = time.perf_counter()
    bcms = resolve_arms(arms_of(jobs))
    diagnostics = {} if args.no_diagnostics else run_diagnostics(bcms, device)
    argv_used = argv if argv is not None else sys.argv[1:]
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine_description(device),
        "device": device,
        "torch": torch.__version__,
        "command": "python " + shlex.join([os.path.relpath(__file__, ROOT), *argv_used]),
        "quick": args.quick,
        "workers": workers,
        "sections": args.sections,
        "main_arms": list(args.arms),
        "first_seed": args.first_seed,
        "nets": list(args.nets),
        "planned_runs": len(jobs),
        "settings": asdict(settings),
        "bcms": bcms,
        "diagnostics": diagnostics,
        "tables": None,
        "runs": [],
        "seconds": {"total": None},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".runs.jsonl")
    log.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="erl-quality-") as tmp:
        data = prepare_data(Path(tmp) / "data", settings)
        result["input"] = data.pop("input")
        result["data"] = data
        # Written before the runs: `--render-only` of this file reports the runs logged so far.
        out.write_text(json.dumps(result, indent=2) + "\n")
        init_args = (str(Path(tmp) / "data"), device, bcms, asdict(settings))
        runs, failures = run_jobs(jobs, workers, init_args, log)
    result["failures"] = failures
    complete_result(result, runs, time.perf_counter() - started)
    out.write_text(json.dumps(result, indent=2) + "\n")
    block = render_markdown(result)
    print("\n" + block)
    if not args.no_md:
        write_results_md(args.md, block, args.quick)
    print(f"quality: wrote {out}" + ("" if args.no_md else f" and the quality block of {args.md}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
