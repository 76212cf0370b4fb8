"""``erl probe [BCM]``: does a BCM's relation term relate samples? (:mod:`erl_losses.diagnostics`)"""

from __future__ import annotations

import argparse
import json

from erl_losses.cli._args import int_at_least


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``erl probe`` to the ``erl`` command line."""
    p = subparsers.add_parser(
        "probe",
        help="relational index, attention entropy and cross-sample gradient share of a BCM",
        description=(
            "Measures a BCM with its loss variant on held-out crops (chelsea, coffee, china): "
            "the relational index R (> 0: inconsistent +-d EV errors in a batch cost more than "
            "consistent ones; 0 for any per-sample loss), the batch-attention entropy on "
            "mixed-exposure batches as a fraction of uniform (1: uniform attention), and the "
            "share of each sample's gradient that arrives through the other samples."
        ),
    )
    p.add_argument(
        "bcm",
        nargs="?",
        default=None,
        metavar="BCM",
        help="a zoo name or a .safetensors path (default: the zoo default)",
    )
    p.add_argument(
        "--variant",
        choices=("paper", "centred"),
        default=None,
        help="loss variant (default: the one the zoo entry records; 'paper' for a path)",
    )
    p.add_argument(
        "--crops", type=int_at_least(1), default=48, help="number of held-out crops (default 48)"
    )
    p.add_argument(
        "--crop-size", type=int_at_least(1), default=128, help="crop side in pixels (default 128)"
    )
    p.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the crops (default 0)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Prints the diagnostics of one BCM; returns 0."""
    import torch

    from erl_losses import SampleRelationLoss
    from erl_losses.diagnostics import held_out_crops, probe

    torch.manual_seed(args.seed)
    loss = SampleRelationLoss.from_pretrained(args.bcm, variant=args.variant)
    crops = held_out_crops(args.crops, args.crop_size, seed=args.seed)
    result = probe(loss, crops=crops)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    name = args.bcm or "zoo default"
    print(f"BCM: {name}   loss variant: {result.variant}")
    print(
        f"held-out crops: {result.num_crops} x {result.crop_size} px, batches of "
        f"{result.batch_size}, errors +-{', '.join(str(d) for d in result.ev_errors)} EV"
    )
    print(
        f"relational index R            {result.relational_index:+.4f}"
        "   (> 0: inconsistent errors cost more)"
    )
    print(
        f"attention entropy / uniform   {result.attention_entropy_fraction:.4f}"
        "   (1: uniform attention)"
    )
    print(
        f"cross-sample gradient share   {result.cross_sample_gradient_share:.4f}"
        "   (0: a per-sample loss)"
    )
    return 0
