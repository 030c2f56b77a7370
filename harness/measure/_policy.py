"""What the meta device cannot know: the target device's casts and kernels, and cheap builds.

- :class:`DevicePolicy` makes a meta step run what the target device would. Autocast
  applies per device (meta tensors have none), so its casts are made here: convolutions
  and matrix products in bf16/fp16 (with parameter casts cached for the forward pass, as
  autocast does), and the operators autocast keeps in fp32. Attention goes to the fused kernel
  PyTorch picks on CPU (flash) and CUDA (memory-efficient): on meta it would take the math
  path, which saves the attention matrix that the fused kernels never materialise.
- :class:`MetaBuild` builds modules on the meta device without initialising their weights.

Both are ``TorchFunctionMode``s: they act above autograd, so what they change is recorded
by it as the real casts and kernels would be.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

__all__ = ["DevicePolicy", "MetaBuild"]

aten = torch.ops.aten

# Autocast's lower-precision operators: convolutions and matrix products run, and save
# their inputs, at half width (the parameters' half copies are cached for the forward).
_LOWER = frozenset(
    (
        torch.conv1d,
        torch.conv2d,
        torch.conv3d,
        torch.conv_transpose1d,
        torch.conv_transpose2d,
        torch.conv_transpose3d,
        F.linear,
        torch.matmul,
        torch.Tensor.matmul,
        torch.Tensor.__matmul__,
        torch.mm,
        torch.Tensor.mm,
        torch.bmm,
        torch.Tensor.bmm,
        torch.addmm,
        torch.baddbmm,
        torch.prelu,
        torch.einsum,  # its matrix products are autocast's on both devices
        F.scaled_dot_product_attention,
    )
)
# Operators autocast runs in fp32 whatever their inputs.
_FP32 = {
    # CPU autocast runs 3D pooling in fp32 (its output, and what it saves, is fp32).
    "cpu": frozenset(
        (
            F.max_pool3d,
            F.avg_pool3d,
            F.adaptive_avg_pool3d,
            F.adaptive_max_pool3d,
            torch.max_pool3d,
            torch._C._nn.avg_pool3d,
            torch._C._nn.adaptive_avg_pool3d,
            torch._C._nn.adaptive_max_pool3d,
        )
    ),
    "cuda": frozenset(
        (
            F.layer_norm,
            F.group_norm,
            F.softmax,
            F.log_softmax,
            torch.softmax,
            torch.Tensor.softmax,
            torch.log_softmax,
            torch.Tensor.log_softmax,
        )
    ),
}


class DevicePolicy(TorchFunctionMode):
    """Run, on meta tensors, the casts and attention kernels of ``device_type``.

    Args:
        device_type: ``"cpu"`` or ``"cuda"``, the device being simulated.
        dtype: autocast dtype (bfloat16 or float16), or None for fp32.
    """

    def __init__(self, device_type: str, dtype: torch.dtype | None) -> None:
        super().__init__()
        self.device_type = device_type
        self.dtype = dtype
        self._lower = _LOWER if dtype is not None else frozenset()
        self._fp32 = _FP32[device_type] if dtype is not None else frozenset()
        self._casts: dict[int, torch.Tensor] = {}  # autocast's cache of parameter casts

    def __exit__(self, *exc: Any) -> None:
        self._casts.clear()
        super().__exit__(*exc)

    def _cast(self, value: Any, dtype: torch.dtype) -> Any:
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            return value
        if value.dtype == dtype:
            return value
        if value.is_leaf and value.requires_grad:  # autocast caches casts of parameters
            key = id(value)
            if key not in self._casts:
                self._casts[key] = value.to(dtype)
            return self._casts[key]
        return value.to(dtype)

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in self._lower:
            assert self.dtype is not None
            args = [self._cast(a, self.dtype) for a in args]
            kwargs = {k: self._cast(v, self.dtype) for k, v in kwargs.items()}
        elif func in self._fp32:
            args = [self._cast(a, torch.float32) for a in args]
        if func is F.scaled_dot_product_attention:
            return self._attention(*args, **kwargs)
        return func(*args, **kwargs)

    def _attention(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        enable_gqa: bool = False,
    ) -> torch.Tensor:
        fused = attn_mask is None and not enable_gqa and q.dim() == 4 and dropout_p == 0.0
        if fused and self.device_type == "cpu":
            out = aten._scaled_dot_product_flash_attention_for_cpu(
                q, k, v, dropout_p, is_causal, scale=scale
            )
            return out[0]
        if fused:
            out = aten._scaled_dot_product_efficient_attention(
                q, k, v, None, True, dropout_p, is_causal, scale=scale
            )
            return out[0]
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa
        )


_CONSTRUCTORS = frozenset(_device_constructors())
# Initialisation fills values; a meta tensor has none, so these return the tensor as is.
_INIT = frozenset(
    (
        *(getattr(nn.init, n) for n in dir(nn.init) if n.endswith("_") and n[0] != "_"),
        torch.Tensor.normal_,
        torch.Tensor.uniform_,
        torch.Tensor.fill_,
        torch.Tensor.zero_,
        torch.Tensor.random_,
        torch.Tensor.bernoulli_,
        torch.Tensor.exponential_,
        torch.Tensor.erfinv_,
    )
)


class MetaBuild(TorchFunctionMode):
    """Build modules on the meta device, skipping the (value-only) weight initialisation.

    Like ``with torch.device("meta")``, plus: initialisation functions return their tensor
    untouched. PyTorch's meta kernels for random fills are Python and dominate a meta build.
    """

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _INIT:
            # nn.init takes its tensor by keyword in nn's own reset_parameters.
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        if func in _CONSTRUCTORS and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)
