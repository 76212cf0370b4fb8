"""Quality benchmark: ERL vs an L1 baseline on the synthetic exposure set, several seeds.

Sections (``--sections``, all by default):

* ``main``: ECLNet and FECNet, each trained with ``L1`` and with ``L1 + 0.1 * relation`` (the
  zoo's default BCM), same seeds, batches and iterations (paired runs); Under / Over / Average
  PSNR and SSIM with the MSEC protocol on the held-out photos, mean, spread over seeds, and the
  paired ERL - baseline difference.
* ``ablation``: the paper's table 2 on ECLNet: BCM without pretext task (random ``t_e``), with
  the L1 pretext and with the phase pretext (eq. 3).
* ``batch``: the paper's fig. 9(b) on ECLNet: batch size 2, 4, 8, baseline and ERL.
* ``alpha``: the paper's fig. 9(a) on ECLNet: relation weight 0.01, 0.1 and 1.0 -- the
  hypothesis checked when ERL does not help (is 0.1 the right weight at this scale?).

BCMs come from the zoo when it ships them (``bcm-phase-photos``, ``bcm-l1-photos``,
``bcm-none-photos``, or the manifest's default for phase); a missing one is trained here with
:func:`erl_losses.pretext.pretrain_bcm` on the pretext-train photos (never the held-out test
photos) and the JSON / markdown say so.

Runs are independent jobs spread over worker processes (``--workers``; on CUDA several processes
share the GPU, since these small nets are launch-bound). The data is rendered once into a
temporary folder. Results: ``--out`` (JSON with every run) and the ``## Quality`` section of
``benchmarks/RESULTS.md`` (only the block of this mode, full or quick, is replaced).

Examples::

    python benchmarks/quality.py --device cuda --out benchmarks/results/quality.json
    python benchmarks/quality.py --quick --out benchmarks/results/quality-quick.json   # CPU
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import contextlib
import json
import math
import multiprocessing
import os
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
SECTIONS = ("main", "ablation", "batch", "alpha")
GROUPS = ("Under", "Over", "Average")
#: Table-2 variants: label -> (zoo name, pretext objective).
BCM_VARIANTS: dict[str, tuple[str, str]] = {
    "none": ("bcm-none-photos", "none"),
    "l1": ("bcm-l1-photos", "l1"),
    "phase": ("bcm-phase-photos", "phase"),
}


def _bootstrap_imports() -> None:
    """Makes ``erl_losses`` (and its ``erl_losses.zoo`` folder, mapped from ``zoo/`` by
    pyproject) importable from a plain checkout, e.g. on a machine where the package is not
    installed."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import importlib.util

    import erl_losses

    try:
        import erl_losses.zoo
    except ModuleNotFoundError:
        spec = importlib.util.spec_from_file_location(
            "erl_losses.zoo",
            ROOT / "zoo" / "__init__.py",
            submodule_search_locations=[str(ROOT / "zoo")],
        )
        if spec is None or spec.loader is None:
            raise
        module = importlib.util.module_from_spec(spec)
        sys.modules["erl_losses.zoo"] = module
        spec.loader.exec_module(module)
        erl_losses.zoo = module  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """One benchmark mode: data sizes, training length, seeds and the pretext fallback."""

    steps: int
    crop_size: int
    render_size: int
    train_crops: int
    test_crops: int
    seeds: int
    lr: float = 2e-3
    curve_points: int = 8
    pretext_stage1_steps: int = 1500
    pretext_stage2_steps: int = 600
    pretext_crop: int = 64


FULL = Settings(steps=1200, crop_size=96, render_size=128, train_crops=12, test_crops=4, seeds=3)
QUICK = Settings(
    steps=100,
    crop_size=48,
    render_size=96,
    train_crops=3,
    test_crops=1,
    seeds=3,
    curve_points=4,
    pretext_stage1_steps=150,
    pretext_stage2_steps=60,
    pretext_crop=48,
)


@dataclass(frozen=True)
class Job:
    """One training run; ``bcm`` is a variant of :data:`BCM_VARIANTS` or ``None`` (baseline)."""

    net: str
    bcm: str | None
    batch_size: int
    alpha: float
    seed: int

    @property
    def key(self) -> str:
        bcm = self.bcm or "baseline"
        return f"{self.net}|{bcm}|b{self.batch_size}|a{self.alpha:g}|s{self.seed}"


