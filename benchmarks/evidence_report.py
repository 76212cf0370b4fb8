"""Analysis and report of the evidence benchmark: paired comparisons, Holm, scene bootstrap.

From a result JSON of ``benchmarks/evidence.py``:

* each net's L1 baseline against the uncorrected input (the converged-mode bar: >= 2 dB Average
  PSNR, no Average SSIM lost);
* each ``(net, arm)`` against the baseline of the same seeds on Average PSNR (and SSIM): mean,
  SD, t-test p; primaries get Holm-adjusted p-values and Holm-level intervals over the family of
  the primaries present, controls and exploratory arms plain 95 % intervals, labelled as such;
* a bootstrap over the test photos (the scenes) beside the seed interval, and the mean
  difference per photo;
* the decision rule of the protocol, applied.

``python benchmarks/evidence_report.py RESULT.json [--md RESULTS.md] [--plot forest.png]``
prints the markdown block, writes it between the ``evidence`` markers of ``--md`` and draws the
forest plot.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from evidence_protocol import BASELINE  # noqa: E402

from erl_losses.evaluation.stats import (  # noqa: E402
    bootstrap_scene_ci,
    holm_adjust,
    holm_levels,
    mean_ci,
    paired_comparison,
)

#: The converged-mode bar: the baseline beats the input by this much Average PSNR (dB).
CONVERGED_MARGIN_DB = 2.0
MARKERS = ("<!-- evidence:{}:begin -->", "<!-- evidence:{}:end -->")


# ---------------------------------------------------------------------------------------------
# Loading and merging
# ---------------------------------------------------------------------------------------------
def load(path: str | Path) -> dict[str, Any]:
    """A result JSON; raises ``ValueError`` naming the file when a score is not finite."""
    result = json.loads(Path(path).read_text())
    for run in result["runs"]:
        for group, scores in run["groups"].items():
            if not all(math.isfinite(v) for v in scores.values()):
                raise ValueError(
                    f"Expected finite scores, got {scores} for {run['key']} {group} in {path}"
                )
    return result


def merge(results: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One result from files of the same protocol, split, settings and images (e.g. disjoint seed
    ranges). The same file twice, a run present in two files, or a field that differs is an
    error naming it."""
    if len(set(names)) != len(names):
        raise ValueError(f"Expected distinct files to merge, got {names}")
    first = results[0]
    for field in ("split", "settings", "image_names", "arms", "arm_labels", "device"):
        for name, result in zip(names, results, strict=True):
            if result[field] != first[field]:
                raise ValueError(f"Expected {field!r} to agree, got a different one in {name}")
    for name, result in zip(names, results, strict=True):
        if result["protocol"]["sha256"] != first["protocol"]["sha256"]:
            raise ValueError(f"Expected one protocol (sha256), got another in {name}")
    runs: dict[str, dict[str, Any]] = {}
    for name, result in zip(names, results, strict=True):
        for run in result["runs"]:
            if run["key"] in runs:
                raise ValueError(f"Expected each run once, got {run['key']} again in {name}")
            runs[run["key"]] = run
    return {
        **first,
        "command": " && ".join(r["command"] for r in results),
        "date": " + ".join(dict.fromkeys(r["date"] for r in results)),
        "merged_from": names,
        "exploratory": any(r["exploratory"] for r in results),
        "nets": list(dict.fromkeys(n for r in results for n in r["nets"])),
        "seeds": sorted({s for r in results for s in r["seeds"]}),
        "planned_runs": sum(r["planned_runs"] for r in results),
        "runs": sorted(runs.values(), key=lambda r: r["key"]),
        "failures": [f for r in results for f in r["failures"]],
        "seconds": sum(r.get("seconds", 0.0) for r in results),
    }


# ---------------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------------
def _by_seed(result: dict[str, Any], net: str, arm: str) -> dict[int, dict[str, Any]]:
    return {r["seed"]: r for r in result["runs"] if r["net"] == net and r["arm"] == arm}


