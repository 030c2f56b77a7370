"""Fast shape rules: the outputs of common operators on meta tensors, without their kernels.

PyTorch's meta kernels for batch norm, elementwise arithmetic and reductions are Python
(``torch._refs``) and cost 0.05-3 ms a call; one simulated training step of X3D-M makes
about 2,000 such calls. A rule here returns empty meta tensors of the shapes, dtypes and
layouts the meta kernel returns, in microseconds, or ``None`` to decline (then the meta kernel
runs). Rules only handle the plain cases (dense operands, one floating dtype); anything
else is declined. ``tests/measure/test_shapes.py`` runs every rule beside its meta kernel
over the zoo and checks that they agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch._ops import OpOverload

__all__ = ["SHAPE_RULES", "get_shape_rule"]

aten = torch.ops.aten
Rule = Callable[..., Any]

SHAPE_RULES: dict[OpOverload, Rule] = {}

_CL3D = torch.channels_last_3d


def _layout(t: torch.Tensor) -> torch.memory_format | None:
    """The dense layout of ``t`` (contiguous or channels-last 3D), or None."""
    if t.is_contiguous():
        return torch.contiguous_format
    if t.dim() == 5 and t.is_contiguous(memory_format=_CL3D):
        return _CL3D
    return None


def _empty(
    shape: Sequence[int], like: torch.Tensor, layout: torch.memory_format, dtype: Any = None
) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype or like.dtype, device=like.device, memory_format=layout)


def _register(*ops: OpOverload) -> Callable[[Rule], Rule]:
    def decorate(rule: Rule) -> Rule:
        for op in ops:
            SHAPE_RULES[op] = rule
        return rule

    return decorate


@_register(
    aten.relu.default,
    aten.silu.default,
    aten.sigmoid.default,
    aten.tanh.default,
    aten.gelu.default,
    aten.hardswish.default,
    aten.hardsigmoid.default,
    aten.neg.default,
    aten.mul.Scalar,
    aten.div.Scalar,
    aten.add.Scalar,
    aten.sub.Scalar,
    aten.threshold_backward.default,
    aten.sigmoid_backward.default,
    aten.silu_backward.default,
    aten.tanh_backward.default,
    aten.gelu_backward.default,
    aten.hardswish_backward.default,
)
def _same_shape(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor | None:
    """Elementwise op whose tensor operands all have ``x``'s shape and dtype."""
    if not x.dtype.is_floating_point:
        return None
    layout = _layout(x)
    scalars = all(isinstance(a, float | int) for a in args)
    if layout is None and scalars and _expanded(x):
        # The gradient of a mean arrives expanded (zero strides); the result is dense.
        return _empty(x.shape, x, torch.contiguous_format)
    if layout is None:
        return None
    for other in args:
        if isinstance(other, torch.Tensor):
            if other.shape != x.shape or other.dtype != x.dtype or _layout(other) != layout:
                return None
        elif not isinstance(other, float | int | str | None):
            return None
    return _empty(x.shape, x, layout)


def _expanded(x: torch.Tensor) -> bool:
    """``x`` is a contiguous tensor broadcast along some dimensions (stride 0 there)."""
    expected = 1
    for n, stride in zip(reversed(x.shape), reversed(x.stride()), strict=True):
        if stride == 0 or n == 1:
            continue
        if stride != expected:
            return False
        expected *= n
    return 0 in x.stride()


def _broadcast(a: Sequence[int], b: Sequence[int]) -> list[int] | None:
    """NumPy broadcasting of two shapes of one rank; None if they do not broadcast."""
    shape = []
    for m, n in zip(a, b, strict=True):
        if m != n and m != 1 and n != 1:
            return None
        shape.append(n if m == 1 else m)
    return shape


@_register(aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor)
def _binary(a: Any, b: Any, **kwargs: Any) -> torch.Tensor | None:
    """Broadcasting elementwise op on two floating tensors of one dtype and rank."""
    if not isinstance(a, torch.Tensor) or not a.dtype.is_floating_point:
        return None
    if isinstance(b, float | int) and not isinstance(b, bool):
        return _same_shape(a)
    if not isinstance(b, torch.Tensor) or b.dtype != a.dtype or b.dim() != a.dim() or not a.dim():
        return None
    if a.shape == b.shape:
        return _same_shape(a, b)
    if not (a.is_contiguous() and b.is_contiguous()):
        return None
    shape = _broadcast(a.shape, b.shape)
    return None if shape is None else _empty(shape, a, torch.contiguous_format)


@_register(aten.mean.dim, aten.sum.dim_IntList)
def _reduce(
    x: torch.Tensor, dim: Sequence[int] | None, keepdim: bool = False, *, dtype: Any = None
) -> torch.Tensor | None:
    if not dim or dtype is not None or not x.dtype.is_floating_point or not x.is_contiguous():
        return None
    dims = {d % x.dim() for d in dim}
    if keepdim:
        shape = [1 if i in dims else n for i, n in enumerate(x.shape)]
    else:
        shape = [n for i, n in enumerate(x.shape) if i not in dims]
    return _empty(shape, x, torch.contiguous_format)