def plan_jobs(sections: list[str], seeds: int) -> list[Job]:
    """Every distinct run the sections need (shared runs appear once)."""
    jobs: dict[str, Job] = {}

    def add(net: str, bcm: str | None, batch: int = 4, alpha: float = 0.1) -> None:
        for seed in range(seeds):
            job = Job(net, bcm, batch, alpha if bcm else 0.0, seed)
            jobs.setdefault(job.key, job)

    if "main" in sections:
        for net in ("ECLNet", "FECNet"):
            add(net, None)
            add(net, "phase")
    if "ablation" in sections:
        add("ECLNet", None)
        for variant in BCM_VARIANTS:
            add("ECLNet", variant)
    if "batch" in sections:
        for batch in (2, 4, 8):
            add("ECLNet", None, batch)
            add("ECLNet", "phase", batch)
    if "alpha" in sections:
        add("ECLNet", None)
        for alpha in (0.01, 0.1, 1.0):
            add("ECLNet", "phase", alpha=alpha)
    # FECNet runs are the slowest: start them first so the pool ends evenly.
    return sorted(jobs.values(), key=lambda j: (j.net != "FECNet", j.batch_size != 8, j.key))


# ---------------------------------------------------------------------------------------------
# BCMs: from the zoo, else trained here
# ---------------------------------------------------------------------------------------------
def resolve_bcms(
    variants: list[str], settings: Settings, device: str, work: Path, progress: bool
) -> dict[str, dict[str, Any]]:
    """``{variant: {"path", "source", ...}}``; trains the variants the zoo does not ship."""
    from erl_losses import zoo

    out: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for variant in variants:
        name = BCM_VARIANTS[variant][0]
        candidates = [name]
        if variant == "phase":
            with contextlib.suppress(zoo.ZooError):
                candidates.append(zoo.default_name())
        for candidate in candidates:
            if candidate not in zoo.names():
                continue
            try:
                path = zoo.fetch(candidate)
            except (zoo.ZooError, OSError):
                continue
            spec = zoo.get_spec(candidate)
            out[variant] = {
                "path": str(path),
                "source": f"zoo {candidate} v{spec.version} (sha256 {spec.sha256[:12]})",
                "zoo_name": candidate,
            }
            break
        else:
            missing.append(variant)
    if missing:
        from erl_losses.pretext import PretextRecipe, pretrain_bcm

        print(
            f"quality: the zoo ships no {', '.join(missing)} BCM here; training "
            f"{'them' if len(missing) > 1 else 'it'} with erl_losses.pretext "
            f"(stage 1 {settings.pretext_stage1_steps} steps, stage 2 "
            f"{settings.pretext_stage2_steps} steps, crops {settings.pretext_crop} px, "
            "pretext-train photos only)",
            flush=True,
        )
        started = time.perf_counter()
        stage1 = work / "bcm-stage1"
        base = pretrain_bcm(
            PretextRecipe(
                pretext="none",
                stage1_steps=settings.pretext_stage1_steps,
                crop_size=settings.pretext_crop,
            ),
            stage1,
            name="bcm-none-here",
            evaluate=False,
            progress=progress,
            device=device,
        )
        for variant in missing:
            recipe_note = (
                f"trained here: stage 1 {settings.pretext_stage1_steps} steps (L1 auto-encoder)"
            )
            if variant == "none":
                path = base.weights
                recipe_note += ", stage 2 skipped (random t_e)"
            else:
                result = pretrain_bcm(
                    PretextRecipe(
                        pretext=BCM_VARIANTS[variant][1],
                        stage1_steps=0,
                        stage2_steps=settings.pretext_stage2_steps,
                        crop_size=settings.pretext_crop,
                    ),
                    work / f"bcm-{variant}",
                    stage1_from=stage1 / "stage1.safetensors",
                    name=f"bcm-{variant}-here",
                    evaluate=False,
                    progress=progress,
                    device=device,
                )
                path = result.weights
                recipe_note += f", stage 2 {settings.pretext_stage2_steps} steps of {variant}"
            out[variant] = {
                "path": str(path),
                "source": recipe_note + " (erl_losses.pretext, pretext-train photos)",
                "zoo_name": None,
            }
        print(f"quality: BCMs trained in {time.perf_counter() - started:.0f} s", flush=True)
    return out


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------
_STATE: dict[str, Any] = {}


