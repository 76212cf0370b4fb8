"""The RESULTS.md sections that ``run_perf.py`` writes, rendered from its results dictionary.

Each section starts with its provenance (date, command, machine, code) so figures measured in
one run stay together; ``update_results`` replaces only the ``## `` sections it is given.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import torch

#: Speed-up of the library's PhaseLoss over the full-``fft2`` reference (design.md section 9).
PHASE_TARGETS = {"cpu": 2.0, "cuda": 1.5}
#: Largest relation-term share of a FECNet step at 256 px (design.md section 9: 10 % on a CPU, 3 % on a GPU).
RELATION_TARGETS = {"cpu": 0.10, "cuda": 0.03}

PREAMBLE = """# Benchmark results

Every figure of the project, each section with its machine, command and date. Sections are
owned by the script that writes them: `benchmarks/run_perf.py` rewrites only its own `## `
sections (matched by heading) and leaves the others alone.
"""


def update_results(path: Path, sections: dict[str, str]) -> None:
    """Replaces the ``## <heading>`` sections named in ``sections``, appends new ones."""
    text = path.read_text() if path.exists() else PREAMBLE
    parts = re.split(r"(?m)^(?=## )", text)
    preamble, blocks = parts[0], parts[1:]
    heading_of = {i: b.splitlines()[0][3:].strip() for i, b in enumerate(blocks)}
    done = set()
    for i, heading in heading_of.items():
        if heading in sections:
            blocks[i] = f"## {heading}\n\n{sections[heading].strip()}\n\n"
            done.add(heading)
    for heading, body in sections.items():
        if heading not in done:
            if blocks and not blocks[-1].endswith("\n\n"):
                blocks[-1] = blocks[-1].rstrip("\n") + "\n\n"
            blocks.append(f"## {heading}\n\n{body.strip()}\n\n")
    if not preamble.endswith("\n\n"):
        preamble = preamble.rstrip("\n") + "\n\n"
    path.write_text((preamble + "".join(blocks)).rstrip("\n") + "\n")


def _ms(stat: dict[str, float]) -> str:
    return f"{stat['median'] * 1e3:.1f} (IQR {stat['iqr'] * 1e3:.1f})"


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.0f}"


def provenance(info: dict[str, Any], command: str, wall_s: float, device: torch.device) -> str:
    hw = info.get("gpu") or info.get("cpu_model") or info["processor"]
    load = info.get("loadavg_1_5_15", "")
    busy = load and float(load.split()[0]) > (info["nproc"] or 1)
    lines = [
        f"- Date: {info['date_utc']}; run time {wall_s / 60:.1f} min (whole run).",
        f"- Command: `{command}`",
        f"- Machine: {info['platform']}; {hw}; nproc {info['nproc']}; torch {info['torch']} "
        f"({info['torch_threads']} intra-op threads, MKL {info['mkl']}, oneDNN {info['mkldnn']})"
        + (f"; CUDA {info.get('cuda')}, cuDNN {info.get('cudnn')}" if device.type == "cuda" else "")
        + f"; python {info['python']}.",
        f"- Code: git {info['git_commit']} ({info['git_dirty_paths']} uncommitted paths in the "
        f"working tree); load average at start {load or 'n/a'}.",
    ]
    if busy:
        lines.append(
            "- **The machine was shared and oversubscribed during this run** (load average above "
            "nproc): absolute times are inflated and noisy; only the per-round ratios of cheap "
            "workloads are robust."
        )
    return "\n".join(lines)


