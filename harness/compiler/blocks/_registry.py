"""The block registry and the residual wrapper most blocks share."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from harness.compiler.layers import ConvNormAct, create_act
from harness.compiler.plan import Grid
from harness.registry import Registry

__all__ = ["BLOCKS", "BlockFn", "Residual", "create_block", "list_blocks", "pick"]


class BlockFn(Protocol):
    def __call__(
        self,
        spec: Any,
        *,
        dim_in: int,
        dim_out: int,
        dim_inner: int | None,
        stride: tuple[int, int],
        index: int,
        grid: Grid | None = None,
    ) -> nn.Module: ...


BLOCKS: Registry[BlockFn] = Registry("block")


def create_block(
    spec: Any,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: tuple[int, int],
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    """Build block ``spec`` (its ``type`` picks the builder).

    Args:
        spec: the block's spec node.
        dim_in: input channels.
        dim_out: output channels.
        dim_inner: inner (bottleneck) channels, for blocks that have them.
        stride: (temporal, spatial) stride of this block.
        index: position of the block in its stage (for per-block patterns).
        grid: extent and token layout the block reads (token blocks need it).
    """
    return BLOCKS.get(spec.type)(
        spec,
        dim_in=dim_in,
        dim_out=dim_out,
        dim_inner=dim_inner,
        stride=stride,
        index=index,
        grid=grid,
    )


def list_blocks() -> list[str]:
    """Registered block types."""
    return BLOCKS.names()


def pick(pattern: tuple[int, ...], index: int) -> int:
    """The entry of a per-block pattern for block ``index`` (patterns cycle)."""
    return pattern[index % len(pattern)]


class Residual(nn.Module):
    """act(branch(x) + shortcut(x)); the shortcut is a strided 1x1x1 conv where shapes change.

    The last normalisation of ``branch`` is marked ``zero_init`` so that the block starts as
    the identity (Goyal et al. 2017), as PySlowFast and torchvision do.
    """

    def __init__(
        self,
        branch: nn.Module,
        *,
        dim_in: int,
        dim_out: int,
        stride: tuple[int, int],
        norm: str,
        act: str,
    ) -> None:
        super().__init__()
        self.branch = branch
        t, s = stride
        if dim_in != dim_out or stride != (1, 1):
            self.shortcut: nn.Module = ConvNormAct(
                dim_in, dim_out, (1, 1, 1), (t, s, s), norm=norm, act="none"
            )
        else:
            self.shortcut = nn.Identity()
        self.act = create_act(act)
        last_norm = [m for m in branch.modules() if isinstance(m, nn.BatchNorm3d)]
        if last_norm:
            last_norm[-1].zero_init = True  # type: ignore[assignment]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        # NOTE: in place, as torchvision does: every branch ends in a conv or a norm, whose
        # backward does not read its output (autograd would raise if one ever did).
        out += self.shortcut(x)
        return self.act(out)