def _init_worker(data_dir: str, device: str, bcm_paths: dict[str, str], settings: dict) -> None:
    _bootstrap_imports()
    import torch

    from erl_losses.data import PairBank

    torch.set_num_threads(1)
    _STATE.update(
        device=torch.device(device),
        train=PairBank.from_msec(data_dir, "train", device),
        test=PairBank.from_msec(data_dir, "test", device),
        bcm_paths=bcm_paths,
        settings=Settings(**settings),
        relations={},
    )
    _STATE["curve"] = _STATE["test"].center_crops(_STATE["settings"].crop_size)


def _relation(variant: str) -> Any:
    from erl_losses import SampleRelationLoss

    cache = _STATE["relations"]
    if variant not in cache:
        cache[variant] = SampleRelationLoss(_STATE["bcm_paths"][variant]).to(_STATE["device"])
    return cache[variant]


def _run_job(job: Job) -> dict[str, Any]:
    from erl_losses.evaluation import evaluate_bank
    from erl_losses.training import train_net

    settings: Settings = _STATE["settings"]
    result = train_net(
        job.net,
        _STATE["train"],
        steps=settings.steps,
        batch_size=job.batch_size,
        crop_size=settings.crop_size,
        lr=settings.lr,
        relation=_relation(job.bcm) if job.bcm else None,
        alpha=job.alpha,
        seed=job.seed,
        curve_set=_STATE["curve"],
        curve_points=settings.curve_points,
        progress=False,
    )
    report = evaluate_bank(result.net, _STATE["test"], job.key)
    groups = {row: {"psnr": s.psnr, "ssim": s.ssim} for row, s in report.by_group().items()}
    levels = {row: {"psnr": s.psnr, "ssim": s.ssim} for row, s in report.by_level().items()}
    return {
        **asdict(job),
        "key": job.key,
        "groups": groups,
        "levels": levels,
        "curve": result.curve,
        "final_l1": result.losses[-1]["l1"] if result.losses else None,
        "final_relation": result.losses[-1]["relation"] if result.losses else None,
        "seconds": result.seconds,
    }


