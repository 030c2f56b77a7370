"""Which operators are counted, and how: the counting convention in one table.

Convention (X3D, SlowFast and MViT papers, torchvision's weight tables): one fused
multiply-add is one FLOP. ``gflops`` counts convolutions, linear layers, matrix products,
einsum and attention. ``gflops_all`` adds normalisation and pooling (fvcore's total).
Everything else the compiler emits is listed in :data:`IGNORED_OPS` with the reason it is
not counted, so :func:`harness.measure.count_flops` can report any operator that is in
neither table as ``unsupported_ops`` instead of silently counting it as zero.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fvcore.nn import jit_handles as jh

__all__ = [
    "COMPUTE_OPS",
    "IGNORED_OPS",
    "OTHER_OPS",
    "native_mha_flop_jit",
    "register_compute_op",
    "sdpa_flop_jit",
]

Handle = Any


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    """Scaled dot-product attention: q k^T and (softmax) v, as multiply-adds.

    q (..., N, D), k (..., M, D), v (..., M, Dv): ``prod(...) * N * M * (D + Dv)``, i.e.
    2 B H N M D for the usual equal widths. Softmax and scaling are elementwise (ignored).
    The same for every backend (math, flash, memory-efficient): they compute the same
    products. Reported under one name, ``scaled_dot_product_attention``.
    """
    q, k, v = (jh.get_shape(x) for x in inputs[:3])
    batch = 1
    for n in q[:-2]:
        batch *= n
    return Counter({"scaled_dot_product_attention": batch * q[-2] * k[-2] * (q[-1] + v[-1])})


def native_mha_flop_jit(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    """``nn.MultiheadAttention``'s fused inference path: projections and attention.

    query (B, N, E), key and value (B, M, E): in-projections N E^2 + 2 M E^2, attention
    2 N M E, out-projection N E^2 (per batch element).
    """
    q, k = jh.get_shape(inputs[0]), jh.get_shape(inputs[1])
    if len(q) == 2:  # unbatched (N, E)
        q, k = [1, *q], [1, *k]
    b, n, e = q
    m = k[-2]
    flops = b * (2 * n * e * e + 2 * m * e * e + 2 * n * m * e)
    return Counter({"native_multi_head_attention": flops})


# Operators in ``gflops``: multiply-adds of the network's arithmetic.
COMPUTE_OPS: dict[str, Handle] = {
    "aten::_convolution": jh.conv_flop_jit,
    "aten::addmm": jh.addmm_flop_jit,
    "aten::linear": jh.linear_flop_jit,
    "aten::matmul": jh.matmul_flop_jit,
    "aten::mm": jh.matmul_flop_jit,
    "aten::bmm": jh.bmm_flop_jit,
    "aten::einsum": jh.einsum_flop_jit,
    # Attention: fvcore counts these as zero; every fused variant gets the same count.
    "aten::scaled_dot_product_attention": sdpa_flop_jit,
    "aten::_scaled_dot_product_attention_math": sdpa_flop_jit,
    "aten::_scaled_dot_product_flash_attention": sdpa_flop_jit,
    "aten::_scaled_dot_product_flash_attention_for_cpu": sdpa_flop_jit,
    "aten::_scaled_dot_product_efficient_attention": sdpa_flop_jit,
    "aten::_scaled_dot_product_cudnn_attention": sdpa_flop_jit,
    "aten::_native_multi_head_attention": native_mha_flop_jit,
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
    "aten::max_pool1d": jh.elementwise_flop_counter(1, 0),  # temporal pyramids (localization)
    "aten::mean": jh.elementwise_flop_counter(1, 0),
}

_ELEMENTWISE = "elementwise arithmetic: not counted under the papers' convention"
_MOVEMENT = "shape, copy or indexing op: no arithmetic"
_RANDOM = "identity at inference (dropout)"
# What token selection (harness.compiler.select) adds beside its score head's linear layers.
_SELECTION = "token selection: comparisons and index arithmetic, no multiply-adds"
_REDUCTION = "a sum or norm of elements (scores, frame similarity): elementwise arithmetic"

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
            "aten::unfold",
        )
    },
    "aten::amax": "max over snippet scores (segment consensus): comparisons only",
    **dict.fromkeys(("aten::topk", "aten::sort", "aten::argmax", "aten::gt"), _SELECTION),
    **dict.fromkeys(("aten::sum", "aten::linalg_vector_norm", "aten::clamp_min"), _REDUCTION),
    "aten::scatter_add": "frames merged by token selection: their sums, additions only",
    "aten::upsample_trilinear3d": (
        "resampling learned positional encodings to the built clip: parameter-side, "
        "independent of the batch"
    ),
    "aten::dropout": _RANDOM,
    "aten::feature_dropout": _RANDOM,
}


def register_compute_op(name: str, handle: Handle) -> None:
    """Count operator ``name`` in ``gflops`` with fvcore-style ``handle(inputs, outputs)``."""
    COMPUTE_OPS[name] = handle
    IGNORED_OPS.pop(name, None)
