"""Tables of the quality benchmark: paired comparisons over seeds and their markdown.

Used by ``benchmarks/quality.py``; every ERL - baseline difference goes through
:func:`erl_losses.evaluation.stats.paired_comparison` (mean, SD, 95 % CI, paired t, p, wins,
minimum detectable effect at 80 % power).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from quality_plan import ABLATION_ARMS, ARMS, NETS, plan_jobs

from erl_losses.evaluation.stats import paired_comparison, seeds_needed

GROUPS = ("Under", "Over", "Average")
METRICS = ("psnr", "ssim")
#: Effects (dB) whose seed counts the report plans for, at the measured SD.
PLANNED_EFFECTS = (0.1, 0.2, 0.3)


def _select(runs: list[dict], net: str, arm: str | None, batch: int, alpha: float) -> dict:
    alpha = alpha if arm else 0.0
    return {
        r["seed"]: r
        for r in runs
        if r["net"] == net
        and r["arm"] == arm
        and r["batch_size"] == batch
        and math.isclose(r["alpha"], alpha)
    }


def _spread(values: list[float]) -> dict[str, float]:
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return {"mean": statistics.fmean(values), "sd": sd, "n": len(values)}


def compare(
    runs: list[dict], net: str, arm: str, batch: int = 4, alpha: float = 0.1
) -> dict[str, Any]:
    """Baseline vs one ERL arm over the seeds both have: per group and metric, mean and SD of
    each method and the :class:`~erl_losses.evaluation.stats.PairedComparison` of ERL - baseline.
    """
    base = _select(runs, net, None, batch, alpha)
    erl = _select(runs, net, arm, batch, alpha)
    seeds = sorted(set(base) & set(erl))
    if len(seeds) < 2:
        raise ValueError(
            f"Expected >= 2 paired seeds for {net} {arm} b{batch} a{alpha}, got {seeds}"
        )
    out: dict[str, Any] = {"seeds": seeds, "baseline": {}, "erl": {}, "delta": {}}
    # per seed, so that a mean carried by a few seeds shows (median, the seeds ERL lost)
    out["per_seed"] = {
        str(s): erl[s]["groups"]["Average"]["psnr"] - base[s]["groups"]["Average"]["psnr"]
        for s in seeds
    }
    for g in GROUPS:
        for m in METRICS:
            b = [base[s]["groups"][g][m] for s in seeds]
            e = [erl[s]["groups"][g][m] for s in seeds]
            out["baseline"].setdefault(g, {})[m] = _spread(b)
            out["erl"].setdefault(g, {})[m] = _spread(e)
            out["delta"].setdefault(g, {})[m] = paired_comparison(e, b).as_dict()
    return out


def _paired(runs: list[dict], net: str, arm: str, batch: int = 4, alpha: float = 0.1) -> bool:
    """Whether at least 2 seeds have both the baseline and the arm (a stopped run may not)."""
    both = set(_select(runs, net, None, batch, alpha)) & set(_select(runs, net, arm, batch, alpha))
    return len(both) >= 2


def build_tables(runs: list[dict], sections: list[str], main_arms: list[str]) -> dict[str, Any]:
    """Every comparison the sections define that has at least 2 paired seeds."""
    tables: dict[str, Any] = {}
    if "main" in sections:
        tables["main"] = {
            net: {arm: compare(runs, net, arm) for arm in main_arms if _paired(runs, net, arm)}
            for net in NETS
        }
        tables["main"] = {net: arms for net, arms in tables["main"].items() if arms}
    if "ablation" in sections:
        ablation = {
            net: {arm: compare(runs, net, arm) for arm in ABLATION_ARMS if _paired(runs, net, arm)}
            for net in NETS
        }
        tables["ablation"] = {net: arms for net, arms in ablation.items() if arms}
    if "batch" in sections:
        batches = [b for b in (2, 4, 8) if _paired(runs, "ECLNet", "phase", b)]
        tables["batch"] = {str(b): compare(runs, "ECLNet", "phase", b) for b in batches}
    if "alpha" in sections:
        alphas = [a for a in (0.01, 0.1, 1.0) if _paired(runs, "ECLNet", "phase", alpha=a)]
        tables["alpha"] = {f"{a:g}": compare(runs, "ECLNet", "phase", alpha=a) for a in alphas}
    return tables


def complete_result(result: dict[str, Any], runs: list[dict], elapsed: float | None) -> None:
    """Adds the runs and the tables to a result; marks it partial when runs are missing."""
    main_arms = [a for a in result["main_arms"] if any(r["arm"] == a for r in runs)]
    result["runs"] = sorted(runs, key=lambda r: r["key"])
    result["tables"] = build_tables(result["runs"], result["sections"], main_arms)
    result["partial"] = len(runs) < result["planned_runs"]
    if elapsed is not None:
        result["seconds"] = {"total": elapsed}


def load_result(path: Path) -> dict[str, Any]:
    """A result JSON with its tables rebuilt from its runs (from the ``.runs.jsonl`` log when
    the run was stopped before it wrote them), so older files render with today's tables."""
    result = json.loads(path.read_text())
    runs = result.get("runs") or []
    if not result.get("tables"):
        log = path.with_suffix(".runs.jsonl")
        runs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    for run in runs:
        _check_finite(run, str(path))
    complete_result(result, runs, None)
    return result


