"""``erl pretrain``: the two-stage pretext training of a batch-correlation module.

The recipe flags are generated from the fields of :class:`erl_losses.pretext.PretextRecipe`
(name, default, help and choices), so the command line and the library cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from typing import Any

from erl_losses.cli._args import int_at_least


def _command_line(args: argparse.Namespace) -> str:
    """The ``erl pretrain`` command equivalent to ``args`` (non-default options only)."""
    parser: argparse.ArgumentParser = args._command_parser
    words = ["erl", "pretrain"]
    for action in parser._actions:  # argparse has no public accessor for the option list
        if not action.option_strings or action.dest in ("help", "func"):
            continue
        value = getattr(args, action.dest, None)
        if value == action.default or (isinstance(value, list) and tuple(value) == action.default):
            continue
        flag = action.option_strings[-1]
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            words.append(flag)
        elif isinstance(action, argparse._AppendAction):
            for item in value:
                words += [flag, str(item)]
        elif isinstance(value, (list, tuple)):
            words += [flag, *(str(item) for item in value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def _add_recipe_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`PretextRecipe` field: ``--stage1-steps``, ``--no-flip``, ..."""
    from erl_losses.pretext.recipe import PretextRecipe

    group = parser.add_argument_group("recipe (erl_losses.pretext.PretextRecipe)")
    for field in dataclasses.fields(PretextRecipe):
        default = field.default
        flag = "--" + field.name.replace("_", "-")
        text = field.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": field.name, "default": default}
        if isinstance(default, bool):
            kwargs["action"] = "store_false" if default else "store_true"
            flag = f"--no-{flag[2:]}" if default else flag
        elif isinstance(default, tuple):
            kwargs.update(nargs=len(default), type=type(default[0]), metavar="X")
        else:
            kwargs["type"] = field.metadata.get("type") or type(default)
        if "choices" in field.metadata:
            kwargs["choices"] = field.metadata["choices"]()
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        plain = isinstance(default, bool) or default is None  # the help says it, or nothing to say
        kwargs["help"] = text if plain else f"{text} (default: {shown})"
        group.add_argument(flag, **kwargs)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``erl pretrain`` to the ``erl`` command line."""
    p = subparsers.add_parser(
        "pretrain",
        help="train a batch-correlation module with the two-stage pretext task (paper sec. 3.2)",
        description=(
            "Stage 1 trains f_e, W and f_d as an auto-encoder (L1) on normal-exposure images; "
            "stage 2 freezes f_e/f_d and trains t_e and W on mini-batches with the pretext loss. "
            "Writes OUT/NAME-vVERSION.safetensors (zoo format), OUT/NAME.manifest.json, "
            "OUT/NAME.md, OUT/log.csv and OUT/checkpoint.safetensors. An OUT holding an earlier "
            "run is refused unless --resume or --overwrite; Ctrl-C saves a checkpoint first."
        ),
    )
    p.add_argument(
        "--images",
        action="append",
        default=None,
        metavar="DIR",
        help="folder of normal-exposure images (e.g. MSEC GT_IMAGES; nested folders are read, "
        "repeatable); default: the pretext-train split of the photos bundled with "
        "scikit-image/-learn/matplotlib",
    )
    p.add_argument(
        "--max-side", type=int_at_least(1), default=None,
        help="area-downscale images whose longer side exceeds this (pixels; 512 for "
        "MSEC/SICE-style training); with a folder, the resized images are cached on disk",
    )  # fmt: skip
    data = p.add_argument_group("data pipeline")
    data.add_argument(
        "--workers", type=int_at_least(0), default=None,
        help="processes that decode images and cut crops (default: one per core but one for a "
        "folder, 0 for the bundled photos); the crops are the same for any number",
    )  # fmt: skip
    data.add_argument(
        "--no-cache", action="store_true",
        help="decode every crop's image again instead of caching the resized images on disk",
    )  # fmt: skip
    data.add_argument(
        "--cache-dir", default=None, metavar="DIR",
        help="the image cache (default $ERL_LOSSES_HOME/images, else "
        "~/.cache/torch/hub/erl-losses/images)",
    )  # fmt: skip
    data.add_argument(
        "--dry-run", action="store_true",
        help="report the files, the decodable count, their sizes and the estimated time per "
        "epoch, then stop (decodes every file once; trains and writes nothing)",
    )  # fmt: skip
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default runs/NAME)")
    p.add_argument("--name", default=None, help="zoo name of the result (default bcm-PRETEXT)")
    p.add_argument("--version", default="1", help="zoo version of the result")
    p.add_argument(
        "--url", action="append", default=[], dest="urls",
        help="download URL to record in the manifest entry (repeatable)",
    )  # fmt: skip
    p.add_argument("--license", default="MIT")
    _add_recipe_flags(p)
    p.add_argument(
        "--bcm-config", default=None, metavar="JSON",
        help="BatchCorrelationModule arguments, e.g. '{\"channels\": 16}'",
    )  # fmt: skip
    p.add_argument(
        "--stage1-from", default=None, metavar="FILE",
        help="skip stage 1: take f_e, W, f_d from this BCM file (e.g. another run's "
        "stage1.safetensors); implies --stage1-steps 0",
    )  # fmt: skip
    runs = p.add_mutually_exclusive_group()
    runs.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoint.safetensors"
    )
    runs.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the files an earlier run left in OUT that this run writes",
    )
    p.add_argument("--checkpoint-every", type=int_at_least(1), default=200)
    p.add_argument("--log-every", type=int_at_least(1), default=10)
    p.add_argument(
        "--eval-batches",
        type=int_at_least(1),
        default=16,
        help="held-out batches for the final evaluation",
    )
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    p.add_argument("--threads", type=int_at_least(1), default=None, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run, _command_parser=p)


def _recipe(args: argparse.Namespace) -> Any:
    from erl_losses.pretext.recipe import PretextRecipe

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(PretextRecipe)}
    if args.stage1_from:
        values["stage1_steps"] = 0
    return PretextRecipe(**values)


def _bcm_config(text: str | None) -> dict[str, Any] | None:
    try:
        config = json.loads(text) if text else None
    except json.JSONDecodeError as err:
        raise ValueError(f"Expected --bcm-config to be a JSON object, got {text!r}") from err
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"Expected --bcm-config to be a JSON object, got {text!r}")
    return config


def run(args: argparse.Namespace) -> int:
    """Runs ``erl pretrain`` and prints the result's paths and measured numbers."""
    from erl_losses.pretext.recipe import default_name
    from erl_losses.pretext.rundir import check_output_name

    # names first: they become file names, and a bad one must stop the run before any work
    recipe = _recipe(args)
    name = check_output_name(args.name or default_name(recipe), "--name")
    check_output_name(args.version, "--version")
    out = args.out or f"runs/{name}"
    bcm_config = _bcm_config(args.bcm_config)

    import torch

    from erl_losses.pretext.trainer import pretrain_bcm

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.dry_run:
        return _dry_run(args, recipe, bcm_config)
    try:
        result = pretrain_bcm(
            recipe, out, images=args.images, max_side=args.max_side, workers=args.workers,
            cache=not args.no_cache, cache_dir=args.cache_dir, bcm_config=bcm_config,
            stage1_from=args.stage1_from, resume=args.resume, overwrite=args.overwrite,
            checkpoint_every=args.checkpoint_every, log_every=args.log_every, name=name,
            version=args.version, license=args.license, urls=args.urls,
            evaluate=not args.no_eval, eval_batches=args.eval_batches,
            command=_command_line(args), progress=not args.no_progress, device=args.device,
        )  # fmt: skip
    except KeyboardInterrupt as err:
        if str(err):  # the trainer says where the checkpoint is
            print(f"erl pretrain: {err}", file=sys.stderr)
        raise
    print(f"weights:        {result.weights}")
    print(f"manifest entry: {result.manifest_entry}")
    print(f"model card:     {result.card}")
    print(f"log:            {result.log}")
    print(f"time:           {result.total_seconds:.1f} s")
    if result.skipped:
        print(f"skipped:        {len(result.skipped)} undecodable image files (named above)")
    if result.metrics:
        m = result.metrics
        print(
            f"held-out: recon PSNR {m['recon_psnr_db']} dB (encoder/decoder), "
            f"{m['recon_psnr_db_relation']} dB (through the relation); phase loss {m['phase_loss']} "
            f"vs {m['phase_loss_random_te']} with a random t_e"
        )
    return 0


def _dry_run(args: argparse.Namespace, recipe: Any, bcm_config: dict[str, Any] | None) -> int:
    """``--dry-run``: the data and the time per epoch, before any training."""
    from erl_losses.pretext.dryrun import estimate_run, format_estimate

    estimate = estimate_run(
        recipe, images=args.images, max_side=args.max_side, bcm_config=bcm_config,
        workers=args.workers, cache=not args.no_cache, cache_dir=args.cache_dir,
        device=args.device, progress=not args.no_progress,
    )  # fmt: skip
    print(format_estimate(estimate, recipe))
    return 0
