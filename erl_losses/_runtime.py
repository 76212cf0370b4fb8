"""Where code runs: the one home for choosing a device and describing the machine.

The pretext trainer, ``erl demo`` and the benchmarks all call these, so that every results file
names its hardware the same way.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import torch

from erl_losses._validation import check_int

__all__ = ["cpu_model", "cpu_threads", "load_average", "machine_description", "resolve_device"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; an explicit CUDA device must be available.

    Raises:
        ValueError: an unknown device string, or CUDA requested without an available GPU.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"Expected device 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"Expected device 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"Expected an available CUDA device for device={device!r}, got "
            "torch.cuda.is_available() == False (use device='cpu')"
        )
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"Expected device={device!r} to be one of the {torch.cuda.device_count()} visible "
            f"CUDA devices (cuda:0 .. cuda:{torch.cuda.device_count() - 1}), got index "
            f"{resolved.index}"
        )
    return resolved


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none): how shared the machine is."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine_description(device: str | torch.device | None = "cpu") -> str:
    """One line naming the hardware a run used, for results files and model cards.

    A CUDA device gives the GPU's name and the visible CPU cores; the CPU gives the CPU model, the
    visible cores, torch's intra-op threads and the 1-minute load average (a shared machine runs
    slower, and the load says how shared it was).
    """
    resolved = resolve_device(device)
    cores = os.cpu_count() or 1
    if resolved.type == "cuda":
        return f"{torch.cuda.get_device_name(resolved)}, {cores} CPU cores visible"
    threads = torch.get_num_threads()
    return (
        f"{cpu_model()}, {cores} cores visible, torch threads={threads}, "
        f"load {load_average():.1f}, {platform.system()} (CPU run)"
    )


@contextlib.contextmanager
def cpu_threads(device: str | torch.device, threads: int | None = None) -> Iterator[None]:
    """Runs the block with ``threads`` torch intra-op threads (``None``: 1) when ``device`` is the
    CPU, then restores the previous count; a CUDA device leaves the count alone.

    One thread is the default because the reference nets are small: on a busy 2-core machine two
    threads were measured about 10x slower than one.

    Raises:
        ValueError: ``threads`` is not ``None`` or an int >= 1.
    """
    if threads is not None:
        check_int(threads, "threads", hint=" or None")
    previous = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(threads or 1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
