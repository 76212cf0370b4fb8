"""Runs every performance benchmark in ONE process and writes the ratios to RESULTS.md.

    python benchmarks/run_perf.py                 # CPU, about 4 min on a quiet 2-core machine
    python benchmarks/run_perf.py --device cuda   # + bf16 autocast variant, max_memory_allocated

Measurements (see README.md for the methodology):

* PhaseLoss, forward + backward, batch 4 x 3 x S x S: the library's ``rfft2`` implementation vs an
  independent full-``fft2`` reference of eq. 3 (values and gradients checked equal first).
* One training step (forward + backward + Adam) of FECNet (~0.15M parameters), batch 4:
  ``L1`` vs ``L1 + 0.1 * relation`` with the BCM at several ``work_size``; and the relation term
  alone (the whole extra work of an ERL step) at every ``work_size``.

Baseline and candidates are measured in interleaved rounds (ABBA order: forward, then reversed),
so slow drifts of a shared machine hit both; ratios are computed per round and their median is
reported together with the pooled medians and IQRs of the raw times.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils import benchmark as tbench

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))


def _load_conftest():
    # Loaded under a private name so it never clashes with a `conftest` module pytest imported.
    if "erl_bench_conftest" in sys.modules:
        return sys.modules["erl_bench_conftest"]
    spec = importlib.util.spec_from_file_location("erl_bench_conftest", BENCH_DIR / "conftest.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["erl_bench_conftest"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_cf = _load_conftest()
import bench_phase  # noqa: E402
import bench_relation_overhead as brel  # noqa: E402

# -- timing ---------------------------------------------------------------------------------------
HEAVY_S = 1.0  # a call longer than this (in the warm-up) is timed one call per round


def time_once(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(fn: Callable[[], None], device: torch.device, heavy: bool, min_run_time: float):
    """Seconds per call: one call for heavy workloads, else ``blocked_autorange`` block means."""
    if heavy:
        return [time_once(fn, device)]
    timer = tbench.Timer(
        stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads(), label="erl"
    )
    return list(timer.blocked_autorange(min_run_time=min_run_time).times)


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    t = torch.tensor(list(values), dtype=torch.float64)
    q = torch.quantile(t, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
    return {"median": q[1], "iqr": q[2] - q[0], "n": len(values)}


def _median(values: Sequence[float]) -> float:
    return float(torch.tensor(list(values), dtype=torch.float64).median())


class Interleaved:
    """Named workloads measured in interleaved rounds (ABBA order) after one warm-up call each."""

    def __init__(self, device: torch.device, min_run_time: float, memory: bool = False) -> None:
        self.device, self.min_run_time, self.memory = device, min_run_time, memory
        self.fns: dict[str, Callable[[], None]] = {}
        self.samples: dict[str, list[float]] = {}
        self.round_medians: dict[str, list[float]] = {}
        self.heavy: dict[str, bool] = {}
        self.peak_bytes: dict[str, int] = {}
        self.warmup_s: dict[str, float] = {}

    def add(self, name: str, fn: Callable[[], None]) -> None:
        self.fns[name] = fn

    def run(self, rounds: int, log: Callable[[str], None]) -> None:
        for name, fn in self.fns.items():  # warm-up round, also the memory measurement
            t0 = time.perf_counter()
            if self.memory:
                self.peak_bytes[name] = brel.peak_memory_bytes(fn, self.device)
            else:
                fn()
                _cf.synchronize(self.device)
            self.warmup_s[name] = time.perf_counter() - t0
            self.heavy[name] = self.warmup_s[name] > HEAVY_S
            self.samples[name], self.round_medians[name] = [], []
            log(f"    warm-up {name}: {self.warmup_s[name]:.2f} s")
        names = list(self.fns)
        for r in range(rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                times = measure(self.fns[name], self.device, self.heavy[name], self.min_run_time)
                self.samples[name].extend(times)
                self.round_medians[name].append(_median(times))
            log(
                f"    round {r + 1}/{rounds}: "
                + ", ".join(f"{n} {self.round_medians[n][-1] * 1e3:.1f} ms" for n in names)
            )

    def stats(self, name: str) -> dict[str, float]:
        return _quantiles(self.samples[name])

    def paired_ratio(self, num: str, den: str) -> dict[str, float]:
        """Per-round ``num / den``: median, min, max over the rounds."""
        ratios = [
            a / b for a, b in zip(self.round_medians[num], self.round_medians[den], strict=True)
        ]
        return {"median": _median(ratios), "min": min(ratios), "max": max(ratios)}


# -- the benchmarks -------------------------------------------------------------------------------
def run_phase(args: argparse.Namespace, device: torch.device, log) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in args.sizes:
        log(f"  phase loss {size}px")
        agreement = bench_phase.check_agreement(size, device)
        bench = Interleaved(device, args.min_run_time)
        for impl in bench_phase.IMPLEMENTATIONS:
            bench.add(impl, bench_phase.make_step(impl, *bench_phase.make_inputs(size, device)))
        bench.run(args.phase_rounds, log)
        out[str(size)] = {
            "agreement": agreement,
            "rfft2": bench.stats("rfft2"),
            "fft2": bench.stats("fft2"),
            "speedup": bench.paired_ratio("fft2", "rfft2"),
        }
    return out


def run_relation(
    args: argparse.Namespace, device: torch.device, amp_dtype: torch.dtype | None, log
) -> dict[str, Any]:
    make_net, net_label = brel.net_factory(args.net)
    out: dict[str, Any] = {
        "net": net_label,
        "params": brel.count_parameters(make_net()),
        "sizes": {},
    }
    for size in args.sizes:
        log(f"  training step {size}px ({net_label}, amp={amp_dtype})")
        bench = Interleaved(device, args.min_run_time, memory=True)
        bench.add("L1", brel.TrainStep(make_net, size, device, None, amp_dtype))
        e2e = args.e2e_work_sizes if size in args.e2e_sizes else []
        for ws in e2e:
            rel = brel.make_relation(ws, device)
            bench.add(
                f"L1+rel@{brel.ws_label(ws)}",
                brel.TrainStep(make_net, size, device, rel, amp_dtype),
            )
        for ws in args.work_sizes:
            rel = brel.make_relation(ws, device)
            bench.add(f"rel@{brel.ws_label(ws)}", brel.RelationTerm(rel, size, device, amp_dtype))
        bench.run(args.rounds, log)
        res: dict[str, Any] = {
            "times": {n: bench.stats(n) for n in bench.fns},
            "peak_bytes": bench.peak_bytes,
            "e2e_overhead": {},
            "term_overhead": {},
        }
        base = res["times"]["L1"]["median"]
        for ws in e2e:
            ratio = bench.paired_ratio(f"L1+rel@{brel.ws_label(ws)}", "L1")
            res["e2e_overhead"][brel.ws_label(ws)] = {k: v - 1 for k, v in ratio.items()}
        for ws in args.work_sizes:
            name = f"rel@{brel.ws_label(ws)}"
            res["term_overhead"][brel.ws_label(ws)] = {
                "median": res["times"][name]["median"] / base,
                **{k: v for k, v in bench.paired_ratio(name, "L1").items() if k != "median"},
            }
        out["sizes"][str(size)] = res
    return out


# -- RESULTS.md -----------------------------------------------------------------------------------
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


def phase_section(phase: dict[str, Any], prov: str) -> str:
    rows = [
        "| size (batch 4x3) | rfft2 ms | fft2 ms | speed-up fft2/rfft2 (per-round min-max) "
        "| value diff | max rel. grad diff |",
        "|---|---|---|---|---|---|",
    ]
    for size, r in phase.items():
        sp = r["speedup"]
        rows.append(
            f"| {size}x{size} | {_ms(r['rfft2'])} | {_ms(r['fft2'])} | **{sp['median']:.2f}x** "
            f"({sp['min']:.2f}-{sp['max']:.2f}) | {r['agreement']['abs_value_diff']:.1e} "
            f"| {r['agreement']['max_rel_grad_diff']:.1e} |"
        )
    verdict = all(r["speedup"]["median"] >= 1.7 for r in phase.values())
    return (
        f"{prov}\n\nForward + backward of `phase_loss(mode='paper')` (rfft2 with column weights) "
        "vs an independent full-spectrum reference (`torch.fft.fft2` + `angle`, L1, mean) written "
        "in `bench_phase.py`. Both give the same value and gradient (checked before timing). "
        "Times are medians (IQR) of `blocked_autorange` block means pooled over interleaved "
        "rounds; the speed-up is the median of per-round ratios.\n\n"
        + "\n".join(rows)
        + f"\n\nTarget >= 1.7x: {'met' if verdict else 'NOT met'}."
    )


def relation_section(rel: dict[str, Any], args: argparse.Namespace, prov: str) -> str:
    out = [
        prov,
        "",
        f"Network: {rel['net']}, {rel['params']:,} parameters; batch 4; Adam; loss `L1` vs "
        f"`L1 + 0.1 * SampleRelationLoss(BatchCorrelationModule(work_size=...))` (random BCM "
        "weights: the cost does not depend on them). `full` = `work_size=None` (paper). "
        f"{args.rounds} interleaved rounds after one warm-up call per workload.",
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
    ]
    for size, r in rel["sizes"].items():
        base = r["times"]["L1"]
        for ws in [brel.ws_label(w) for w in args.work_sizes]:
            term = r["times"][f"rel@{ws}"]
            to = r["term_overhead"][ws]
            e2e = r["e2e_overhead"].get(ws)
            e2e_s = (
                f"{_pct(e2e['median'])} ({_pct(e2e['min'])}..{_pct(e2e['max'])})" if e2e else "-"
            )
            peak_erl = r["peak_bytes"].get(f"L1+rel@{ws}")
            out.append(
                f"| {size} | {_ms(base)} | {ws} | {_ms(term)} | **{_pct(to['median'])}** "
                f"({_pct(to['min'])}..{_pct(to['max'])}) | {e2e_s} "
                f"| {_mib(r['peak_bytes']['L1'])} / {_mib(peak_erl) if peak_erl else '-'} "
                f"| {_mib(r['peak_bytes'][f'rel@{ws}'])} |"
            )
    sizes = list(rel["sizes"])
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        growth = []
        for ws in [brel.ws_label(w) for w in args.work_sizes]:
            a = rel["sizes"][lo]["times"][f"rel@{ws}"]["median"]
            b = rel["sizes"][hi]["times"][f"rel@{ws}"]["median"]
            growth.append(f"{ws}: {b / a:.2f}x")
        pixels = (int(hi) / int(lo)) ** 2
        out += [
            "",
            f"**Growth of the relation term from {lo} to {hi} px** ({pixels:.0f}x the pixels): "
            + "; ".join(growth)
            + ". Expected: about 1x for a `work_size` at or below both sizes (only the area "
            f"resize scales with the pixels), about {pixels:.0f}x for `full`.",
        ]
    out += [
        "",
        "Peak memory: "
        + (
            "`torch.cuda.max_memory_allocated` during one call, minus the memory allocated "
            "before it"
            if args.device == "cuda"
            else "the peak of torch's CPU allocator during one call, on top of what was live "
            "before it (running `Total Allocated` of `torch.profiler` memory events, "
            "`profile_memory=True`, on the warm-up call); oneDNN/MKL internal scratch buffers "
            "are not counted"
        )
        + ". The L1 step's peak includes the network's activations and gradients.",
    ]
    return "\n".join(out)


def work_size_section(rel: dict[str, Any], args: argparse.Namespace, prov: str) -> str:
    rows = ["| work_size | " + " | ".join(f"overhead {s}px" for s in rel["sizes"]) + " |"]
    rows.append("|---|" + "---|" * len(rel["sizes"]))
    for w in args.work_sizes:
        ws = brel.ws_label(w)
        rows.append(
            f"| {ws} | "
            + " | ".join(_pct(r["term_overhead"][ws]["median"]) for r in rel["sizes"].values())
            + " |"
        )
    return (
        f"{prov}\n\nCost side of the `work_size` choice (relation-term overhead on a "
        f"{rel['net'].split(' ')[0]} training step, batch 4, from the section above). The quality "
        "side (ERL's PSNR/SSIM gain per `work_size`) is measured separately by the quality "
        "benchmark.\n\n" + "\n".join(rows)
    )


# -- main -----------------------------------------------------------------------------------------
def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _work_sizes(text: str) -> list[int | None]:
    return [None if t.strip().lower() in ("none", "full") else int(t) for t in text.split(",")]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--sizes", type=_ints, default=[256, 512], help="patch sizes (256,512)")
    p.add_argument(
        "--work-sizes", type=_work_sizes, default=[None, 64, 128, 256],
        help="BCM work_size values for the relation term (none,64,128,256)",
    )  # fmt: skip
    p.add_argument(
        "--e2e-work-sizes", type=_work_sizes, default=None,
        help="work sizes also timed as full ERL steps (default: none,128)",
    )  # fmt: skip
    p.add_argument(
        "--e2e-sizes", type=_ints, default=None,
        help="patch sizes with full ERL steps (default: 256 on CPU, all sizes on CUDA)",
    )  # fmt: skip
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (2 CPU, 10 CUDA)")
    p.add_argument("--phase-rounds", type=int, default=None, help="phase rounds (6 CPU, 10 CUDA)")
    p.add_argument("--min-run-time", type=float, default=0.25, help="blocked_autorange seconds")
    p.add_argument(
        "--precision", default=None,
        help="comma list of fp32,bf16 for the training step (default: fp32 CPU, fp32,bf16 CUDA)",
    )  # fmt: skip
    p.add_argument("--net", default="auto", choices=["auto", "fecnet", "standin"])
    p.add_argument("--skip-phase", action="store_true")
    p.add_argument("--skip-relation", action="store_true")
    p.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md")
    p.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    p.add_argument("--json", type=Path, default=None, help="also dump raw results as JSON")
    p.add_argument(
        "--render-json", type=Path, default=None,
        help="only re-render the RESULTS.md sections from a --json file (same size options)",
    )  # fmt: skip
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    if args.e2e_work_sizes is None:
        args.e2e_work_sizes = [None, 128]
    if args.e2e_sizes is None:
        args.e2e_sizes = list(args.sizes) if cuda else [s for s in args.sizes if s <= 256]
    args.rounds = args.rounds or (10 if cuda else 2)
    args.phase_rounds = args.phase_rounds or (10 if cuda else 6)
    args.precision = (args.precision or ("fp32,bf16" if cuda else "fp32")).split(",")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.render_json:  # re-render RESULTS.md sections from a saved --json: no device needed
        results = json.loads(args.render_json.read_text())
        return write_sections(results, args, device, results["machine"], results["command"])
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda but CUDA is not available", file=sys.stderr)
        return 2
    _cf.configure_threads()
    _cf.seed_all()
    info = _cf.collect_machine_info(device)
    env = os.environ.get("ERL_BENCH_THREADS")
    command = (f"ERL_BENCH_THREADS={env} " if env else "") + "python benchmarks/run_perf.py "
    command = (
        command + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    ).strip()
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)

    log(f"machine: {json.dumps(info)}")
    results: dict[str, Any] = {"machine": info, "command": command}
    if not args.skip_phase:
        results["phase"] = run_phase(args, device, log)
    results["relation"] = {}
    if not args.skip_relation:
        for prec in args.precision:
            amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[prec]
            try:
                results["relation"][prec] = run_relation(args, device, amp, log)
            except Exception as exc:  # a failed variant must not lose the others' figures
                log(f"  relation benchmark ({prec}) failed: {exc!r}")
                results["relation"][prec] = {"error": repr(exc)}
    results["wall_s"] = time.perf_counter() - t_start
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    write_sections(results, args, device, info, command)
    log(f"done in {results['wall_s'] / 60:.1f} min")
    return 0


def write_sections(
    results: dict[str, Any],
    args: argparse.Namespace,
    device: torch.device,
    info: dict[str, Any],
    command: str,
) -> int:
    prov = provenance(info, command, results["wall_s"], device)

    dev = args.device
    sections: dict[str, str] = {}
    if "phase" in results:
        sections[f"Performance: PhaseLoss rfft2 vs full fft2 [{dev}]"] = phase_section(
            results["phase"], prov
        )
    for prec, rel in results["relation"].items():
        tag = dev if prec == "fp32" else f"{dev}, {prec} autocast"
        if "error" in rel:
            sections[f"Performance: relation overhead per training step [{tag}]"] = (
                f"{prov}\n\nFAILED: `{rel['error']}`"
            )
            continue
        sections[f"Performance: relation overhead per training step [{tag}]"] = relation_section(
            rel, args, prov
        )
        if prec == "fp32":
            sections[f"Performance: work_size cost [{dev}]"] = work_size_section(rel, args, prov)
    for heading, body in sections.items():
        print(f"\n## {heading}\n\n{body}")
    if not args.no_write:
        update_results(args.results, sections)
        print(f"updated {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
