"""``erl enhance``: correct the exposure of images that have no ground truth."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``enhance`` sub-command."""
    parser = subparsers.add_parser(
        "enhance",
        help="correct the exposure of images with a trained net",
        description="Runs --net with --weights on each image and writes OUT/<stem>.png.",
    )
    parser.add_argument("images", nargs="+", help="input image files")
    parser.add_argument("--net", required=True, help="net name from erl_losses.archs")
    parser.add_argument("--weights", required=True, help=".safetensors or a .pth state dict")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Loads the net and writes one PNG per input."""
    from erl_losses.evaluation.inference import enhance_images, load_net

    net = load_net(args.net, args.weights, device=args.device)
    for path in enhance_images(net, args.images, args.out):
        print(path)
    return 0
