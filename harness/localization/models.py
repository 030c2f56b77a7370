"""Localization networks compiled from a :class:`~harness.spec.localization.LocalizationSpec`.

A network takes a window of feature steps ``(B, C, T)``. The anchor-free family returns
``(B, classes + 2, N)``: for each of the ``N`` steps of all pyramid levels (level 0 first),
class logits and the distances to the action's start and end, in input steps
(:meth:`AnchorFreeNet.centres` gives each output step's centre). BMN returns the
confidence map ``(B, 2, D, T)`` (regression and classification confidence of the proposal
starting at step ``t`` and lasting ``d + 1`` steps) and the start and end probabilities,
``(B, 2, T)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import SpecError
from harness.registry import Registry
from harness.spec.localization import (
    AnchorFreeHeadSpec,
    BMNHeadSpec,
    LocalizationSpec,
    PyramidNeckSpec,
)

__all__ = [
    "LOCALIZATION_HEADS",
    "NECKS",
    "AnchorFreeNet",
    "BMNNet",
    "FlatOutputs",
    "boundary_matching_mask",
    "build_localizer",
]

NECKS: Registry[Callable[..., nn.Module]] = Registry("neck")
LOCALIZATION_HEADS: Registry[Callable[..., nn.Module]] = Registry("localization head")


class ChannelNorm(nn.Module):
    """Layer norm over the channels of a (B, C, T) sequence."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ConvMixer(nn.Module):
    """x + pw2(gelu(pw1(dw(norm(x))))): a depthwise temporal conv and a pointwise MLP."""

    def __init__(self, dim: int, kernel: int, hidden: int) -> None:
        super().__init__()
        self.norm = ChannelNorm(dim)
        self.dw = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.pw1 = nn.Conv1d(dim, hidden, 1)
        self.pw2 = nn.Conv1d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw2(F.gelu(self.pw1(self.dw(self.norm(x)))))