# ---------------------------------------------------------------------------------------------
# Statistics and tables
# ---------------------------------------------------------------------------------------------
def _stats(values: list[float]) -> dict[str, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return {"mean": mean, "std": std, "min": min(values), "max": max(values), "n": n}


def _select(
    runs: list[dict], net: str, bcm: str | None, batch: int = 4, alpha: float = 0.1
) -> dict[int, dict]:
    alpha = alpha if bcm else 0.0
    return {
        r["seed"]: r
        for r in runs
        if r["net"] == net
        and r["bcm"] == bcm
        and r["batch_size"] == batch
        and math.isclose(r["alpha"], alpha)
    }


def compare(
    runs: list[dict], net: str, bcm: str, batch: int = 4, alpha: float = 0.1
) -> dict[str, Any]:
    """Baseline vs ERL for one configuration: per-group stats of both and of the paired
    (same-seed) differences, and in how many seeds ERL had the higher Average PSNR."""
    base = _select(runs, net, None, batch)
    erl = _select(runs, net, bcm, batch, alpha)
    seeds = sorted(set(base) & set(erl))
    if not seeds:
        raise ValueError(f"Expected paired runs for {net} {bcm} b{batch} a{alpha}, got none")
    out: dict[str, Any] = {"seeds": seeds, "baseline": {}, "erl": {}, "delta": {}}
    for g in GROUPS:
        for metric in ("psnr", "ssim"):
            b = [base[s]["groups"][g][metric] for s in seeds]
            e = [erl[s]["groups"][g][metric] for s in seeds]
            out["baseline"].setdefault(g, {})[metric] = _stats(b)
            out["erl"].setdefault(g, {})[metric] = _stats(e)
            out["delta"].setdefault(g, {})[metric] = _stats(
                [y - x for x, y in zip(b, e, strict=True)]
            )
    out["erl_wins"] = sum(
        erl[s]["groups"]["Average"]["psnr"] > base[s]["groups"]["Average"]["psnr"] for s in seeds
    )
    return out


def _pm(stat: dict[str, float], digits: int, sign: bool = False) -> str:
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    spread = "" if math.isnan(stat["std"]) else f" ± {stat['std']:.{digits}f}"
    return fmt.format(stat["mean"]) + spread


def _row(label: str, block: dict[str, Any], sign: bool = False) -> str:
    cells = [f"{_pm(block[g]['psnr'], 2, sign)} | {_pm(block[g]['ssim'], 4, sign)}" for g in GROUPS]
    return f"| {label} | " + " | ".join(cells) + " |"


def _verdict(cmp: dict[str, Any]) -> str:
    """Average-PSNR difference against its standard error (paired over seeds)."""
    d = cmp["delta"]["Average"]["psnr"]
    n = d["n"]
    if n < 2 or math.isnan(d["std"]) or d["std"] == 0:
        return f"{d['mean']:+.2f} dB"
    t = d["mean"] / (d["std"] / math.sqrt(n))
    word = "better" if t > 2 else "worse" if t < -2 else "within noise"
    return f"{d['mean']:+.2f} dB, t = {t:+.1f} over {n} seeds: {word}"


def build_tables(runs: list[dict], sections: list[str]) -> dict[str, Any]:
    """All comparisons the sections define."""
    tables: dict[str, Any] = {}
    if "main" in sections:
        tables["main"] = {net: compare(runs, net, "phase") for net in ("ECLNet", "FECNet")}
    if "ablation" in sections:
        tables["ablation"] = {v: compare(runs, "ECLNet", v) for v in BCM_VARIANTS}
    if "batch" in sections:
        tables["batch"] = {str(b): compare(runs, "ECLNet", "phase", b) for b in (2, 4, 8)}
    if "alpha" in sections:
        tables["alpha"] = {
            f"{a:g}": compare(runs, "ECLNet", "phase", alpha=a) for a in (0.01, 0.1, 1.0)
        }
    return tables


def render_markdown(result: dict[str, Any]) -> str:
    """The markdown block of one mode (full or quick) for the ``## Quality`` section."""
    s = result["settings"]
    t = result["tables"]
    head = "| Method | " + " | ".join(f"{g} PSNR | {g} SSIM" for g in GROUPS) + " |"
    rule = "|---" * (1 + 2 * len(GROUPS)) + "|"
    lines = [
        f"### {'Quick CPU check' if result['quick'] else 'Full run'} ({result['date']})",
        "",
        f"- machine: {result['machine']}; torch {result['torch']}",
        f"- command: `{result['command']}`",
        f"- wall time: {result['seconds']['total']:.0f} s ({len(result['runs'])} training runs, "
        f"{result['workers']} worker processes)",
        f"- data: synthetic MSEC-like set rendered from the bundled photos, {result['data']['train_images']} "
        f"training pairs ({', '.join(result['data']['train_photos'])}), "
        f"{result['data']['test_images']} held-out test images "
        f"({', '.join(result['data']['test_photos'])}) at {s['render_size']} px, 5 exposure levels; "
        "evaluated with the MSEC protocol (Under = N1.5 + N1, Over = 0 + P1 + P1.5)",
        f"- training: {s['steps']} Adam steps per run, random {s['crop_size']} px crops + flips, "
        f"peak lr {s['lr']:g} (warm-up + cosine), batches from MixedExposureBatchSampler "
        "(every batch mixes under and over), loss L1 (baseline) or L1 + alpha * relation (ERL); "
        "the two runs of a seed share initial weights and batches",
        "- BCMs: " + "; ".join(f"{k}: {v['source']}" for k, v in result["bcms"].items()),
        "- cells: mean ± sample standard deviation over seeds; Δ rows are the paired "
        "(same-seed) ERL - baseline differences; t = mean Δ / standard error",
        "",
    ]
    if "main" in t:
        lines += ["**ERL vs baseline** (table-1 layout, alpha 0.1, batch 4, phase-pretext BCM)", ""]
        lines += [head, rule]
        for net, cmp in t["main"].items():
            lines.append(_row(f"{net} (L1)", cmp["baseline"]))
            lines.append(_row(f"{net}+ERL", cmp["erl"]))
            lines.append(_row(f"Δ {net}", cmp["delta"], sign=True))
        lines.append("")
        for net, cmp in t["main"].items():
            lines.append(
                f"- {net}: Average PSNR Δ {_verdict(cmp)}; ERL higher in {cmp['erl_wins']} of "
                f"{len(cmp['seeds'])} seeds"
            )
        lines.append("")
    if "ablation" in t:
        lines += [
            "**Table-2 ablation** (ECLNet, batch 4, alpha 0.1)",
            "",
            "| BCM | Average PSNR | Average SSIM | Δ PSNR vs baseline | Δ SSIM | ERL higher in |",
            "|---|---|---|---|---|---|",
        ]
        first = next(iter(t["ablation"].values()))
        avg = first["baseline"]["Average"]
        lines.append(f"| baseline (L1) | {_pm(avg['psnr'], 2)} | {_pm(avg['ssim'], 4)} | | | |")
        names = {
            "none": "w/o pretext (random t_e)",
            "l1": "L1 pretext",
            "phase": "phase pretext (eq. 3)",
        }
        for variant, cmp in t["ablation"].items():
            e, d = cmp["erl"]["Average"], cmp["delta"]["Average"]
            lines.append(
                f"| {names[variant]} | {_pm(e['psnr'], 2)} | {_pm(e['ssim'], 4)} | "
                f"{_pm(d['psnr'], 2, True)} | {_pm(d['ssim'], 4, True)} | "
                f"{cmp['erl_wins']}/{len(cmp['seeds'])} |"
            )
        lines.append("")
    for key, title, label in (
        ("batch", "**Batch size** (fig. 9b; ECLNet, phase BCM, alpha 0.1)", "batch"),
        ("alpha", "**Relation weight alpha** (fig. 9a; ECLNet, phase BCM, batch 4)", "alpha"),
    ):
        if key not in t:
            continue
        lines += [
            title,
            "",
            f"| {label} | baseline Avg PSNR | ERL Avg PSNR | Δ PSNR | Δ SSIM | ERL higher in |",
            "|---|---|---|---|---|---|",
        ]
        for value, cmp in t[key].items():
            b, e, d = (cmp[k]["Average"] for k in ("baseline", "erl", "delta"))
            lines.append(
                f"| {value} | {_pm(b['psnr'], 2)} | {_pm(e['psnr'], 2)} | {_pm(d['psnr'], 2, True)} "
                f"| {_pm(d['ssim'], 4, True)} | {cmp['erl_wins']}/{len(cmp['seeds'])} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_results_md(path: Path, block: str, quick: bool) -> None:
    """Inserts or replaces this mode's block inside the ``## Quality`` section of ``path``;
    every other section and the other mode's block are kept."""
    tag = "quick" if quick else "full"
    start, end = f"<!-- quality:{tag} -->", f"<!-- /quality:{tag} -->"
    wrapped = f"{start}\n{block}{end}\n"
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    lines = text.splitlines(keepends=True)
    heading = next((i for i, line in enumerate(lines) if line.strip() == "## Quality"), None)
    if heading is None:
        intro = (
            "## Quality\n\nWritten by `benchmarks/quality.py` (ERL vs baseline on the synthetic "
            "set; see docs/demo.md). Figures come from the JSON files in `benchmarks/results/`.\n\n"
        )
        text = text.rstrip("\n") + "\n\n" + intro + wrapped
    else:
        stop = next(
            (i for i in range(heading + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        section = "".join(lines[heading:stop])
        if start in section and end in section:
            before, rest = section.split(start, 1)
            after = rest.split(end, 1)[1].lstrip("\n")
            section = before + wrapped + ("\n" + after if after else "")
        else:
            section = section.rstrip("\n") + "\n\n" + wrapped
        if stop < len(lines):
            section = section.rstrip("\n") + "\n\n"
        text = "".join(lines[:heading]) + section + "".join(lines[stop:])
    path.write_text(text)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available"
    )
    parser.add_argument("--quick", action="store_true", help="small CPU-sized run (a few minutes)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output (default benchmarks/results/quality[-quick].json)",
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="seeds per configuration (>= 3 recommended)"
    )
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per run")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: cores, <= 12 on CUDA)"
    )
    parser.add_argument(
        "--md", type=Path, default=RESULTS_MD, help="markdown file with the ## Quality section"
    )
    parser.add_argument("--no-md", action="store_true", help="do not touch the markdown file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--render-only",
        type=Path,
        default=None,
        metavar="JSON",
        help="re-render the markdown of an earlier run's JSON (e.g. one made on a GPU machine) "
        "into --md; trains nothing",
    )
    args = parser.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or not sections:
        parser.error(f"Expected --sections from {list(SECTIONS)}, got {args.sections!r}")
    args.sections = sections
    for name in ("seeds", "steps", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"Expected --{name} >= 1, got {value}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only is not None:
        result = json.loads(args.render_only.read_text())
        block = render_markdown(result)
        print(block)
        write_results_md(args.md, block, bool(result["quick"]))
        print(f"quality: wrote the ## Quality section of {args.md} from {args.render_only}")
        return 0
    _bootstrap_imports()
    import torch
    from tqdm.auto import tqdm

    from erl_losses._runtime import machine_description, resolve_device
    from erl_losses.data import PairBank, render_dataset

    device = str(resolve_device(args.device))
    settings = QUICK if args.quick else FULL
    overrides = {k: v for k, v in (("seeds", args.seeds), ("steps", args.steps)) if v is not None}
    settings = Settings(**{**asdict(settings), **overrides})
    out = (
        args.out
        or ROOT / "benchmarks" / "results" / f"quality{'-quick' if args.quick else ''}.json"
    )
    cores = os.cpu_count() or 1
    workers = args.workers or (min(12, cores) if device.startswith("cuda") else cores)
    jobs = plan_jobs(args.sections, settings.seeds)
    workers = min(workers, len(jobs))
    started = time.perf_counter()
    torch.set_num_threads(1 if device == "cpu" else min(4, cores))
    print(
        f"quality: {len(jobs)} runs of {settings.steps} steps on {device}, {workers} workers, "
        f"sections {','.join(args.sections)}",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="erl-quality-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        for split, crops in (("train", settings.train_crops), ("test", settings.test_crops)):
            render_dataset(
                data_dir, crop_size=settings.render_size, crops_per_photo=crops, split=split
            )
        manifest = json.loads((data_dir / "manifest.json").read_text())
        train_bank = PairBank.from_msec(data_dir, "train")
        test_bank = PairBank.from_msec(data_dir, "test")
        data = {
            "train_photos": sorted({r["photo"] for r in manifest["splits"]["train"]}),
            "test_photos": sorted({r["photo"] for r in manifest["splits"]["test"]}),
            "train_images": len(train_bank),
            "test_images": len(test_bank),
        }
        variants = sorted({j.bcm for j in jobs if j.bcm})
        bcms = resolve_bcms(variants, settings, device, work, progress=not args.no_progress)
        bcm_seconds = time.perf_counter() - started

        runs: list[dict[str, Any]] = []
        context = multiprocessing.get_context("spawn")
        init_args = (
            str(data_dir),
            device,
            {k: v["path"] for k, v in bcms.items()},
            asdict(settings),
        )
        with futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=init_args
        ) as pool:
            pending = {pool.submit(_run_job, job): job for job in jobs}
            bar = tqdm(total=len(jobs), desc="runs", disable=args.no_progress, dynamic_ncols=True)
            for done in futures.as_completed(pending):
                run = done.result()
                runs.append(run)
                bar.set_postfix_str(f"{run['key']}: {run['groups']['Average']['psnr']:.2f} dB")
                bar.update()
            bar.close()

    runs.sort(key=lambda r: r["key"])
    tables = build_tables(runs, args.sections)
    command = "python " + shlex.join(
        [os.path.relpath(__file__, ROOT), *(argv if argv is not None else sys.argv[1:])]
    )
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine_description(device),
        "device": device,
        "torch": torch.__version__,
        "command": command,
        "quick": args.quick,
        "workers": workers,
        "sections": args.sections,
        "settings": asdict(settings),
        "data": data,
        "bcms": bcms,
        "tables": tables,
        "runs": runs,
        "seconds": {"bcms_and_data": bcm_seconds, "total": time.perf_counter() - started},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    block = render_markdown(result)
    print()
    print(block)
    if not args.no_md:
        write_results_md(args.md, block, args.quick)
        print(f"quality: wrote {out} and the ## Quality section of {args.md}")
    else:
        print(f"quality: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