def phase_section(phase: dict[str, Any], prov: str, device: torch.device) -> str:
    target = PHASE_TARGETS[device.type]
    rows = [
        "| size (batch 4x3) | rfft2 fused ms | rfft2 unfused ms | fft2 ms | speed-up fft2/fused "
        "(per-round min-max) | fused gain unfused/fused | value diff | max rel. grad diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size, r in phase.items():
        sp, gain = r["speedup"], r.get("fused_gain")
        unfused = _ms(r["rfft2-unfused"]) if "rfft2-unfused" in r else "-"
        gain_s = f"{gain['median']:.2f}x" if gain else "-"
        rows.append(
            f"| {size}x{size} | {_ms(r['rfft2'])} | {unfused} | {_ms(r['fft2'])} "
            f"| **{sp['median']:.2f}x** ({sp['min']:.2f}-{sp['max']:.2f}) | {gain_s} "
            f"| {r['agreement']['abs_value_diff']:.1e} "
            f"| {r['agreement']['max_rel_grad_diff']:.1e} |"
        )
    verdict = all(r["speedup"]["median"] >= target for r in phase.values())
    return (
        f"{prov}\n\nForward + backward of `phase_loss(mode='paper')` (rfft2 with column weights; "
        "*fused*: the element-wise part as one autograd node, `torch.compile`d on CUDA, the "
        "default; *unfused*: `ERL_LOSSES_FUSED_PHASE=off`, the same node run eagerly, never "
        "compiled, so on a CPU both columns run the same code) vs an independent full-spectrum "
        "reference (`torch.fft.fft2` + `angle`, L1, mean) written in `bench_phase.py`. All give "
        "the same value and gradient (checked before timing). Times are medians (IQR) of "
        "`blocked_autorange` block means pooled over interleaved rounds; speed-ups are medians "
        "of per-round ratios.\n\n"
        + "\n".join(rows)
        + _eager_and_first_calls(phase)
        + f"\n\nTarget (design, {device.type}) >= {target:.1f}x: "
        + ("met." if verdict else "NOT met.")
    )


def _eager_and_first_calls(phase: dict[str, Any]) -> str:
    """The eager fused node (measured on CUDA only) and each implementation's first call, which
    on CUDA includes compiling the fused node."""
    lines = []
    for size, r in phase.items():
        parts = []
        if "rfft2-eager" in r:
            gain = r["eager_gain"]
            parts.append(
                f"fused node eager (`ERL_LOSSES_FUSED_PHASE=eager`) {_ms(r['rfft2-eager'])} ms, "
                f"eager/compiled {gain['median']:.2f}x ({gain['min']:.2f}-{gain['max']:.2f})"
            )
        if "first_call_s" in r:
            parts.append(
                "first call "
                + ", ".join(f"{impl} {s:.2f} s" for impl, s in r["first_call_s"].items())
            )
        if parts:
            lines.append(f"- {size}x{size}: " + "; ".join(parts) + ".")
    return ("\n\n" + "\n".join(lines)) if lines else ""


def _relation_rows(rel: dict[str, Any]) -> list[str]:
    rows = []
    for size, r in rel["sizes"].items():
        base = r["times"]["L1"]
        for label, to in r["term_overhead"].items():
            term = r["times"][f"rel@{label}"]
            e2e = r["e2e_overhead"].get(label)
            e2e_s = (
                f"{_pct(e2e['median'])} ({_pct(e2e['min'])}..{_pct(e2e['max'])})" if e2e else "-"
            )
            peak_erl = r["peak_bytes"].get(f"L1+rel@{label}")
            rows.append(
                f"| {size} | {_ms(base)} | {label} | {_ms(term)} | **{_pct(to['median'])}** "
                f"({_pct(to['min'])}..{_pct(to['max'])}) | {e2e_s} "
                f"| {_mib(r['peak_bytes']['L1'])} / {_mib(peak_erl) if peak_erl else '-'} "
                f"| {_mib(r['peak_bytes'][f'rel@{label}'])} |"
            )
    return rows


def _growth_and_target(rel: dict[str, Any], device: torch.device) -> list[str]:
    out: list[str] = []
    sizes = list(rel["sizes"])
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        growth = [
            f"{label}: {rel['sizes'][hi]['times'][f'rel@{label}']['median'] / t['median']:.2f}x"
            for label, t in (
                (lb, rel["sizes"][lo]["times"][f"rel@{lb}"])
                for lb in rel["sizes"][lo]["term_overhead"]
            )
        ]
        pixels = (int(hi) / int(lo)) ** 2
        out += [
            "",
            f"**Growth of the relation term from {lo} to {hi} px** ({pixels:.0f}x the pixels): "
            + "; ".join(growth)
            + ". Expected: about 1x for a `work_size` at or below both sizes (only the area "
            f"resize scales with the pixels), about {pixels:.0f}x for `full`.",
        ]
    if "256" in rel["sizes"]:
        target = RELATION_TARGETS[device.type]
        terms = rel["sizes"]["256"]["term_overhead"]
        best = min(terms, key=lambda lb: terms[lb]["median"])
        met = terms[best]["median"] <= target
        out += [
            "",
            f"Target at 256 px ({device.type}): relation term <= {target:.0%} of a step: "
            + (f"met by `{best}` ({_pct(terms[best]['median'])})." if met else
               f"NOT met (best `{best}`: {_pct(terms[best]['median'])})."),
        ]  # fmt: skip
    return out


def relation_section(
    rel: dict[str, Any], args: argparse.Namespace, prov: str, device: torch.device
) -> str:
    out = [
        prov,
        "",
        f"Network: {rel['net']}, {rel['params']:,} parameters; batch 4; Adam; loss `L1` vs "
        f"`L1 + 0.1 * SampleRelationLoss(BatchCorrelationModule(work_size=...))` (random BCM "
        "weights: the cost does not depend on them). `full` = `work_size=None` (paper); "
        "`+graphs` = `cuda_graphs=True` (the BCM replayed from CUDA graphs; on a CPU it runs "
        f"eagerly, the same work). {args.rounds} interleaved rounds after warm-up calls "
        "(3 for `+graphs`: captured on the second).",
        "",
        "**Overhead of the relation term on one training step** (relative to the L1 step):",
        "",
        "- *term*: the relation term alone (forward on pred and gt, backward into pred: all the "
        "extra work of an ERL step) divided by the median L1 step; in brackets the per-round "
        "min-max.",
        "- *end-to-end*: median over rounds of (ERL step / L1 step) - 1, both full steps, "
        "measured where listed; on a loaded CPU this difference of two long steps is noisier "
        "than the term itself.",
        "",
        "| size | L1 step ms | work_size | relation term ms | overhead (term) | overhead "
        "(end-to-end) | peak MiB step L1 / ERL | peak MiB term |",
        "|---|---|---|---|---|---|---|---|",
        *_relation_rows(rel),
        *_growth_and_target(rel, device),
        "",
        "Peak memory: "
        + (
            "`torch.cuda.max_memory_allocated` during one call, minus the memory allocated "
            "before it"
            if device.type == "cuda"
            else "the peak of torch's CPU allocator during one call, on top of what was live "
            "before it (running `Total Allocated` of `torch.profiler` memory events, "
            "`profile_memory=True`, on the warm-up call); oneDNN/MKL internal scratch buffers "
            "are not counted"
        )
        + ". The L1 step's peak includes the network's activations and gradients.",
    ]
    return "\n".join(out)


def work_size_section(rel: dict[str, Any], prov: str) -> str:
    sizes = rel["sizes"]
    labels = list(next(iter(sizes.values()))["term_overhead"])
    rows = ["| work_size | " + " | ".join(f"overhead {s}px" for s in sizes) + " |"]
    rows.append("|---|" + "---|" * len(sizes))
    for label in labels:
        rows.append(
            f"| {label} | "
            + " | ".join(_pct(r["term_overhead"][label]["median"]) for r in sizes.values())
            + " |"
        )
    return (
        f"{prov}\n\nCost side of the `work_size` choice (relation-term overhead on a "
        f"{rel['net'].split(' ')[0]} training step, batch 4, from the section above). The quality "
        "side (ERL's PSNR/SSIM gain per `work_size`) is measured separately by the quality "
        "benchmark.\n\n" + "\n".join(rows)
    )


def cold_start_section(cold: dict[str, Any], prov: str, device: torch.device) -> str:
    parts = cold["parts"]
    names = {
        "torch_import": "`import torch` (not counted)",
        "import": "`import erl_losses`",
        "load": "`SampleRelationLoss.from_pretrained()`",
        "first_call": f"first call, forward + backward, (4, 3, {cold['size']}, {cold['size']})",
        "after_torch": "**total after torch is imported**",
    }
    rows = ["| part | median s | min-max s |", "|---|---|---|"]
    for key, label in names.items():
        p = parts[key]
        rows.append(f"| {label} | {p['median']:.3f} | {p['min']:.3f}-{p['max']:.3f} |")
    total = parts["after_torch"]["median"]
    return (
        f"{prov}\n\nCold start of the default pretrained relation loss on {device.type}: "
        f"{cold['runs']} fresh Python processes (after one that warms the OS file cache), "
        "`ERL_LOSSES_OFFLINE=1` (the default BCM ships with the package). Written by "
        "`bench_cold_start.py`.\n\n"
        + "\n".join(rows)
        + f"\n\nTarget (design) < {cold['target_s']:.1f} s after `import torch`: "
        + ("met." if total < cold["target_s"] else f"NOT met ({total:.2f} s).")
    )
