"""Loading localization specs, and what a localization network costs.

Costs are per window of ``T`` feature steps: parameters (trainable; BMN's sampling mask is
a buffer), and GFLOPs under the recognizers' convention (one multiply-add = one FLOP over
convolutions, linear layers, matrix products and attention), counted two ways that must
agree: on meta tensors (nothing of the network's size is allocated) and by fvcore's trace.
With a ``backbone``, the window also costs ``T`` clips of the backbone's features.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from harness.errors import SpecError
from harness.spec import Document, error_message, error_path, load_yaml_file
from harness.spec.load import apply_overrides
from harness.spec.localization import LocalizationSpec

if TYPE_CHECKING:
    from harness.measure import CostCache, Precheck

__all__ = [
    "LOCALIZATION_ZOO",
    "LocalizerCosts",
    "count_localizer",
    "is_localization_ref",
    "load_localization_spec",
    "localization_document",
    "localizer_hash",
    "precheck_localizer",
]

LOCALIZATION_ZOO = Path(__file__).parent / "specs"  # shipped localization specs, by name


def load_localization_spec(
    ref: str | Path | LocalizationSpec, **overrides: Any
) -> LocalizationSpec:
    """A localization spec: a shipped name (``bmn``), a YAML path, or a loaded spec.

    Args:
        **overrides: key paths to set (``neck.levels=3``), as ``harness.spec.load_spec``
            takes them.

    Raises:
        SpecError: naming file, line and key path of the first problem.
    """
    if isinstance(ref, LocalizationSpec):
        if not overrides:
            return ref
        origin = ref._origin
        data = ref.model_dump(mode="json")
        doc = Document(data=data, file=origin.file if origin else "<spec>",
                       locations=origin.locations if origin else {})  # fmt: skip
        spec = _validate(doc, Path(ref.name), overrides)
        spec._origin = origin or doc
        return spec
    doc = localization_document(ref)
    spec = _validate(doc, Path(doc.file), overrides)
    spec._origin = doc
    return spec


def localization_document(ref: str | Path) -> Document:
    """The YAML document of a shipped localization spec's name or of a path.

    Raises:
        SpecError: no such shipped spec, or a file that cannot be read as YAML.
    """
    return load_yaml_file(_find(ref))


def _find(ref: str | Path) -> Path:
    """The file of a shipped name or a path."""
    path = Path(ref)
    if path.suffix not in (".yaml", ".yml") and "/" not in str(ref):
        path = LOCALIZATION_ZOO / f"{ref}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in LOCALIZATION_ZOO.glob("*.yaml")))
            raise SpecError(f"no localization spec named '{ref}'; shipped: {known}")
    return path


def is_localization_ref(ref: str | Path) -> bool:
    """Whether ``ref`` names a localization spec: a shipped one, or a YAML file whose
    ``task`` is ``localization`` (a file that cannot be read is left to its own loader)."""
    path = Path(ref)
    if path.suffix not in (".yaml", ".yml") and "/" not in str(ref):
        return (LOCALIZATION_ZOO / f"{ref}.yaml").is_file()
    try:
        data = load_yaml_file(path).data
    except SpecError:
        return False
    return isinstance(data, dict) and data.get("task") == "localization"


def _validate(
    doc: Document, path: Path, overrides: Mapping[str, Any] | None = None
) -> LocalizationSpec:
    data: Any = doc.data
    if isinstance(data, dict):
        data = {"name": path.stem, **data}
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        return LocalizationSpec.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise doc.error(error_message(error, data), error_path(data, error["loc"])) from None


def localizer_hash(spec: LocalizationSpec) -> str:
    """sha256 of the canonical JSON of what decides the detections: the input, neck, head
    and post-processing (not the name, description or the runtime ``classes``)."""
    fields = spec.model_dump(mode="json", exclude={"name", "description", "classes", "task"})
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class LocalizerCosts:
    """One window's costs."""

    steps: int  # T: feature steps per window
    params: int  # trainable parameters
    buffer_values: int  # values of fixed buffers (BMN's sampling mask)
    flops: int  # multiply-adds of one window (the gflops convention), on meta tensors
    backbone_flops: int = 0  # multiply-adds of the backbone's T clips (0: features given)

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def total_gflops(self) -> float:
        """The window with its backbone: the head and T backbone clips."""
        return (self.flops + self.backbone_flops) / 1e9