class LocalAttention(nn.Module):
    """Self-attention within windows of ``window`` steps (shifted by half a window in odd
    blocks, so that information crosses window borders), then an MLP; both residual."""

    def __init__(self, dim: int, window: int, heads: int, hidden: int, shift: bool) -> None:
        super().__init__()
        self.window, self.heads = window, heads
        self.shift = window // 2 if shift else 0
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        w = self.window
        pad = -t % w
        x = F.pad(x, (0, 0, 0, pad))
        if self.shift:
            x = torch.roll(x, -self.shift, dims=1)
        windows = x.reshape(b * (t + pad) // w, w, c)
        q, k, v = self.qkv(windows).reshape(-1, w, 3, self.heads, c // self.heads).permute(
            2, 0, 3, 1, 4
        )  # fmt: skip
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(-1, w, c)
        out = self.proj(out).reshape(b, t + pad, c)
        if self.shift:
            out = torch.roll(out, self.shift, dims=1)
        return out[:, :t]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        x = x + self._attend(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x.transpose(1, 2)


class PyramidNeck(nn.Module):
    """Embedding, then ``levels`` levels of blocks; each level after the first max-pools
    time by 2 first. Returns the features of every level, finest first."""

    def __init__(self, spec: PyramidNeckSpec, dim_in: int) -> None:
        super().__init__()
        width = spec.width
        embed: list[nn.Module] = []
        for i in range(spec.embed_depth):
            conv = nn.Conv1d(dim_in if i == 0 else width, width, spec.kernel,
                             padding=spec.kernel // 2)  # fmt: skip
            embed += [conv, nn.ReLU(inplace=True)]
        self.embed = nn.Sequential(*embed)
        hidden = max(1, int(width * spec.mlp_ratio))

        def block(i: int) -> nn.Module:
            if spec.mixer == "conv":
                return ConvMixer(width, spec.kernel, hidden)
            return LocalAttention(width, spec.window, spec.heads, hidden, shift=i % 2 == 1)

        self.levels = nn.ModuleList(
            nn.Sequential(*(block(i) for i in range(spec.depth))) for _ in range(spec.levels)
        )
        self.down = nn.MaxPool1d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.embed(x)
        out = []
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else self.down(x))
            out.append(x)
        return out


@NECKS.register("pyramid")
def create_pyramid_neck(spec: PyramidNeckSpec, *, dim_in: int, steps: int) -> nn.Module:
    if spec.width % spec.heads and spec.mixer == "attention":
        raise SpecError(f"{spec.heads} heads do not divide the width {spec.width}",
                        path=("heads",))  # fmt: skip
    stride = 2 ** (spec.levels - 1)
    if steps % stride:
        raise SpecError(
            f"{spec.levels} levels halve time {spec.levels - 1} times: the window's "
            f"{steps} steps must be a multiple of {stride}",
            path=("levels",),
        )
    return PyramidNeck(spec, dim_in)


def _branch(dim: int, width: int, depth: int, kernel: int, out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Conv1d(dim if i == 0 else width, width, kernel, padding=kernel // 2),
                   nn.ReLU(inplace=True)]  # fmt: skip
    layers.append(nn.Conv1d(width if depth else dim, out, kernel, padding=kernel // 2))
    return nn.Sequential(*layers)


class AnchorFreeNet(nn.Module):
    """features -> neck levels -> per step: class logits, (start, end) distances.

    The distances are ``relu(scale_l * raw) * stride_l`` in input steps, with one learned
    scale per level; the head's convolutions are shared by the levels.
    """

    def __init__(
        self, neck: nn.Module, spec: AnchorFreeHeadSpec, dim: int, classes: int, steps: int,
        levels: int,
    ) -> None:  # fmt: skip
        super().__init__()
        self.neck = neck
        self.classify = _branch(dim, spec.width, spec.depth, spec.kernel, classes)
        self.regress = _branch(dim, spec.width, spec.depth, spec.kernel, 2)
        last = self.classify[-1]
        assert isinstance(last, nn.Conv1d) and last.bias is not None
        nn.init.constant_(last.bias, -math.log((1 - spec.prior) / spec.prior))
        self.scales = nn.Parameter(torch.ones(levels))
        strides = [2**i for i in range(levels)]
        centres = [(torch.arange(steps // s) + 0.5) * s for s in strides]
        self.register_buffer("centre", torch.cat(centres), persistent=False)
        stride = [torch.full((steps // s,), float(s)) for s in strides]
        self.register_buffer("stride", torch.cat(stride), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for i, level in enumerate(self.neck(x)):
            distances = F.relu(self.scales[i] * self.regress(level)) * (2**i)
            outputs.append(torch.cat((self.classify(level), distances), dim=1))
        return torch.cat(outputs, dim=2)

    def centres(self) -> torch.Tensor:
        """(N,) centre of each output step, in input steps."""
        return self.get_buffer("centre")


@LOCALIZATION_HEADS.register("anchor_free")
def create_anchor_free(
    spec: AnchorFreeHeadSpec, *, model: LocalizationSpec, classes: int
) -> nn.Module:
    if model.neck is None:
        raise SpecError("an anchor_free head reads a neck's levels: add 'neck'", path=("head",))
    try:
        neck = NECKS.get(model.neck.type)(model.neck, dim_in=model.input.width,
                                          steps=model.input.steps)  # fmt: skip
    except SpecError as exc:
        raise SpecError(exc.message, path=("neck", *exc.path)) from None
    return AnchorFreeNet(neck, spec, model.neck.width, classes, model.input.steps,
                         model.neck.levels)  # fmt: skip


def boundary_matching_mask(
    steps: int, durations: int, samples: int, per_bin: int, ratio: float
) -> np.ndarray:
    """BMN's sampling weights, (T, samples, D, T): proposal (d, s) spans steps s..s+d, is
    widened by ``ratio`` of its length on each side, and cut into ``samples`` bins; each
    bin averages ``per_bin`` points, each a linear interpolation of its two neighbouring
    steps. Proposals running past the window get no weight."""
    mask = np.zeros((steps, samples, durations, steps), dtype=np.float32)
    d, s = np.meshgrid(np.arange(durations), np.arange(steps), indexing="ij")
    inside = s + d < steps
    d, s = d[inside], s[inside]  # (P,) every proposal within the window
    length = d + 1.0
    lo, hi = s - ratio * length, s + d + ratio * length
    k = samples * per_bin
    points = lo[:, None] + (hi - lo)[:, None] * (np.arange(k) / max(k - 1, 1))[None, :]
    left = np.floor(points)
    frac = points - left
    bins = np.broadcast_to(np.arange(k) // per_bin, points.shape)
    dd, ss = (np.broadcast_to(v[:, None], points.shape) for v in (d, s))
    for step, weight in ((left, 1.0 - frac), (left + 1, frac)):
        keep = (step >= 0) & (step < steps) & (weight > 0)
        np.add.at(
            mask,
            (step[keep].astype(np.int64), bins[keep], dd[keep], ss[keep]),
            (weight[keep] / per_bin).astype(np.float32),
        )
    return mask


class BMNNet(nn.Module):
    """BMN: base 1D convolutions -> start / end probabilities, and the boundary-matching
    layer (features sampled for every proposal by a fixed mask, a matrix product) -> 3D
    conv over the samples -> 2D convs -> the (D, T) confidence maps."""

    def __init__(self, spec: BMNHeadSpec, dim_in: int, steps: int) -> None:
        super().__init__()
        w, g = spec.width, spec.groups
        self.durations = spec.max_duration or steps
        self.samples = spec.samples
        self.base = nn.Sequential(
            nn.Conv1d(dim_in, w, 3, padding=1, groups=g), nn.ReLU(inplace=True),
            nn.Conv1d(w, w, 3, padding=1, groups=g), nn.ReLU(inplace=True),
        )  # fmt: skip

        def boundary() -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(w, w, 3, padding=1, groups=g), nn.ReLU(inplace=True),
                                 nn.Conv1d(w, 1, 1), nn.Sigmoid())  # fmt: skip

        self.start, self.end = boundary(), boundary()
        self.proposal_1d = nn.Sequential(nn.Conv1d(w, w, 3, padding=1), nn.ReLU(inplace=True))
        self.proposal_3d = nn.Sequential(
            nn.Conv3d(w, spec.width_3d, (spec.samples, 1, 1), stride=(spec.samples, 1, 1)),
            nn.ReLU(inplace=True),
        )
        w2 = spec.width_2d
        self.proposal_2d = nn.Sequential(
            nn.Conv2d(spec.width_3d, w2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(w2, w2, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w2, w2, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w2, 2, 1), nn.Sigmoid(),
        )  # fmt: skip
        shape = (steps, spec.samples * self.durations * steps)
        if torch.empty(0).is_meta:  # NOTE: built to be costed: the values are not needed
            mask = torch.empty(shape)
        else:
            mask = torch.from_numpy(boundary_matching_mask(
                steps, self.durations, spec.samples, spec.samples_per_bin, spec.boundary_ratio
            )).reshape(shape)  # fmt: skip
        # NOTE: a buffer, not a parameter: fixed, and 32M values at T = 100 (a naive count
        # reports 36.98M parameters for BMN's 4.98M trainable ones).
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.base(x)
        boundaries = torch.cat((self.start(x), self.end(x)), dim=1)  # (B, 2, T)
        p = self.proposal_1d(x)
        b, c, t = p.shape
        sampled = torch.matmul(p, self.get_buffer("mask"))
        sampled = sampled.reshape(b, c, self.samples, self.durations, t)
        confidence = self.proposal_2d(self.proposal_3d(sampled).squeeze(2))
        return confidence, boundaries


@LOCALIZATION_HEADS.register("bmn")
def create_bmn(spec: BMNHeadSpec, *, model: LocalizationSpec, classes: int) -> nn.Module:
    if model.neck is not None:
        raise SpecError("a bmn head has its own base layers: remove 'neck'", path=("neck",))
    if spec.max_duration is not None and spec.max_duration > model.input.steps:
        raise SpecError(
            f"proposals of {spec.max_duration} steps do not fit a window of {model.input.steps}",
            path=("head", "max_duration"),
        )
    if spec.width % spec.groups or model.input.width % spec.groups:
        raise SpecError(f"{spec.groups} groups must divide the input width "
                        f"{model.input.width} and the width {spec.width}",
                        path=("head", "groups"))  # fmt: skip
    return BMNNet(spec, model.input.width, model.input.steps)


class FlatOutputs(nn.Module):
    """A localizer whose outputs (one tensor or BMN's pair) come out as one (B, N) tensor:
    the network a training-step simulation or measurement runs, a cross-entropy over it
    standing in for the head's loss (see ``precheck_localizer``)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        parts = out if isinstance(out, tuple) else (out,)
        return torch.cat([p.flatten(1) for p in parts], dim=1)


def build_localizer(spec: LocalizationSpec, *, classes: int | None = None) -> nn.Module:
    """The network ``spec`` describes.

    Raises:
        SpecError: naming the key path (and, for a spec loaded from a file, its line).
    """
    create: Any = LOCALIZATION_HEADS.get(spec.head.type)
    try:
        return create(spec.head, model=spec, classes=classes or spec.classes)
    except SpecError as exc:
        if spec._origin is None or exc.location is not None:
            raise
        raise spec._origin.error(exc.message, exc.path) from None
