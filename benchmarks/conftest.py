"""Shared set-up of the performance benchmarks (pytest-benchmark and ``run_perf.py``).

``python -m pytest benchmarks/ --benchmark-only`` collects the ``bench_*.py`` files of this folder
(the hook below; the project's ``testpaths`` is ``tests`` so the unit tests never collect them).
Benchmarks never assert wall-clock times; they only check that the compared implementations agree.

Options (pytest): ``--bench-device cpu|cuda`` and ``--bench-sizes 256,512``. Environment:
``ERL_BENCH_THREADS`` (default: every core ``os.cpu_count()`` reports).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from erl_losses._runtime import cpu_model

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SEED = 0


# -- process-wide settings (also used by run_perf.py) ----------------------------------------------
def configure_threads() -> int:
    """Sets torch's intra-op threads to ``ERL_BENCH_THREADS`` (default: all cores); returns it."""
    threads = int(os.environ.get("ERL_BENCH_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    return threads


def seed_all(seed: int = SEED) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def collect_machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Machine, software and torch configuration, for RESULTS.md and pytest-benchmark's JSON."""
    device = torch.device(device)
    info: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "mkl": torch.backends.mkl.is_available(),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty_paths": len(_git("status", "--porcelain").splitlines()),
    }
    if hasattr(os, "getloadavg"):
        info["loadavg_1_5_15"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    info["cpu_model"] = cpu_model()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


# -- pytest wiring ------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("erl-bench")
    group.addoption("--bench-device", default="cpu", help="cpu or cuda (default: cpu)")
    group.addoption(
        "--bench-sizes", default="256,512", help="comma-separated patch sizes (default: 256,512)"
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    # Collect bench_*.py without changing the project-wide `python_files`; a file named on the
    # command line is already collected by pytest itself.
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_configure(config: pytest.Config) -> None:
    configure_threads()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "size" in metafunc.fixturenames:
        sizes = [int(s) for s in metafunc.config.getoption("--bench-sizes").split(",") if s]
        metafunc.parametrize("size", sizes, ids=[f"{s}px" for s in sizes])


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info["erl_losses"] = collect_machine_info(config.getoption("--bench-device"))


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    dev = torch.device(request.config.getoption("--bench-device"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("--bench-device cuda but CUDA is not available")
    return dev


@pytest.fixture(autouse=True)
def _seeded() -> None:
    seed_all()
