"""Layer helpers shared by stems, blocks and heads.

Every convolution pads to keep 'same' extent (kernel // 2 on each side), so a layer with
stride s maps an extent n to ceil(n / s); the compiler relies on this for its bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harness.registry import Registry

__all__ = [
    "ACTS",
    "NORMS",
    "ConvNormAct",
    "DropPath",
    "ParallelSum",
    "SqueezeExcite",
    "conv3d",
    "create_act",
    "create_drop_path",
    "create_norm",
    "r2plus1d_mid_width",
]

Triple = tuple[int, int, int]

NORMS: Registry[Callable[[int], nn.Module]] = Registry("norm")
ACTS: Registry[Callable[[], nn.Module]] = Registry("activation")

NORMS.register("batch")(nn.BatchNorm3d)
NORMS.register("none")(lambda dim: nn.Identity())
ACTS.register("relu")(lambda: nn.ReLU(inplace=True))
ACTS.register("swish")(nn.SiLU)
ACTS.register("gelu")(nn.GELU)
ACTS.register("none")(nn.Identity)


def create_norm(kind: str, dim: int) -> nn.Module:
    """Normalisation layer ``kind`` over ``dim`` channels."""
    return NORMS.get(kind)(dim)


def create_act(kind: str) -> nn.Module:
    """Activation layer ``kind``."""
    return ACTS.get(kind)()


def conv3d(
    dim_in: int,
    dim_out: int,
    kernel: Triple,
    stride: Triple = (1, 1, 1),
    *,
    groups: int = 1,
    bias: bool = False,
) -> nn.Conv3d:
    """A 3D convolution with 'same' padding (kernel // 2)."""
    padding = (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)
    return nn.Conv3d(
        dim_in, dim_out, kernel, stride=stride, padding=padding, groups=groups, bias=bias
    )


class ConvNormAct(nn.Sequential):
    """conv -> norm -> act, the unit most blocks are made of."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        kernel: Triple,
        stride: Triple = (1, 1, 1),
        *,
        groups: int = 1,
        norm: str = "batch",
        act: str = "relu",
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.conv = conv3d(dim_in, dim_out, kernel, stride, groups=groups, bias=bias)
        self.norm = create_norm(norm, dim_out)
        self.act = create_act(act)


class ParallelSum(nn.Module):
    """Branches that read the same input, their outputs summed (a t x 1 x 1 and a
    1 x h x w conv side by side: AVSlowFast's audio stem and acoustic bottleneck)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


def r2plus1d_mid_width(dim_in: int, dim_out: int, t: int, k: int) -> int:
    """Mid width of a (2+1)D conv with the parameters of a full t x k x k conv.

    R(2+1)D (Tran et al., CVPR 2018), eq. 1: M = floor(t k^2 N_in N_out / (k^2 N_in + t N_out)).
    """
    return (t * k * k * dim_in * dim_out) // (k * k * dim_in + t * dim_out)


class SqueezeExcite(nn.Module):
    """Squeeze-excitation (Hu et al. 2018): x * sigmoid(fc2(relu(fc1(mean_thw(x)))))."""

    def __init__(self, dim: int, dim_hidden: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc1 = nn.Conv3d(dim, dim_hidden, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv3d(dim_hidden, dim, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., ECCV 2016) on a residual branch: while training, the
    branch of each clip is dropped with probability ``p`` and kept ones scaled by 1/(1-p);
    the identity at inference."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)


def create_drop_path(p: float) -> nn.Module:
    """:class:`DropPath` for a rate above zero, else nothing (no module in the network)."""
    return DropPath(p) if p > 0 else nn.Identity()
