"""``erl eval``: PSNR/SSIM per exposure level and group (paper table 1), optionally running a net."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from erl_losses.cli._args import existing_file, existing_folder, int_at_least, net_name


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``eval`` sub-command."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate predictions (or a net) with the MSEC / SICE protocol",
        description=(
            "Either compares --pred with --gt, or runs --net with --weights over --data and "
            "evaluates its predictions. msec/sice: predictions are named <scene>_<level>.<ext> "
            "(MSEC levels N1.5 N1 0 P1 P1.5; SICE low over), GT <scene>.<ext>; reports PSNR and "
            "SSIM per level and as Under / Over / Average. paired: one input per GT (LOL-style "
            "flat folders low/ + high/, input/ + gt/, input/ + target/ or lq/ + gt/, in --data "
            "or its --split folder), predictions named as their input; reports the Average."
        ),
    )
    parser.add_argument(
        "--protocol",
        choices=("msec", "sice", "paired"),
        default="msec",
        help="msec (default), sice, or paired (one input per GT, LOL-style)",
    )
    parser.add_argument("--pred", help="folder of predictions")
    parser.add_argument("--gt", help="folder of ground truth (or the folder above GT_IMAGES/mid)")
    parser.add_argument(
        "--net",
        type=net_name,
        help="reference net (with --weights, --data): DRBN, DRBN_ENC, ECLNet or FECNet",
    )
    parser.add_argument("--weights", help="net weights: .safetensors or a .pth state dict")
    parser.add_argument("--data", help="dataset root or split folder to run the net on")
    parser.add_argument(
        "--split",
        choices=("train", "valid", "test"),
        default="test",
        help="split folder of --data when --data is the dataset root (default test)",
    )
    parser.add_argument("--out", help="where --net writes its predictions (default: temporary)")
    parser.add_argument("--device", default="cpu", help="torch device for --net (default cpu)")
    parser.add_argument("--json", help="write the report as JSON to this file")
    parser.add_argument("--csv", help="write the summary rows as CSV to this file")
    parser.add_argument("--method", help="label of the method in the table")
    parser.add_argument(
        "--metrics",
        choices=("auto", "basicsr", "skimage"),
        default="auto",
        help="PSNR/SSIM code: basicsr.metrics when importable (auto), or scikit-image",
    )
    parser.add_argument(
        "--workers",
        type=int_at_least(0),
        default=0,
        help="processes that decode and score images in parallel (default 0: this process)",
    )
    parser.add_argument(
        "--partial",
        action="store_true",
        help="evaluate only the predictions present instead of requiring every GT x level",
    )
    parser.add_argument(
        "--fidelity",
        action="store_true",
        help="also report Frechet distance and KID in BCM feature space (extra 'fidelity')",
    )
    parser.add_argument(
        "--inception-weights",
        help="local torch-fidelity Inception weights file: adds Inception FID/KID to --fidelity",
    )
    parser.set_defaults(func=run)


def _check_outputs(args: argparse.Namespace) -> None:
    """Output paths must be writable before minutes of inference and scoring."""
    from erl_losses.cli._paths import check_output_dir, check_output_file

    if args.net is not None and args.out:
        check_output_dir(args.out, "--out")
    for flag in ("json", "csv"):
        if getattr(args, flag):
            check_output_file(getattr(args, flag), f"--{flag}")
    if args.fidelity:
        from erl_losses._extras import require

        require("torch_fidelity", "fidelity")


def run(args: argparse.Namespace) -> int:
    """Evaluates, prints the markdown tables, writes JSON/CSV when asked."""
    use_net = args.net is not None
    if use_net:
        if args.pred or args.gt:
            raise ValueError("Expected either --pred/--gt or --net/--weights/--data, got both")
        if not args.weights or not args.data:
            raise ValueError(
                f"Expected --weights and --data with --net, got weights={args.weights!r}, "
                f"data={args.data!r}"
            )
    elif not args.pred or not args.gt:
        raise ValueError(
            f"Expected --pred and --gt (or --net/--weights/--data), got pred={args.pred!r}, "
            f"gt={args.gt!r}"
        )
    if args.inception_weights and not args.fidelity:
        raise ValueError("Expected --fidelity with --inception-weights, got it alone")
    # Missing inputs are reported before torch is imported and before any work.
    for flag in ("data", "pred", "gt"):
        existing_folder(getattr(args, flag), f"--{flag}")
    existing_file(args.weights, "--weights")
    _check_outputs(args)
    from erl_losses.evaluation.protocol import evaluate_folders

    with tempfile.TemporaryDirectory(prefix="erl-eval-") as tmp:
        if use_net:
            from erl_losses._runtime import resolve_device
            from erl_losses.evaluation.inference import load_net, run_net_on_dataset

            net = load_net(args.net, args.weights, device=resolve_device(args.device))
            run_ = run_net_on_dataset(
                net,
                args.data,
                args.out or Path(tmp) / "pred",
                protocol=args.protocol,
                split=args.split,
            )
            pred_dir, gt_dir = run_.pred_dir, run_.gt_dir
            print(f"{args.net}: wrote {run_.count} predictions to {pred_dir}")
        else:
            pred_dir, gt_dir = Path(args.pred), Path(args.gt)
        report = evaluate_folders(
            pred_dir,
            gt_dir,
            args.protocol,
            strict=not args.partial,
            backend=None if args.metrics == "auto" else args.metrics,
            method=args.method or (args.net if use_net else pred_dir.name),
            workers=args.workers,
        )
        if args.fidelity:
            from erl_losses.evaluation.fidelity import fidelity_between_folders

            report.fidelity.update(
                fidelity_between_folders(
                    pred_dir,
                    gt_dir,
                    protocol=args.protocol,
                    inception_weights=args.inception_weights,
                    device=args.device,
                )
            )
    print(report.to_markdown())
    if args.json:
        report.to_json(args.json)
        print(f"wrote {args.json}")
    if args.csv:
        report.to_csv(args.csv)
        print(f"wrote {args.csv}")
    return 0
