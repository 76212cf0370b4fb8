"""``erl enhance``: correct the exposure of images that have no ground truth."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``enhance`` sub-command."""
    parser = subparsers.add_parser(
        "enhance",
        help="correct the exposure of images with a trained net",
        description=(
            "Runs --net with --weights on each image and writes OUT/<stem>.png (8-bit). Refuses "
            "an --out where an output would replace one of the inputs."
        ),
    )
    parser.add_argument("images", nargs="+", help="input image files")
    parser.add_argument("--net", required=True, help="net name from erl_losses.archs")
    parser.add_argument("--weights", required=True, help=".safetensors or a .pth state dict")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Loads the net and writes one PNG per input."""
    from erl_losses._runtime import resolve_device
    from erl_losses.cli._paths import check_output_dir
    from erl_losses.evaluation.inference import enhance_images, load_net

    out = check_output_dir(args.out, "--out")
    device = resolve_device(args.device)
    net = load_net(args.net, args.weights, device=device)
    for path in enhance_images(net, args.images, out):
        print(path)
    return 0
