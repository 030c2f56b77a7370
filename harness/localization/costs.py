"""Loading localization specs, and what a localization network costs.

Costs are per window of ``T`` feature steps: parameters (trainable; BMN's sampling mask is
a buffer), and GFLOPs under the recognizers' convention (one multiply-add = one FLOP over
convolutions, linear layers, matrix products and attention), counted two ways that must
agree: on meta tensors (nothing of the network's size is allocated) and by fvcore's trace.
With a ``backbone``, the window also costs ``T`` clips of the backbone's features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import SpecError
from harness.spec import Document, error_message, error_path, load_yaml_file
from harness.spec.localization import LocalizationSpec

__all__ = [
    "LOCALIZATION_ZOO",
    "LocalizerCosts",
    "count_localizer",
    "is_localization_ref",
    "load_localization_spec",
]

LOCALIZATION_ZOO = Path(__file__).parent / "specs"  # shipped localization specs, by name


def load_localization_spec(ref: str | Path | LocalizationSpec) -> LocalizationSpec:
    """A localization spec: a shipped name (``bmn``), a YAML path, or a loaded spec.

    Raises:
        SpecError: naming file, line and key path of the first problem.
    """
    if isinstance(ref, LocalizationSpec):
        return ref
    path = Path(ref)
    if path.suffix not in (".yaml", ".yml") and "/" not in str(ref):
        path = LOCALIZATION_ZOO / f"{ref}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in LOCALIZATION_ZOO.glob("*.yaml")))
            raise SpecError(f"no localization spec named '{ref}'; shipped: {known}")
    doc = load_yaml_file(path)
    spec = _validate(doc, path)
    spec._origin = doc
    return spec


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


def _validate(doc: Document, path: Path) -> LocalizationSpec:
    data: Any = doc.data
    if isinstance(data, dict):
        data = {"name": path.stem, **data}
    try:
        return LocalizationSpec.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise doc.error(error_message(error, data), error_path(data, error["loc"])) from None


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
