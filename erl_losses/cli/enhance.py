"""``erl enhance``: correct the exposure of images that have no ground truth."""

from __future__ import annotations

import argparse

from erl_losses.cli._args import existing_file, int_at_least, net_name


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``enhance`` sub-command."""
    parser = subparsers.add_parser(
        "enhance",
        help="correct the exposure of images with a trained net",
        description=(
            "Runs --net with --weights on each image and writes OUT/<stem>.png (8-bit). Photos "
            "are read upright (their EXIF orientation applied) and corrected in overlapping "
            "tiles of --tile px when larger, so memory stays bounded (peak 2.9 GB for ECLNet on a 3504 x 2336 JPEG at the "
            "default 2048 px, CPU) whatever the photo's size; a progress bar counts the tiles. "
            "Refuses an --out where an output would replace one of the inputs. `erl demo` "
            "prints this command for the nets it trained."
        ),
    )
    parser.add_argument("images", nargs="+", help="input image files")
    parser.add_argument(
        "--net", required=True, type=net_name, help="DRBN, DRBN_ENC, ECLNet or FECNet"
    )
    parser.add_argument("--weights", required=True, help=".safetensors or a .pth state dict")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--tile",
        type=int_at_least(0),
        default=2048,
        metavar="PX",
        help="correct images with a side over PX in PX x PX tiles (default 2048; 0: whole "
        "images, which needs about 1-1.5 GB per megapixel on a CPU)",
    )
    parser.add_argument(
        "--overlap",
        type=int_at_least(0),
        default=64,
        metavar="PX",
        help="pixels neighbouring tiles share, blended linearly (default 64)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Loads the net and writes one PNG per input."""
    existing_file(args.weights, "--weights")  # before torch is imported
    tile = args.tile or None
    if tile is not None and args.overlap >= tile:
        raise ValueError(f"Expected --overlap < --tile ({tile}), got {args.overlap}")

    from erl_losses._runtime import resolve_device
    from erl_losses.cli._paths import check_output_dir
    from erl_losses.evaluation.inference import enhance_images, load_net

    out = check_output_dir(args.out, "--out")
    device = resolve_device(args.device)
    net = load_net(args.net, args.weights, device=device)
    paths = enhance_images(
        net,
        args.images,
        out,
        tile=tile,
        overlap=args.overlap,
        progress=not args.no_progress,
    )
    for path in paths:
        print(path)
    return 0
