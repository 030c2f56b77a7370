"""Spec nodes of audio-visual networks: the audio input and the audio -> visual fusions.

An audio input is a log-mel spectrogram, ``(B, channels, frames, mels)``: time by
frequency. A pathway that reads it is an *audio pathway*: its features are laid out
``(B, C, time, 1, frequency)``, so the stems, blocks and pools of the video vocabulary run
on it unchanged, with the height axis collapsed (every kernel, stride and padding along
height is 1, 1 and 0: a ``k x k`` spatial kernel becomes a ``1 x k`` frequency kernel).
AVSlowFast (Xiao et al., "Audiovisual SlowFast Networks for Video Recognition", 2020) is
the canonical case::

    rgb   --every alpha-th frame--> slow  stem -> res2 -> res3 -> res4 -> res5 --+
    rgb   -----------------------> fast  stem -> res2 -> res3 -> res4 -> res5 --+-> join
    audio -----------------------> audio stem -> res2 -> res3 -> res4 -> res5 --+
          (laterals: fast -> slow, concatenated; audio -> slow, pooled over frequency,
           time-strided to slow's frames, broadcast over height and width, summed)

Fusions beside the laterals of :mod:`harness.spec.pathways`: ``pooled_time_conv`` (the
AVSlowFast lateral above) and ``cross_attention`` (the target's locations attend to the
source's). Late score fusion and feature concatenation are the ``scores`` and ``concat``
joins.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag

from harness.errors import SpecError
from harness.spec._types import Integer, Node, Number, OddInt, PositiveFloat, PositiveInt
from harness.spec.attention import PatchStemSpec
from harness.spec.pathways import Connection, InputSpec, LateralSpec

__all__ = [
    "AudioInputSpec",
    "CrossAttentionSpec",
    "InputKind",
    "LateralKind",
    "PooledTimeConvSpec",
    "check_audio",
    "is_audio",
    "reads_audio",
]

KeyPath = tuple[str | int, ...]


class AudioInputSpec(Node):
    """A log-mel spectrogram input, ``(B, channels, frames, mels)`` (time x frequency)."""

    type: Literal["audio"]  # marks the input as a spectrogram (a video input has no type)
    channels: Literal[1] = 1  # mono
    # NOTE: the bounds are the data's (harness.data.audio.AudioSettings); a test holds them equal
    sample_rate: Integer = Field(ge=1000, le=192_000)  # samples per second of the waveform, Hz
    window: Integer = Field(ge=16, le=65536)  # STFT window, samples
    hop: Integer = Field(ge=1, le=65536)  # STFT hop between spectrogram frames, samples
    mels: Integer = Field(ge=1, le=512)  # mel frequency bands: the spectrogram's frequency axis
    frames: Integer = Field(ge=1, le=100_000)  # spectrogram frames the network reads: its time axis

    def seconds(self) -> float:
        """Duration the spectrogram covers, seconds."""
        return ((self.frames - 1) * self.hop + self.window) / self.sample_rate


def is_audio(spec: Any) -> bool:
    """Whether the input node ``spec`` is a spectrogram."""
    return isinstance(spec, AudioInputSpec)


def _input_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "kind:audio" if kind == "audio" else "kind:video"


# A named input: a video clip (``{channels: 3}``, no type) or a spectrogram (type: audio).
InputKind = Annotated[
    Annotated[InputSpec, Tag("kind:video")] | Annotated[AudioInputSpec, Tag("kind:audio")],
    Discriminator(_input_kind),
]


class PooledTimeConvSpec(Connection):
    """A lateral that carries a source's time course into a target (AVSlowFast's A -> V).

    The source's height and width (for audio: frequency) are averaged away; ``convs``
    ``kernel x 1 x 1`` convs (norm, act) follow, the last with temporal stride alpha (the
    source frames per target frame); the result, one vector per target frame, is broadcast
    over the target's height and width and ``sum``-med into it (``F_to + weight * lateral``;
    the last conv makes the target's channels) or ``concat``-enated (``channel_ratio`` x the
    source channels).
    """

    same_space: ClassVar[bool] = False  # the source's height and width are pooled away

    type: Literal["pooled_time_conv"]  # the fusion kind (a registered lateral)
    kernel: OddInt = 5  # temporal kernel of every conv
    convs: PositiveInt = 2  # convs in series; only the last strides
    mid_ratio: PositiveFloat = 0.25  # width of the convs before the last = ratio x source
    channel_ratio: PositiveFloat = 2.0  # concat only: the last conv's width / source width
    combine: Literal["sum", "concat"] = "sum"  # add to the target, or concatenate
    weight: Number = 1.0  # sum only: scale of the lateral term

    def out_channels(self, source: int, ratio: int, target: int) -> int:
        """Channels of the lateral term: the target's for a sum."""
        return target if self.combine == "sum" else int(self.channel_ratio * source)

    def mid_channels(self, source: int) -> int:
        """Width of the convs before the last one."""
        return max(1, int(self.mid_ratio * source))