def _without_time(diag: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in diag.items() if k != "seconds"}


def _check_finite(run: dict[str, Any], name: str) -> None:
    for group, scores in run["groups"].items():
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in scores.values()):
            raise ValueError(
                f"Expected finite scores, got {scores} for {run.get('key')} {group} in {name}"
            )


def merge_results(results: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One result from runs of the same protocol (e.g. disjoint ``--first-seed`` ranges).

    The settings (all but the seed count), the mode, the BCM and the diagnostics of every shared
    arm must agree, and each run must come from one file (so no run or wall time counts twice).
    The merged
    ``tables`` are left to the caller (:func:`complete_result`).

    Raises:
        ValueError: the same file twice; results that differ in protocol, in an arm's BCM
            (source, path or variant) or in the diagnostics of a shared arm; a non-finite score;
            a run in two files.
    """
    if len(set(names)) != len(names):
        raise ValueError(f"Expected distinct result files, got {names}")
    first = results[0]
    protocol = {k: v for k, v in first["settings"].items() if k != "seeds"}
    runs: dict[str, dict] = {}
    bcms: dict[str, Any] = {}
    diagnostics: dict[str, Any] = {}
    for name, result in zip(names, results, strict=True):
        other = {k: v for k, v in result["settings"].items() if k != "seeds"}
        if other != protocol or result["quick"] != first["quick"]:
            raise ValueError(
                f"Expected results with the settings of {names[0]} ({protocol}, quick="
                f"{first['quick']}), got {other}, quick={result['quick']} in {name}"
            )
        for label, bcm in result["bcms"].items():
            for field in ("source", "path", "variant"):
                if label in bcms and bcms[label].get(field) != bcm.get(field):
                    raise ValueError(
                        f"Expected arm {label!r} to use one BCM, got {field} "
                        f"{bcms[label].get(field)!r} and {bcm.get(field)!r} ({name})"
                    )
            bcms[label] = bcm
        for label, diag in result.get("diagnostics", {}).items():
            if label in diagnostics and _without_time(diagnostics[label]) != _without_time(diag):
                raise ValueError(f"Expected one set of diagnostics for arm {label!r} ({name})")
            diagnostics[label] = diag
        for run in result["runs"]:
            key = run["key"]
            _check_finite(run, name)
            if key in runs:
                raise ValueError(f"Expected each run in one file, got {key} again in {name}")
            runs[key] = run
    totals = [r["seconds"]["total"] for r in results]
    merged = {
        **first,
        "date": " + ".join(dict.fromkeys(r["date"] for r in results)),
        "machine": " + ".join(dict.fromkeys(r["machine"] for r in results)),
        "command": " && ".join(r["command"] for r in results),
        "merged_from": names,
        "sections": list(dict.fromkeys(s for r in results for s in r["sections"])),
        "main_arms": list(dict.fromkeys(a for r in results for a in r["main_arms"])),
        "first_seed": min(r.get("first_seed", 0) for r in results),
        "nets": [n for n in NETS if any(n in r.get("nets", NETS) for r in results)],
        # the union of the files' plans: a file stopped early may be completed by a later one
        "planned_runs": len(
            {
                job.key
                for r in results
                for job in plan_jobs(
                    r["sections"],
                    r["settings"]["seeds"],
                    tuple(r["main_arms"]),
                    r.get("first_seed", 0),
                    tuple(r.get("nets", NETS)),
                )
            }
        ),
        "settings": {**first["settings"], "seeds": len({r["seed"] for r in runs.values()})},
        "bcms": bcms,
        "diagnostics": diagnostics,
        "failures": [f for r in results for f in r.get("failures") or []],
        "runs": list(runs.values()),  # sorted by complete_result
        "seconds": {"total": None if None in totals else sum(totals)},
    }
    return merged


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------
def _pm(stat: dict[str, float], digits: int) -> str:
    spread = "" if math.isnan(stat["sd"]) else f" ± {stat['sd']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}{spread}"


def _ci(d: dict[str, float], digits: int = 2) -> str:
    f = f"{{:+.{digits}f}}"
    return f"{f.format(d['mean'])} [{f.format(d['ci_low'])}, {f.format(d['ci_high'])}]"


def _delta_cells(cmp: dict[str, Any]) -> str:
    """Average-PSNR comparison cells: Δ [CI] | t | p | wins | MDE | Δ Under | Δ Over | Δ SSIM."""
    d = cmp["delta"]["Average"]["psnr"]
    return (
        f"{_ci(d)} | {d['t']:+.2f} | {d['p']:.3f} | {d['wins']}/{d['n']} | {d['mde']:.2f} | "
        f"{_ci(cmp['delta']['Under']['psnr'])} | {_ci(cmp['delta']['Over']['psnr'])} | "
        f"{_ci(cmp['delta']['Average']['ssim'], 4)}"
    )


_DELTA_HEAD = (
    "Δ Avg PSNR [95 % CI] | t | p | ERL higher | MDE 80 % | Δ Under PSNR | Δ Over PSNR | Δ Avg SSIM"
)


def _diag_cells(diagnostics: dict[str, Any], arm: str) -> str:
    diag = diagnostics.get(arm) or {}
    if "relational_index" not in diag:
        return "n/a | n/a | n/a"
    return (
        f"{diag['relational_index']:+.3f} | {diag['attention_entropy_fraction']:.3f} | "
        f"{diag['cross_sample_gradient_share']:.3f}"
    )


def _main_tables(result: dict[str, Any]) -> list[str]:
    main, diagnostics = result["tables"]["main"], result.get("diagnostics", {})
    head = "| Net | Loss | " + " | ".join(f"{g} PSNR" for g in GROUPS) + " | Average SSIM |"
    lines = ["**Scores** (mean ± SD over seeds; dB)", "", head, "|---" * 6 + "|"]
    inp = result["input"]["groups"]
    lines.append(
        "| - | Input (no correction) | "
        + " | ".join(f"{inp[g]['psnr']:.2f}" for g in GROUPS)
        + f" | {inp['Average']['ssim']:.4f} |"
    )
    for net, arms in main.items():
        first = next(iter(arms.values()))
        cells = " | ".join(_pm(first["baseline"][g]["psnr"], 2) for g in GROUPS)
        lines.append(f"| {net} | L1 | {cells} | {_pm(first['baseline']['Average']['ssim'], 4)} |")
        for arm, cmp in arms.items():
            cells = " | ".join(_pm(cmp["erl"][g]["psnr"], 2) for g in GROUPS)
            lines.append(
                f"| {net} | L1 + 0.1 x relation, {ARMS[arm].title} | {cells} | "
                f"{_pm(cmp['erl']['Average']['ssim'], 4)} |"
            )
    lines += [
        "",
        "**Paired ERL - L1 differences** (same seed = same initial weights and batches) and the "
        "relational diagnostics of each arm's BCM and loss variant (`erl_losses.diagnostics.probe`"
        ": R > 0 when inconsistent exposure errors cost more; attention entropy / log B, 1 = "
        "uniform; share of a sample's gradient from the other samples' terms)",
        "",
        f"| Net | ERL arm | {_DELTA_HEAD} | R | H / log B | cross-sample grad |",
        "|---" * 13 + "|",
    ]
    for net, arms in main.items():
        for arm, cmp in arms.items():
            lines.append(
                f"| {net} | {arm} | {_delta_cells(cmp)} | {_diag_cells(diagnostics, arm)} |"
            )
    lines.append("")
    for net, arms in main.items():
        for arm, cmp in arms.items():
            d = cmp["delta"]["Average"]["psnr"]
            if d["sd"] > 0:
                needed = " / ".join(str(seeds_needed(e, d["sd"])) for e in PLANNED_EFFECTS)
                effects = " / ".join(f"{e:g}" for e in PLANNED_EFFECTS)
                lines.append(
                    f"- {net} / {arm}: paired SD {d['sd']:.2f} dB over {d['n']} seeds; this run "
                    f"detects {d['mde']:.2f} dB with 80 % power; at this SD 80 % power needs "
                    f"{needed} seeds for {effects} dB. {_seed_note(cmp)}"
                )
    return [*lines, ""]


def _seed_note(cmp: dict[str, Any]) -> str:
    """The median per-seed Δ and the seeds where ERL scored lower (what the mean hides)."""
    per_seed = cmp.get("per_seed")
    if not per_seed:
        return ""
    lower = [seed for seed, d in per_seed.items() if d < 0]
    top = max(per_seed, key=lambda s: abs(per_seed[s]))
    return (
        f"Median Δ {statistics.median(per_seed.values()):+.2f} dB; largest |Δ| {per_seed[top]:+.2f} "
        f"(seed {top}); ERL lower on seeds: {', '.join(lower) or 'none'}."
    )


def _delta_table(title: str, label: str, rows: dict[str, Any]) -> list[str]:
    lines = [title, "", f"| {label} | baseline Avg PSNR | ERL Avg PSNR | {_DELTA_HEAD} |"]
    lines.append("|---" * 11 + "|")
    for value, cmp in rows.items():
        b, e = cmp["baseline"]["Average"]["psnr"], cmp["erl"]["Average"]["psnr"]
        lines.append(f"| {value} | {_pm(b, 2)} | {_pm(e, 2)} | {_delta_cells(cmp)} |")
    notes = {value: _seed_note(cmp) for value, cmp in rows.items()}
    lines.append("")
    lines += [f"- {value}: {note}" for value, note in notes.items() if note]
    return [*lines, ""]


def _wall_time(result: dict[str, Any]) -> str:
    runs, seeds = len(result["runs"]), result["settings"]["seeds"]
    total = result["seconds"]["total"]
    if result.get("partial"):
        failed = "; ".join(f"{f['key']}: {f['error']}" for f in result.get("failures") or [])
        return (
            f"- **partial**: {runs} of {result['planned_runs']} planned runs finished "
            f"({seeds} seeds planned); the tables use the seeds whose runs all finished"
            + (f"; failed runs: {failed}" if failed else "")
        )
    wall = "n/a" if total is None else f"{total:.0f} s"
    return (
        f"- wall time: {wall} ({runs} training runs, {result['workers']} worker processes, "
        f"{seeds} paired seeds per configuration)"
    )


def _header(result: dict[str, Any]) -> list[str]:
    s, data = result["settings"], result["data"]
    mode = "Quick CPU run" if result["quick"] else "Full run"
    return [
        f"### {mode} ({result['date']})",
        "",
        f"- machine: {result['machine']}; torch {result['torch']}",
        f"- command: `{result['command']}`",
        _wall_time(result),
        f"- data: the synthetic MSEC-like set (camera inputs, expert-retouch GT; "
        f"`erl_losses.data.render`), {data['train_images']} training pairs from "
        f"{', '.join(data['train_photos'])}; {data['test_images']} held-out test images from "
        f"{', '.join(data['test_photos'])} at {s['render_size']} px, 5 levels; MSEC protocol "
        "(Under = N1.5 + N1, Over = 0 + P1 + P1.5)",
        f"- training: {s['steps']} Adam steps per run, batch 4 from MixedExposureBatchSampler, "
        f"random {s['crop_size']} px crops + flips, peak lr {s['lr']:g} (warm-up + cosine), "
        f"evaluated on the EMA of the weights (decay {s['ema_decay']:g}); loss L1 (baseline) or "
        "L1 + alpha x relation (ERL)",
        "- BCMs: " + "; ".join(f"{k}: {v['source']}" for k, v in result["bcms"].items()),
        "- statistics: per seed Δ = ERL - baseline; mean Δ with a 95 % t confidence interval, "
        "paired t and two-sided p, seeds where ERL scored higher, and MDE = the true Δ this many "
        "seeds detect with 80 % power (alpha 0.05) at the measured SD "
        "(`erl_losses.evaluation.stats`)",
        "",
    ]


def render_markdown(result: dict[str, Any]) -> str:
    """The markdown block of one mode (full or quick) for the ``## Quality`` section."""
    t = result["tables"]
    lines = _header(result)
    if "main" in t:
        lines += _main_tables(result)
    for net, arms in t.get("ablation", {}).items():
        lines += _delta_table(f"**Table-2 ablation** ({net}, batch 4, alpha 0.1)", "BCM", arms)
    if "batch" in t:
        lines += _delta_table("**Batch size** (fig. 9b; ECLNet, phase BCM)", "batch", t["batch"])
    if "alpha" in t:
        lines += _delta_table(
            "**Relation weight** (fig. 9a; ECLNet, phase BCM)", "alpha", t["alpha"]
        )
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
        path.write_text(text.rstrip("\n") + "\n\n" + intro + wrapped)
        return
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
    path.write_text("".join(lines[:heading]) + section + "".join(lines[stop:]))
