"""Field types shared by the spec models."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
)

__all__ = [
    "Act",
    "Integer",
    "KernelPattern",
    "KernelTriple",
    "LateKeys",
    "Node",
    "Norm",
    "NotBool",
    "Number",
    "OddInt",
    "PadTriple",
    "PositiveFloat",
    "PositiveInt",
    "Triple",
]


class LateKeys(BaseModel):
    """A model whose ``late_keys``, keys added after its dumps were stored (and hashed, or
    kept as a run's identity), are left out of a dump while they hold their default: every
    earlier hash, cached cost, results row and run stays valid."""

    late_keys: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _leave_out_late_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            fields = type(self).model_fields
            for key in self.late_keys & data.keys():
                if getattr(self, key) == fields[key].default:
                    del data[key]
        return data


class Node(LateKeys):
    """Base of every spec node: immutable, unknown keys rejected; ``late_keys`` (see
    :class:`LateKeys`) keep the zoo's hashes (tests/compiler/test_audio_visual.py pins them)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _triple(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value, value)
    return value


def _pattern(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    return value


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError(f"kernel size {value} must be odd ('same' padding needs odd kernels)")
    return value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        # NOTE: YAML 1.1 reads yes/no/on/off as booleans, and pydantic takes True for 1.
        word = "true" if value else "false"
        raise ValueError(f"must be a number, not {word} (YAML reads yes/no/on/off as booleans)")
    return value


# NOTE: constraints (``Field``) go before the validator, or pydantic leaves them out of the
# JSON Schema.
NotBool = BeforeValidator(_not_bool)  # refuses booleans where a number is read
Integer = Annotated[int, NotBool]  # an integer, never a boolean
Number = Annotated[float, Field(allow_inf_nan=False), NotBool]  # finite, never a boolean
PositiveInt = Annotated[int, Field(ge=1, le=1_000_000), NotBool]
PositiveFloat = Annotated[float, Field(gt=0, le=1_000.0, allow_inf_nan=False), NotBool]
_ODD = {"not": {"multipleOf": 2}}  # JSON Schema of an odd integer
# A kernel size: odd, so that 'same' padding keeps the shape.
OddInt = Annotated[int, Field(ge=1, le=99, json_schema_extra=_ODD), NotBool, AfterValidator(_odd)]


def _int_or_list(
    minimum: int,
    maximum: int,
    *,
    odd: bool = False,
    length: int | None = None,
    max_items: int = 3,
) -> WithJsonSchema:
    """JSON Schema of "an integer, or a list of integers" (the YAML shorthand)."""
    item: dict[str, Any] = {"type": "integer", "minimum": minimum, "maximum": maximum}
    if odd:
        item.update(_ODD)
    array: dict[str, Any] = {
        "type": "array",
        "items": item,
        "minItems": length or 1,
        "maxItems": length or max_items,
    }
    return WithJsonSchema({"anyOf": [item, array]})


# A (time, height, width) triple; a single integer means the same value on all three axes.
Triple = Annotated[
    tuple[PositiveInt, PositiveInt, PositiveInt],
    BeforeValidator(_triple),
    _int_or_list(1, 1_000_000, length=3),
]
KernelTriple = Annotated[
    tuple[OddInt, OddInt, OddInt], BeforeValidator(_triple), _int_or_list(1, 99, odd=True, length=3)
]
_NonNegative = Annotated[int, Field(ge=0, le=99), NotBool]
PadTriple = Annotated[
    tuple[_NonNegative, _NonNegative, _NonNegative],
    BeforeValidator(_triple),
    _int_or_list(0, 99, length=3),
]
# A kernel size, or a list cycled over the blocks of a stage (I3D's [3, 1] pattern).
KernelPattern = Annotated[
    tuple[OddInt, ...],
    BeforeValidator(_pattern),
    Field(min_length=1, max_length=64),
    _int_or_list(1, 99, odd=True, max_items=64),
]
Norm = Literal["batch", "none"]  # normalisation after each convolution
Act = Literal["relu", "swish", "gelu", "none"]  # activation after normalisation
