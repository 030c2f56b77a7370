"""The compiled network and the compiler entry point."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError
from torch import nn

from harness.compiler.audio import collapse_height
from harness.compiler.blocks import BlockFn, create_block
from harness.compiler.heads import create_head
from harness.compiler.pathways import (
    Inputs,
    PathwayStep,
    create_consensus,
    create_join,
    create_lateral,
)
from harness.compiler.plan import (
    Grid,
    LateralPlan,
    NetworkPlan,
    PathwayPlan,
    StagePlan,
    plan_network,
)
from harness.compiler.recompute import CheckpointedStage
from harness.compiler.select import create_token_selection
from harness.compiler.stems import create_pool, create_stem
from harness.compiler.tokens import TokenHead  # noqa: F401  (registers patch stem, token head)
from harness.errors import SpecError
from harness.spec import ModelSpec, check_limits, load_spec, locate, realise
from harness.spec.pathways import ConcatJoinSpec

__all__ = [
    "JOIN_ROW",
    "LATERALS_GROUP",
    "ModuleRow",
    "VideoNet",
    "build_model",
    "init_weights",
    "list_rows",
    "planned_input_shape",
    "row_group",
]

JOIN_ROW = "join"  # the row of a multi-pathway network's join (with its head or heads)
LATERALS_GROUP = "laterals"  # the group of every lateral's row (see :func:`row_group`)
_LATERAL = "->"  # a lateral's row: SOURCE->TARGET/POSITION


@dataclass(frozen=True)
class ModuleRow:
    """One row of the per-module table: a module of the network and what it outputs."""

    # stem, stages.N, head; with several pathways PATHWAY/stem, PATHWAY/stages.N,
    # SOURCE->TARGET/POSITION (a lateral) and join
    name: str
    module: str  # the VideoNet submodule whose parameters and multiply-adds the row counts
    output_shape: tuple[int, ...]  # (C, T, H, W) after the module; (classes,) after the head


def _laterals_at(plan: NetworkPlan) -> dict[str | int, list[LateralPlan]]:
    """The laterals of each position ("stem" or a stage index), in the plan's order."""
    at: dict[str | int, list[LateralPlan]] = {}
    for lateral in plan.laterals:
        at.setdefault(lateral.position, []).append(lateral)
    return at


def list_rows(plan: NetworkPlan, classes: int) -> list[ModuleRow]:
    """The rows of the per-module table of the network ``plan`` describes, in data order.

    A single pathway: ``stem``, ``stages.N``, ``head``. Several: at each position (the
    stem, stage 0, ...), each pathway's own layer (``slow/stem``, its output before any
    fusion), then the laterals after it (``fast->slow/stem``, the target's fused output),
    and last the ``join``. Every parameter and multiply-add of the network (but a segment
    consensus) is in exactly one row.
    """
    (pathway, *others) = plan.pathways
    if not others and not pathway.path:  # NOTE: a spec without `pathways:` (see plan.py)
        rows = [ModuleRow("stem", "stem", pathway.stem_shape)]
        rows += [
            ModuleRow(f"stages.{i}", f"stages.{i}", stage.shape_out)
            for i, stage in enumerate(pathway.stages)
        ]
        return [*rows, ModuleRow("head", "head", (classes,))]
    laterals = _laterals_at(plan)
    rows = []
    for position in ["stem", *range(len(plan.trunk.stages))]:
        rows += _step_rows(plan, position, laterals.get(position, []))
    return [*rows, ModuleRow(JOIN_ROW, "head", (classes,))]


def _step_rows(
    plan: NetworkPlan, position: str | int, laterals: list[LateralPlan]
) -> list[ModuleRow]:
    """The rows of one PathwayStep: each pathway's layer there, then the laterals."""
    where = "stem" if isinstance(position, str) else f"stages.{position}"
    rows = []
    for p in plan.pathways:
        if isinstance(position, str):
            shape = p.stem_shape
        elif position < len(p.stages):
            shape = p.stages[position].shape_out
        else:
            continue  # a pathway with fewer stages passes its features on
        module = f"{where}.{PathwayStep.layer_name(p.name)}"
        rows.append(ModuleRow(f"{p.name}/{where}", module, shape))
    for k, lateral in enumerate(laterals):
        name = f"{lateral.source}{_LATERAL}{lateral.target}/{where}"
        if any(row.name == name for row in rows):  # NOTE: the same route twice here
            name += f" (laterals.{lateral.path[-1]})"
        rows.append(ModuleRow(name, f"{where}.{PathwayStep.lateral_name(k)}", lateral.shape_out))
    return rows


