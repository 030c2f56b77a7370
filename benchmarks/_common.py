"""What the benchmark scripts share: the machine they ran on, progress lines and verdicts."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import torch


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """CPU, cores, torch threads, versions, GPU (if any) and the load at the start."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_start": os.getloadavg()[0],  # 1-minute load average: others share the CPU
    }


def log(message: str) -> None:
    """A progress line on stderr (stdout carries the report and the JSON figures)."""
    print(message, file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
