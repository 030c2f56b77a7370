"""FLOP and parameter counts with fvcore (one multiply-add = one FLOP)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from harness.measure._runtime import module_tensors, submodules
from harness.measure.ops import COMPUTE_OPS, IGNORED_OPS, OTHER_OPS

__all__ = ["FlopCount", "count_flops", "count_params", "example_input"]

Inputs = torch.Tensor | dict[str, torch.Tensor]


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one forward pass at batch 1, in multiply-adds."""

    flops: int  # conv/linear/matmul/einsum/attention multiply-adds
    flops_all: int  # the above plus normalisation and pooling (fvcore total)
    by_operator: dict[str, int]  # fvcore operator name -> multiply-adds
    by_module: dict[str, int]  # module name -> ``flops`` inside it
    unsupported_ops: dict[str, int] = field(default_factory=dict)  # op -> calls, uncounted

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def gflops_all(self) -> float:
        return self.flops_all / 1e9


def _kind(op: str) -> str:
    return op.removeprefix("aten::").lstrip("_")


_COMPUTE_KINDS = {_kind(op) for op in COMPUTE_OPS} | {"conv"}


def example_input(shape: tuple[int, ...], batch: int = 1) -> torch.Tensor:
    """A random clip of ``(batch, *shape)``."""
    return torch.randn(batch, *shape)


def count_flops(model: nn.Module, inputs: Inputs) -> FlopCount:
    """Trace ``model`` on ``inputs`` (batch 1) in eval mode, without gradients.

    ``unsupported_ops`` lists every traced operator that is neither counted nor deliberately
    ignored (see :mod:`harness.measure.ops`).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            args = (inputs,)
            analysis = FlopCountAnalysis(model, args)
            analysis.set_op_handle(**{**COMPUTE_OPS, **OTHER_OPS})
            analysis.set_op_handle(**dict.fromkeys(IGNORED_OPS))
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            by_operator = dict(analysis.by_operator())
            per_module = analysis.by_module_and_operator()
            unsupported = dict(analysis.unsupported_ops())
    finally:
        model.train(was_training)
    compute = {op for op in by_operator if op in _COMPUTE_KINDS}
    by_module = {
        name: sum(count for op, count in ops.items() if op in compute)
        for name, ops in per_module.items()
    }
    return FlopCount(
        flops=sum(by_operator[op] for op in compute),
        flops_all=sum(by_operator.values()),
        by_operator=by_operator,
        by_module=by_module,
        unsupported_ops=unsupported,
    )


_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def count_params(model: nn.Module, *, norm: bool = True) -> int:
    """Number of parameters; ``norm=False`` leaves out normalisation layers (X3D's count)."""
    return count_module_params(submodules(model), norm=norm)


def count_module_params(modules: Iterable[nn.Module], *, norm: bool = True) -> int:
    """Parameters held directly by ``modules`` (each counted once), as :func:`count_params`."""
    if not norm:
        modules = [m for m in modules if not isinstance(m, _NORM_TYPES)]
    params, _ = module_tensors(modules)
    return sum(p.numel() for p in params)
