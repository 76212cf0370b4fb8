"""A shipped paper option file trained with ``erl-basicsr-train``: time per iteration with and
without ERL, ``l_relation`` in the log, and a resume -- the run docs/basicsr.md reports.

    python benchmarks/basicsr_gpu.py --device cuda --iters 300 --out runs/basicsr-gpu

For each variant (``--variants``, default all: ``fecnet_baseline_msec``, ``fecnet_erl_msec``,
the ERL file again with ``ERL_LOSSES_CUDA_GRAPHS=1``, and both files with ``train.amp: bf16``)
the shipped file is copied
with only these changes: the dataroot points at a synthetic set rendered by ``erl render`` (the
shipped placeholder ``datasets/MSEC`` is not on the machine), no validation, ``total_iter`` =
``--iters``, a checkpoint at the end, ``print_freq`` 10 (or ``--iters``), ``--batch``/``--patch``
if given, ``num_gpu: 0`` for ``--device cpu``, and ``train.amp: bf16`` for the AMP rows. The ERL
run is then resumed (``--auto_resume``) for ``--resume-iters`` more iterations. The printed
markdown block (command, machine, date, s/iteration from basicsr's own ``time (data)`` log fields
after the first 10% of iterations, a log excerpt) is what goes into docs/basicsr.md.

``--json`` is rewritten after every finished training, and ``--deadline-s`` skips the variants
that would start after it (listed in the JSON): ``gpu_session.py`` runs a trimmed set this way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: key: (row label, shipped option file, environment, ``train`` changes, run-name suffix)
VARIANTS: dict[str, tuple[str, str, dict[str, str], dict[str, str], str]] = {
    "baseline": ("L1 (fecnet_baseline_msec)", "fecnet_baseline_msec", {}, {}, ""),
    "erl": ("+ERL (fecnet_erl_msec)", "fecnet_erl_msec", {}, {}, ""),
    "erl-graphs": (
        "+ERL, CUDA graphs", "fecnet_erl_msec", {"ERL_LOSSES_CUDA_GRAPHS": "1"}, {}, "_graphs"
    ),
    "baseline-bf16": ("L1, bf16 AMP", "fecnet_baseline_msec", {}, {"amp": "bf16"}, "_bf16"),
    "erl-bf16": ("+ERL, bf16 AMP", "fecnet_erl_msec", {}, {"amp": "bf16"}, "_bf16"),
}  # fmt: skip
_TIME = re.compile(r"time \(data\): ([\d.]+)")


def write_options(
    stem: str, args: argparse.Namespace, data: Path, name: str, train_changes: dict | None = None
) -> Path:
    """The shipped ``stem`` with the changes listed in the module docstring."""
    import yaml  # noqa: I001 (the adapter first: it makes basicsr importable)

    import erl_losses.adapters.basicsr as adapter
    from basicsr.utils.options import ordered_yaml

    shipped = next(p for p in adapter.option_files() if p.stem == stem)
    with open(shipped) as handle:
        opt = yaml.load(handle, Loader=ordered_yaml()[0])
    opt["name"] = name
    opt["num_gpu"] = 1 if args.device == "cuda" else 0
    train = opt["datasets"]["train"]
    train.update(dataroot=str(data), num_worker_per_gpu=args.workers)
    if args.batch:
        train["batch_size_per_gpu"] = args.batch
    if args.patch:
        train["gt_size"] = args.patch
    opt["datasets"].pop("val", None)
    opt.pop("val", None)
    opt["train"]["total_iter"] = args.iters
    opt["train"].update(train_changes or {})
    opt["logger"].update(
        print_freq=min(10, args.iters), save_checkpoint_freq=args.iters, use_tb_logger=False
    )
    opt["logger"].pop("wandb", None)
    path = args.out / f"{name}.yml"
    path.write_text(yaml.dump(opt, Dumper=ordered_yaml()[1]))
    return path


def train(options: Path, cwd: Path, env: dict[str, str], *extra: str) -> str:
    script = Path(sys.executable).parent / "erl-basicsr-train"
    done = subprocess.run(
        [str(script), "-opt", str(options), *extra],
        cwd=cwd, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"{options.name} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    name = options.stem
    return sorted((cwd / "experiments" / name).glob("train_*.log"))[-1].read_text()


def seconds_per_iteration(log: str) -> float | None:
    """Median of basicsr's ``time (data)`` iteration times, first 10 % dropped (warm-up);
    ``None`` when the log printed none (a run shorter than ``print_freq``)."""
    times = [float(t) for t in _TIME.findall(log)]
    if not times:
        return None
    return statistics.median(times[len(times) // 10 :])


def _variants(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in VARIANTS]
    if not keys or unknown:
        raise argparse.ArgumentTypeError(
            f"Expected a comma list of {', '.join(VARIANTS)}, got {text!r}"
        )
    return keys


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--batch", type=int, default=None, help="batch_size_per_gpu (shipped: 8)")
    p.add_argument("--patch", type=int, default=None, help="gt_size (shipped: 384)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("runs/basicsr-gpu"))
    p.add_argument(
        "--variants", type=_variants, default=list(VARIANTS),
        help=f"comma list of {', '.join(VARIANTS)} (default: all)",
    )  # fmt: skip
    p.add_argument(
        "--resume-iters", type=int, default=10, help="iterations of the resume (0: none)"
    )
    p.add_argument(
        "--crops-per-photo", type=int, default=8, help="crops per photo of the rendered set"
    )
    p.add_argument("--json", type=Path, default=None, help="results JSON, rewritten as it goes")
    p.add_argument(
        "--deadline-s", type=float, default=None,
        help="soft time limit: variants that would start after it are skipped",
    )  # fmt: skip
    args = p.parse_args(argv)
    for name in ("iters", "crops_per_photo", "workers"):
        least = 0 if name == "workers" else 1
        if getattr(args, name) < least:
            p.error(f"Expected --{name.replace('_', '-')} >= {least}, got {getattr(args, name)}")
    if args.resume_iters < 0:
        p.error(f"Expected --resume-iters >= 0, got {args.resume_iters}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    deadline = None if args.deadline_s is None else started + args.deadline_s
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    from erl_losses._runtime import machine_description

    command = "python benchmarks/basicsr_gpu.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result: dict[str, Any] = {
        "date_utc": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "command": command,
        "machine": machine_description(args.device),
        "device": args.device,
        "iters": args.iters,
        "rows": [],
        "skipped": [],
        "failed": [],
        "excerpt": "",
    }

    def save() -> None:
        result["wall_s"] = time.perf_counter() - started
        if args.json is not None:
            tmp = args.json.with_suffix(args.json.suffix + ".tmp")
            tmp.write_text(json.dumps(result, indent=2))
            tmp.replace(args.json)

    save()
    data = args.out / "synthetic"
    if not (data / "train").is_dir():
        crop = max(args.patch or 384, 64)
        subprocess.run(
            [str(Path(sys.executable).parent / "erl"), "render", "--out", str(data),
             "--crop-size", str(crop), "--crops-per-photo", str(args.crops_per_photo),
             "--split", "train"],
            check=True,
        )  # fmt: skip
    result["render_s"] = time.perf_counter() - started
    last_s = 0.0  # the last training's duration: the estimate of the next one
    for key in args.variants:
        label, stem, extra_env, train_changes, suffix = VARIANTS[key]
        if deadline is not None and time.perf_counter() + last_s > deadline:
            result["skipped"].append(f"{label}: would end after --deadline-s")
            save()
            continue
        t0 = time.perf_counter()
        env = {**os.environ, **extra_env}
        name = f"{stem}_{args.device}{suffix}"
        options = write_options(stem, args, data, name, train_changes)
        try:
            log = train(options, args.out, env)
        except RuntimeError as err:  # one failed variant must not lose the others' rows
            result["failed"].append({"variant": key, "error": str(err)[-2000:]})
            save()
            continue
        result["rows"].append({"variant": key, "label": label,
                               "s_per_iter": seconds_per_iteration(log),
                               "flag": "l_relation" in log,
                               "seconds": time.perf_counter() - t0})  # fmt: skip
        last_s = time.perf_counter() - t0
        save()
        if key == "erl" and args.resume_iters:
            result["excerpt"] = "\n".join(
                [ln for ln in log.splitlines() if "l_relation" in ln][-3:]
            )
            if deadline is not None and time.perf_counter() + last_s > deadline:
                result["skipped"].append("resume: would end after --deadline-s")
                save()
                continue
            t0 = time.perf_counter()
            total = args.iters + args.resume_iters
            options.write_text(
                options.read_text().replace(f"total_iter: {args.iters}", f"total_iter: {total}")
            )
            resumed = train(options, args.out, env, "--auto_resume")
            result["rows"].append({"variant": "resume",
                                   "label": f"resume (+{args.resume_iters} iterations)",
                                   "s_per_iter": seconds_per_iteration(resumed),
                                   "flag": "Resuming training from epoch" in resumed,
                                   "seconds": time.perf_counter() - t0})  # fmt: skip
            save()
    print(render_markdown(result))
    return 1 if result["failed"] else 0


def render_markdown(result: dict[str, Any]) -> str:
    """The markdown block of one run: provenance, the s/iteration table, the log excerpt."""
    lines = [
        f"- Date: {result['date_utc']}; command: `{result['command']}`",
        f"- Machine: {result['machine']}",
        "",
        "| run | s / iteration | l_relation logged / resumed |",
        "|---|---|---|",
    ]
    for row in result["rows"]:
        spi = "-" if row["s_per_iter"] is None else f"{row['s_per_iter']:.4f}"
        lines.append(f"| {row['label']} | {spi} | {'yes' if row['flag'] else 'no'} |")
    for skipped in result["skipped"]:
        lines.append(f"| {skipped} | - | - |")
    for failed in result.get("failed", []):
        lines.append(f"| {VARIANTS[failed['variant']][0]}: FAILED (see the JSON) | - | - |")
    if result["excerpt"]:
        lines += ["", "Log excerpt (+ERL):", "", "```", result["excerpt"], "```"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
