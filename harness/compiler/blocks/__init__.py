"""Block builders, one registered per spec ``type`` (see :mod:`harness.spec.blocks`)."""

from __future__ import annotations

from harness.compiler.blocks import (  # noqa: F401  (register)
    attention,
    inception,
    mvit,
    plain,
    resnet,
    x3d,
)
from harness.compiler.blocks._registry import BLOCKS, BlockFn, create_block, list_blocks

__all__ = ["BLOCKS", "BlockFn", "create_block", "list_blocks"]
