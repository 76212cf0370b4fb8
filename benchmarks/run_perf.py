"""Runs every performance benchmark in ONE process and writes the ratios to RESULTS.md.

    python benchmarks/run_perf.py                 # CPU, about 5 min on a quiet 2-core machine
    python benchmarks/run_perf.py --device cuda   # the GPU sections: + bf16 autocast, CUDA graphs

Measurements (see README.md for the methodology):

* PhaseLoss, forward + backward, batch 4 x 3 x S x S: the library's ``rfft2`` implementation
  (fused element-wise node, and unfused) vs an independent full-``fft2`` reference of eq. 3
  (values and gradients checked equal first).
* One training step (forward + backward + Adam) of FECNet (~0.15M parameters), batch 4:
  ``L1`` vs ``L1 + 0.1 * relation`` with the BCM at several ``work_size``, with and without CUDA
  graphs; and the relation term alone (the whole extra work of an ERL step).
* The cold start of ``SampleRelationLoss.from_pretrained()`` (load + first call), in fresh
  processes.

Baseline and candidates are measured in interleaved rounds (ABBA order: forward, then reversed),
so slow drifts of a shared machine hit both; ratios are computed per round and their median is
reported together with the pooled medians and IQRs of the raw times. Every section written
carries the machine, the command and the date of this one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
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
import bench_cold_start  # noqa: E402
import bench_phase  # noqa: E402
import bench_relation_overhead as brel  # noqa: E402
import perf_report as report  # noqa: E402

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
    """Named workloads measured in interleaved rounds (ABBA order) after their warm-up calls
    (one, measuring memory; more where ``add`` asks, e.g. for a CUDA-graph capture)."""

    def __init__(self, device: torch.device, min_run_time: float, memory: bool = False) -> None:
        self.device, self.min_run_time, self.memory = device, min_run_time, memory
        self.fns: dict[str, Callable[[], None]] = {}
        self.samples: dict[str, list[float]] = {}
        self.round_medians: dict[str, list[float]] = {}
        self.heavy: dict[str, bool] = {}
        self.peak_bytes: dict[str, int] = {}
        self.warmup_s: dict[str, float] = {}
        self.extra_warmups: dict[str, int] = {}

    def add(self, name: str, fn: Callable[[], None], extra_warmups: int = 0) -> None:
        self.fns[name] = fn
        self.extra_warmups[name] = extra_warmups

    def run(self, rounds: int, log: Callable[[str], None]) -> None:
        for name, fn in self.fns.items():  # warm-up round, also the memory measurement
            t0 = time.perf_counter()
            if self.memory:
                self.peak_bytes[name] = brel.peak_memory_bytes(fn, self.device)
            else:
                fn()
                _cf.synchronize(self.device)
            self.warmup_s[name] = time.perf_counter() - t0
            for _ in range(self.extra_warmups[name]):
                fn()
            _cf.synchronize(self.device)
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


class Deadline:
    """A soft time limit (``--deadline-s``): a section not started before it is skipped and
    listed in the results' ``skipped``, so a run given a time slice stops between sections."""

    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.perf_counter() + seconds
        self.skipped: list[str] = []

    def passed(self) -> bool:
        return self.end is not None and time.perf_counter() >= self.end

    def skip(self, what: str) -> None:
        self.skipped.append(f"{what}: not started, --deadline-s reached")


# -- the benchmarks -------------------------------------------------------------------------------
def phase_implementations(device: torch.device) -> dict[str, Callable[[Tensor, Tensor], Tensor]]:
    """``bench_phase``'s implementations, plus on CUDA ``rfft2-eager``: the fused node run
    eagerly (``ERL_LOSSES_FUSED_PHASE=eager``), the alternative to compiling it there (on a CPU
    the shipped path is already the eager node)."""
    impls = dict(bench_phase.IMPLEMENTATIONS)
    if device.type == "cuda":
        impls["rfft2-eager"] = bench_phase._library("eager")
    return impls


