"""Block builders, one registered per spec ``type`` (see :mod:`harness.spec.blocks`)."""

from __future__ import annotations

from harness.compiler.blocks import inception, plain, resnet, x3d  # noqa: F401  (register)
from harness.compiler.blocks._registry import BLOCKS, BlockFn, create_block, list_blocks

__all__ = ["BLOCKS", "BlockFn", "create_block", "list_blocks"]
