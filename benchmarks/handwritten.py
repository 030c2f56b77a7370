"""Hand-written references for ``bench_compiler.py``: plain ``nn.Module`` code, no harness.

``R2Plus1D18`` is torchvision's ``r2plus1d_18`` and ``X3DM`` is PySlowFast's X3D-M, each
written out the way one would by hand: layers as attributes and a ``forward`` that calls
them in order. Submodules are declared in the order the compiler creates them (residual
branch before shortcut), so that a model's ``state_dict`` can be copied across by position
and the two outputs compared.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["X3DM", "R2Plus1D18"]


def _bn(dim: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(dim)


# --------------------------------------------------------------------------------------
# R(2+1)D-18 (Tran et al., CVPR 2018), as torchvision.models.video.r2plus1d_18
# --------------------------------------------------------------------------------------


class R2Plus1DBlock(nn.Module):
    """BasicBlock with (2+1)D convs: (1x3x3 -> BN -> ReLU -> 3x1x1 -> BN) twice, + shortcut.

    The mid width comes from the block's input and output widths and serves both convs,
    as in torchvision.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        mid = (inplanes * planes * 27) // (inplanes * 9 + 3 * planes)
        s = stride
        self.conv1_s = nn.Conv3d(inplanes, mid, (1, 3, 3), (1, s, s), (0, 1, 1), bias=False)
        self.bn1_s = _bn(mid)
        self.conv1_t = nn.Conv3d(mid, planes, (3, 1, 1), (s, 1, 1), (1, 0, 0), bias=False)
        self.bn1 = _bn(planes)
        self.conv2_s = nn.Conv3d(planes, mid, (1, 3, 3), 1, (0, 1, 1), bias=False)
        self.bn2_s = _bn(mid)
        self.conv2_t = nn.Conv3d(mid, planes, (3, 1, 1), 1, (1, 0, 0), bias=False)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(inplanes, planes, 1, stride, bias=False), _bn(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1_s(self.conv1_s(x)))
        out = self.relu(self.bn1(self.conv1_t(out)))
        out = self.relu(self.bn2_s(self.conv2_s(out)))
        out = self.bn2(self.conv2_t(out))
        residual = x if self.downsample is None else self.downsample(x)
        out += residual
        return self.relu(out)


class R2Plus1D18(nn.Module):
    """R(2+1)D-18: stem 1x7x7 (45) -> 3x1x1 (64), four stages of two blocks, avg pool, fc."""

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.stem_s = nn.Conv3d(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.stem_bn_s = _bn(45)
        self.stem_t = nn.Conv3d(45, 64, (3, 1, 1), 1, (1, 0, 0), bias=False)
        self.stem_bn_t = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        blocks = []
        inplanes = 64
        for i, planes in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            blocks += [R2Plus1DBlock(inplanes, planes, stride), R2Plus1DBlock(planes, planes)]
            inplanes = planes
        self.blocks = nn.ModuleList(blocks)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.stem_bn_s(self.stem_s(x)))
        x = self.relu(self.stem_bn_t(self.stem_t(x)))
        for block in self.blocks:
            x = block(x)
        return self.fc(self.avgpool(x).flatten(1))


# --------------------------------------------------------------------------------------
# X3D-M (Feichtenhofer, CVPR 2020), as PySlowFast's configs/Kinetics/X3D_M.yaml
# --------------------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc2(relu(fc1(mean_thw(x))))), fc1/fc2 being 1x1x1 convs with bias."""

    def __init__(self, dim: int, dim_se: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool3d(1)
        self.fc1 = nn.Conv3d(dim, dim_se, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv3d(dim_se, dim, 1, bias=True)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class X3DBlock(nn.Module):
    """1x1x1 -> BN -> ReLU -> dw 3x3x3 -> BN -> [SE] -> SiLU -> 1x1x1 -> BN, + shortcut, ReLU."""

    def __init__(
        self, dim_in: int, dim_out: int, dim_inner: int, stride: int, dim_se: int | None
    ) -> None:
        super().__init__()
        self.a = nn.Conv3d(dim_in, dim_inner, 1, bias=False)
        self.a_bn = _bn(dim_inner)
        self.relu = nn.ReLU(inplace=True)
        self.b = nn.Conv3d(
            dim_inner, dim_inner, 3, (1, stride, stride), 1, groups=dim_inner, bias=False
        )
        self.b_bn = _bn(dim_inner)
        self.se = SqueezeExcite(dim_inner, dim_se) if dim_se else None
        self.swish = nn.SiLU()
        self.c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.c_bn = _bn(dim_out)
        self.shortcut: nn.Module | None = None
        if dim_in != dim_out or stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv3d(dim_in, dim_out, 1, (1, stride, stride), bias=False), _bn(dim_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.a_bn(self.a(x)))
        out = self.b_bn(self.b(out))
        if self.se is not None:
            out = self.se(out)
        out = self.c_bn(self.c(self.swish(out)))
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.relu(out + shortcut)


class X3DM(nn.Module):
    """X3D-M: stem, stages of depths 3/5/11/7 (widths 24..192, inner x2.25), conv head."""

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.stem_xy = nn.Conv3d(3, 24, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False)
        self.stem_t = nn.Conv3d(24, 24, (5, 1, 1), 1, (2, 0, 0), groups=24, bias=False)
        self.stem_bn = _bn(24)
        self.relu = nn.ReLU(inplace=True)
        blocks = []
        dim_in = 24
        stages = zip((3, 5, 11, 7), (24, 48, 96, 192), (8, 8, 16, 32), strict=True)
        for depth, width, dim_se in stages:
            inner = int(2.25 * width)
            for j in range(depth):
                stride = 2 if j == 0 else 1
                se = dim_se if j % 2 == 0 else None
                blocks.append(X3DBlock(dim_in, width, inner, stride, se))
                dim_in = width
        self.blocks = nn.ModuleList(blocks)
        self.conv5 = nn.Conv3d(192, 432, 1, bias=False)
        self.conv5_bn = _bn(432)
        self.avg_pool = nn.AdaptiveAvgPool3d(1)
        self.lin5 = nn.Linear(432, 2048, bias=False)
        self.dropout = nn.Dropout(0.5)
        self.projection = nn.Linear(2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.stem_bn(self.stem_t(self.stem_xy(x))))
        for block in self.blocks:
            x = block(x)
        x = self.relu(self.conv5_bn(self.conv5(x)))
        x = self.relu(self.lin5(self.avg_pool(x).flatten(1)))
        return self.projection(self.dropout(x))
