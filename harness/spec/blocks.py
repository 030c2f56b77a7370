"""Spec nodes of the residual blocks and other stage building units.

Each block type is one pydantic model with a literal ``type``; :data:`BlockSpec` is their
discriminated union. The compiler has one builder registered per type (same string).
Blocks see the stage's widths and strides from the compiler; only what is specific to the
block lives here.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from harness.spec._types import (
    Act,
    KernelPattern,
    KernelTriple,
    Node,
    Norm,
    Number,
    OddInt,
    PositiveInt,
)
from harness.spec.attention import FrameTokensBlockSpec, MViTBlockSpec, TransformerBlockSpec

__all__ = [
    "BasicBlockSpec",
    "BlockSpec",
    "BottleneckBlockSpec",
    "CSNBlockSpec",
    "InceptionBranches",
    "P3DBlockSpec",
    "PlainBlockSpec",
    "R2Plus1DBlockSpec",
    "SepInceptionBlockSpec",
    "TSMBlockSpec",
    "X3DBlockSpec",
]


class _Block(Node):
    # Whether the block has an inner (bottleneck) width: the stage must then give
    # ``bottleneck_ratio`` or ``inner_width``.
    uses_inner: ClassVar[bool] = False
    layout: ClassVar[str] = "map"  # reads and writes (B, C, T, H, W) feature maps

    norm: Norm = "batch"  # normalisation after each convolution
    act: Act = "relu"  # activation after normalisation

    def own_width(self) -> int | None:
        """Output width fixed by the block itself (inception modules), else None."""
        return None

    def period(self) -> int:
        """Blocks after which this block's per-block patterns repeat (1: it has none).

        Two blocks of a stage whose positions differ by a multiple of it are built alike.
        """
        pattern = getattr(self, "temporal_kernel", None)
        return len(pattern) if isinstance(pattern, tuple) else 1

    def mixes_time(self) -> bool:
        """Whether the block combines frames (a temporal kernel above 1, a shift): a network
        of blocks that do not is blind to the order of its frames."""
        kernel = getattr(self, "temporal_kernel", None)
        if kernel is None:
            triple = getattr(self, "kernel", None)
            kernel = triple[0] if isinstance(triple, tuple) else 1
        return max(kernel) > 1 if isinstance(kernel, tuple) else int(kernel) > 1


class PlainBlockSpec(_Block):
    """conv -> norm -> act, no residual (C3D's layers, S3D's stem convolutions)."""

    type: Literal["plain"] = "plain"
    kernel: KernelTriple = (3, 3, 3)  # conv kernel (t, h, w), odd sizes
    # full: one t x h x w conv; 2plus1d: 1 x h x w then t x 1 x 1 with a mid width;
    # separable: the same with mid width = output width (S3D).
    factorization: Literal["full", "2plus1d", "separable"] = "full"
    mid_width: PositiveInt | None = None  # (2+1)D mid width; default: R(2+1)D paper formula
    bias: bool = False  # convolution bias (C3D has bias and no normalisation)


class BasicBlockSpec(_Block):
    """ResNet basic block, two t x k x k convs (R3D; t=1 gives the 2D stages of MCx/rMCx)."""

    type: Literal["basic"] = "basic"
    temporal_kernel: KernelPattern = (3,)  # t of both convs; a list cycles over the blocks
    spatial_kernel: OddInt = 3  # k of both convs (height and width)


class R2Plus1DBlockSpec(_Block):
    """Basic block whose convs are (2+1)D: 1 x k x k -> norm/act -> t x 1 x 1.

    The mid width follows the R(2+1)D paper (Tran et al. 2018, eq. 1) so that the pair has
    the parameters of the full t x k x k conv: M = floor(t k^2 N_in N_out / (k^2 N_in + t N_out)).
    """

    type: Literal["r2plus1d"] = "r2plus1d"
    temporal_kernel: KernelPattern = (3,)  # t of the t x 1 x 1 convs; a list cycles
    spatial_kernel: OddInt = 3  # k of the 1 x k x k convs
    # Which N_in enters the formula for the block's second conv: the block input width
    # (as torchvision's r2plus1d_18 computes it, whose published figures we match) or that
    # conv's own input width (the paper's literal reading).
    mid_width_from: Literal["block_input", "conv_input"] = "block_input"


class BottleneckBlockSpec(_Block):
    """ResNet bottleneck 1x1x1 -> k x k -> 1x1x1 (C2D, I3D, Slow-only; ResNeXt with groups).

    The temporal kernel sits on the first conv (PySlowFast's convention, ``first``) or on the
    middle one (``middle``, the inflated-3x3 variant).
    """

    uses_inner: ClassVar[bool] = True
    type: Literal["bottleneck"] = "bottleneck"
    temporal_kernel: KernelPattern = (1,)  # t of the temporal conv; a list cycles over blocks
    temporal_kernel_at: Literal["first", "middle"] = "first"  # which conv has the t kernel
    spatial_kernel: OddInt = 3  # k of the middle conv
    groups: PositiveInt = 1  # groups of the middle conv (ResNeXt cardinality)
    # full: one t x k x k middle conv; parallel: a t x 1 x 1 and a 1 x k x k conv side by
    # side, each with norm and act, summed (AVSlowFast's acoustic bottleneck).
    middle: Literal["full", "parallel"] = "full"
    # Which conv takes the stage's temporal stride: the middle one, or the first 1x1x1 one
    # (PyTorchVideo's bottleneck: fewer multiply-adds in that conv).
    temporal_stride_at: Literal["middle", "first"] = "middle"

    late_keys: ClassVar[frozenset[str]] = frozenset({"middle", "temporal_stride_at"})


class TSMBlockSpec(_Block):
    """2D bottleneck with a temporal shift of part of the channels (TSM, Lin et al. 2019).

    Zero extra parameters. ``shift_fraction`` of the channels move one frame back and as many
    one frame forward; ``residual`` shifts inside the residual branch, ``inplace`` shifts
    the block input itself.
    """

    uses_inner: ClassVar[bool] = True
    type: Literal["tsm"] = "tsm"
    shift_fraction: Number = Field(0.125, gt=0, le=0.5)  # per direction (TSM: 1/8)
    shift_mode: Literal["residual", "inplace"] = "residual"  # shift in the branch or the input
    spatial_kernel: OddInt = 3  # k of the middle 1 x k x k conv

    def mixes_time(self) -> bool:
        return True  # the shift moves channels between neighbouring frames


class CSNBlockSpec(_Block):
    """Channel-separated bottleneck (CSN, Tran et al. 2019).

    ``ir``: the middle t x k x k conv is depthwise. ``ip``: a 1x1x1 conv followed by the
    depthwise t x k x k conv.
    """

    uses_inner: ClassVar[bool] = True
    type: Literal["csn"] = "csn"
    variant: Literal["ir", "ip"] = "ir"  # ir: depthwise middle conv; ip: 1x1x1 first
    temporal_kernel: KernelPattern = (3,)  # t of the depthwise conv; a list cycles
    spatial_kernel: OddInt = 3  # k of the depthwise conv


class P3DBlockSpec(_Block):
    """Pseudo-3D bottleneck (Qiu et al. 2017): spatial S = 1xkxk and temporal T = tx1x1.

    A: S then T in series; B: S and T in parallel, summed; C: S, then T added to S's output.
    """

    uses_inner: ClassVar[bool] = True
    type: Literal["p3d"] = "p3d"
    variant: Literal["A", "B", "C"] = "A"  # A: S then T; B: S + T; C: S, then S + T(S)
    temporal_kernel: KernelPattern = (3,)  # t of T; a list cycles over the blocks
    spatial_kernel: OddInt = 3  # k of S


class X3DBlockSpec(_Block):
    """X3D bottleneck (Feichtenhofer 2020): 1x1x1 -> depthwise t x k x k (+SE) -> swish -> 1x1x1.

    Squeeze-excitation sits on every ``se_every``-th block starting with the first.
    """

    uses_inner: ClassVar[bool] = True
    type: Literal["x3d"] = "x3d"
    temporal_kernel: KernelPattern = (3,)  # t of the depthwise conv; a list cycles
    spatial_kernel: OddInt = 3  # k of the depthwise conv
    se_ratio: Number = Field(0.0625, ge=0, le=1)  # SE width = round_width(inner * ratio); 0 = none
    se_every: PositiveInt = 2  # squeeze-excitation on every n-th block, from the first
    inner_act: Act = "swish"  # activation after the depthwise conv

    def period(self) -> int:
        return math.lcm(super().period(), self.se_every)


class InceptionBranches(Node):
    """Widths of an Inception module's four branches (S3D's Mixed_* modules)."""

    b0: PositiveInt  # 1x1x1 conv
    b1_reduce: PositiveInt  # 1x1x1 before the first separable conv
    b1: PositiveInt  # separable t x k x k
    b2_reduce: PositiveInt  # 1x1x1 before the second separable conv
    b2: PositiveInt  # separable t x k x k
    b3: PositiveInt  # 1x1x1 after a 3x3x3 max pool


class SepInceptionBlockSpec(_Block):
    """Inception module with separable (1xkxk then tx1x1) convs: S3D, with gating S3D-G."""

    type: Literal["sep_inception"] = "sep_inception"
    branches: InceptionBranches  # widths of the four branches
    temporal_kernel: OddInt = 3  # t of the separable convs
    spatial_kernel: OddInt = 3  # k of the separable convs
    gating: bool = False  # S3D-G self-gating on each branch output

    def own_width(self) -> int:
        b = self.branches
        return b.b0 + b.b1 + b.b2 + b.b3


BlockSpec = Annotated[
    PlainBlockSpec
    | BasicBlockSpec
    | R2Plus1DBlockSpec
    | BottleneckBlockSpec
    | TSMBlockSpec
    | CSNBlockSpec
    | P3DBlockSpec
    | X3DBlockSpec
    | SepInceptionBlockSpec
    | TransformerBlockSpec
    | FrameTokensBlockSpec
    | MViTBlockSpec,
    Field(discriminator="type"),
]
