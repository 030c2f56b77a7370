"""The separable Inception module of S3D / S3D-G (Xie et al., "Rethinking Spatiotemporal
Feature Learning", ECCV 2018)::

          +-> 1x1x1 (b0) ---------------------------------+
    x ----+-> 1x1x1 (b1_reduce) -> 1xkxk -> tx1x1 (b1) ----+-> concat
          +-> 1x1x1 (b2_reduce) -> 1xkxk -> tx1x1 (b2) ----+
          +-> maxpool 3x3x3 -> 1x1x1 (b3) -----------------+

With ``gating`` (S3D-G) each branch output is multiplied by sigmoid(W mean_thw(y) + b).
"""

from __future__ import annotations

import torch
from torch import nn

from harness.compiler.blocks._registry import BLOCKS
from harness.compiler.convs import create_conv_unit
from harness.compiler.layers import ConvNormAct
from harness.compiler.plan import Grid
from harness.errors import SpecError
from harness.spec.blocks import SepInceptionBlockSpec


class SelfGating(nn.Module):
    """y * sigmoid(W mean_thw(y) + b), S3D-G's feature gating."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc(y.mean(dim=(2, 3, 4))))
        return y * weights[:, :, None, None, None]


class SepInception(nn.Module):
    """Four parallel branches concatenated over channels."""

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


@BLOCKS.register("sep_inception")
def create_sep_inception_block(
    spec: SepInceptionBlockSpec,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: tuple[int, int],
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    if stride != (1, 1):
        raise SpecError("inception modules do not stride; put a 'pool' on the stage before")
    b, norm, act = spec.branches, spec.norm, spec.act
    kernel = (spec.temporal_kernel, spec.spatial_kernel, spec.spatial_kernel)

    def unit(dim_a: int, dim_b: int) -> nn.Module:
        return ConvNormAct(dim_a, dim_b, (1, 1, 1), norm=norm, act=act)

    def separable(dim_a: int, dim_b: int) -> nn.Module:
        return create_conv_unit(
            "separable", dim_in=dim_a, dim_out=dim_b, kernel=kernel, norm=norm, act=act
        )

    branches: list[nn.Module] = [
        unit(dim_in, b.b0),
        nn.Sequential(unit(dim_in, b.b1_reduce), separable(b.b1_reduce, b.b1)),
        nn.Sequential(unit(dim_in, b.b2_reduce), separable(b.b2_reduce, b.b2)),
        nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), unit(dim_in, b.b3)),
    ]
    if spec.gating:
        widths = (b.b0, b.b1, b.b2, b.b3)
        branches = [
            nn.Sequential(br, SelfGating(w)) for br, w in zip(branches, widths, strict=True)
        ]
    return SepInception(branches)