def _scenes(result: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """Scene names (source photos) and the ``(images,)`` scene index of each image.

    A scene is a source photo, not a crop (``<photo>_c<k>_<level>.png``): the crops of one photo
    share its content, so resampling crops would treat correlated images as independent scenes
    and give too narrow an interval."""
    scenes = [
        n.removesuffix(".png").rpartition("_")[0].rpartition("_c")[0] for n in result["image_names"]
    ]
    names = list(dict.fromkeys(scenes))
    return names, np.array([names.index(s) for s in scenes])


def _scene_deltas(
    result: dict[str, Any], arm_runs: list[dict], base_runs: list[dict]
) -> np.ndarray:
    """``(seeds, scenes)`` mean PSNR difference over each scene's exposure levels."""
    names, index = _scenes(result)
    out = np.zeros((len(arm_runs), len(names)))
    for row, (a, b) in enumerate(zip(arm_runs, base_runs, strict=True)):
        d = np.asarray(a["images"]["psnr"]) - np.asarray(b["images"]["psnr"])
        out[row] = np.bincount(index, weights=d) / np.bincount(index)
    return out


def meets_bar(psnr: float, ssim: float, input_scores: dict[str, float]) -> bool:
    """The converged-mode bar: Average PSNR at least :data:`CONVERGED_MARGIN_DB` above the
    uncorrected input's, and no Average SSIM lost to it."""
    return psnr - input_scores["psnr"] >= CONVERGED_MARGIN_DB and ssim >= input_scores["ssim"]


def net_steps(settings: dict[str, Any], nets: list[str]) -> dict[str, int]:
    """Each net's training steps: ``settings["steps"]`` is one count per net, or one count for
    every net in results written before the protocol gave nets their own."""
    steps = settings["steps"]
    return {net: steps[net] if isinstance(steps, dict) else steps for net in nets}


def baseline_check(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per net: the baseline's mean Average PSNR/SSIM over seeds vs the input's, and the bar."""
    inp = result["input"]["groups"]["Average"]
    out = {}
    for net in result["nets"]:
        runs = list(_by_seed(result, net, BASELINE).values())
        if not runs:
            continue
        psnr = [r["groups"]["Average"]["psnr"] for r in runs]
        ssim = [r["groups"]["Average"]["ssim"] for r in runs]
        gain = statistics.fmean(psnr) - inp["psnr"]
        out[net] = {
            "n": len(runs),
            "psnr": statistics.fmean(psnr),
            "psnr_sd": statistics.stdev(psnr) if len(psnr) > 1 else math.nan,
            "ssim": statistics.fmean(ssim),
            "input_psnr": inp["psnr"],
            "input_ssim": inp["ssim"],
            "gain_db": gain,
            "converged": meets_bar(statistics.fmean(psnr), statistics.fmean(ssim), inp),
        }
    return out


def _status(result: dict[str, Any], net: str, arm: str) -> str:
    if result["exploratory"] or result["split"] != "test":
        return "exploratory"
    protocol = result["protocol"]
    if [net, arm] in protocol["primaries"]:
        return "primary"
    return "control" if [net, arm] in protocol["controls"] else "exploratory"


def compare(result: dict[str, Any], net: str, arm: str) -> dict[str, Any] | None:
    """Arm vs baseline over the seeds both have (``None`` below 2 pairs)."""
    base, erl = _by_seed(result, net, BASELINE), _by_seed(result, net, arm)
    seeds = sorted(set(base) & set(erl))
    if len(seeds) < 2:
        return None
    a = [erl[s]["groups"]["Average"] for s in seeds]
    b = [base[s]["groups"]["Average"] for s in seeds]
    psnr = paired_comparison([x["psnr"] for x in a], [x["psnr"] for x in b])
    ssim = paired_comparison([x["ssim"] for x in a], [x["ssim"] for x in b])
    scene = _scene_deltas(result, [erl[s] for s in seeds], [base[s] for s in seeds])
    names, _ = _scenes(result)
    return {
        "net": net,
        "arm": arm,
        "status": _status(result, net, arm),
        "seeds": seeds,
        "per_seed": [x["psnr"] - y["psnr"] for x, y in zip(a, b, strict=True)],
        "psnr": psnr.as_dict(),
        "ssim": ssim.as_dict(),
        "scene_ci": bootstrap_scene_ci(scene),
        "scenes": len(names),
        "per_photo": dict(zip(names, map(float, scene.mean(axis=0)), strict=True)),
    }


def analyse(result: dict[str, Any]) -> dict[str, Any]:
    """Every comparison with >= 2 paired seeds, Holm over the primaries, and the decision."""
    arms = [a for a in result["arm_labels"] if a != BASELINE]
    rows = [c for net in result["nets"] for arm in arms if (c := compare(result, net, arm))]
    alpha = float(result["protocol"]["decision"].get("family_alpha", 0.05))
    primaries = [r for r in rows if r["status"] == "primary"]
    pvalues = [r["psnr"]["p"] for r in primaries]
    for row, adjusted, level in zip(
        primaries, holm_adjust(pvalues), holm_levels(pvalues, alpha), strict=True
    ):
        row["p_holm"], row["level"] = adjusted, level
    for row in rows:
        row.setdefault("level", 0.95)
        row["ci"] = mean_ci(row["per_seed"], row["level"])
    return {
        "baseline": baseline_check(result),
        "rows": rows,
        "family": len(primaries),
        "decision": decide(result, primaries),
    }


def decide(result: dict[str, Any], primaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The protocol's rule: a primary arm whose corrected interval is above 0 for both nets."""
    registered = [tuple(p) for p in result["protocol"]["primaries"]]
    needed = int(result["protocol"].get("seeds", {}).get("count", 2))
    done = {(r["net"], r["arm"]): r for r in primaries if len(r["seeds"]) >= needed}
    complete = bool(registered) and set(registered) <= set(done)
    winners = sorted(
        arm
        for arm in dict.fromkeys(a for _, a in registered)
        if complete and all(done[(n, a)]["ci"][0] > 0 for n, a in registered if a == arm)
    )
    return {"complete": complete, "seeds_needed": needed, "change_default_to": winners}


# ---------------------------------------------------------------------------------------------
# Markdown and the forest plot
# ---------------------------------------------------------------------------------------------
def _f(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}f}"


def _interval(low: float, high: float, digits: int = 2) -> str:
    return f"[{_f(low, digits)}, {_f(high, digits)}]"


def render_markdown(result: dict[str, Any], analysis: dict[str, Any], title: str) -> str:
    """The report block: settings, the baseline bar, the comparisons, the decision."""
    s = result["settings"]
    lr = ", ".join(f"{k} {v:g}" for k, v in s["lr"].items())
    steps = ", ".join(f"{k} {v}" for k, v in net_steps(s, result["nets"]).items())
    label = "registered protocol" if not result["exploratory"] else "EXPLORATORY"
    lines = [
        f"### {title}",
        "",
        f"{label} `{result['protocol']['name']}` v{result['protocol']['version']} (sha256 "
        f"`{result['protocol']['sha256'][:12]}`), split **{result['split']}** "
        f"({len(result['image_names'])} images: {len(_scenes(result)[0])} photos x "
        f"{s[result['split'] + '_crops']} crops x 5 levels); steps {steps}, batch "
        f"{s['batch_size']}, crops {s['crop_size']} px, lr {lr}, alpha {s['alpha']:g}, EMA "
        f"{s['ema_decay']:g}; seeds {min(result['seeds'])}-{max(result['seeds'])}; "
        f"{len(result['runs'])}/{result['planned_runs']} runs; {result['machine']}; "
        f"{result['date']}. Command: `{result['command']}`.",
        "",
        "| Net | L1 baseline Average PSNR | SSIM | Input PSNR | SSIM | Gain | Converged (>= 2 dB, SSIM kept) |",
        "|---|---|---|---|---|---|---|",
    ]
    for net, b in analysis["baseline"].items():
        lines.append(
            f"| {net} | {b['psnr']:.2f} ± {b['psnr_sd']:.2f} (n={b['n']}) | {b['ssim']:.4f} | "
            f"{b['input_psnr']:.2f} | {b['input_ssim']:.4f} | {_f(b['gain_db'])} dB | "
            f"{'yes' if b['converged'] else 'NO'} |"
        )
    lines += [
        "",
        "Arm - L1 baseline, paired by seed, Average PSNR (dB): mean, the interval at the level "
        "shown (primaries: Holm over the family; others 95 %), the same seeds with the test "
        "photos bootstrapped (95 %), SSIM mean, wins/seeds.",
        "",
        "| Net | Arm | Status | Δ PSNR | CI (level) | p (Holm) | Photo bootstrap | Δ SSIM | Wins |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in analysis["rows"]:
        p = r["psnr"]
        holm = f"{p['p']:.3g} ({r['p_holm']:.3g})" if "p_holm" in r else f"{p['p']:.3g}"
        lines.append(
            f"| {r['net']} | {r['arm']} | {r['status']} | {_f(p['mean'])} ± {p['sd']:.2f} | "
            f"{_interval(*r['ci'])} ({r['level'] * 100:.1f} %) | {holm} | "
            f"{_interval(*r['scene_ci'])} | {_f(r['ssim']['mean'], 4)} | "
            f"{p['wins']}/{p['n']} |"
        )
    d = analysis["decision"]
    verdict = (
        f"not decidable yet: a registered primary has fewer than {d['seeds_needed']} paired seeds"
        if not d["complete"]
        else f"change the default to {d['change_default_to']}"
        if d["change_default_to"]
        else "the default stays paper-literal (no primary arm's corrected interval is above 0 "
        "for both nets)"
    )
    lines += ["", f"Decision rule applied: **{verdict}**."]
    return "\n".join(lines)


def conclusion(result: dict[str, Any], analysis: dict[str, Any]) -> str:
    """Two sentences for README: what the registered comparisons measured, and what to conclude."""
    rows = {(r["net"], r["arm"]): r for r in analysis["rows"] if r["status"] == "primary"}
    parts = []
    for arm in dict.fromkeys(a for _, a in result["protocol"]["primaries"]):
        cells = [
            f"{net} {_f(r['psnr']['mean'])} dB {_interval(*r['ci'])} (n={r['psnr']['n']})"
            for net in result["nets"]
            if (r := rows.get((net, arm)))
        ]
        if cells:
            parts.append(f"`{arm}` {', '.join(cells)}")
    d = analysis["decision"]
    measured = (
        "On the registered protocol (Holm-corrected 95 % intervals, Average PSNR against the L1 "
        f"baseline of the same seeds, {len(_scenes(result)[0])} test photos) ERL measured "
        + "; ".join(parts)
        + "."
    )
    if not d["complete"]:
        verdict = (
            f"These are partial results (the protocol asks for {d['seeds_needed']} seeds per "
            "comparison), so they neither show nor rule out a gain; the default stays "
            "paper-literal until the rule can be applied."
        )
    elif d["change_default_to"]:
        arms = ", ".join(f"`{a}`" for a in d["change_default_to"])
        verdict = (
            f"The decision rule is met for {arms} (a corrected interval above 0 for both nets): "
            "the zoo default changes to it."
        )
    else:
        primaries = [r for r in analysis["rows"] if r["status"] == "primary"]
        better = [f"`{r['arm']}` on {r['net']}" for r in primaries if r["ci"][0] > 0]
        worse = [f"`{r['arm']}` on {r['net']}" for r in primaries if r["ci"][1] < 0]
        found = "".join(
            f" ({label}: {', '.join(items)})"
            for label, items in (("above 0", better), ("below 0", worse))
            if items
        )
        verdict = (
            f"No registered arm's corrected interval lies above 0 for both nets{found}, so expect "
            "no reliable gain from the term on data like this; the default stays paper-literal."
        )
    return f"{measured} {verdict}"


def write_block(md: Path, key: str, block: str, markers: tuple[str, str] = MARKERS) -> None:
    """Replaces the ``key`` block between its ``markers`` in ``md`` (appends it when absent)."""
    begin, end = (m.format(key) for m in markers)
    text = md.read_text() if md.exists() else ""
    new = f"{begin}\n{block}\n{end}"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + new + tail
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    md.write_text(text)


def forest_plot(analysis: dict[str, Any], path: Path, title: str) -> None:
    """Each comparison's mean difference and interval, one row per (net, arm)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = analysis["rows"]
    colours = {"primary": "tab:blue", "control": "tab:orange", "exploratory": "tab:grey"}
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.4))
    for y, r in enumerate(reversed(rows)):
        low, high = r["ci"]
        colour = colours[r["status"]]
        ax.plot([low, high], [y, y], color=colour, lw=2)
        ax.plot([r["psnr"]["mean"]], [y], "o", color=colour)
        ax.plot(list(r["scene_ci"]), [y - 0.18] * 2, color=colour, lw=1, ls=":")
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['net']} {r['arm']} ({r['status']})" for r in reversed(rows)])
    ax.set_xlabel("Average PSNR, arm - L1 baseline (dB)\nsolid: seed CI (Holm for primaries), "
                  "dotted: photo bootstrap", fontsize=8)  # fmt: skip
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("result", type=Path)
    parser.add_argument("--md", type=Path, default=None, help="write the block into this file")
    parser.add_argument("--key", default=None, help="block key (default: the result's split)")
    parser.add_argument("--title", default=None)
    parser.add_argument("--plot", type=Path, default=None, help="forest plot PNG")
    parser.add_argument("--readme", type=Path, default=None, help="write the conclusion block")
    args = parser.parse_args(argv)
    result = load(args.result)
    analysis = analyse(result)
    title = args.title or f"Evidence, {result['split']} split"
    block = render_markdown(result, analysis, title)
    print(block)
    if args.md is not None:
        write_block(args.md, args.key or result["split"], block)
    if args.plot is not None:
        forest_plot(analysis, args.plot, title)
    if args.readme is not None:
        write_block(args.readme, "conclusion", conclusion(result, analysis))
    return 0


if __name__ == "__main__":
    sys.exit(main())
