"""Control messages as data for the tests: hypothesis strategies and minimal raw forms derived
from msgspec's view of each message's fields, so a field added later is covered by
``test_control.py`` and ``test_control_fields.py`` without touching them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec
import pytest
from hypothesis import strategies as st

from ptt_protocol import control
from ptt_protocol.control import MESSAGE_TYPES

mi = msgspec.inspect

# --- Strategies built from the schema itself -------------------------------------------------
#
# Every message type gets a strategy derived from msgspec's view of its fields, so a
# field added later is covered without touching this file.

# Keep generated sequences short: the caps are tested separately at their exact limits.
_GENERATED_SEQUENCE_MAX = 4
_GENERATED_TEXT_MAX = 80

# Both targets of a text cannot be set at once; these messages validate in __post_init__.
ONE_TARGET = (control.TextSend, control.TextDeliver)


def int_bounds(t: Any) -> tuple[int, int]:
    """The inclusive (lowest, highest) an integer field accepts (i64 where it sets none)."""
    low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else -(2**63))
    high = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else 2**63 - 1)
    return low, high


def _at_most(max_length: int | None, cap: int) -> int:
    """A generated value's largest size: the field's limit, but no more than ``cap``."""
    return cap if max_length is None else min(max_length, cap)


def struct_info(cls: type[Any]) -> mi.StructType:
    """msgspec's description of the Struct ``cls``."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType), info
    return info


def strategy_for(t: Any) -> st.SearchStrategy[Any]:
    """A hypothesis strategy producing valid values of msgspec type ``t``."""
    if isinstance(t, mi.IntType):
        low, high = int_bounds(t)
        return st.integers(min_value=low, max_value=high)
    if isinstance(t, mi.FloatType):
        return st.floats(
            min_value=t.ge if t.ge is not None else t.gt,
            max_value=t.le if t.le is not None else t.lt,
            exclude_min=t.gt is not None,
            allow_nan=False,
            allow_infinity=False,
        )
    if isinstance(t, mi.StrType):
        longest = _at_most(t.max_length, _GENERATED_TEXT_MAX)
        return st.text(min_size=t.min_length or 0, max_size=longest)
    if isinstance(t, mi.BytesType):
        longest = _at_most(t.max_length, 300)
        return st.binary(min_size=t.min_length or 0, max_size=max(longest, t.min_length or 0))
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.UnionType):
        return st.one_of([strategy_for(member) for member in t.types])
    if isinstance(t, mi.VarTupleType):
        return st.lists(
            strategy_for(t.item_type),
            min_size=t.min_length or 0,
            max_size=_at_most(t.max_length, _GENERATED_SEQUENCE_MAX),
        ).map(tuple)
    if isinstance(t, mi.StructType):
        return struct_strategy(t.cls)
    raise AssertionError(f"no strategy for {t!r}: extend strategy_for")


def _build(cls: type[Any]) -> Callable[[dict[str, Any]], Any]:
    def build(fields: dict[str, Any]) -> Any:
        try:
            return cls(**fields)
        except ValueError:  # a cross-field rule (__post_init__) refused this combination
            return None

    return build


def struct_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    """Valid instances of the Struct ``cls``; optional fields are sometimes left out."""
    info = struct_info(cls)
    required = {f.name: strategy_for(f.type) for f in info.fields if f.required}
    optional = {f.name: strategy_for(f.type) for f in info.fields if not f.required}
    return (
        st.fixed_dictionaries(required, optional=optional)
        .map(_build(cls))
        .filter(lambda value: value is not None)
    )


any_message: st.SearchStrategy[control.Message] = st.one_of(
    [struct_strategy(cls) for cls in MESSAGE_TYPES]
)


def minimal_value(t: Any) -> Any:
    """The smallest valid value of ``t`` (non-None branch of unions, so every field is present)."""
    if isinstance(t, mi.IntType):
        return max(int_bounds(t)[0], 0)
    if isinstance(t, mi.FloatType):
        return 1.0
    if isinstance(t, mi.StrType):
        return "a" * (t.min_length or 0)
    if isinstance(t, mi.BytesType):
        return b"\x00" * (t.min_length or 0)
    if isinstance(t, mi.BoolType):
        return True
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, mi.UnionType):
        return minimal_value(next(m for m in t.types if not isinstance(m, mi.NoneType)))
    if isinstance(t, mi.VarTupleType):
        return (minimal_value(t.item_type),)
    if isinstance(t, mi.StructType):
        return minimal_message(t.cls)
    raise AssertionError(f"no minimal value for {t!r}")


def minimal_message(cls: type[Any]) -> Any:
    """A valid instance of ``cls`` with every field set to a small value."""
    fields = {f.name: minimal_value(f.type) for f in struct_info(cls).fields}
    if cls in ONE_TARGET:
        fields["to_channel"] = None
    return cls(**fields)


def raw_fields(msg: Any) -> dict[str, Any]:
    """``msg`` as the dict that goes on the wire, tag included, ready to be corrupted."""
    return {"type": control.tag_of(msg), **msgspec.structs.asdict(msg)}


def raw_for_field(cls: type[Any], name: str) -> dict[str, Any]:
    """Wire fields of a minimal ``cls``, arranged so only ``name`` decides validity."""
    raw = raw_fields(minimal_message(cls))
    if cls in ONE_TARGET and name in ("to_user", "to_channel"):
        raw["to_user" if name == "to_channel" else "to_channel"] = None
    return raw


def frame_of(raw: Any) -> bytes:
    """A control frame for an arbitrary (possibly invalid) msgpack value."""
    return bytes([control.PROTOCOL_VERSION]) + msgspec.msgpack.encode(raw)


def fields_of(cls: type[Any]) -> list[Any]:
    """The fields of message class ``cls``, as msgspec describes them."""
    return list(struct_info(cls).fields)


def params_where(predicate: Callable[[Any], bool]) -> list[Any]:
    """(class, field) pairs whose field type matches ``predicate``, as pytest params."""
    return [
        pytest.param(cls, field, id=f"{cls.__name__}.{field.name}")
        for cls in MESSAGE_TYPES
        for field in fields_of(cls)
        if predicate(field.type)
    ]


def unwrap_optional(t: Any) -> Any:
    """``X`` for a field typed ``X | None``; any other type unchanged."""
    if isinstance(t, mi.UnionType):
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        if len(members) == 1:
            return members[0]
    return t


SIZED: Final = (mi.StrType, mi.BytesType, mi.VarTupleType)
"""msgspec types with a length: each such field must declare its cap."""
