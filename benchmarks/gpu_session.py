"""The GPU session kit: every GPU measurement of the project in one prepared, time-boxed run.

    python benchmarks/gpu_session.py --device cuda --budget-s 480 --out DIR   # on the GPU machine
    python benchmarks/gpu_session.py --render DIR                             # here, afterwards
    python benchmarks/gpu_session.py --device cpu --tiny --out DIR            # the kit's own check

A lent GPU comes with a few minutes of device time, so the parts run in priority order, each a
subprocess with a timeout taken from what is left of ``--budget-s``:

1. ``tests``: ``tests/losses/test_cuda.py`` and every other CUDA-only test (a skip reason saying it
   needs CUDA, a ``cuda`` marker or a ``cuda`` parameter), by pytest with a junit report, turned
   into ``tests.json``.
2. ``perf``: ``run_perf.py --device cuda`` trimmed to a time slice: compiled fused vs eager fused
   vs unfused vs ``fft2`` PhaseLoss; the relation term eager and with ``cuda_graphs``, fp32 and
   bf16 autocast; the cold start. ``perf.json``.
3. ``basicsr``: ``basicsr_gpu.py``: a shipped paper option file with and without ERL, fp32 and
   bf16, and a resume. ``basicsr.json``.
4. ``quality``: a slice of the registered evidence protocol (``evidence.py --split test`` under
   ``protocol.toml``: its primaries first, then its controls): as many paired seeds as the time
   left allows, with a worker count the GPU's free memory allows. ``quality.json``. The protocol's
   test split includes the optional Debian photos: on a machine without ``mate-backgrounds``
   copy ``/usr/share/backgrounds/mate/nature`` along and point ``ERL_MATE_PHOTOS`` at it, else
   the part is skipped with that reason.

A part starts only when its minimum time is left (else it is skipped, with the reason); a part
that overruns its slice is stopped (its process group terminated). Every part writes its JSON as
it goes, and ``summary.json`` (rewritten after every part) lists what ran, what was skipped and
why, with durations. ``--render DIR`` writes the brought-back figures into RESULTS.md: the
``run_perf`` ``[cuda]`` sections, and the delimited ``GPU session [cuda]`` block (targets met or
not, the decisions the figures settle). Without a GPU session every cell says "not yet
measured" (``--render`` without DIR).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_MD = BENCH_DIR / "RESULTS.md"
PART_NAMES = ("tests", "perf", "basicsr", "quality")
#: Seconds kept back from the budget for the summary and process shutdown.
RESERVE_S = 5.0
#: The GPU session's budget: every GPU measurement in <= 8 minutes (design.md section 9).
GPU_BUDGET_S = 480.0
NOT_MEASURED = "not yet measured"
BEGIN = "<!-- gpu-session:begin (written by benchmarks/gpu_session.py --render) -->"
END = "<!-- gpu-session:end -->"
BLOCK_HEADING = "## GPU session [cuda]"

# -- quality slice estimates ------------------------------------------------------------------
#: Wall seconds of one 1200-step quality run while 12 workers share an H100: 36 such runs took
#: 428 s with 12 workers (2026-11-25), about 3 runs of ~140 s per worker. The estimate when the
#: script has no protocol to size it.
QUALITY_RUN_S = 140.0
#: The same per training step: a protocol's runs are sized by their steps.
QUALITY_STEP_S = QUALITY_RUN_S / 1200
#: Rendering the data, the BCMs' diagnostics and the workers' start-up.
QUALITY_OVERHEAD_S = 60.0
#: Training runs per paired seed when the script has no protocol (2 nets x (L1 + 2 ERL arms)).
QUALITY_RUNS_PER_SEED = 6
#: GPU memory one quality worker holds (CUDA context, both data banks on the device, a net, BCM).
QUALITY_WORKER_GIB = 2.0
#: At most this many workers: the timing above was measured at this concurrency.
QUALITY_MAX_WORKERS = 12
#: quality.py compares paired seeds: fewer than this is no comparison.
QUALITY_MIN_SEEDS = 2


# ---------------------------------------------------------------------------------------------
# pytest plugin (loaded in the tests part with ``-p benchmarks.gpu_session``)
# ---------------------------------------------------------------------------------------------
_NEEDS_CUDA = re.compile(r"\b(needs|requires)\s+(a\s+)?(CUDA|GPU)\b", re.IGNORECASE)


def is_cuda_only(item: Any) -> bool:
    """Whether a collected pytest item is a CUDA test: in a ``test_cuda*.py`` module, marked
    ``cuda``, skipped elsewhere with a reason saying it needs CUDA, or parametrised with a
    ``cuda`` device."""
    if Path(str(item.fspath)).name.startswith("test_cuda"):
        return True
    if item.get_closest_marker("cuda") is not None:
        return True
    for mark in item.iter_markers("skipif"):
        if _NEEDS_CUDA.search(str(mark.kwargs.get("reason", ""))):
            return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(str(value).startswith("cuda") for value in params.values())


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Keeps the CUDA tests only (the files given hold other tests too)."""
    kept = [item for item in items if is_cuda_only(item)]
    dropped = [item for item in items if not is_cuda_only(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


def cuda_test_files(root: Path = ROOT) -> list[str]:
    """``tests/losses/test_cuda.py`` and the other test files that mention CUDA, relative to
    ``root`` (the plugin then keeps only their CUDA tests)."""
    files = []
    for path in sorted((root / "tests").rglob("test_*.py")):
        text = path.read_text(errors="replace")
        if (
            path.name.startswith("test_cuda")
            or re.search(r"reason\s*=\s*[\"'][^\"']*" + _NEEDS_CUDA.pattern, text, re.IGNORECASE)
            or re.search(r"mark\.cuda\b", text)
        ):
            files.append(str(path.relative_to(root)))
    return files


def junit_to_json(xml_path: Path) -> dict[str, Any]:
    """Counts and per-test outcomes of a pytest junit report."""
    tests: list[dict[str, Any]] = []
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (node.get("message") or node.text or "")[:2000]
                break
        tests.append({
            "id": f"{case.get('classname')}::{case.get('name')}",
            "outcome": outcome,
            "seconds": float(case.get("time") or 0.0),
            "message": message,
        })  # fmt: skip
    counts = {
        k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "error", "skipped")
    }
    return {"counts": counts, "tests": tests}


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Slice:
    """The time rules of one part: it starts only with ``min_s`` left and runs at most
    ``cap_s`` (``None``: everything left)."""

    min_s: float
    cap_s: float | None


#: Time rules per part on a GPU (an H100 or H200) and in the tiny CPU check.
SLICES: dict[str, dict[str, Slice]] = {
    "cuda": {
        "tests": Slice(30, 90),
        "perf": Slice(60, 150),
        "basicsr": Slice(60, 120),
        "quality": Slice(QUALITY_OVERHEAD_S + QUALITY_RUN_S, None),
    },
    "tiny": {
        "tests": Slice(3, 60),
        "perf": Slice(5, 90),
        "basicsr": Slice(10, 120),
        "quality": Slice(10, None),
    },
}


def part_timeout(slice_: Slice, left_s: float) -> tuple[float | None, str]:
    """``(timeout, "")`` for a part that fits in ``left_s`` seconds, else ``(None, reason)``."""
    if left_s < slice_.min_s:
        return (
            None,
            f"needs at least {slice_.min_s:.0f} s, {max(left_s, 0):.0f} s of the budget left",
        )
    return (left_s if slice_.cap_s is None else min(slice_.cap_s, left_s)), ""


def quality_plan(
    timeout_s: float,
    free_gib: float,
    cores: int,
    run_s: float = QUALITY_RUN_S,
    overhead_s: float = QUALITY_OVERHEAD_S,
    runs_per_seed: int = QUALITY_RUNS_PER_SEED,
    worker_gib: float = QUALITY_WORKER_GIB,
    max_workers: int = QUALITY_MAX_WORKERS,
) -> tuple[int, int, str]:
    """``(seeds, workers, why)`` of the quality slice: the workers the free GPU memory and the
    cores allow, then the most paired seeds whose runs, in waves of ``workers`` runs of
    ``run_s`` each, end within ``timeout_s`` after ``overhead_s``; ``seeds`` is 0 (and ``why``
    says so) when fewer than :data:`QUALITY_MIN_SEEDS` fit."""
    workers = max(0, min(max_workers, cores, int(free_gib * 0.9 // worker_gib)))
    if workers < 1:
        return 0, 0, f"{free_gib:.1f} GiB free GPU memory: no room for a {worker_gib} GiB worker"
    seeds = 0
    while True:
        waves = math.ceil((seeds + 1) * runs_per_seed / workers)
        if overhead_s + waves * run_s > timeout_s:
            break
        seeds += 1
    why = (
        f"{workers} workers ({free_gib:.1f} GiB free / {worker_gib} GiB each, {cores} cores, "
        f"at most {max_workers}); {seeds} seeds x {runs_per_seed} runs in "
        f"{math.ceil(max(seeds, 1) * runs_per_seed / workers)} waves of ~{run_s:.0f} s + "
        f"{overhead_s:.0f} s set-up within {timeout_s:.0f} s"
    )
    if seeds < QUALITY_MIN_SEEDS:
        return 0, workers, f"fewer than {QUALITY_MIN_SEEDS} paired seeds fit: {why}"
    return seeds, workers, why


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------
class Stopped(Exception):
    """The session received SIGTERM or SIGINT."""


@dataclass
class PartResult:
    name: str
    status: str = "skipped"  # ran | failed | timeout | interrupted | skipped
    reason: str = ""
    seconds: float = 0.0
    timeout_s: float | None = None
    returncode: int | None = None
    command: str = ""
    json: str | None = None
    log: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _kill_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to the part's process group (its workers too), SIGKILL after ``grace_s``."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_command(
    cmd: list[str], timeout_s: float, log: Path, env: dict[str, str]
) -> tuple[str, int | None]:
    """Runs ``cmd`` in its own process group with its output in ``log``; returns
    ``(status, returncode)``, status ``ran``, ``failed``, ``timeout`` or (re-raised) stopped."""
    with log.open("w") as handle:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return "timeout", proc.returncode
        except BaseException:
            _kill_group(proc)
            raise
    return ("ran" if code == 0 else "failed"), code


class Session:
    """One kit run: the parts in priority order within ``budget_s``, ``summary.json`` after each."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out
        self.started = time.monotonic()
        self.mode = "tiny" if args.tiny else "cuda"
        self.parts: list[PartResult] = []
        self.summary: dict[str, Any] = {
            "device": args.device,
            "tiny": args.tiny,
            "budget_s": args.budget_s,
            "command": "python benchmarks/gpu_session.py " + shlex.join(args.argv),
            "date_utc": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
            "machine": machine(args.device),
            "parts": [],
            "finished": False,
        }
        self.env = dict(os.environ)
        if args.tiny:  # small tensors: extra threads only add contention (as in the test suite)
            self.env.update(OMP_NUM_THREADS="1", ERL_BENCH_THREADS="1")
        self.work = Path(tempfile.mkdtemp(prefix="erl-gpu-session-"))

    def left_s(self) -> float:
        return self.args.budget_s - (time.monotonic() - self.started) - RESERVE_S

    def write_summary(self) -> None:
        self.summary["parts"] = [vars(p) for p in self.parts]
        self.summary["total_s"] = time.monotonic() - self.started
        tmp = self.out / "summary.json.tmp"
        tmp.write_text(json.dumps(self.summary, indent=2) + "\n")
        tmp.replace(self.out / "summary.json")

    def run(self) -> int:
        builders: dict[str, Callable[[float], tuple[list[str] | None, str, dict[str, Any]]]] = {
            "tests": self.tests_command,
            "perf": self.perf_command,
            "basicsr": self.basicsr_command,
            "quality": self.quality_command,
        }
        try:
            for name in PART_NAMES:
                part = PartResult(name)
                self.parts.append(part)
                if name in self.args.skip:
                    part.reason = "skipped by --skip"
                elif not self.args.device_ok:
                    part.reason = f"--device {self.args.device} is not available"
                else:
                    self.run_part(part, builders[name])
                self.write_summary()
                print(f"gpu_session: {name}: {part.status} {part.reason}".rstrip(), flush=True)
        except Stopped:
            self.summary["stopped"] = "SIGTERM or SIGINT"
            self.write_summary()
            return 143
        finally:
            shutil.rmtree(self.work, ignore_errors=True)
        self.summary["finished"] = True
        self.write_summary()
        return 0 if all(p.status in ("ran", "skipped") for p in self.parts) else 1

    def run_part(self, part: PartResult, build) -> None:  # type: ignore[no-untyped-def]
        timeout, why = part_timeout(SLICES[self.mode][part.name], self.left_s())
        if timeout is None:
            part.reason = why
            return
        cmd, why, details = build(timeout)
        part.details = details
        if cmd is None:
            part.reason = why
            return
        part.timeout_s = round(timeout, 1)
        part.command = shlex.join(cmd)
        part.json = f"{part.name}.json"
        part.log = f"{part.name}.log"
        t0 = time.monotonic()
        try:
            part.status, part.returncode = run_command(cmd, timeout, self.out / part.log, self.env)
        except Stopped:
            part.status, part.reason = "interrupted", "the session was stopped"
            part.seconds = time.monotonic() - t0
            raise
        part.seconds = round(time.monotonic() - t0, 1)
        if part.status == "timeout":
            part.reason = f"stopped at its {timeout:.0f} s slice; its JSON holds what it finished"
        elif part.status == "failed":
            part.reason = f"exit status {part.returncode}; see {part.log}"
        if part.name == "tests":
            self.finish_tests(part)
        if not (self.out / part.json).exists():
            part.json = None
            part.reason = (part.reason + "; " if part.reason else "") + "wrote no JSON"

    # -- the parts' commands ------------------------------------------------------------------
    def tests_command(self, timeout: float):  # type: ignore[no-untyped-def]
        files = cuda_test_files()
        cmd = [
            sys.executable, "-m", "pytest", *files, "-q", "-p", "benchmarks.gpu_session",
            "-p", "no:cacheprovider", f"--junitxml={self.out / 'tests.xml'}",
        ]  # fmt: skip
        return cmd, "", {"files": files}

    def finish_tests(self, part: PartResult) -> None:
        xml = self.out / "tests.xml"
        if not xml.exists():
            return
        data = junit_to_json(xml)
        data["returncode"] = part.returncode
        (self.out / "tests.json").write_text(json.dumps(data, indent=2) + "\n")
        # pytest exits 1 when a test fails: the part ran, its JSON says which failed.
        if part.status == "failed" and part.returncode == 1:
            part.reason = "{failed} failed, {error} errors".format(**data["counts"])

    def perf_command(self, timeout: float):  # type: ignore[no-untyped-def]
        # Sections starting after 70 % of the slice are skipped: the last one must end in it.
        cmd = [
            sys.executable, str(BENCH_DIR / "run_perf.py"), "--device", self.args.device,
            *TRIMS[self.mode]["perf"], "--no-write", "--json", str(self.out / "perf.json"),
            "--deadline-s", f"{timeout * 0.7:.0f}",
        ]  # fmt: skip
        return cmd, "", {}

    def basicsr_command(self, timeout: float):  # type: ignore[no-untyped-def]
        # basicsr_gpu.py skips a variant its last one's duration says would end after this.
        cmd = [
            sys.executable, str(BENCH_DIR / "basicsr_gpu.py"), "--device", self.args.device,
            *TRIMS[self.mode]["basicsr"], "--out", str(self.work / "basicsr"),
            "--json", str(self.out / "basicsr.json"), "--deadline-s", f"{max(timeout - 10, 1):.0f}",
        ]  # fmt: skip
        return cmd, "", {}

    def quality_command(self, timeout: float):  # type: ignore[no-untyped-def]
        script = self.args.quality_script
        flags = script_flags(script)
        protocol = self.args.protocol
        if "--protocol" not in flags or protocol is None or not protocol.exists():
            protocol = None
        elif self.args.tiny:  # the registered arms and code paths at toy size, bundled photos
            from evidence_protocol import toy_protocol

            protocol = toy_protocol(protocol, self.work / "toy-protocol.toml")
        sizing = protocol_sizing(protocol, tiny=self.args.tiny) if protocol is not None else {}
        if sizing.get("missing"):
            return None, sizing["missing"], {"protocol": str(protocol)}
        run_s = self.args.quality_run_s or sizing.get("run_s", QUALITY_RUN_S)
        runs_per_seed = self.args.quality_runs_per_seed or sizing.get(
            "runs_per_seed", QUALITY_RUNS_PER_SEED
        )
        if self.args.tiny:
            seeds, workers, why = QUALITY_MIN_SEEDS, 1, "the tiny check: 2 seeds, 1 worker"
            free = None
        else:
            free = free_gpu_gib()
            seeds, workers, why = quality_plan(
                timeout, free, os.cpu_count() or 1, run_s=run_s, runs_per_seed=runs_per_seed
            )
        details = {"seeds": seeds, "workers": workers, "plan": why, "free_gib": free}
        if seeds == 0:
            return None, why, details
        cmd = [
            sys.executable, str(script), "--device", self.args.device, "--seeds", str(seeds),
            "--workers", str(workers), "--out", str(self.out / "quality.json"),
        ]  # fmt: skip
        if protocol is not None:
            cmd += ["--protocol", str(protocol)]
            details["protocol"] = str(protocol)
        if "--split" in flags:
            cmd += ["--split", "test"]  # the registered comparisons, scored where they count
        cmd += [f for f in ("--no-md",) if f in flags]  # results come back as JSON only
        if self.args.tiny:
            tiny = TINY_EVIDENCE if "--split" in flags else TINY_QUALITY
            cmd += supported(tiny, flags)
        cmd += shlex.split(self.args.quality_args)
        return cmd, why, details


#: The perf and basicsr options of each mode. On a GPU: the sizes and work sizes the targets and
#: the decisions need (256 and 512 px; the default ``work_size=128`` eager and graphed, and full
#: resolution), 6 rounds; the option files with and without ERL in fp32 and bf16, 40 iterations
#: and a 10-iteration resume (the CUDA-graphs variant is settled by the perf part). Tiny: toy
#: sizes, without the parts that only start more interpreters (the cold start's fresh processes,
#: the resume's second training), which test_run_perf and the BasicSR tests cover, so that the
#: check stays near a minute.
TRIMS: dict[str, dict[str, list[str]]] = {
    "cuda": {
        "perf": [
            "--sizes", "256,512", "--work-sizes", "none,128", "--graphs-work-sizes", "128",
            "--e2e-work-sizes", "128", "--rounds", "6", "--phase-rounds", "6",
            "--min-run-time", "0.1", "--cold-start-runs", "3", "--precision", "fp32,bf16",
        ],
        "basicsr": [
            "--variants", "baseline,erl,baseline-bf16,erl-bf16", "--iters", "40",
            "--resume-iters", "10", "--workers", "4", "--crops-per-photo", "4",
        ],
    },
    "tiny": {
        "perf": [
            "--sizes", "32", "--work-sizes", "64", "--graphs-work-sizes", "64",
            "--e2e-work-sizes", "", "--net", "standin", "--rounds", "1", "--phase-rounds", "1",
            "--min-run-time", "0.001", "--cold-start-runs", "0", "--precision", "fp32,bf16",
        ],
        "basicsr": [
            "--variants", "erl", "--iters", "2", "--resume-iters", "0", "--batch", "2",
            "--patch", "64", "--workers", "0", "--crops-per-photo", "1",
        ],
    },
}  # fmt: skip

#: The tiny check's evidence arguments (its toy protocol sets the sizes): one net, one arm.
TINY_EVIDENCE = [("--nets", "ECLNet"), ("--arms", "phase")]
#: The tiny check's settings for a quality script without a protocol (each kept only if the
#: script has the flag).
TINY_QUALITY = [
    ("--quick",), ("--steps", "2"), ("--crop-size", "16"), ("--render-size", "32"),
    ("--train-crops", "1"), ("--test-crops", "1"), ("--nets", "ECLNet"), ("--arms", "phase"),
    ("--no-diagnostics",),
]  # fmt: skip


def protocol_sizing(protocol: Path, tiny: bool = False) -> dict[str, Any]:
    """What a registered protocol says of the quality slice's size: ``runs_per_seed`` (every
    registered net's baseline and arms), ``run_s`` (:data:`QUALITY_STEP_S` times the nets' mean
    steps) and ``missing``, the reason it cannot run here when its photos are not installed;
    with ``tiny``, the runs of :data:`TINY_EVIDENCE` (one net's baseline and one arm)."""
    from evidence import check_photos
    from evidence_protocol import NETS, ProtocolError, load_protocol

    loaded = load_protocol(protocol)
    pairs = {*loaded.primaries, *loaded.controls}
    nets = sorted({net for net, _ in pairs})
    sizing: dict[str, Any] = {
        "runs_per_seed": len(nets) + len(pairs),
        "run_s": QUALITY_STEP_S * sum(loaded.settings["steps"][n] for n in NETS) / len(NETS),
    }
    try:
        check_photos(loaded, ["train", "validation", "test"])
    except ProtocolError as err:
        sizing["missing"] = str(err)
    if tiny:
        sizing["runs_per_seed"] = 2  # TINY_EVIDENCE: one net, its baseline and one arm
    return sizing


def supported(options: list[tuple[str, ...]], flags: set[str]) -> list[str]:
    return [token for opt in options if opt[0] in flags for token in opt]


def script_flags(script: Path) -> set[str]:
    """The ``--flags`` a benchmark script's ``--help`` lists."""
    done = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", done.stdout))


def free_gpu_gib() -> float:
    """Free memory of the current CUDA device, GiB."""
    import torch

    free, _total = torch.cuda.mem_get_info()
    return free / 2**30


def machine(device: str) -> dict[str, Any]:
    import torch

    from erl_losses._runtime import machine_description

    ok = device != "cuda" or torch.cuda.is_available()
    info: dict[str, Any] = {
        "description": machine_description(device) if ok else "CUDA not available",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
    }
    if device == "cuda" and ok:
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1))
    return info


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def _load(directory: Path | None, name: str) -> dict[str, Any] | None:
    if directory is None or not (directory / name).exists():
        return None
    try:
        return json.loads((directory / name).read_text())
    except json.JSONDecodeError:
        return None


@dataclass
class Verdict:
    figure: str = NOT_MEASURED
    met: bool | None = None  # None: not measured

    @property
    def word(self) -> str:
        return NOT_MEASURED if self.met is None else ("met" if self.met else "NOT met")


def _phase_target(perf: dict | None) -> Verdict:
    phase = (perf or {}).get("phase") or {}
    if not phase:
        return Verdict()
    speed = {s: r["speedup"]["median"] for s, r in phase.items()}
    return Verdict(
        ", ".join(f"{s} px {v:.2f}x" for s, v in speed.items()),
        all(v >= 1.5 for v in speed.values()),
    )


def _term(perf: dict | None, size: str, prec: str = "fp32") -> dict[str, Any]:
    rel = ((perf or {}).get("relation") or {}).get(prec) or {}
    return ((rel.get("sizes") or {}).get(size) or {}).get("term_overhead") or {}


def _relation_target(perf: dict | None, size: str, limit: float, label: str | None) -> Verdict:
    terms = _term(perf, size)
    if not terms:
        return Verdict()
    if label is None:  # the best configuration measured
        label = min(terms, key=lambda lb: terms[lb]["median"])
    if label not in terms:
        return Verdict()
    value = terms[label]["median"]
    return Verdict(f"`{label}`: {value * 100:+.1f} % (term alone)", value <= limit)


def _cold_target(perf: dict | None) -> Verdict:
    cold = (perf or {}).get("cold_start")
    if not cold:
        return Verdict()
    total = cold["parts"]["after_torch"]["median"]
    return Verdict(f"{total:.3f} s median of {cold['runs']}", total < cold["target_s"])


def _tests_target(tests: dict | None) -> Verdict:
    if not tests:
        return Verdict()
    c = tests["counts"]
    figure = (
        f"{c['passed']} passed, {c['failed']} failed, {c['error']} errors, {c['skipped']} skipped"
    )
    return Verdict(figure, c["passed"] > 0 and c["failed"] == 0 and c["error"] == 0)


def _kit_target(summary: dict | None) -> Verdict:
    if not summary:
        return Verdict()
    wrote = [p["name"] for p in summary["parts"] if p.get("json")]
    figure = f"{summary['total_s']:.0f} s of a {summary['budget_s']:.0f} s budget; JSON from " + (
        ", ".join(wrote) or "no part"
    )
    return Verdict(figure, summary["total_s"] <= GPU_BUDGET_S and summary.get("finished", False))


def graphs_decision(perf: dict | None, tests: dict | None) -> tuple[str, str]:
    """``(rule, verdict)`` for turning ``cuda_graphs`` on by default."""
    rule = (
        "`cuda_graphs` defaults on if every CUDA test passed and the `+graphs` relation term is "
        "at least 10 % faster than the eager term at the same `work_size` (per-round median of "
        "eager / graphed >= 1.10) at every measured size, in fp32 and under bf16 autocast; "
        "otherwise it stays opt-in."
    )
    gains = {
        (prec, size, label): g["median"]
        for prec, rel in ((perf or {}).get("relation") or {}).items()
        for size, r in (rel.get("sizes") or {}).items()
        for label, g in (r.get("graphs_gain") or {}).items()
    }
    if not gains or not tests:
        return rule, NOT_MEASURED
    figures = ", ".join(f"{p} {s} px `{lb}`: {v:.2f}x" for (p, s, lb), v in gains.items())
    precs = {p for p, _, _ in gains}
    ok = _tests_target(tests).met and min(gains.values()) >= 1.10 and {"fp32", "bf16"} <= precs
    verdict = "default ON" if ok else "stays opt-in"
    return rule, f"{verdict} (eager / graphed: {figures}; CUDA tests {_tests_target(tests).word})"


def fused_phase_decision(perf: dict | None, tests: dict | None) -> tuple[str, str]:
    """``(rule, verdict)`` for keeping the compiled fused PhaseLoss as the CUDA default."""
    rule = (
        "The compiled fused node (`ERL_LOSSES_FUSED_PHASE=auto`) stays the CUDA default if every "
        "CUDA test passed and it is at least as fast as both the unfused graph and the eager "
        "fused node (per-round medians of unfused / compiled and eager / compiled >= 1.0) at "
        "every measured size; otherwise the faster of `eager` and `off` becomes the CUDA default."
    )
    phase = (perf or {}).get("phase") or {}
    if not phase or not tests or not all("eager_gain" in r for r in phase.values()):
        return rule, NOT_MEASURED
    unf = {s: r["fused_gain"]["median"] for s, r in phase.items()}
    eag = {s: r["eager_gain"]["median"] for s, r in phase.items()}
    figures = "; ".join(
        f"{s} px: unfused/compiled {unf[s]:.2f}x, eager/compiled {eag[s]:.2f}x" for s in phase
    )
    ok = _tests_target(tests).met and min(unf.values()) >= 1.0 and min(eag.values()) >= 1.0
    if ok:
        return rule, f"stays the default ({figures})"
    # eager / compiled < 1 means eager is faster than compiled; compare eager with unfused.
    eager_faster = all(eag[s] <= unf[s] for s in phase)
    choice = "eager" if eager_faster else "off"
    return rule, f"becomes `{choice}` on CUDA ({figures})"


def render_block(directory: Path | None) -> str:
    """The ``GPU session [cuda]`` block from a session directory (``None``: no session yet)."""
    summary = _load(directory, "summary.json")
    if summary is not None and summary.get("device") != "cuda":
        raise ValueError(
            f"Expected a session run with --device cuda in {directory}, got "
            f"--device {summary.get('device')}: only a GPU session fills the [cuda] cells"
        )
    tests, perf = _load(directory, "tests.json"), _load(directory, "perf.json")
    basicsr, quality = _load(directory, "basicsr.json"), _load(directory, "quality.json")
    lines = [BEGIN, BLOCK_HEADING, ""]
    if summary is None:
        lines += [
            f"No GPU session has been run on the current code: every cell says {NOT_MEASURED}. "
            "On a GPU machine: `python benchmarks/gpu_session.py --device cuda --budget-s 480 "
            "--out DIR`; bring DIR back and run `python benchmarks/gpu_session.py --render DIR`.",
            "",
        ]
    else:
        m = summary["machine"]
        lines += [
            f"- Date: {summary['date_utc']}; session {summary['total_s']:.0f} s of a "
            f"{summary['budget_s']:.0f} s budget"
            + ("" if summary.get("finished") else " (stopped before it finished)")
            + ".",
            f"- Command: `{summary['command']}`",
            f"- Machine: {m['description']}; torch {m['torch']}, CUDA {m['cuda']}, "
            f"python {m['python']}.",
            "- All figures below come from this one session.",
            "",
            "| part | status | seconds | note |",
            "|---|---|---|---|",
        ]
        for p in summary["parts"]:
            note = p["reason"] or (p["details"].get("plan", "") if p["details"] else "")
            lines.append(f"| {p['name']} | {p['status']} | {p['seconds']:.0f} | {note} |")
        lines.append("")
    targets = [
        ("PhaseLoss >= 1.5x faster than the `fft2` reference (design.md 9)",
         _phase_target(perf)),
        ("relation term <= 3 % of a 256 px FECNet step, best configuration (design.md 9)",
         _relation_target(perf, "256", 0.03, None)),
        ("relation term <= 10 % at 256 px, default `work_size=128` (design.md 9)",
         _relation_target(perf, "256", 0.10, "128")),
        ("relation term <= 5 % at 512 px, default `work_size=128` (design.md 9)",
         _relation_target(perf, "512", 0.05, "128")),
        ("`from_pretrained()` cold start < 0.2 s after `import torch` (the CPU target, benchmarks/README.md)",
         _cold_target(perf)),
        ("every CUDA test passes (`tests/losses/test_cuda.py` and the other CUDA-only tests)",
         _tests_target(tests)),
        ("the kit runs every GPU measurement in <= 8 minutes, JSON as it goes (design.md 9)",
         _kit_target(summary)),
    ]  # fmt: skip
    lines += ["**GPU targets**", "", "| target | figure | verdict |", "|---|---|---|"]
    lines += [f"| {name} | {v.figure} | {v.word} |" for name, v in targets]
    lines += ["", "**Decisions these figures settle**", ""]
    for title, (rule, verdict) in (
        ("`cuda_graphs` default", graphs_decision(perf, tests)),
        ("compiled fused PhaseLoss as the CUDA default", fused_phase_decision(perf, tests)),
    ):
        lines.append(f"- {title}. Rule: {rule} Verdict: **{verdict}**.")
    lines += ["", "**BasicSR: a shipped option file through `erl-basicsr-train`**", ""]
    if basicsr is None or not basicsr.get("rows"):
        lines.append(f"{NOT_MEASURED}.")
    else:
        sys.path.insert(0, str(BENCH_DIR))
        import basicsr_gpu

        lines.append(basicsr_gpu.render_markdown(basicsr))
    lines += ["", "**Quality slice**", ""]
    lines.append(_quality_lines(summary, quality))
    lines += ["", END]
    return "\n".join(lines)


def _quality_lines(summary: dict | None, quality: dict | None) -> str:
    part = next((p for p in (summary or {}).get("parts", []) if p["name"] == "quality"), None)
    if quality is None:
        why = f" ({part['status']}: {part['reason']})" if part and part["reason"] else ""
        return f"{NOT_MEASURED}{why}."
    runs = quality.get("runs") or []
    planned = quality.get("planned_runs", "?")
    details = (part or {}).get("details") or {}
    if "protocol" in quality:  # evidence.py: the registered protocol's report
        tables = (
            f"`python benchmarks/evidence_report.py DIR/quality.json` (protocol "
            f"`{quality['protocol'].get('name')}`, sha256 "
            f"`{str(quality['protocol'].get('sha256'))[:12]}`; a slice of its seeds on CUDA)"
        )
    else:
        tables = (
            "`python benchmarks/quality.py --render-only DIR/quality.json` (a slice of seeds, "
            "mergeable with other runs of the same settings)"
        )
    return (
        f"{len(runs)} of {planned} planned runs finished ({details.get('seeds', '?')} paired "
        f"seeds, {quality.get('workers', details.get('workers', '?'))} workers; "
        f"{details.get('plan', '')}); command `{quality.get('command', '')}`. Tables: {tables}."
    )


def write_block(results: Path, block: str) -> None:
    """Replaces the delimited block in ``results`` (or inserts it before the first ``[cuda]``
    section, else at the end); the rest of the file is left as it is."""
    text = results.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        match = re.search(r"(?m)^## .*\[cuda[^\]]*\]\s*$", text)
        if match:
            text = text[: match.start()] + block + "\n\n" + text[match.start() :]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(text)


def render(directory: Path | None, results: Path) -> int:
    """Writes a session's ``[cuda]`` perf sections and the session block into ``results``."""
    if directory is not None and not (directory / "summary.json").exists():
        print(f"Expected a session directory with summary.json, got {directory}", file=sys.stderr)
        return 2
    try:
        block = render_block(directory)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    if directory is not None and (directory / "perf.json").exists():
        sys.path.insert(0, str(BENCH_DIR))
        import run_perf

        run_perf.render_saved(directory / "perf.json", results)
    write_block(results, block)
    print(block)
    print(f"gpu_session: wrote the GPU session block of {results}")
    return 0


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"Expected a number > 0, got {text!r}")
    return value