@_register(aten.native_batch_norm.default)
def _batch_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[torch.Tensor, ...] | None:
    layout = _layout(x)
    if layout is None or not x.dtype.is_floating_point:
        return None
    # Statistics are kept at the computation width (fp32 for half inputs), one per channel.
    stats = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    c = x.shape[1]
    if not training and (running_mean is None or running_var is None):
        return None
    return (
        _empty(x.shape, x, layout),
        torch.empty((c,), dtype=stats, device=x.device),
        torch.empty((c,), dtype=stats, device=x.device),
    )


@_register(aten.native_batch_norm_backward.default)
def _batch_norm_backward(
    grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None, *args: Any
) -> tuple[torch.Tensor | None, ...] | None:
    mask = args[-1]
    layout = _layout(x)
    if layout is None or _layout(grad) != layout or grad.dtype != x.dtype:
        return None
    c = x.shape[1]
    dtype = weight.dtype if weight is not None else x.dtype
    return (
        _empty(x.shape, x, layout) if mask[0] else None,
        torch.empty((c,), dtype=dtype, device=x.device) if mask[1] else None,
        torch.empty((c,), dtype=dtype, device=x.device) if mask[2] else None,
    )


@_register(aten._log_softmax.default)
def _log_softmax(x: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor | None:
    if half_to_float or not x.is_contiguous() or not x.dtype.is_floating_point:
        return None
    return _empty(x.shape, x, torch.contiguous_format)


@_register(aten._log_softmax_backward_data.default)
def _log_softmax_backward(
    grad: torch.Tensor, out: torch.Tensor, dim: int, dtype: torch.dtype
) -> torch.Tensor | None:
    if grad.dtype != dtype or out.dtype != dtype or not grad.is_contiguous():
        return None
    return _empty(grad.shape, grad, torch.contiguous_format)


@_register(aten.nll_loss_forward.default)
def _nll_loss(
    x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, reduction: int, *args: Any
) -> tuple[torch.Tensor, torch.Tensor] | None:
    # The class-score loss of a training step: (batch, classes) scores, reduced to a scalar.
    if x.dim() != 2 or reduction == 0 or weight is not None or not x.dtype.is_floating_point:
        return None
    return _empty((), x, torch.contiguous_format), _empty((), x, torch.contiguous_format)


@_register(aten.nll_loss_backward.default)
def _nll_loss_backward(
    grad: torch.Tensor, x: torch.Tensor, target: Any, weight: Any, reduction: int, *args: Any
) -> torch.Tensor | None:
    if x.dim() != 2 or reduction == 0 or weight is not None or grad.dtype != x.dtype:
        return None
    return _empty(x.shape, x, torch.contiguous_format)


@_register(aten.addmm.default)
def _addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, **kwargs: Any) -> Any:
    """A linear layer: bias + a @ b, dense (batch, out) whatever the operands' strides."""
    same = bias.dtype == a.dtype == b.dtype and a.dtype.is_floating_point
    if not same or a.dim() != 2 or b.dim() != 2 or bias.dim() > 2 or a.shape[1] != b.shape[0]:
        return None
    return _empty((a.shape[0], b.shape[1]), a, torch.contiguous_format)


def _conv_extent(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


@_register(aten.convolution.default)
def _convolution(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    transposed: bool,
    output_padding: Sequence[int],
    groups: int,
) -> torch.Tensor | None:
    if transposed or not (x.is_contiguous() and weight.is_contiguous()) or x.dim() < 3:
        return None
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != x.dtype):
        return None
    spatial = x.dim() - 2
    if not (len(stride) == len(padding) == len(dilation) == spatial):
        return None
    extent = [
        _conv_extent(n, k, s, p, d)
        for n, k, s, p, d in zip(
            x.shape[2:], weight.shape[2:], stride, padding, dilation, strict=True
        )
    ]
    if min(extent) < 1:
        return None
    return _empty((x.shape[0], weight.shape[0], *extent), x, torch.contiguous_format)


@_register(aten.convolution_backward.default)
def _convolution_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias_sizes: Sequence[int] | None,
    *args: Any,
) -> tuple[torch.Tensor | None, ...] | None:
    mask = args[-1]
    if not (x.is_contiguous() and weight.is_contiguous()):
        return None
    return (
        _empty(x.shape, grad, torch.contiguous_format) if mask[0] else None,
        _empty(weight.shape, grad, torch.contiguous_format) if mask[1] else None,
        torch.empty(bias_sizes, dtype=grad.dtype, device=grad.device)
        if mask[2] and bias_sizes is not None
        else None,
    )


def _in_place(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor | None:
    """An in-place elementwise op returns its first operand, unchanged in shape."""
    for other in args:
        if isinstance(other, torch.Tensor) and other.dim() and other.shape != x.shape:
            return None
    return x


_RESOLVED: dict[OpOverload, Rule | None] = {}


def get_shape_rule(op: OpOverload) -> Rule | None:
    """The fast rule for ``op``, if any: a registered one, or the in-place elementwise one."""
    try:
        return _RESOLVED[op]
    except KeyError:
        pass
    rule = SHAPE_RULES.get(op)
    schema = op._schema
    in_place = (
        schema.name.endswith("_")
        and torch.Tag.pointwise in op.tags
        and bool(schema.arguments)
        and schema.arguments[0].alias_info is not None
    )
    if rule is None and in_place:
        rule = _in_place
    _RESOLVED[op] = rule
    return rule
