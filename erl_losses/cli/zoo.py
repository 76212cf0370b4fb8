"""``erl zoo list | fetch NAME | verify [NAME|PATH] | publish NAME --repo OWNER/REPO``: the
pretrained-BCM zoo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``erl zoo`` to the ``erl`` command line."""
    p = subparsers.add_parser(
        "zoo",
        help="list, fetch and verify pretrained batch-correlation modules",
        description=(
            "The pretrained-BCM zoo. Files resolve to the package, then the cache "
            "(ERL_LOSSES_HOME, default TORCH_HOME/hub/erl-losses), then a sha256-verified download "
            "(ERL_LOSSES_MIRROR, manifest URLs); ERL_LOSSES_OFFLINE=1 forbids the network."
        ),
    )
    sub = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    p_list = sub.add_parser(
        "list",
        help="the known BCMs, where they are, and their numbers",
        description=(
            "Columns: name and ver(sion) of the manifest entry; size of the weights file; where: "
            "shipped (inside the package), cached (downloaded into the cache) or remote (a "
            "download away); recon PSNR: the stage-1 encoder/decoder's reconstruction PSNR on "
            "held-out crops of photos no BCM saw (higher is better; BCMs that share one stage 1 "
            "show the same value); phase/rand: the phase pretext loss L_pre of the trained t_e "
            "on held-out batches / of a seeded random t_e (lower is better: how much stage 2 "
            "learned). The model cards (zoo/cards/) say what each BCM was trained on."
        ),
    )
    p_list.add_argument("--json", action="store_true", help="print the manifest entries as JSON")
    p_fetch = sub.add_parser("fetch", help="make a BCM available locally and print its path")
    p_fetch.add_argument("name", nargs="?", default=None, help="zoo name (default: the default)")
    p_fetch.add_argument("--force", action="store_true", help="download again into the cache")
    p_verify = sub.add_parser("verify", help="check local files against the manifest's sha256")
    p_verify.add_argument(
        "target",
        nargs="?",
        default=None,
        metavar="NAME|PATH",
        help="a zoo name or a .safetensors path (default: every entry)",
    )
    from erl_losses.zoo import publish

    publish.add_arguments(
        sub.add_parser("publish", help="write (and upload) a Hugging Face Hub model repo folder")
    )
    p.set_defaults(func=run, _zoo_parser=p)


def run(args: argparse.Namespace) -> int:
    """Runs one ``erl zoo`` action; returns the exit code (1 when a check fails)."""
    from erl_losses import zoo

    action = args.zoo_command
    if action is None:
        args._zoo_parser.print_help()
        return 0
    if action == "list":
        return _list(zoo, as_json=args.json)
    if action == "publish":
        from erl_losses.zoo import publish

        return publish.run(args)
    if action == "fetch":
        try:
            path = zoo.fetch(args.name, force=args.force)
        except zoo.ZooError as err:
            # ChecksumError/UnknownModelError are ValueErrors: the erl main prints them; the
            # download errors are OSErrors, printed here.
            if isinstance(err, ValueError):
                raise
            print(f"erl zoo fetch: error: {err}", file=sys.stderr)
            return 1
        print(path)
        return 0
    results = zoo.verify(args.target, load_check=_loadable_bcm)
    failed = 0
    for result in results:
        failed += not result.ok
        label = result.name or "-"
        where = str(result.path) if result.path else "-"
        print(f"{result.status:18} {label:22} {where}\n{'':18} {result.message}")
        if result.sha256 is not None:
            print(f"{'':18} sha256 {result.sha256}")
    missing_only = all(r.status == "missing" for r in results if not r.ok)
    if args.target is None and missing_only:
        return 0  # listing everything: entries that are only downloadable are not failures
    return 1 if failed else 0


def _loadable_bcm(path: Path) -> str:
    """How ``erl zoo verify FILE`` checks a file that matches no zoo entry: it must load."""
    from erl_losses.modules.bcm_io import load_bcm  # torch, only for such a file

    return f"a loadable BCM ({load_bcm(path).config})"


def _list(zoo, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    specs = zoo.load_manifest().specs
    default = zoo.default_name() if specs else None
    if as_json:
        print(json.dumps([s.to_dict() for s in specs], indent=2))
        return 0
    if not specs:
        print("The zoo is empty.")
        return 0
    print(f"{'name':22} {'ver':4} {'size':>8}  {'where':8} {'recon PSNR':>10} {'phase/rand':>12}")
    for spec in specs:
        path = zoo.default_zoo().locate(spec.name)
        if path is None:
            where = "remote"
        elif path.parent == zoo.MANIFEST.parent:
            where = "shipped"
        else:
            where = "cached"
        m = spec.metrics
        psnr = f"{m['recon_psnr_db']:.2f} dB" if "recon_psnr_db" in m else "-"
        phase = (
            f"{m['phase_loss']:.3f}/{m['phase_loss_random_te']:.3f}"
            if "phase_loss" in m and "phase_loss_random_te" in m
            else "-"
        )
        mark = " (default)" if spec.name == default else ""
        print(
            f"{spec.name:22} {spec.version:4} {_megabytes(spec.size):>8}  {where:8} {psnr:>10} "
            f"{phase:>12}{mark}"
        )
    print(f"cache: {zoo.home_dir() / 'zoo'}")
    return 0


def _megabytes(size: int) -> str:
    """``size`` bytes as ``"5.47MB"``, in integer arithmetic (any int, no float overflow)."""
    hundredths = (size + 5_000) // 10_000
    return f"{hundredths // 100}.{hundredths % 100:02d}MB"
