"""A fast budget pre-check: FLOPs, parameters and training memory of a spec, without data.

The spec is compiled on the meta device (no weights, no initialisation) and one training
step is simulated on meta tensors (:mod:`harness.measure._meta`). One pass gives:

- ``flops``: multiply-adds of one clip under the ``gflops`` convention (convolutions,
  linear layers, matrix products, einsum and attention; one multiply-add = one FLOP), equal
  to :func:`harness.measure.count_flops` (fvcore) for every zoo model;
- ``activations``: fvcore's activation count of one clip;
- ``params``: the parameter count;
- ``train_memory``: the peak of the training step at ``batch``, identical to
  :func:`harness.measure.estimate_train_memory` of the compiled model.

Nothing of the clip's size is ever allocated, so a search can reject candidates over budget
before building them for real. A stage's run of alike blocks is built and simulated once and
its events replayed for the copies (:mod:`harness.measure._fold`), and blocks alike to one
built before in the process are copied rather than constructed: X3D-M builds 18 of its 26
blocks, and its figures stay those of the full network, byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.compiler import VideoNet, build_model, planned_input_shape
from harness.measure._fold import Folding, create_meta_block, unfolded_params
from harness.measure._meta import meta_model, no_gc, simulate_forward, simulate_train_step
from harness.measure._policy import MetaBuild
from harness.measure._runtime import (
    OPTIMIZERS,
    check_batch,
    check_grad_accum,
    get_device,
    get_precision,
)
from harness.measure.cache import CostCache, CostKey
from harness.measure.flops import count_module_params
from harness.measure.memory import InferenceMemory, TrainMemory
from harness.spec import ModelSpec, load_spec, spec_hash

__all__ = ["TRAIN_STEP_PASSES", "MetaForward", "Precheck", "forward_on_meta", "precheck"]

# A training step's multiply-adds per forward one: the forward, and a backward of twice it.
TRAIN_STEP_PASSES = 3


@dataclass(frozen=True)
class Precheck:
    """What a spec costs, from one simulated training step."""

    name: str
    spec_hash: str
    input_shape: tuple[int, ...]  # (C, T, H, W) of one clip
    params: int  # every parameter
    params_no_norm: int  # without normalisation layers
    flops: int  # multiply-adds of one clip (the gflops convention)
    activations: int  # fvcore's activation count of one clip
    train_memory: TrainMemory  # peak of one training step at its batch
    method: str = "meta_simulation"
    # multiply-adds of one clip that activation checkpointing recomputes in backward
    recompute_flops: int = 0

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def train_flops(self) -> int:
        """Multiply-adds of one clip's training step: the forward pass, the backward pass
        counted as twice it (the gradients of inputs and of weights, the usual convention),
        and the forward passes that activation checkpointing recomputes."""
        return TRAIN_STEP_PASSES * self.flops + self.recompute_flops

    def over_budget(
        self,
        *,
        gflops: float | None = None,
        params: int | None = None,
        train_memory_mb: float | None = None,
    ) -> list[str]:
        """The budgets this spec exceeds (``[]`` when it fits all given ones)."""
        peak = self.train_memory.peak_mb
        checks = (
            ("gflops", gflops, self.gflops),
            ("params", params, self.params),
            ("train_memory_mb", train_memory_mb, float("inf") if peak is None else peak),
        )
        return [name for name, limit, value in checks if limit is not None and value > limit]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Precheck:
        return cls(
            **{
                **data,
                "input_shape": tuple(data["input_shape"]),
                "train_memory": TrainMemory.from_json(data["train_memory"]),
            }
        )


def precheck(
    spec: ModelSpec | str | Path,
    *,
    frames: int | None = None,
    size: int | None = None,
    classes: int | None = None,
    batch: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
    optimizer: str = "sgd",
    grad_accum: int = 1,
    cache: CostCache | None = None,
) -> Precheck:
    """FLOPs, parameters and training-step memory of ``spec``, in milliseconds.

    Args:
        spec: a spec, a zoo name or a YAML path.
        frames, size, classes: the clip and classes to build for (default: the spec's).
        batch: clips per training step (memory only; FLOPs are per clip).
        device: the device whose training step is simulated; it need not be present.
        precision: fp32, or bf16/fp16 autocast.
        optimizer: a name in ``harness.measure.OPTIMIZERS``.
        grad_accum: micro-batches per update (memory only: above 1, the peak of a later
            micro-batch, which holds the gradients of the earlier ones).
        cache: where to look the result up first, and store it.

    Raises:
        SpecError: for a spec that cannot be built or an unknown setting.
    """
    target = check_settings(batch=batch, grad_accum=grad_accum, device=device,
                            precision=precision, optimizer=optimizer)  # fmt: skip
    loaded = load_spec(spec)
    key = None
    if cache is not None:
        planned = planned_input_shape(loaded, frames=frames, size=size)
        if planned is not None:
            key = _key(loaded, planned, classes or loaded.classes, batch, target, precision,
                       optimizer, grad_accum)  # fmt: skip
            stored = cache.load(key, Precheck.from_json)
            if stored is not None:
                return stored
    with no_gc():  # the model is freed (by reference counts) before collection resumes
        result = _simulate(
            loaded, frames, size, classes, batch=batch, device=target, precision=precision,
            optimizer=optimizer, grad_accum=grad_accum,
        )  # fmt: skip
    if cache is not None and key is not None:
        cache.put(key, result.to_json())
    return result


def check_settings(
    *, batch: int, grad_accum: int, device: str, precision: str, optimizer: str
) -> str:
    """Check a training step's settings (SpecError naming the bad one); returns the type of
    ``device`` (``cpu``, ``cuda``), which need not be present."""
    check_batch(batch)
    check_grad_accum(grad_accum)
    get_precision(precision)
    OPTIMIZERS.get(optimizer)
    return get_device(device, present=False).type


def _simulate(
    spec: ModelSpec,
    frames: int | None,
    size: int | None,
    classes: int | None,
    *,
    batch: int,
    device: str,
    precision: str,
    optimizer: str,
    grad_accum: int,
) -> Precheck:
    """Build ``spec`` on the meta device, its repeated blocks once, and simulate a step."""
    folding = Folding()
    with MetaBuild():
        model = build_model(
            spec,
            frames=frames,
            size=size,
            classes=classes,
            edit_plan=folding,
            block_factory=create_meta_block,
        )
    shape = tuple(model.plan.input_shape)
    repeats = folding.repeats(model.stages)
    with meta_model(model) as meta:
        trace = simulate_train_step(
            meta,
            shape,
            batch,
            device_type=device,
            precision=precision,
            optimizer=optimizer,
            repeats=repeats,
            grad_accum=grad_accum,
        )
    flops, rest = divmod(sum(trace.macs.values()), batch)
    recompute, rest_recompute = divmod(sum(trace.recompute_macs.values()), batch)
    assert rest == rest_recompute == 0, "multiply-adds grow linearly with the batch"
    return Precheck(
        name=spec.name,
        spec_hash=spec_hash(spec),
        input_shape=shape,
        params=count_module_params(meta.modules) + unfolded_params(repeats),
        params_no_norm=count_module_params(meta.modules, norm=False)
        + unfolded_params(repeats, norm=False),
        flops=flops,
        activations=trace.activations // batch,
        train_memory=TrainMemory.simulated(
            trace, shape, batch, device, precision, optimizer, grad_accum
        ),
        recompute_flops=recompute,
    )


def _key(
    spec: ModelSpec,
    shape: tuple[int, ...],
    classes: int,
    batch: int,
    device: str,
    precision: str,
    optimizer: str,
    grad_accum: int,
) -> CostKey:
    checkpointed = spec.checkpointed_stages()  # runtime: not in the spec hash
    return CostKey.of(
        spec_hash(spec),
        shape,
        batch=batch,
        device=device,
        precision=precision,
        kind="precheck",
        optimizer=optimizer,
        classes=classes,  # not in the spec hash (a runtime field)
        # NOTE: only where they change the figures, so that earlier results stay valid
        **({"grad_accum": grad_accum} if grad_accum > 1 else {}),
        **({"checkpoint": sorted(checkpointed)} if checkpointed else {}),
    )


@dataclass(frozen=True)
class MetaForward:
    """One inference forward pass of a spec built on the meta device, at batch 1."""

    model: VideoNet  # on the meta device: its plan, modules and parameter counts
    memory: InferenceMemory  # what the pass holds at its peak, for a real run to compare
    flops: int  # multiply-adds of one clip (the gflops convention)
    scope_flops: dict[str, int]  # multiply-adds inside each named module asked for


def forward_on_meta(
    spec: ModelSpec | str | Path,
    *,
    frames: int | None = None,
    size: int | None = None,
    classes: int | None = None,
    scopes: Sequence[str] | None = None,
) -> MetaForward:
    """Build ``spec`` on the meta device and simulate one forward pass of one clip.

    Nothing of the network's size is allocated: a count of any size is milliseconds, and
    ``memory`` says what the same pass would take for real (a trace, an inference).

    Args:
        scopes: module names to count apart (default: ``VideoNet.stage_names()``).
    """
    loaded = load_spec(spec)
    with MetaBuild():
        model = build_model(loaded, frames=frames, size=size, classes=classes)
    shape = tuple(model.plan.input_shape)
    with meta_model(model) as meta, no_gc():
        names = model.stage_names() if scopes is None else scopes
        named = {name: model.get_submodule(name) for name in names}
        trace = simulate_forward(meta, shape, 1, device_type="cpu", precision="fp32", scopes=named)
    memory = InferenceMemory.simulated(trace, shape, 1, "cpu", "fp32")
    return MetaForward(model, memory, sum(trace.macs.values()), trace.scope_macs)
