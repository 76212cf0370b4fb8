"""``erl pretrain``: the two-stage pretext training of a batch-correlation module."""

from __future__ import annotations

import argparse
import json
import shlex


def _command_line(args: argparse.Namespace) -> str:
    """The ``erl pretrain`` command equivalent to ``args`` (non-default options only)."""
    parser: argparse.ArgumentParser = args._command_parser
    words = ["erl", "pretrain"]
    for action in parser._actions:  # argparse has no public accessor for the option list
        if not action.option_strings or action.dest in ("help", "func"):
            continue
        value = getattr(args, action.dest, None)
        if value == action.default:
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(flag)
        elif isinstance(value, list):
            for item in value:
                words += [flag, str(item)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``erl pretrain`` to the ``erl`` command line."""
    from erl_losses.pretext import PRETEXTS

    p = subparsers.add_parser(
        "pretrain",
        help="train a batch-correlation module with the two-stage pretext task (paper sec. 3.2)",
        description=(
            "Stage 1 trains f_e, W and f_d as an auto-encoder (L1) on normal-exposure images; "
            "stage 2 freezes f_e/f_d and trains t_e and W on mini-batches with the pretext loss. "
            "Writes OUT/NAME.safetensors (zoo format), OUT/NAME.manifest.json, OUT/NAME.md, "
            "OUT/log.csv and OUT/checkpoint.safetensors."
        ),
    )
    p.add_argument(
        "--pretext",
        choices=PRETEXTS,
        default="phase",
        help="stage-2 objective: phase (eq. 3), l1, or none (random t_e)",
    )
    p.add_argument(
        "--images",
        default=None,
        metavar="DIR",
        help="folder of normal-exposure images (e.g. MSEC GT_IMAGES); default: the "
        "pretext-train split of the photos bundled with scikit-image/-learn/matplotlib",
    )
    p.add_argument(
        "--max-side",
        type=int,
        default=None,
        help="area-downscale images whose longer side exceeds this (pixels)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default runs/NAME)")
    p.add_argument("--name", default=None, help="zoo name of the result (default bcm-PRETEXT)")
    p.add_argument("--version", default="1", help="zoo version of the result")
    p.add_argument(
        "--url",
        action="append",
        default=[],
        dest="urls",
        help="download URL to record in the manifest entry (repeatable)",
    )
    p.add_argument("--license", default="MIT")
    p.add_argument("--stage1-steps", type=int, default=2000)
    p.add_argument("--stage2-steps", type=int, default=1000)
    p.add_argument("--stage1-batch-size", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4, help="stage-2 mini-batch (paper: 4)")
    p.add_argument(
        "--crop-size",
        type=int,
        default=None,
        help="stage-2 crop side (default: the BCM's work_size, 128)",
    )
    p.add_argument(
        "--stage1-crop-size",
        type=int,
        default=None,
        help="stage-1 crop side (default: --crop-size)",
    )
    p.add_argument("--stage1-lr", type=float, default=2e-3)
    p.add_argument("--stage2-lr", type=float, default=5e-4)
    p.add_argument("--phase-mode", choices=("paper", "wrapped"), default="paper")
    p.add_argument(
        "--stage2-fuse",
        choices=("relation", "all"),
        default="relation",
        help="stage 2 trains only the F'-reading half of W (default: the auto-encoder "
        "path stays the stage-1 one) or all of W",
    )
    p.add_argument("--no-flip", action="store_true", help="no random flips of the crops")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--bcm-config",
        default=None,
        metavar="JSON",
        help="BatchCorrelationModule arguments, e.g. '{\"channels\": 16}'",
    )
    p.add_argument(
        "--stage1-from",
        default=None,
        metavar="FILE",
        help="skip stage 1: take f_e, W, f_d from this BCM file (e.g. another run's "
        "stage1.safetensors); implies --stage1-steps 0",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument(
        "--eval-batches", type=int, default=16, help="held-out batches for the final evaluation"
    )
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run, _command_parser=p)


def run(args: argparse.Namespace) -> int:
    """Runs ``erl pretrain`` and prints the result's paths and measured numbers."""
    import torch

    from erl_losses.pretext import PretextRecipe, default_name, pretrain_bcm

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    stage1_steps = 0 if args.stage1_from else args.stage1_steps
    recipe = PretextRecipe(
        pretext=args.pretext,
        stage1_steps=stage1_steps,
        stage2_steps=args.stage2_steps,
        stage1_batch_size=args.stage1_batch_size,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        stage1_crop_size=args.stage1_crop_size,
        stage1_lr=args.stage1_lr,
        stage2_lr=args.stage2_lr,
        phase_mode=args.phase_mode,
        stage2_fuse=args.stage2_fuse,
        flip=not args.no_flip,
        seed=args.seed,
    )
    name = args.name or default_name(recipe)
    out = args.out or f"runs/{name}"
    try:
        bcm_config = json.loads(args.bcm_config) if args.bcm_config else None
    except json.JSONDecodeError as err:
        raise ValueError(
            f"Expected --bcm-config to be a JSON object, got {args.bcm_config!r}"
        ) from err
    if bcm_config is not None and not isinstance(bcm_config, dict):
        raise ValueError(f"Expected --bcm-config to be a JSON object, got {args.bcm_config!r}")
    command = _command_line(args)
    result = pretrain_bcm(
        recipe,
        out,
        images=args.images,
        max_side=args.max_side,
        bcm_config=bcm_config,
        stage1_from=args.stage1_from,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        name=name,
        version=args.version,
        license=args.license,
        urls=args.urls,
        evaluate=not args.no_eval,
        eval_batches=args.eval_batches,
        command=command,
        progress=not args.no_progress,
        device=args.device,
    )
    print(f"weights:        {result.weights}")
    print(f"manifest entry: {result.manifest_entry}")
    print(f"model card:     {result.card}")
    print(f"log:            {result.log}")
    print(f"time:           {result.total_seconds:.1f} s")
    if result.metrics:
        m = result.metrics
        print(
            f"held-out: recon PSNR {m['recon_psnr_db']} dB (encoder/decoder), "
            f"{m['recon_psnr_db_relation']} dB (through the relation); phase loss {m['phase_loss']} "
            f"vs {m['phase_loss_random_te']} with a random t_e"
        )
    return 0