def row_group(name: str) -> str | None:
    """What a row of :func:`list_rows` adds to: its pathway, ``laterals`` or ``join``.

    None for the rows of a single-pathway network (``stem``, ``stages.N``, ``head``).
    """
    if name == JOIN_ROW:
        return JOIN_ROW
    head, slash, _ = name.partition("/")
    if not slash:
        return None
    return LATERALS_GROUP if _LATERAL in head else head


class VideoNet(nn.Module):
    """inputs -> stem -> stages -> head [-> consensus], as compiled from a spec.

    Takes a ``(B, C, T, H, W)`` clip, or a mapping of named clips (``{"rgb": ..., "flow":
    ...}``), or the named clips stacked over channels in declared order; returns
    ``(B, classes)`` scores. In a multi-pathway network the stem and every stage are
    ``PathwayStep`` modules passing a dict of pathway features.
    ``plan`` keeps the compiler's bookkeeping (per-pathway, per-stage shapes).
    """

    def __init__(
        self,
        stem: nn.Module,
        stages: list[nn.Module],
        head: nn.Module,
        plan: NetworkPlan,
        *,
        inputs: nn.Module,
        classes: int,
        consensus: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.classes = classes
        self.inputs = inputs
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.consensus = consensus if consensus is not None else nn.Identity()
        self.plan = plan

    def forward(self, x: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = self.inputs(x)
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.consensus(self.head(x))

    def rows(self) -> list[ModuleRow]:
        """The rows of the per-module table, in data order (see :func:`list_rows`)."""
        return list_rows(self.plan, self.classes)

    def stage_names(self) -> list[str]:
        """The module names of the per-module table, in order: stem, stages.N, head with
        one pathway; each pathway's layers, the laterals and the join with several."""
        return [row.module for row in self.rows()]

    def example_inputs(self, batch: int = 1) -> dict[str, torch.Tensor]:
        """Random named inputs of the shapes the network was built for."""
        _, t, h, w = self.plan.input_shape
        audio = {name: (c, frames, mels) for name, c, frames, mels in self.plan.audio}
        return {
            name: torch.randn(batch, *audio[name])
            if name in audio
            else torch.randn(batch, c, t, h, w)
            for name, c in self.plan.inputs
        }


def _build_stage(stage: StagePlan, create: BlockFn = create_block) -> nn.Module:
    layers = []
    for block in stage.blocks:
        try:
            layers.append(
                create(
                    block.spec,
                    dim_in=block.dim_in,
                    dim_out=block.dim_out,
                    dim_inner=block.dim_inner,
                    stride=block.stride,
                    index=block.index,
                    grid=block.grid,
                )
            )
        except SpecError as exc:
            raise SpecError(exc.message, path=(*block.path, *exc.path)) from None
    if stage.selection is not None:
        # NOTE: right after block `after - 1`, where StagePlan.child_index counts it
        layers.insert(stage.selection.spec.after, _build_selection(stage))
    if stage.pool is not None:
        layers.append(create_pool(stage.pool))
    return CheckpointedStage(*layers) if stage.checkpoint else nn.Sequential(*layers)


def _build_selection(stage: StagePlan) -> nn.Module:
    """The stage's token selection, placed among its blocks by ``StagePlan.child_index``."""
    selection = stage.selection
    assert selection is not None, "only a selecting stage has one"
    try:
        return create_token_selection(
            selection.spec, dim=selection.dim, grid=selection.grid, grid_out=selection.grid_out
        )
    except SpecError as exc:
        raise SpecError(exc.message, path=(*selection.path, *exc.path)) from None


def _build_stem(pathway: PathwayPlan) -> nn.Module:
    _, t, h, w = pathway.stem_shape
    grid = Grid(t, h, w, pathway.stem_tokens, pathway.stem_declared)
    try:
        stem = create_stem(pathway.stem, dim_in=pathway.input_shape[0], grid=grid)
    except SpecError as exc:
        raise SpecError(exc.message, path=(*pathway.path, "stem", *exc.path)) from None
    return collapse_height(stem) if pathway.audio else stem


def _build_stages(pathway: PathwayPlan, create: BlockFn) -> list[nn.Module]:
    """The pathway's stages; an audio pathway's with every height kernel collapsed."""
    stages = [_build_stage(stage, create) for stage in pathway.stages]
    return [collapse_height(s) for s in stages] if pathway.audio else stages


def _build_head(spec: ModelSpec, plan: NetworkPlan, classes: int) -> nn.Module:
    try:
        if spec.pathways is not None:
            join = spec.join if spec.join is not None else ConcatJoinSpec()
            return create_join(join, head=spec.head, plan=plan, classes=classes)
        c, t, h, w = plan.output_shape
        return create_head(
            spec.head, dim_in=c, extent=(t, h, w), classes=classes, tokens=plan.tokens_out
        )
    except SpecError as exc:
        raise SpecError(exc.message, path=("head", *exc.path)) from None


def _build_steps(plan: NetworkPlan, create: BlockFn) -> tuple[nn.Module, list[nn.Module]]:
    """Multi-pathway: one PathwayStep per position (stem, stage 0, ...), laterals inside."""
    laterals = {
        position: [create_lateral(lateral) for lateral in at]
        for position, at in _laterals_at(plan).items()
    }
    stem = PathwayStep({p.name: _build_stem(p) for p in plan.pathways}, laterals.get("stem", []))
    stages: list[nn.Module] = []
    built = {p.name: _build_stages(p, create) for p in plan.pathways}
    for i in range(len(plan.trunk.stages)):
        layers = {name: own[i] for name, own in built.items() if i < len(own)}
        stages.append(PathwayStep(layers, laterals.get(i, [])))
    return stem, stages


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs (fan-out), unit norms, N(0, 0.01) linears, zero biases.

    Norms marked ``zero_init`` (the last of each residual branch) start at zero, so every
    residual block starts as the identity. A model on the meta device has no values to set.
    """
    first = next(model.parameters(), None)
    if first is not None and first.is_meta:
        return
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm3d):
            nn.init.constant_(module.weight, 0.0 if getattr(module, "zero_init", False) else 1.0)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


PlanEdit = Callable[[NetworkPlan], NetworkPlan]


def _compile(
    spec: ModelSpec,
    *,
    frames: int,
    size: int,
    classes: int,
    edit_plan: PlanEdit | None,
    create: BlockFn,
) -> VideoNet:
    plan = plan_network(spec, frames=frames, size=size)
    if edit_plan is not None:
        plan = edit_plan(plan)
    single = spec.pathways is None
    if single:
        (pathway,) = plan.pathways
        stem, stages = _build_stem(pathway), _build_stages(pathway, create)
    else:
        stem, stages = _build_steps(plan, create)
    reads = {p.name: (p.inputs, p.frame_stride) for p in plan.pathways}
    audio = {name: (c, frames, mels) for name, c, frames, mels in plan.audio}
    inputs = Inputs(plan.inputs, reads, segments=plan.segments, single=single, audio=audio)
    consensus = None
    if spec.segments is not None:
        consensus = create_consensus(
            spec.segments.consensus, segments=plan.segments, classes=classes
        )
    head = _build_head(spec, plan, classes)
    model = VideoNet(stem, stages, head, plan, inputs=inputs, classes=classes, consensus=consensus)
    init_weights(model)
    return model


def planned_input_shape(
    spec: ModelSpec, *, frames: int | None = None, size: int | None = None
) -> tuple[int, ...] | None:
    """The (C, T, H, W) clip ``spec`` builds for, or None if it cannot be planned.

    Planning takes microseconds, so a cost cache can be looked up before anything is built;
    a spec that cannot be planned is left to :func:`build_model`, which names the bad key.
    """
    try:
        real = realise(spec)
        plan = plan_network(real, frames=frames or real.clip.frames, size=size or real.clip.size)
    except (SpecError, ValidationError):
        return None
    return tuple(plan.input_shape)


def build_model(
    spec: ModelSpec | str | Path,
    *,
    frames: int | None = None,
    size: int | None = None,
    classes: int | None = None,
    edit_plan: PlanEdit | None = None,
    block_factory: BlockFn = create_block,
) -> VideoNet:
    """Compile a spec (or a zoo name, or a YAML path) into a ``torch.nn.Module``.

    Args:
        spec: the spec, a zoo name or a YAML path.
        frames: clip length to build for (default: the spec's, after expansion).
        size: crop size to build for (default: the spec's, after expansion).
        classes: number of output classes (default: the spec's ``classes``).
        edit_plan: rewrites the compiler's plan before anything is built (the budget
            pre-check leaves out blocks it can replay, see ``harness.measure._fold``).
        block_factory: builds each block (default :func:`create_block`; the pre-check's
            meta builds copy alike blocks instead of building them again).

    Raises:
        SpecError: naming file, line and key path when the spec cannot be built.
    """
    loaded = load_spec(spec)
    try:
        real = realise(loaded)
        for name, value in (("frames", frames), ("size", size), ("classes", classes)):
            if value is not None and value < 1:
                raise SpecError(f"{name} must be at least 1, got {value}", path=(name,))
        if frames is not None or size is not None:
            check_limits(real, frames=frames, size=size)
        return _compile(
            real,
            frames=frames or real.clip.frames,
            size=size or real.clip.size,
            classes=classes or real.classes,
            edit_plan=edit_plan,
            create=block_factory,
        )
    except SpecError as exc:
        raise locate(loaded, exc) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        raise locate(loaded, SpecError(error["msg"], path=error["loc"])) from None
