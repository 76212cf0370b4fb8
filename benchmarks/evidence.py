"""The evidence benchmark: ERL arms vs the L1 baseline under the registered protocol.

Every setting comes from ``benchmarks/protocol.toml`` (:mod:`evidence_protocol`): the photo splits
(train / validation / test by source photo), the training settings chosen on validation, the
seeds, the arms, the primary comparisons (Holm-corrected) and the controls. Each seed trains the
baseline and every arm from the same initial weights on the same batches
(:func:`erl_losses.training.train_net`), scores the EMA of the weights on every image of the
evaluated split, and keeps the per-image PSNR/SSIM, so the report (:mod:`evidence_report`) can
give the seed CI and a bootstrap over test scenes.

* ``--split validation``: for choosing settings; ``--steps`` / ``--lr NET=RATE`` /
  ``--train-crops`` override the protocol there, and the held-out PSNR curve is recorded.
* ``--split test``: the protocol's settings only, and only the registered (net, arm) pairs unless
  ``--exploratory`` (then every comparison is labelled exploratory).

Every result JSON records the protocol's sha256, and is rewritten after every finished run, so a
stopped run keeps what it measured. Runs of disjoint seed ranges merge with ``--merge``.

Examples::

    nice python benchmarks/evidence.py --split validation --arms "" --nets ECLNet --seeds 2
    nice python benchmarks/evidence.py --split test --workers 2 --out runs/test-a.json
    python benchmarks/evidence.py --merge runs/test-a.json runs/test-b.json \\
        --out benchmarks/results/evidence-test.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the sibling modules, also when loaded by file path
    sys.path.insert(0, str(HERE))

from evidence_protocol import (  # noqa: E402
    BASELINE,
    SPLITS,
    Job,
    Protocol,
    ProtocolError,
    load_protocol,
    plan,
)

DEFAULT_PROTOCOL = HERE / "protocol.toml"
_STATE: dict[str, Any] = {}


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def check_photos(protocol: Protocol, splits: list[str]) -> None:
    """Raises a clear error when a split names optional photos that are not installed."""
    from erl_losses.data.photos import DEBIAN_PREFIX, debian_photos, list_photos

    known = {*list_photos(), *debian_photos()}
    missing = [p for s in splits for p in protocol.splits[s] if p not in known]
    if missing:
        hint = (
            " (apt-get install mate-backgrounds, or set ERL_MATE_PHOTOS)"
            if any(p.startswith(DEBIAN_PREFIX) for p in missing)
            else ""
        )
        raise ProtocolError(
            f"Expected the protocol's photos to be available, missing {missing}{hint}"
        )


def render_splits(root: Path, protocol: Protocol, split: str, settings: dict[str, Any]) -> None:
    """Renders ``root/train`` (train photos) and ``root/<split>/test`` (the evaluated photos)
    plus ``root/validation/test`` for the curve, in the MSEC layout."""
    from erl_losses.data import render_dataset

    size = settings["render_size"]
    render_dataset(
        root / "train", crop_size=size, crops_per_photo=settings["train_crops"], split="train",
        train_photos=protocol.splits["train"], test_photos=[],
    )  # fmt: skip
    for name in dict.fromkeys(("validation", split)):
        render_dataset(
            root / name, crop_size=size, crops_per_photo=settings[f"{name}_crops"], split="test",
            train_photos=protocol.splits["train"], test_photos=protocol.splits[name],
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------
def _init_worker(root: str, split: str, device: str, arms: dict, settings: dict) -> None:
    import torch

    from erl_losses.data import PairBank

    torch.set_num_threads(1)
    dev = torch.device(device)
    _STATE.update(
        device=dev,
        split=split,
        train=PairBank.from_msec(Path(root) / "train", "train", dev),
        eval=PairBank.from_msec(Path(root) / split, "test", dev),
        arms=arms,
        settings=settings,
        relations={},
    )
    curve = PairBank.from_msec(Path(root) / "validation", "test", dev)
    _STATE["curve"] = curve.center_crops(settings["crop_size"]) if split == "validation" else None


def _relation(label: str) -> Any:
    from evidence_relations import build_relation

    cache = _STATE["relations"]
    if label not in cache:
        cache[label] = build_relation(_STATE["arms"][label], _STATE["device"])
    return cache[label]


def run_job(job: Job) -> dict[str, Any]:
    """Trains one run and scores every image of the evaluated split."""
    from erl_losses.evaluation import evaluate_bank
    from erl_losses.training import train_net

    s = _STATE["settings"]
    result = train_net(
        job.net,
        _STATE["train"],
        steps=s["steps"][job.net],
        batch_size=s["batch_size"],
        crop_size=s["crop_size"],
        lr=s["lr"][job.net],
        relation=None if job.arm == BASELINE else _relation(job.arm),
        alpha=s["alpha"],
        seed=job.seed,
        ema_decay=s["ema_decay"],
        curve_set=_STATE["curve"],
        curve_points=4,
        progress=False,
    )
    report = evaluate_bank(result.net, _STATE["eval"], job.key)
    groups = report.by_group()
    last = result.losses[-1] if result.losses else {}
    return {
        "key": job.key,
        "net": job.net,
        "arm": job.arm,
        "seed": job.seed,
        "groups": {g: {"psnr": r.psnr, "ssim": r.ssim} for g, r in groups.items()},
        "images": {
            "psnr": [round(i.psnr, 4) for i in report.images],
            "ssim": [round(i.ssim, 5) for i in report.images],
        },
        "curve": result.curve,
        "final_l1": last.get("l1"),
        "final_relation": last.get("relation"),
        "seconds": result.seconds,
    }


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def resolve_arms(protocol: Protocol, labels: list[str], root: Path, device: str) -> dict:
    """``{label: record}`` of each arm: its BCM file, variant, kind and control scale."""
    import torch
    from evidence_relations import build_relation, calibrate

    from erl_losses import zoo
    from erl_losses.data import PairBank

    records: dict[str, dict[str, Any]] = {}
    for label in labels:
        arm = protocol.arms[label]
        record: dict[str, Any] = {"kind": arm.kind, "variant": arm.variant, "title": arm.title}
        if arm.bcm is not None:
            spec = zoo.get_spec(arm.bcm)
            record |= {"path": str(zoo.fetch(arm.bcm)), "bcm": arm.bcm, "sha256": spec.sha256}
        records[label] = record
    # Controls get the scale that matches the phase BCM's mean feature on validation crops: the
    # inputs and GTs shuffled together (a GT repeats for every exposure level of its scene).
    lq, gt = PairBank.from_msec(root / "validation", "test").center_crops(32)
    crops = torch.cat([lq, gt])[
        torch.randperm(2 * len(lq), generator=torch.Generator().manual_seed(0))
    ]
    reference_path = str(zoo.fetch(protocol.arms["phase"].bcm))
    cpu = torch.device("cpu")
    for record in records.values():
        if record["kind"] != "bcm":
            reference = {"kind": "bcm", "variant": record["variant"], "path": reference_path}
            control = build_relation(record, cpu)
            record["scale"] = calibrate(control, build_relation(reference, cpu), crops)
    return records


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--protocol", type=Path, default=DEFAULT_PROTOCOL, help="the registered protocol file")
    add("--split", choices=SPLITS, help="the evaluated split (required unless --merge)")
    add("--nets", default="ECLNet,FECNet", help="comma list (default both)")
    add("--arms", default=None, help="comma list of arms (default: every registered arm)")
    add("--seeds", type=int, default=None, help="seed count (default: the protocol's)")
    add("--first-seed", type=int, default=None, help="first seed (default: the protocol's)")
    add("--exploratory", action="store_true", help="allow unregistered arms on the test split")
    add("--steps", type=int, default=None, help="validation only: every net's steps")
    add("--train-crops", type=int, default=None, help="validation only: crops per train photo")
    add("--crop-size", type=int, default=None, help="validation only: training crop side, px")
    add("--lr", action="append", default=[], metavar="NET=RATE", help="validation only")
    add("--workers", type=int, default=None, help="worker processes (default: CPU cores)")
    add("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    add("--out", type=Path, default=None, help="result JSON")
    add("--merge", type=Path, nargs="+", default=None, metavar="JSON", help="merge into --out")
    args = parser.parse_args(argv)
    if args.merge is not None:
        if args.out is None:
            parser.error("Expected --out with --merge")
        return args
    if args.split is None:
        parser.error("Expected --split validation|test")
    overrides = args.lr or any(
        getattr(args, k) is not None for k in ("steps", "train_crops", "crop_size")
    )
    if args.split == "test" and overrides and not args.exploratory:
        parser.error(
            "Expected no --steps/--lr/--train-crops/--crop-size on the test split (the protocol's)"
        )
    for name in ("seeds", "steps", "train_crops", "crop_size", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"Expected --{name.replace('_', '-')} >= 1, got {value}")
    return args


def _settings(protocol: Protocol, args: argparse.Namespace) -> dict[str, Any]:
    settings = {**protocol.settings, "lr": dict(protocol.lr)}
    if args.steps is not None:
        settings["steps"] = dict.fromkeys(settings["steps"], args.steps)
    for key in ("train_crops", "crop_size"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    for item in args.lr:
        net, _, rate = item.partition("=")
        if net not in settings["lr"]:
            raise ProtocolError(
                f"Expected --lr NET=RATE with NET in {sorted(settings['lr'])}, got {item!r}"
            )
        settings["lr"][net] = float(rate)
    return settings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.merge is not None:
        from evidence_report import load, merge

        merged = merge([load(p) for p in args.merge], [str(p) for p in args.merge])
        args.out.write_text(json.dumps(merged) + "\n")
        print(f"evidence: merged {len(merged['runs'])} runs into {args.out}")
        return 0
    import torch

    from erl_losses._runtime import machine_description, resolve_device

    protocol = load_protocol(args.protocol)
    check_photos(protocol, ["train", "validation", args.split])
    settings = _settings(protocol, args)
    nets = [n for n in args.nets.split(",") if n]
    default_arms = dict.fromkeys(a for _, a in [*protocol.primaries, *protocol.controls])
    arms = list(default_arms) if args.arms is None else [a for a in args.arms.split(",") if a]
    first = protocol.first_seed if args.first_seed is None else args.first_seed
    seeds = list(range(first, first + (args.seeds or protocol.seeds)))
    jobs = plan(protocol, args.split, nets, arms, seeds, exploratory=args.exploratory)
    device = str(resolve_device(args.device))
    workers = min(args.workers or os.cpu_count() or 1, len(jobs))
    out = args.out or ROOT / "runs" / f"evidence-{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    argv_used = argv if argv is not None else sys.argv[1:]
    started = time.perf_counter()
    print(f"evidence: {len(jobs)} runs on {args.split}, {device}, {workers} workers", flush=True)
    with tempfile.TemporaryDirectory(prefix="erl-evidence-") as tmp:
        root = Path(tmp)
        render_splits(root, protocol, args.split, settings)
        records = resolve_arms(protocol, arms, root, device)
        result = _header(protocol, args, settings, records, root, device, argv_used)
        result.update(nets=nets, arm_labels=arms, seeds=seeds, planned_runs=len(jobs))
        result["machine"], result["torch"] = machine_description(device), torch.__version__
        _write(out, result)
        init = (str(root), args.split, device, records, settings)
        _run_all(jobs, workers, init, result, out, started)
    print(f"evidence: wrote {out} ({len(result['runs'])}/{len(jobs)} runs)")
    return 0


def _header(protocol, args, settings, records, root, device, argv_used) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from torch import nn

    from erl_losses.data import PairBank
    from erl_losses.evaluation import evaluate_bank

    bank = PairBank.from_msec(root / args.split, "test")
    report = evaluate_bank(nn.Identity(), bank, "input")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": "python " + shlex.join(["benchmarks/evidence.py", *argv_used]),
        "protocol": protocol.summary(),
        "split": args.split,
        "photos": {"train": protocol.splits["train"], args.split: protocol.splits[args.split]},
        "exploratory": bool(args.exploratory),
        "device": device,
        "settings": settings,
        "arms": records,
        "image_names": [i.name for i in report.images],
        "image_levels": [i.level for i in report.images],
        "input": {
            "groups": {g: {"psnr": r.psnr, "ssim": r.ssim} for g, r in report.by_group().items()},
            "images": {
                "psnr": [i.psnr for i in report.images],
                "ssim": [i.ssim for i in report.images],
            },
        },
        "runs": [],
        "failures": [],
    }


def _write(out: Path, result: dict[str, Any]) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result) + "\n")
    os.replace(tmp, out)


def _run_all(jobs, workers, init, result, out, started) -> None:  # type: ignore[no-untyped-def]
    import concurrent.futures as futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=init
    ) as pool:
        pending = {pool.submit(run_job, job): job for job in jobs}
        for done in futures.as_completed(pending):
            job, elapsed = pending[done], time.perf_counter() - started
            count = (
                f"[{len(result['runs']) + len(result['failures']) + 1}/{len(jobs)} {elapsed:.0f} s]"
            )
            try:
                run = done.result()
            except Exception as err:  # one failure must not discard the runs in flight
                result["failures"].append({"key": job.key, "error": repr(err)})
                print(f"{count} {job.key}: FAILED {err!r}", flush=True)
            else:
                result["runs"].append(run)
                avg = run["groups"]["Average"]
                print(f"{count} {job.key}: {avg['psnr']:.2f} dB / {avg['ssim']:.4f} "
                      f"({run['seconds']:.0f} s)", flush=True)  # fmt: skip
            result["seconds"] = time.perf_counter() - started
            _write(out, result)


if __name__ == "__main__":
    sys.exit(main())