class CrossAttentionSpec(Connection):
    """Cross-modal attention: the target's locations query the source's (residual).

    Queries are the target's T x H x W locations, keys and values the source's: one per
    frame with its height and width averaged away (``keys: time``; for audio, one per
    spectrogram step) or every location (``keys: all``). Multi-head scaled dot-product
    attention at ``width`` (pre-norm with ``norm``), projected back to the target's
    channels and added to it: ``F_to + proj(attention(q(F_to), k(F_from), v(F_from)))``.
    """

    same_space: ClassVar[bool] = False  # queries and keys need not share a grid
    same_time: ClassVar[bool] = False  # nor a frame ratio

    type: Literal["cross_attention"]  # the fusion kind (a registered lateral)
    combine: Literal["cross_attention"] = "cross_attention"  # the attention merges the two
    heads: PositiveInt = 1  # attention heads; they split ``width``
    width: PositiveInt  # width of the queries, keys and values (all heads together)
    keys: Literal["time", "all"] = "time"  # one key per source frame, or per location
    norm: Literal["layer", "none"] = "layer"  # pre-norm of queries and keys/values

    def out_channels(self, source: int, ratio: int, target: int) -> int:
        """A residual update: the target's channels."""
        return target

    def invalid(self) -> tuple[str, str] | None:
        if self.width % self.heads:
            return "heads", f"{self.heads} heads do not divide the width {self.width}"
        return None


_LATERAL_TAGS = ("pooled_time_conv", "cross_attention")


def _lateral_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"kind:{kind if kind in _LATERAL_TAGS else 'lateral'}"


# A connection between pathways: a SlowFast-style lateral or one of the fusions above.
LateralKind = Annotated[
    Annotated[LateralSpec, Tag("kind:lateral")]
    | Annotated[PooledTimeConvSpec, Tag("kind:pooled_time_conv")]
    | Annotated[CrossAttentionSpec, Tag("kind:cross_attention")],
    Discriminator(_lateral_kind),
]


def reads_audio(spec: Any, pathway: Any) -> bool:
    """Whether ``pathway`` of model ``spec`` reads spectrograms (an audio pathway)."""
    inputs = spec.inputs or {}
    return any(is_audio(inputs.get(name)) for name in pathway.input)


def _check_audio_pathway(spec: Any, pathway: Any, path: KeyPath) -> None:
    inputs = spec.inputs or {}
    kinds = {name: "audio" if is_audio(inputs.get(name)) else "video" for name in pathway.input}
    if len(set(kinds.values())) > 1:
        listed = ", ".join(f"{name}: {kind}" for name, kind in kinds.items())
        raise SpecError(
            f"a pathway reads either spectrograms or video clips, not both ({listed})",
            path=(*path, "input"),
        )
    grids = {(inputs[name].frames, inputs[name].mels) for name in pathway.input}
    if len(grids) > 1:
        raise SpecError(
            "spectrograms read together are concatenated over channels: they need the same "
            "frames and mels",
            path=(*path, "input"),
        )
    if isinstance(pathway.stem, PatchStemSpec):
        raise SpecError(
            "an audio pathway needs a conv stem (its maps are time x 1 x frequency)",
            path=(*path, "stem", "type"),
        )
    for i, stage in enumerate(pathway.stages):
        for j, block in enumerate(stage.block_specs()):
            if getattr(block, "layout", "map") != "map":
                key = ("blocks", j) if stage.blocks is not None else ("block",)
                raise SpecError(
                    f"block type '{block.type}' reads tokens; an audio pathway has conv blocks",
                    path=(*path, "stages", i, *key, "type"),
                )


def check_audio(spec: Any) -> None:
    """Check how spectrogram inputs are read: by whole audio pathways of conv layers.

    Raises:
        SpecError: naming the key path of the first problem.
    """
    inputs = spec.inputs or {}
    if not any(is_audio(value) for value in inputs.values()):
        return
    if spec.segments is not None:
        raise SpecError(
            "segments split video clips into snippets; a model with an audio input has none",
            path=("segments",),
        )
    multi = spec.pathways is not None
    kinds = {"audio" if is_audio(value) else "video" for value in inputs.values()}
    if not multi and len(kinds) > 1:
        raise SpecError(
            "a spec reading spectrograms and video clips lists 'pathways', one per kind of "
            "input (its stem and stages read one of them)",
            path=("inputs",),
        )
    for index, pathway in enumerate(spec.get_pathways()):
        if reads_audio(spec, pathway):
            _check_audio_pathway(spec, pathway, ("pathways", index) if multi else ())
