"""I3D inflation: start a compiled 3D network from the weights of a 2D one.

Carreira & Zisserman, "Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset",
CVPR 2017, section 2.4: every 2D ``k x k`` kernel becomes a ``t x k x k`` kernel by repeating
it ``t`` times over time and dividing by ``t``. A clip made of one frame repeated then gives
the 2D network's activations on that frame, wherever a conv's temporal window lies inside
the clip (with zero 'same' padding, the first and last ``t // 2`` frames see fewer taps)::

    2D [out, in, h, w] --repeat over t, / t--> 3D [out, in, t, h, w]
    2D [out, in]  (a linear or 1x1 conv) -----> 3D [out, in, t, 1, 1]
    anything of the same shape (biases, norms, the classifier) is copied

Parameters are matched by name, after an optional ``key_map`` from 2D to 3D names.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from harness.errors import SpecError

__all__ = ["KeyMap", "inflate_into", "inflate_state_dict", "load_2d_checkpoint"]

# A dict of 2D name -> 3D name (names it lacks are kept), or a function (None drops a key).
KeyMap = Mapping[str, str] | Callable[[str], str | None]

# Norm statistics a 2D checkpoint may lack: strict inflation keeps their init without a word.
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")
# How many names a strict-mode error lists before it says how many more there are.
_MAX_LISTED = 20
# Entries of a training checkpoint that hold the model's state dict.
_STATE_ENTRIES = ("state_dict", "model")


def _get_mapper(key_map: KeyMap | None) -> Callable[[str], str | None]:
    if key_map is None:
        return lambda key: key
    if isinstance(key_map, Mapping):
        table = key_map
        return lambda key: table.get(key, key)
    return key_map


def _shape(tensor: Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)


def _inflate_tensor(source: Tensor, target: Tensor, key_2d: str, key_3d: str) -> Tensor:
    """``source`` cast to ``target``'s shape by copying or by inflating over time.

    Raises:
        SpecError: when the two differ in more than an added temporal axis.
    """
    source = source.detach()
    if source.shape == target.shape:
        return source.to(dtype=target.dtype, device=target.device, copy=True)
    kernel = source[:, :, None, None] if source.ndim == 2 else source
    if (
        kernel.is_floating_point()
        and kernel.ndim == 4
        and target.ndim == 5
        and kernel.shape[:2] == target.shape[:2]
        and kernel.shape[2:] == target.shape[3:]
    ):
        t = target.shape[2]
        inflated = kernel.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
        return inflated.to(dtype=target.dtype, device=target.device)
    named = key_3d if key_2d == key_3d else f"{key_2d} -> {key_3d}"
    raise SpecError(
        f"cannot inflate '{named}': 2D shape {_shape(source)} does not fit 3D shape "
        f"{_shape(target)} (only a temporal axis can be added)",
        path=(key_3d,),
    )


def _inflate_matching(
    state_2d: Mapping[str, Tensor], target: Mapping[str, Tensor], key_map: KeyMap | None
) -> tuple[dict[str, Tensor], list[str]]:
    """Inflate every 2D entry whose (mapped) name the 3D model has.

    Returns:
        the filled entries in the 3D model's order, and the 2D names with no 3D match.
    """
    mapper = _get_mapper(key_map)
    filled: dict[str, Tensor] = {}
    source_of: dict[str, str] = {}
    unmatched: list[str] = []
    for key_2d, tensor in state_2d.items():
        key_3d = mapper(key_2d)
        if key_3d is None:
            continue
        if key_3d not in target:
            unmatched.append(key_2d)
            continue
        if key_3d in source_of:
            raise SpecError(
                f"2D keys '{source_of[key_3d]}' and '{key_2d}' both map to '{key_3d}'",
                path=(key_3d,),
            )
        source_of[key_3d] = key_2d
        filled[key_3d] = _inflate_tensor(tensor, target[key_3d], key_2d, key_3d)
    return {key: filled[key] for key in target if key in filled}, unmatched


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = len(keys) - _MAX_LISTED
    return f"{shown} (+{more} more)" if more > 0 else shown


def _check_complete(
    filled: Mapping[str, Tensor], unmatched: list[str], target: Mapping[str, Tensor]
) -> None:
    """Strict mode: every 3D entry but norm statistics has a source, every source a target."""
    missing = [
        key for key in target if key not in filled and key.rsplit(".", 1)[-1] not in _NORM_STATS
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} 3D entries have no 2D source: {_listing(missing)}")
    if unmatched:
        problems.append(f"{len(unmatched)} 2D entries match no 3D name: {_listing(unmatched)}")
    if problems:
        hint = " (pass a key_map, or strict=False to keep the init of the rest)"
        raise SpecError("; ".join(problems) + hint)


def _inflate_checked(
    state_2d: Mapping[str, Tensor],
    target: Mapping[str, Tensor],
    key_map: KeyMap | None,
    strict: bool,
) -> dict[str, Tensor]:
    filled, unmatched = _inflate_matching(state_2d, target, key_map)
    if strict:
        _check_complete(filled, unmatched, target)
    return filled


def inflate_state_dict(
    state_2d: Mapping[str, Tensor],
    model_3d: nn.Module,
    *,
    key_map: KeyMap | None = None,
    strict: bool = True,
) -> dict[str, Tensor]:
    """A state dict for ``model_3d`` inflated from the 2D ``state_2d`` (I3D, see module doc).

    Args:
        state_2d: 2D parameters and buffers (conv weights ``[out, in, h, w]``, linear
            weights ``[out, in]``, norm parameters and statistics).
        model_3d: the compiled 3D network; its shapes decide how each entry is inflated.
        key_map: renames 2D keys to 3D ones: a dict (keys it lacks keep their name) or a
            function (returning None drops the key). Default: names already match.
        strict: require a source for every 3D entry except norm running statistics, and a
            3D target for every 2D entry that is not dropped.

    Returns:
        With ``strict``, a complete state dict (entries without a source keep the model's
        current values); otherwise only the entries that were filled from ``state_2d``.

    Raises:
        SpecError: naming the key and both shapes when an entry cannot be inflated, naming
            two 2D keys that map to one 3D key, or, with ``strict``, listing unmatched keys.
    """
    target = model_3d.state_dict()
    filled = _inflate_checked(state_2d, target, key_map, strict)
    if not strict:
        return filled
    return {key: filled[key] if key in filled else value.clone() for key, value in target.items()}


def inflate_into(
    model_3d: nn.Module,
    state_2d: Mapping[str, Tensor],
    *,
    key_map: KeyMap | None = None,
    strict: bool = True,
) -> list[str]:
    """Inflate ``state_2d`` (see :func:`inflate_state_dict`) and load it into ``model_3d``.

    Entries without a 2D source keep their current values.

    Returns:
        the 3D keys that were set from ``state_2d``, in the model's order.
    """
    filled = _inflate_checked(state_2d, model_3d.state_dict(), key_map, strict)
    model_3d.load_state_dict(filled, strict=False)
    return list(filled)


def _as_state_dict(loaded: object, file: str) -> dict[str, Tensor]:
    """The state dict inside a loaded checkpoint (raw, or under 'state_dict' / 'model')."""
    if isinstance(loaded, Mapping):
        for entry in _STATE_ENTRIES:
            if isinstance(loaded.get(entry), Mapping):
                loaded = loaded[entry]
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise SpecError("not a state dict (a mapping of names to tensors)", file=file)
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise SpecError(
                f"not a state dict: entry {key!r} is a {type(value).__name__}, not a tensor",
                file=file,
            )
    return dict(loaded)


def load_2d_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Load a 2D state dict from a ``torch.save`` file, on the CPU.

    Args:
        path: a file holding a state dict, or a dict with a ``state_dict`` or ``model``
            entry (as training scripts save).

    Raises:
        SpecError: naming the file when it is missing, unreadable or not a state dict.
    """
    file = str(path)
    # NOTE: weights_only unpickles tensors and plain containers only, so a checkpoint
    # from elsewhere cannot run code on load.
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SpecError("no such file", file=file) from None
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(f"cannot load checkpoint: {reason}", file=file) from None
    return _as_state_dict(loaded, file)
