"""Multi-pathway modules: input routing, lateral connections, joins and segment consensus.

Registries, keyed by the YAML strings of :mod:`harness.spec.pathways`:

    LATERALS   time_strided_conv | time_to_channel | strided_sample   (source -> target frames)
               pooled_time_conv | cross_attention        (harness.compiler.audio)
    COMBINES   concat | sum | attention                               (target, lateral -> target)
               cross_attention                           (harness.compiler.audio)
    JOINS      concat | scores                                        (pathways -> class scores)
    CONSENSUS  avg | max | attention                                  (K snippet scores -> one)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from harness.compiler.heads import create_head
from harness.compiler.layers import ConvNormAct
from harness.compiler.plan import LateralPlan, NetworkPlan
from harness.errors import SpecError
from harness.registry import Registry

__all__ = [
    "COMBINES",
    "CONSENSUS",
    "JOINS",
    "LATERALS",
    "Inputs",
    "Lateral",
    "PathwayStep",
    "create_consensus",
    "create_join",
    "create_lateral",
]

Features = dict[str, torch.Tensor]

LATERALS: Registry[Callable[..., nn.Module]] = Registry("lateral")
COMBINES: Registry[Callable[..., nn.Module]] = Registry("combine")
JOINS: Registry[Callable[..., nn.Module]] = Registry("join")
CONSENSUS: Registry[Callable[..., nn.Module]] = Registry("consensus")


class Inputs(nn.Module):
    """Named inputs -> what every pathway reads.

    Accepts a mapping of named ``(B, C, T, H, W)`` clips and ``(B, C, frames, mels)``
    spectrograms, or one tensor holding the named inputs stacked over channels in declared
    order (a single-input model takes its clip as is; a spectrogram rides in it flattened
    and zero-padded, see ``harness.compiler.plan.packed_channels``). Spectrograms go on as
    ``(B, C, frames, 1, mels)`` maps. With ``segments`` = K the T frames are K snippets,
    folded into the batch. Each pathway concatenates its inputs over channels and keeps
    every ``frame_stride``-th frame.
    """

    def __init__(
        self,
        inputs: tuple[tuple[str, int], ...],
        reads: dict[str, tuple[tuple[str, ...], int]],
        *,
        segments: int,
        single: bool,
        audio: dict[str, tuple[int, int, int]] | None = None,
    ) -> None:
        super().__init__()
        self.inputs = inputs
        self.reads = reads  # pathway -> (input names, frame stride)
        self.segments = segments
        self.single = single
        self.audio = audio or {}  # spectrogram input -> (channels, frames, mels)
        strides = [stride for _, stride in reads.values()]
        self.passthrough = (
            single and len(inputs) == 1 and strides == [1] and segments == 1 and not self.audio
        )

    def _spectrogram(self, name: str, x: torch.Tensor, packed: bool) -> torch.Tensor:
        """A spectrogram input as a (B, C, frames, 1, mels) map."""
        c, frames, mels = self.audio[name]
        if packed and x[0].numel() >= c * frames * mels:
            x = x.flatten(1)[:, : c * frames * mels].reshape(x.shape[0], c, frames, mels)
        elif packed or tuple(x.shape[1:]) != (c, frames, mels):
            raise SpecError(
                f"input '{name}' is a spectrogram (B, {c}, {frames}, {mels}) "
                f"(channels, frames, mels); got {tuple(x.shape)}",
                path=("inputs", name),
            )
        return x.unsqueeze(3)

    def _named(self, x: torch.Tensor | Mapping[str, torch.Tensor]) -> Features:
        names = [name for name, _ in self.inputs]
        if isinstance(x, Mapping):
            if len(names) == 1 and len(x) == 1:
                x = {names[0]: next(iter(x.values()))}
            missing = [n for n in names if n not in x]
            if missing:
                raise SpecError(
                    f"this model reads inputs {', '.join(names)}; '{missing[0]}' is missing",
                    path=("inputs", missing[0]),
                )
            return {
                n: self._spectrogram(n, x[n], False) if n in self.audio else x[n] for n in names
            }
        total = sum(c for _, c in self.inputs)
        if x.shape[1] != total:
            parts = " + ".join(f"{n} {c}" for n, c in self.inputs)
            raise SpecError(
                f"expected {total} input channels ({parts}), got {x.shape[1]}: pass every "
                "stream, as a mapping of named inputs or stacked over channels",
                path=("inputs",),
            )
        chunks = torch.split(x, [c for _, c in self.inputs], dim=1)
        return {
            n: self._spectrogram(n, chunk, True) if n in self.audio else chunk
            for n, chunk in zip(names, chunks, strict=True)
        }

    def _fold(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        k = self.segments
        x = x.reshape(b, c, k, t // k, h, w).transpose(1, 2)
        return x.reshape(b * k, c, t // k, h, w)

    def forward(self, x: torch.Tensor | Mapping[str, torch.Tensor]) -> Any:
        if self.passthrough:
            return next(iter(x.values())) if isinstance(x, Mapping) else x
        named = self._named(x)
        if self.segments > 1:
            named = {n: self._fold(v) for n, v in named.items()}
        out = {}
        for pathway, (names, stride) in self.reads.items():
            clip = named[names[0]] if len(names) == 1 else torch.cat([named[n] for n in names], 1)
            out[pathway] = clip[:, :, ::stride] if stride > 1 else clip
        return out[next(iter(out))] if self.single else out


class Lateral(nn.Module):
    """target <- combine(target, transform(source)), on a dict of pathway features."""

    def __init__(self, source: str, target: str, transform: nn.Module, combine: nn.Module) -> None:
        super().__init__()
        self.source = source
        self.target = target
        self.transform = transform
        self.combine = combine

    def forward(self, x: Features) -> Features:
        fused = self.combine(x[self.target], self.transform(x[self.source]))
        return {**x, self.target: fused}


class PathwayStep(nn.Module):
    """One position of a multi-pathway network: each pathway's stem or stage, then laterals."""

    @staticmethod
    def layer_name(pathway: str) -> str:
        """The name, inside a step, of ``pathway``'s stem or stage."""
        return f"layers.{pathway}"

    @staticmethod
    def lateral_name(index: int) -> str:
        """The name, inside a step, of its ``index``-th lateral (in the plan's order)."""
        return f"laterals.{index}"

    def __init__(self, layers: dict[str, nn.Module], laterals: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self.laterals = nn.ModuleList(laterals)

    def forward(self, x: Features) -> Features:
        x = {name: self.layers[name](f) if name in self.layers else f for name, f in x.items()}
        for lateral in self.laterals:
            x = lateral(x)
        return x


@LATERALS.register("time_strided_conv")
def _time_strided_conv(plan: LateralPlan) -> nn.Module:
    """K x 1 x 1 conv with temporal stride alpha, norm, ReLU (SlowFast's FuseFastToSlow)."""
    k = plan.spec.kernel  # type: ignore[attr-defined]
    unit = ConvNormAct(plan.dim_in, plan.dim_out, (k, 1, 1), (plan.ratio, 1, 1))
    return unit


class TimeToChannel(nn.Module):
    """(B, C, alpha T, H, W) -> (B, alpha C, T, H, W): each frame group into channels."""

    def __init__(self, ratio: int) -> None:
        super().__init__()
        self.ratio = ratio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        x = x.reshape(b, c, t // self.ratio, self.ratio, h, w).transpose(2, 3)
        return x.reshape(b, c * self.ratio, t // self.ratio, h, w)


class StridedSample(nn.Module):
    """Every alpha-th frame."""

    def __init__(self, ratio: int) -> None:
        super().__init__()
        self.ratio = ratio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.ratio] if self.ratio > 1 else x


LATERALS.register("time_to_channel")(lambda plan: TimeToChannel(plan.ratio))
LATERALS.register("strided_sample")(lambda plan: StridedSample(plan.ratio))


class Concat(nn.Module):
    def forward(self, target: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        if lateral.shape[3:] != target.shape[3:]:  # one vector per frame (pooled_time_conv)
            lateral = lateral.expand(-1, -1, -1, *target.shape[3:])
        return torch.cat((target, lateral), dim=1)


class WeightedSum(nn.Module):
    """target + weight * lateral."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, target: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        return target + self.weight * lateral if self.weight != 1.0 else target + lateral


class AttentionFusion(nn.Module):
    """a * target + (1 - a) * lateral, a = sigmoid(1x1x1 conv of both) at every location."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Conv3d(2 * dim, 1, 1)

    def forward(self, target: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(self.gate(torch.cat((target, lateral), dim=1)))
        return lateral + a * (target - lateral)


COMBINES.register("concat")(lambda plan: Concat())
COMBINES.register("sum")(lambda plan: WeightedSum(plan.spec.weight))
COMBINES.register("attention")(lambda plan: AttentionFusion(plan.dim_target))


def create_lateral(plan: LateralPlan) -> nn.Module:
    """The lateral connection ``plan`` describes: transform, then combine."""
    try:
        transform = LATERALS.get(plan.spec.type)(plan)
        combine = COMBINES.get(plan.spec.combine)(plan)
    except SpecError as exc:
        raise SpecError(exc.message, path=(*plan.path, "type")) from None
    return Lateral(plan.source, plan.target, transform, combine)


class ConcatJoin(nn.Module):
    """Global average pool of each pathway, concatenated, then the head."""

    def __init__(self, names: tuple[str, ...], head: nn.Module) -> None:
        super().__init__()
        self.names = names
        self.head = head

    def forward(self, x: Features) -> torch.Tensor:
        pooled = [x[name].mean(dim=(2, 3, 4), keepdim=True) for name in self.names]
        return self.head(torch.cat(pooled, dim=1))


class ScoresJoin(nn.Module):
    """One head per pathway; scores averaged with fixed or learned (softmax) weights."""

    def __init__(self, heads: dict[str, nn.Module], weights: tuple[float, ...], learned: bool):
        super().__init__()
        self.heads = nn.ModuleDict(heads)
        total = sum(weights)
        normalised = torch.tensor([w / total for w in weights])
        if learned:
            self.logits = nn.Parameter(torch.log(normalised))
        else:
            self.register_buffer("weights", normalised, persistent=False)
        self.learned = learned

    def forward(self, x: Features) -> torch.Tensor:
        weights = torch.softmax(self.logits, 0) if self.learned else self.weights
        scores = torch.stack([head(x[name]) for name, head in self.heads.items()], dim=0)
        return torch.einsum("p,pbc->bc", weights, scores)


def _joined(spec: Any, plan: NetworkPlan) -> tuple[str, ...]:
    names = tuple(p.name for p in plan.pathways)
    return spec.pathways if spec.pathways is not None else names


@JOINS.register("concat")
def _concat_join(spec: Any, *, head: Any, plan: NetworkPlan, classes: int) -> nn.Module:
    names = _joined(spec, plan)
    by_name = {p.name: p for p in plan.pathways}
    dim = sum(by_name[name].shape_out[0] for name in names)
    return ConcatJoin(names, create_head(head, dim_in=dim, extent=(1, 1, 1), classes=classes))


@JOINS.register("scores")
def _scores_join(spec: Any, *, head: Any, plan: NetworkPlan, classes: int) -> nn.Module:
    names = _joined(spec, plan)
    by_name = {p.name: p for p in plan.pathways}
    heads = {}
    for name in names:
        c, t, h, w = by_name[name].shape_out
        heads[name] = create_head(head, dim_in=c, extent=(t, h, w), classes=classes)
    weights = spec.weights or (1.0,) * len(names)
    return ScoresJoin(heads, weights, spec.learned)


def create_join(spec: Any, *, head: Any, plan: NetworkPlan, classes: int) -> nn.Module:
    """The head of a multi-pathway network: join ``spec`` around head ``head``."""
    return JOINS.get(spec.type)(spec, head=head, plan=plan, classes=classes)


def _snippets(x: torch.Tensor, segments: int) -> torch.Tensor:
    return x.reshape(-1, segments, x.shape[-1])


class AvgConsensus(nn.Module):
    """(B K, classes) snippet scores -> (B, classes): their mean (TSN)."""

    def __init__(self, segments: int) -> None:
        super().__init__()
        self.segments = segments

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _snippets(x, self.segments).mean(1)


class MaxConsensus(AvgConsensus):
    """(B K, classes) snippet scores -> (B, classes): the maximum of each class."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _snippets(x, self.segments).amax(1)


class AttentionConsensus(nn.Module):
    """(B K, classes) -> (B, classes): weights softmax_k(w . s_k + b) on the snippets."""

    def __init__(self, segments: int, classes: int) -> None:
        super().__init__()
        self.segments = segments
        self.score = nn.Linear(classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _snippets(x, self.segments)
        weights = torch.softmax(self.score(x)[..., 0], dim=1)
        return torch.einsum("bk,bkc->bc", weights, x)


CONSENSUS.register("avg")(lambda segments, classes: AvgConsensus(segments))
CONSENSUS.register("max")(lambda segments, classes: MaxConsensus(segments))
CONSENSUS.register("attention")(AttentionConsensus)


def create_consensus(kind: str, *, segments: int, classes: int) -> nn.Module:
    """Segment consensus ``kind`` over ``segments`` snippets of ``classes`` scores."""
    return CONSENSUS.get(kind)(segments, classes)
