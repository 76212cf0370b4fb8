"""``erl demo``: train a reference net with and without ERL on a synthetic set and compare."""

from __future__ import annotations

import argparse

from erl_losses.cli._args import int_at_least


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo",
        help="train a reference net with and without ERL on a synthetic set; table and plots",
        description=(
            "Renders a small MSEC-like set from photos bundled in installed packages (no network; "
            "test photos held out by photo; inputs from an emulated camera, GT an emulated expert "
            "retouch), trains a reference net twice with identical seeds and iterations -- L1 "
            "alone and L1 + 0.1 * relation with the zoo's default BCM -- on mixed-exposure "
            "batches, evaluates an EMA of each net's weights with the MSEC protocol and prints "
            "the Under/Over/Average PSNR and SSIM table next to the uncorrected input. Writes "
            "results.json, table.md, curves.png (held-out PSNR vs iteration), grid.png (input / "
            "baseline / ERL / GT per exposure level) and attention.png (the BCM's batch "
            "attention) into --out. Under 10 minutes on a 2-core CPU (--quick: under 3), "
            "seconds on a GPU."
        ),
    )
    parser.add_argument(
        "--out", default="erl-demo", metavar="DIR", help="output folder (default: ./erl-demo)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller set and fewer steps (about 90 s of CPU time)"
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="where to train (default: cuda when available, else cpu)",
    )
    parser.add_argument(
        "--steps",
        type=int_at_least(1),
        default=None,
        metavar="N",
        help="optimiser steps per run (default: 800, --quick: 300)",
    )
    parser.add_argument(
        "--net",
        choices=("eclnet", "fecnet"),
        default="eclnet",
        help="reference net (default: eclnet, the fastest; fecnet is ~4x slower on a CPU)",
    )
    parser.add_argument(
        "--bcm",
        default=None,
        metavar="NAME_OR_PATH",
        help="BCM of the relation term: a zoo name or a .safetensors file (default: the zoo's "
        "default BCM)",
    )
    parser.add_argument(
        "--seed", type=int_at_least(0), default=0, help="seed of data, init and batches"
    )
    parser.add_argument(
        "--threads",
        type=int_at_least(1),
        default=None,
        metavar="N",
        help="torch CPU threads (default: 1, the fastest for these small nets on a busy machine)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs :func:`erl_losses.demo.run_demo`; it prints the table and the files written."""
    from erl_losses.demo import run_demo

    run_demo(
        args.out,
        quick=args.quick,
        device=args.device,
        seed=args.seed,
        net=args.net,
        steps=args.steps,
        bcm=args.bcm,
        threads=args.threads,
        progress=not args.no_progress,
    )
    return 0