def count_localizer(spec: LocalizationSpec, *, classes: int | None = None) -> LocalizerCosts:
    """Parameters and multiply-adds of one window of ``spec``, built on the meta device."""
    from harness.localization.models import build_localizer
    from harness.measure._meta import meta_model, no_gc, simulate_forward
    from harness.measure._policy import MetaBuild

    with MetaBuild():
        model = build_localizer(spec, classes=classes)
    shape = (spec.input.width, spec.input.steps)
    with meta_model(model) as meta, no_gc():
        trace = simulate_forward(meta, shape, 1, device_type="cpu", precision="fp32")
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers())
    return LocalizerCosts(
        steps=spec.input.steps,
        params=params,
        buffer_values=buffers,
        flops=sum(trace.macs.values()),
        backbone_flops=_backbone_flops(spec),
    )


def _backbone_flops(spec: LocalizationSpec) -> int:
    """Multiply-adds of the T backbone clips behind one window (its pooled features)."""
    if spec.input.backbone is None:
        return 0
    from harness.measure import precheck
    from harness.spec import load_spec

    try:
        backbone = load_spec(spec.input.backbone, head={"type": "features"})
        clip = precheck(backbone, frames=spec.input.window)
    except SpecError as exc:
        raise SpecError(f"backbone '{spec.input.backbone}': {exc}",
                        path=("input", "backbone")) from None  # fmt: skip
    return clip.flops * spec.input.steps


def precheck_localizer(
    spec: LocalizationSpec,
    *,
    classes: int | None = None,
    batch: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
    optimizer: str = "sgd",
    grad_accum: int = 1,
    cache: CostCache | None = None,
) -> Precheck:
    """One simulated training step of ``spec`` on windows of features (meta tensors), as
    the recognizers' pre-check: parameters, multiply-adds of a window (features given: a
    backbone's clips are :func:`count_localizer`'s ``backbone_flops``) and the step's peak
    memory at ``batch`` windows.

    NOTE: the head's loss (focal, IoU, BMN's) is stood in for by a cross-entropy over the
    concatenated outputs: the losses work on output-sized tensors, a small part of a step
    whose peak is the network's activations.
    """
    from harness.measure import CostKey, Precheck, TrainMemory
    from harness.measure._meta import meta_model, no_gc, simulate_train_step
    from harness.measure._policy import MetaBuild
    from harness.measure.flops import count_module_params
    from harness.measure.precheck import check_settings

    target = check_settings(batch=batch, grad_accum=grad_accum, device=device,
                            precision=precision, optimizer=optimizer)  # fmt: skip
    shape = (spec.input.width, spec.input.steps)
    key = CostKey.of(localizer_hash(spec), shape, batch=batch, device=target,
                     precision=precision, kind="precheck-localizer", optimizer=optimizer,
                     classes=classes or spec.classes,
                     **({"grad_accum": grad_accum} if grad_accum > 1 else {}))  # fmt: skip
    stored = cache.load(key, Precheck.from_json) if cache is not None else None
    if stored is not None:
        return stored
    from harness.localization.models import FlatOutputs, build_localizer

    with MetaBuild():
        model = FlatOutputs(build_localizer(spec, classes=classes))
    with meta_model(model) as meta, no_gc():
        trace = simulate_train_step(meta, shape, batch, device_type=target, precision=precision,
                                    optimizer=optimizer, grad_accum=grad_accum)  # fmt: skip
        params = count_module_params(meta.modules)
        params_no_norm = count_module_params(meta.modules, norm=False)
    flops, rest = divmod(sum(trace.macs.values()), batch)
    assert rest == 0, "multiply-adds grow linearly with the batch"
    result = Precheck(
        name=spec.name,
        spec_hash=localizer_hash(spec),
        input_shape=shape,
        params=params,
        params_no_norm=params_no_norm,
        flops=flops,
        activations=trace.activations // batch,
        train_memory=TrainMemory.simulated(
            trace, shape, batch, target, precision, optimizer, grad_accum
        ),
    )
    if cache is not None:
        cache.put(key, result.to_json())
    return result
