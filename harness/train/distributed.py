"""Distributed data-parallel training under ``torchrun``: gloo on CPU, NCCL on GPU.

``torchrun --nproc_per_node N -m harness train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`init_distributed` joins them into one process
group. Without those variables everything here is a no-op on one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from harness.errors import SpecError

__all__ = [
    "DistContext",
    "all_gather_object",
    "all_reduce",
    "average_buffers",
    "check_device",
    "close_distributed",
    "env_int",
    "init_distributed",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) run."""

    rank: int  # global rank
    world: int  # number of processes
    device: torch.device  # this process's device
    owns_group: bool  # this run created the process group (and must destroy it)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0


def env_int(variable: str, default: int) -> int:
    """A whole number ``torchrun`` sets, 0 or more (``default`` when unset or empty)."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise SpecError(
            f"must be a whole number, 0 or more, got '{text[:40]}'",
            path=(variable,),
            file="<environment>",
        )
    return int(text)


def check_device(device: str) -> None:
    """Raise a SpecError (key ``device``) when this process cannot train on ``device``."""
    if device != "cuda":
        return
    if not torch.cuda.is_available():
        raise SpecError("CUDA was requested but this machine has no CUDA device", path=("device",))
    local_rank, count = env_int("LOCAL_RANK", 0), torch.cuda.device_count()
    if local_rank >= count:
        raise SpecError(
            f"LOCAL_RANK {local_rank} needs CUDA device {local_rank}; this machine has {count}",
            path=("device",),
        )


def init_distributed(device: str) -> DistContext:
    """Join the ``torchrun`` process group if there is one (gloo on CPU, NCCL on GPU).

    Raises:
        SpecError: ``device`` is not on this machine, or ``torchrun``'s variables are bad.
    """
    world = max(1, env_int("WORLD_SIZE", 1))
    local_rank = env_int("LOCAL_RANK", 0)
    check_device(device)
    torch_device = torch.device("cuda", local_rank) if device == "cuda" else torch.device("cpu")
    if device == "cuda":
        torch.cuda.set_device(torch_device)
    if world <= 1:
        return DistContext(rank=0, world=1, device=torch_device, owns_group=False)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return DistContext(
        rank=dist.get_rank(), world=dist.get_world_size(), device=torch_device, owns_group=owns
    )


def close_distributed(ctx: DistContext, *, together: bool = True) -> None:
    """Leave the process group if this run created it; ``together``: once every rank is
    ready to (a run that ended normally; not after an error, which the others may not see).
    """
    if ctx.owns_group and dist.is_initialized():
        if together:
            # NOTE: a rank that tears its group down while another still talks to it can
            # abort in gloo's C++ ("terminate called without an active exception").
            dist.barrier()
        dist.destroy_process_group()


def all_reduce(tensor: torch.Tensor, ctx: DistContext, op: str = "sum") -> torch.Tensor:
    """Sum (or ``min``/``max``) ``tensor`` over all processes, in place; returns it."""
    if ctx.world > 1:
        ops = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}
        dist.all_reduce(tensor, op=ops[op])
    return tensor


def all_gather_object(obj: Any, ctx: DistContext) -> list[Any]:
    """``obj`` from every process, in rank order."""
    if ctx.world == 1:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def average_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Average floating-point buffers (norm statistics) over processes.

    DistributedDataParallel keeps parameters equal on every rank but each rank's norm
    statistics follow its own data; averaging them makes the ranks' models identical.
    """
    if ctx.world == 1:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer.div_(ctx.world)
