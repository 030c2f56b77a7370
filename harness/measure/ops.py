"""Which operators are counted, and how: the counting convention in one table.

Convention (X3D, SlowFast and MViT papers, torchvision's weight tables): one fused
multiply-add is one FLOP. ``gflops`` counts convolutions, linear layers, matrix products,
einsum and attention. ``gflops_all`` adds normalisation and pooling (fvcore's total).
Everything else the compiler emits is listed in :data:`IGNORED_OPS` with the reason it is
not counted, so :func:`harness.measure.count_flops` can report any operator that is in
neither table as ``unsupported_ops`` instead of silently counting it as zero.
"""

from __future__ import annotations

from typing import Any

from fvcore.nn import jit_handles as jh

__all__ = ["COMPUTE_OPS", "IGNORED_OPS", "OTHER_OPS", "register_compute_op"]

Handle = Any

# Operators in ``gflops``: multiply-adds of the network's arithmetic.
COMPUTE_OPS: dict[str, Handle] = {
    "aten::_convolution": jh.conv_flop_jit,
    "aten::addmm": jh.addmm_flop_jit,
    "aten::linear": jh.linear_flop_jit,
    "aten::matmul": jh.matmul_flop_jit,
    "aten::mm": jh.matmul_flop_jit,
    "aten::bmm": jh.bmm_flop_jit,
    "aten::einsum": jh.einsum_flop_jit,
}

# Operators in ``gflops_all`` only: normalisation and pooling (per element read).
OTHER_OPS: dict[str, Handle] = {
    "aten::batch_norm": jh.batchnorm_flop_jit,
    "aten::group_norm": jh.norm_flop_counter(2),
    "aten::layer_norm": jh.norm_flop_counter(2),
    "aten::instance_norm": jh.norm_flop_counter(1),
    "aten::adaptive_avg_pool3d": jh.elementwise_flop_counter(1, 0),
    "aten::adaptive_max_pool3d": jh.elementwise_flop_counter(1, 0),
    "aten::avg_pool3d": jh.elementwise_flop_counter(1, 0),
    "aten::max_pool3d": jh.elementwise_flop_counter(1, 0),
    "aten::mean": jh.elementwise_flop_counter(1, 0),
}

_ELEMENTWISE = "elementwise arithmetic: not counted under the papers' convention"
_MOVEMENT = "shape, copy or indexing op: no arithmetic"
_RANDOM = "identity at inference (dropout)"

IGNORED_OPS: dict[str, str] = {
    **{
        op: _ELEMENTWISE
        for op in (
            "aten::relu",
            "aten::relu_",
            "aten::silu",
            "aten::silu_",
            "aten::sigmoid",
            "aten::sigmoid_",
            "aten::gelu",
            "aten::add",
            "aten::add_",
            "aten::mul",
            "aten::mul_",
            "aten::div",
            "aten::div_",
            "aten::sub",
            "aten::rsub",
            "aten::softmax",
            "aten::exp",
            "aten::neg",
            "aten::clamp",
            "aten::clamp_",
            "aten::tanh",
            "aten::hardswish",
            "aten::hardsigmoid",
        )
    },
    **{
        op: _MOVEMENT
        for op in (
            "aten::Int",
            "aten::ScalarImplicit",
            "aten::arange",
            "aten::cat",
            "aten::chunk",
            "aten::constant_pad_nd",
            "aten::contiguous",
            "aten::copy_",
            "aten::detach",
            "aten::empty",
            "aten::expand",
            "aten::flatten",
            "aten::full",
            "aten::full_like",
            "aten::gather",
            "aten::index",
            "aten::narrow",
            "aten::new_zeros",
            "aten::new_empty",
            "aten::new_full",
            "aten::ones",
            "aten::permute",
            "aten::repeat",
            "aten::reshape",
            "aten::roll",
            "aten::select",
            "aten::size",
            "aten::slice",
            "aten::split",
            "aten::split_with_sizes",
            "aten::squeeze",
            "aten::stack",
            "aten::t",
            "aten::to",
            "aten::transpose",
            "aten::type_as",
            "aten::unbind",
            "aten::unflatten",
            "aten::unsqueeze",
            "aten::view",
            "aten::zeros",
            "aten::zeros_like",
            "aten::pad",
            "aten::expand_as",
            "aten::repeat_interleave",
            "aten::upsample_nearest3d",
            "aten::clone",
        )
    },
    "aten::dropout": _RANDOM,
    "aten::feature_dropout": _RANDOM,
}


def register_compute_op(name: str, handle: Handle) -> None:
    """Count operator ``name`` in ``gflops`` with fvcore-style ``handle(inputs, outputs)``."""
    COMPUTE_OPS[name] = handle
    IGNORED_OPS.pop(name, None)
