"""A shipped paper option file trained with ``erl-basicsr-train``: time per iteration with and
without ERL, ``l_relation`` in the log, and a resume -- the run docs/basicsr.md reports.

    python benchmarks/basicsr_gpu.py --device cuda --iters 300 --out runs/basicsr-gpu

For each variant (``fecnet_baseline_msec``, ``fecnet_erl_msec``, the ERL file again with
``ERL_LOSSES_CUDA_GRAPHS=1``, and both files with ``train.amp: bf16``) the shipped file is copied
with only these changes: the dataroot points at a synthetic set rendered by ``erl render`` (the
shipped placeholder ``datasets/MSEC`` is not on the machine), no validation, ``total_iter`` =
``--iters``, a checkpoint at the end, ``print_freq`` 10 (or ``--iters``), ``--batch``/``--patch``
if given, ``num_gpu: 0`` for ``--device cpu``, and ``train.amp: bf16`` for the AMP rows. The ERL
run is then resumed (``--auto_resume``) for 10 more iterations. The printed markdown block
(command, machine, date, s/iteration from basicsr's own ``time (data)`` log fields after the
first 10% of iterations, a log excerpt) is what goes into docs/basicsr.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

#: (row label, shipped option file, environment, ``train`` changes, run-name suffix)
VARIANTS = (
    ("L1 (fecnet_baseline_msec)", "fecnet_baseline_msec", {}, {}, ""),
    ("+ERL (fecnet_erl_msec)", "fecnet_erl_msec", {}, {}, ""),
    ("+ERL, CUDA graphs", "fecnet_erl_msec", {"ERL_LOSSES_CUDA_GRAPHS": "1"}, {}, "_graphs"),
    ("L1, bf16 AMP", "fecnet_baseline_msec", {}, {"amp": "bf16"}, "_bf16"),
    ("+ERL, bf16 AMP", "fecnet_erl_msec", {}, {"amp": "bf16"}, "_bf16"),
)
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


def seconds_per_iteration(log: str) -> float:
    """Median of basicsr's ``time (data)`` iteration times, first 10 % dropped (warm-up)."""
    times = [float(t) for t in _TIME.findall(log)]
    if not times:
        raise ValueError("Expected 'time (data)' fields in the basicsr log, got none")
    return statistics.median(times[len(times) // 10 :])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--batch", type=int, default=None, help="batch_size_per_gpu (shipped: 8)")
    p.add_argument("--patch", type=int, default=None, help="gt_size (shipped: 384)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("runs/basicsr-gpu"))
    args = p.parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "synthetic"
    if not (data / "train").is_dir():
        crop = max(args.patch or 384, 64)
        subprocess.run(
            [str(Path(sys.executable).parent / "erl"), "render", "--out", str(data),
             "--crop-size", str(crop), "--crops-per-photo", "8", "--split", "train"],
            check=True,
        )  # fmt: skip
    rows, excerpt = [], ""
    for label, stem, extra_env, train_changes, suffix in VARIANTS:
        env = {**os.environ, **extra_env}
        name = f"{stem}_{args.device}{suffix}"
        options = write_options(stem, args, data, name, train_changes)
        log = train(options, args.out, env)
        rows.append((label, seconds_per_iteration(log), "l_relation" in log))
        if stem.endswith("erl_msec") and not suffix:
            excerpt = "\n".join([ln for ln in log.splitlines() if "l_relation" in ln][-3:])
            options.write_text(
                options.read_text().replace(
                    f"total_iter: {args.iters}", f"total_iter: {args.iters + 10}"
                )
            )
            resumed = train(options, args.out, env, "--auto_resume")
            rows.append(("resume (+10 iterations)", seconds_per_iteration(resumed),
                         "Resuming training from epoch" in resumed))  # fmt: skip
    command = "python benchmarks/basicsr_gpu.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; command: `{command}`")
    from erl_losses._runtime import machine_description

    print(f"- Machine: {machine_description(args.device)}")
    print("\n| run | s / iteration | l_relation logged / resumed |\n|---|---|---|")
    for label, spi, flag in rows:
        print(f"| {label} | {spi:.4f} | {'yes' if flag else 'no'} |")
    print(f"\nLog excerpt (+ERL):\n\n```\n{excerpt}\n```")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