def _parts(text: str) -> set[str]:
    names = {n.strip() for n in text.split(",") if n.strip()}
    if names - set(PART_NAMES):
        raise argparse.ArgumentTypeError(
            f"Expected a comma list of {', '.join(PART_NAMES)}, got {text!r}"
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument(
        "--budget-s",
        type=_positive,
        default=None,
        help="wall seconds for the whole session (default 480; 300 with --tiny)",
    )
    p.add_argument("--out", type=Path, default=None, help="folder for the JSONs (required to run)")
    p.add_argument(
        "--tiny",
        action="store_true",
        help="the kit's own check: every part at toy size (CPU, under a minute)",
    )
    p.add_argument("--skip", type=_parts, default=set(), help="comma list of parts not to run")
    p.add_argument(
        "--render",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="write DIR's figures into RESULTS.md (no DIR: the not-yet-measured block)",
    )
    p.add_argument("--results", type=Path, default=RESULTS_MD, help="markdown file to render into")
    p.add_argument("--quality-script", type=Path, default=BENCH_DIR / "evidence.py")
    p.add_argument(
        "--protocol",
        type=Path,
        default=BENCH_DIR / "protocol.toml",
        help="registered protocol, passed when the quality script has --protocol",
    )
    p.add_argument("--quality-args", default="", help="extra arguments of the quality script")
    p.add_argument(
        "--quality-run-s",
        type=_positive,
        default=None,
        help=(
            f"estimated seconds of one quality run on the GPU (default: {QUALITY_STEP_S:.3f} s "
            f"per step of the protocol's nets, {QUALITY_RUN_S:.0f} s without a protocol)"
        ),
    )
    p.add_argument(
        "--quality-runs-per-seed",
        type=int,
        default=None,
        help=(
            "training runs per paired seed (default: the protocol's registered baselines and "
            f"arms, {QUALITY_RUNS_PER_SEED} without a protocol)"
        ),
    )
    args = p.parse_args(argv)  # fmt: skip
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.render is not None:
        return args
    if args.out is None:
        p.error("Expected --out DIR (or --render [DIR])")
    if args.tiny and args.device != "cpu":
        p.error("Expected --tiny with --device cpu: the tiny check is the kit's CPU test")
    if not args.tiny and args.device != "cuda":
        p.error("Expected --device cuda (or --device cpu --tiny for the kit's own check)")
    if args.quality_runs_per_seed is not None and args.quality_runs_per_seed < 1:
        p.error(f"Expected --quality-runs-per-seed >= 1, got {args.quality_runs_per_seed}")
    if args.budget_s is None:
        args.budget_s = 300.0 if args.tiny else GPU_BUDGET_S
    return args


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    def stop(signum: int, frame: Any) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        return render(Path(args.render) if args.render else None, args.results)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    args.device_ok = args.device == "cpu" or torch.cuda.is_available()
    with _stop_on_signals():
        session = Session(args)
        code = session.run()
    print(f"gpu_session: {args.out / 'summary.json'} ({session.summary['total_s']:.0f} s)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
