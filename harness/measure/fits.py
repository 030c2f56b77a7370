"""Whether a real build fits: the memory a device has free, against what a run would take.

Counting a network's cost needs no memory (meta tensors); building it, tracing it or
training it does. Before any of those allocates, the caller asks :func:`check_fits` with
the bytes the run will take, which the meta simulation gives exactly (a forward pass for a
trace, a training step for training). A run that cannot fit is refused in one line saying
how much it would need, instead of growing until the kernel or the allocator stops it.

The memory available (:func:`memory_limit`):

- ``HARNESS_MEMORY_LIMIT_MB`` when set (a stated limit: a shared machine, a job's share);
- else, on the CPU, what the kernel reports as available (``MemAvailable``), and no more
  than the address space left under ``ulimit -v`` when one is set;
- on a CUDA device, its free memory.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

import torch

from harness.errors import SpecError

__all__ = [
    "MEMORY_ENV",
    "DoesNotFit",
    "MemoryLimit",
    "check_fits",
    "fits",
    "format_bytes",
    "memory_limit",
]

MEMORY_ENV = "HARNESS_MEMORY_LIMIT_MB"
# NOTE: what a run holds beyond the tensors the simulation follows (the allocator's slack,
# the interpreter, libraries' workspaces): a run fits when tensors take at most this share.
HEADROOM = 0.8


class DoesNotFit(SpecError):
    """A run refused before it allocates: it would need more memory than is free."""


@dataclass(frozen=True)
class MemoryLimit:
    """Bytes a run may take on a device, and where that figure comes from."""

    bytes: int
    source: str  # e.g. "available memory", "HARNESS_MEMORY_LIMIT_MB"


def format_bytes(n: float) -> str:
    """``n`` bytes as MiB, GiB or TiB with three significant digits."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 2**20:.3g} MiB"


def _stated() -> MemoryLimit | None:
    text = os.environ.get(MEMORY_ENV, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise SpecError(
            f"must be a number of megabytes above 0, got '{text}'",
            path=(MEMORY_ENV,),
            file="<environment>",
        )
    return MemoryLimit(int(value * 2**20), MEMORY_ENV)


def _meminfo(field: str) -> int | None:
    """A ``/proc/meminfo`` field in bytes (Linux), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name == field:
                    return int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _address_space_left() -> int | None:
    """Bytes of address space left under ``ulimit -v``, or None without such a limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        used = 0
    return max(0, soft - used)


def _cpu_limit() -> MemoryLimit:
    available = _meminfo("MemAvailable")
    if available is None:
        pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
        available = pages * os.sysconf("SC_PAGE_SIZE") if pages else 2**63
    limit = MemoryLimit(available, "available memory")
    left = _address_space_left()
    if left is not None and left < limit.bytes:
        limit = MemoryLimit(left, "address space left under ulimit -v")
    return limit


def memory_limit(device: str | torch.device = "cpu") -> MemoryLimit:
    """The memory a run on ``device`` may take now (see the module docstring)."""
    stated = _stated()
    if stated is not None:
        return stated
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(dev)
        return MemoryLimit(int(free), f"free memory of {torch.cuda.get_device_name(dev)}")
    return _cpu_limit()


def fits(need: int, device: str | torch.device = "cpu") -> bool:
    """Whether a run whose tensors take ``need`` bytes at their peak fits on ``device``."""
    return need <= HEADROOM * memory_limit(device).bytes


def check_fits(
    need: int,
    what: str,
    *,
    device: str | torch.device = "cpu",
    hint: str = "",
    path: tuple[str | int, ...] = (),
    file: str | None = None,
) -> None:
    """Refuse, in one line, a run that would take ``need`` bytes where they are not free.

    Args:
        need: bytes the run's tensors take at their peak (from the meta simulation).
        what: the run, in the user's words ("training tiny_c2d at 3x8x2048x2048, batch 16").
        hint: what to do instead, appended to the message.
        path, file: where the error points (an option, a spec key).

    Raises:
        DoesNotFit: ``need`` is over the share of :func:`memory_limit` a run may take.
    """
    if fits(need, device):
        return
    limit = memory_limit(device)
    message = (
        f"{what} would need {format_bytes(need)}, more than the {format_bytes(limit.bytes)} "
        f"of {limit.source} (set {MEMORY_ENV} to state another limit)"
    )
    raise DoesNotFit(f"{message}; {hint}" if hint else message, path=path, file=file)