def _phase_step(fn: Callable[[Tensor, Tensor], Tensor], pred: Tensor, target: Tensor):  # type: ignore[no-untyped-def]
    def step() -> None:
        pred.grad = None
        fn(pred, target).backward()

    return step


def run_phase(
    args: argparse.Namespace, device: torch.device, log, deadline: Deadline
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    impls = phase_implementations(device)
    for size in args.sizes:
        if deadline.passed():
            deadline.skip(f"phase {size}px")
            continue
        log(f"  phase loss {size}px")
        agreement = bench_phase.check_agreement(size, device)
        bench = Interleaved(device, args.min_run_time)
        for impl, fn in impls.items():
            bench.add(impl, _phase_step(fn, *bench_phase.make_inputs(size, device)))
        bench.run(args.phase_rounds, log)
        out[str(size)] = {
            "agreement": agreement,
            **{impl: bench.stats(impl) for impl in impls},
            "speedup": bench.paired_ratio("fft2", "rfft2"),
            "fused_gain": bench.paired_ratio("rfft2-unfused", "rfft2"),
            # The first call: on CUDA it includes compiling the fused node.
            "first_call_s": dict(bench.warmup_s),
        }
        if "rfft2-eager" in impls:
            out[str(size)]["eager_gain"] = bench.paired_ratio("rfft2-eager", "rfft2")
    return out


def _relation_workloads(args: argparse.Namespace, size: int) -> list[tuple[str, bool, bool, bool]]:
    """``(label, cuda_graphs, as_term, as_step)`` of the relation workloads at ``size``: every
    work size as a term (the e2e ones also as full ERL steps), then the ``+graphs`` variants."""
    e2e = args.e2e_work_sizes if size in args.e2e_sizes else []
    out = [(brel.ws_label(ws), False, True, ws in e2e) for ws in args.work_sizes]
    out += [(f"{brel.ws_label(ws)}+graphs", True, True, ws in e2e) for ws in args.graphs_work_sizes]
    out += [(brel.ws_label(ws), False, False, True) for ws in e2e if ws not in args.work_sizes]
    return out


def _make_relation(label: str, device: torch.device, graphs: bool):  # type: ignore[no-untyped-def]
    base = label.removesuffix("+graphs")
    return brel.make_relation(None if base == "full" else int(base), device, cuda_graphs=graphs)


def run_relation(
    args: argparse.Namespace,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    log,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    make_net, net_label = brel.net_factory(args.net)
    out: dict[str, Any] = {
        "net": net_label,
        "params": brel.count_parameters(make_net()),
        "sizes": {},
    }
    for size in args.sizes:
        if deadline is not None and deadline.passed():
            deadline.skip(f"relation {size}px (amp={amp_dtype})")
            continue
        log(f"  training step {size}px ({net_label}, amp={amp_dtype})")
        bench = Interleaved(device, args.min_run_time, memory=True)
        bench.add("L1", brel.TrainStep(make_net, size, device, None, amp_dtype))
        workloads = _relation_workloads(args, size)
        for label, graphs, as_term, as_step in workloads:
            warm = 2 if graphs else 0  # graphs are captured on a shape's second call
            if as_step:
                rel = _make_relation(label, device, graphs)
                step = brel.TrainStep(make_net, size, device, rel, amp_dtype)
                bench.add(f"L1+rel@{label}", step, extra_warmups=warm)
            if as_term:
                term = brel.RelationTerm(
                    _make_relation(label, device, graphs), size, device, amp_dtype
                )
                bench.add(f"rel@{label}", term, extra_warmups=warm)
        bench.run(args.rounds, log)
        res: dict[str, Any] = {
            "times": {n: bench.stats(n) for n in bench.fns},
            "peak_bytes": bench.peak_bytes,
            "e2e_overhead": {},
            "term_overhead": {},
            "graphs_gain": {},
        }
        base = res["times"]["L1"]["median"]
        for label, _, as_term, as_step in workloads:
            if as_step:
                ratio = bench.paired_ratio(f"L1+rel@{label}", "L1")
                res["e2e_overhead"][label] = {k: v - 1 for k, v in ratio.items()}
            if as_term:
                name = f"rel@{label}"
                res["term_overhead"][label] = {
                    "median": res["times"][name]["median"] / base,
                    **{k: v for k, v in bench.paired_ratio(name, "L1").items() if k != "median"},
                }
            eager = f"rel@{label.removesuffix('+graphs')}"
            if label.endswith("+graphs") and as_term and eager in bench.fns:
                # eager / graphed term time, per round: > 1 when the graphs are faster.
                res["graphs_gain"][label.removesuffix("+graphs")] = bench.paired_ratio(
                    eager, f"rel@{label}"
                )
        out["sizes"][str(size)] = res
    return out


# -- main -----------------------------------------------------------------------------------------
def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _work_sizes(text: str) -> list[int | None]:
    """``"none,64"`` -> ``[None, 64]`` (``none``/``full``: full resolution); ``""`` -> ``[]``."""
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    return [None if t in ("none", "full") else int(t) for t in items]


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
    p.add_argument(
        "--graphs-work-sizes", type=_work_sizes, default=None,
        help="work sizes also timed with cuda_graphs=True (default: 128 on CUDA, none on CPU)",
    )  # fmt: skip
    p.add_argument("--cold-start-runs", type=int, default=5, help="fresh processes (0: skip)")
    p.add_argument("--cold-start-size", type=int, default=256, help="first-call patch size")
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
    p.add_argument(
        "--json", type=Path, default=None,
        help="also dump raw results as JSON (rewritten after every section: a stopped run "
        "keeps the sections it finished)",
    )  # fmt: skip
    p.add_argument(
        "--deadline-s", type=float, default=None,
        help="soft time limit in seconds: sections not started by then are skipped and listed",
    )  # fmt: skip
    p.add_argument(
        "--render-json", type=Path, default=None,
        help="only re-render the RESULTS.md sections from a --json file (same size options)",
    )  # fmt: skip
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    if args.e2e_work_sizes is None:
        args.e2e_work_sizes = [None, 128]
    if args.graphs_work_sizes is None:
        args.graphs_work_sizes = [128] if cuda else []
    if args.e2e_sizes is None:
        args.e2e_sizes = list(args.sizes) if cuda else [s for s in args.sizes if s <= 256]
    args.rounds = args.rounds or (10 if cuda else 2)
    args.phase_rounds = args.phase_rounds or (10 if cuda else 6)
    args.precision = (args.precision or ("fp32,bf16" if cuda else "fp32")).split(",")
    return args


def _dump(results: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(results, indent=2, default=str))
        tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.render_json:  # re-render RESULTS.md sections from a saved --json: no device needed
        results = json.loads(args.render_json.read_text())
        return write_sections(results, args, device, results["machine"], results["command"])
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda but CUDA is not available", file=sys.stderr)
        return 2
    if args.deadline_s is not None and args.deadline_s <= 0:
        print(f"Expected --deadline-s > 0, got {args.deadline_s}", file=sys.stderr)
        return 2
    _cf.configure_threads()
    _cf.seed_all()
    info = _cf.collect_machine_info(device)
    argv_used = list(sys.argv[1:] if argv is None else argv)
    env = os.environ.get("ERL_BENCH_THREADS")
    command = (f"ERL_BENCH_THREADS={env} " if env else "") + "python benchmarks/run_perf.py "
    command = (command + " ".join(shlex.quote(a) for a in argv_used)).strip()
    t_start = time.perf_counter()
    deadline = Deadline(args.deadline_s)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)

    log(f"machine: {json.dumps(info)}")
    results: dict[str, Any] = {
        "machine": info,
        "command": command,
        "argv": argv_used,
        "relation": {},
        "skipped": deadline.skipped,
    }

    def checkpoint() -> None:
        results["wall_s"] = time.perf_counter() - t_start
        _dump(results, args.json)

    checkpoint()
    if not args.skip_phase:
        results["phase"] = run_phase(args, device, log, deadline)
        checkpoint()
    if not args.skip_relation:
        for prec in args.precision:
            if deadline.passed():
                deadline.skip(f"relation ({prec})")
                continue
            amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[prec]
            try:
                results["relation"][prec] = run_relation(args, device, amp, log, deadline)
            except Exception as exc:  # a failed variant must not lose the others' figures
                log(f"  relation benchmark ({prec}) failed: {exc!r}")
                results["relation"][prec] = {"error": repr(exc)}
            checkpoint()
    if args.cold_start_runs > 0:
        if deadline.passed():
            deadline.skip("cold start")
        else:
            log(f"  cold start ({args.cold_start_runs} fresh processes)")
            results["cold_start"] = bench_cold_start.cold_start(
                args.device, args.cold_start_size, args.cold_start_runs
            )
    results["complete"] = not deadline.skipped
    checkpoint()
    for what in deadline.skipped:
        log(f"  skipped {what}")
    write_sections(results, args, device, info, command)
    log(f"done in {results['wall_s'] / 60:.1f} min")
    return 0


#: Options of a saved run that do not change what its sections say.
_NOT_RENDERED = {"--json": 1, "--results": 1, "--deadline-s": 1, "--no-write": 0}


def render_saved(json_path: Path, results_path: Path) -> dict[str, str]:
    """Writes the RESULTS.md sections of a run saved with ``--json`` into ``results_path``,
    parsing the run's own options again; returns the sections written."""
    results = json.loads(json_path.read_text())
    argv, kept = list(results.get("argv", [])), []
    i = 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        if name in _NOT_RENDERED:
            i += 1 + (_NOT_RENDERED[name] if "=" not in argv[i] else 0)
            continue
        kept.append(argv[i])
        i += 1
    args = parse_args([*kept, "--results", str(results_path)])
    device = torch.device(args.device)
    return render_sections(results, args, device, results["machine"], results["command"], True)


def write_sections(
    results: dict[str, Any],
    args: argparse.Namespace,
    device: torch.device,
    info: dict[str, Any],
    command: str,
) -> int:
    """Renders the sections of one run (all with its provenance), prints and writes them."""
    sections = render_sections(results, args, device, info, command, not args.no_write)
    for heading, body in sections.items():
        print(f"\n## {heading}\n\n{body}")
    if not args.no_write:
        print(f"updated {args.results}")
    return 0


def render_sections(
    results: dict[str, Any],
    args: argparse.Namespace,
    device: torch.device,
    info: dict[str, Any],
    command: str,
    write: bool,
) -> dict[str, str]:
    """The ``{heading: body}`` sections of one run; written into ``args.results`` if ``write``."""
    prov = report.provenance(info, command, results["wall_s"], device)
    if results.get("skipped"):
        prov += "\n- Stopped by `--deadline-s` before: " + "; ".join(results["skipped"]) + "."
    dev = args.device
    sections: dict[str, str] = {}
    if results.get("phase"):
        sections[f"Performance: PhaseLoss rfft2 vs full fft2 [{dev}]"] = report.phase_section(
            results["phase"], prov, device
        )
    for prec, rel in results["relation"].items():
        tag = dev if prec == "fp32" else f"{dev}, {prec} autocast"
        heading = f"Performance: relation overhead per training step [{tag}]"
        if "error" in rel:
            sections[heading] = f"{prov}\n\nFAILED: `{rel['error']}`"
            continue
        if not rel["sizes"]:
            continue
        sections[heading] = report.relation_section(rel, args, prov, device)
        if prec == "fp32":
            sections[f"Performance: work_size cost [{dev}]"] = report.work_size_section(rel, prov)
    if "cold_start" in results:
        sections[f"Performance: from_pretrained cold start [{dev}]"] = report.cold_start_section(
            results["cold_start"], prov, device
        )
    if write:
        report.update_results(args.results, sections)
    return sections


if __name__ == "__main__":
    raise SystemExit(main())
