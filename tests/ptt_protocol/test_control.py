"""Control messages: round trips for every type, and every way decode must refuse bytes."""

from __future__ import annotations

import ast
import contextlib
import inspect
import math
import re
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptt_protocol import control
from ptt_protocol.control import MESSAGE_TYPES, decode, encode
from ptt_protocol.errors import MalformedError, ProtocolError, UnsupportedVersionError

mi = msgspec.inspect

# --- Strategies built from the schema itself -------------------------------------------------
#
# Every message type gets a strategy derived from msgspec's view of its fields, so a
# field added later is covered without touching this file.

# Keep generated sequences short: the caps are tested separately at their exact limits.
_GENERATED_SEQUENCE_MAX = 4
_GENERATED_TEXT_MAX = 80

# Both targets of a text cannot be set at once; these messages validate in __post_init__.
_ONE_TARGET = (control.TextSend, control.TextDeliver)


def _int_bounds(t: Any) -> tuple[int, int]:
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
        low, high = _int_bounds(t)
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


def _minimal_value(t: Any) -> Any:
    """The smallest valid value of ``t`` (non-None branch of unions, so every field is present)."""
    if isinstance(t, mi.IntType):
        return max(_int_bounds(t)[0], 0)
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
        return _minimal_value(next(m for m in t.types if not isinstance(m, mi.NoneType)))
    if isinstance(t, mi.VarTupleType):
        return (_minimal_value(t.item_type),)
    if isinstance(t, mi.StructType):
        return minimal_message(t.cls)
    raise AssertionError(f"no minimal value for {t!r}")


def minimal_message(cls: type[Any]) -> Any:
    """A valid instance of ``cls`` with every field set to a small value."""
    fields = {f.name: _minimal_value(f.type) for f in struct_info(cls).fields}
    if cls in _ONE_TARGET:
        fields["to_channel"] = None
    return cls(**fields)


def raw_fields(msg: Any) -> dict[str, Any]:
    """``msg`` as the dict that goes on the wire, tag included, ready to be corrupted."""
    return {"type": control.tag_of(msg), **msgspec.structs.asdict(msg)}


def raw_for_field(cls: type[Any], name: str) -> dict[str, Any]:
    """Wire fields of a minimal ``cls``, arranged so only ``name`` decides validity."""
    raw = raw_fields(minimal_message(cls))
    if cls in _ONE_TARGET and name in ("to_user", "to_channel"):
        raw["to_user" if name == "to_channel" else "to_channel"] = None
    return raw


def frame_of(raw: Any) -> bytes:
    """A control frame for an arbitrary (possibly invalid) msgpack value."""
    return bytes([control.PROTOCOL_VERSION]) + msgspec.msgpack.encode(raw)


def _fields(cls: type[Any]) -> list[Any]:
    return list(struct_info(cls).fields)


def _params(predicate: Callable[[Any], bool]) -> list[Any]:
    """(class, field) pairs whose field type matches ``predicate``, as pytest params."""
    return [
        pytest.param(cls, field, id=f"{cls.__name__}.{field.name}")
        for cls in MESSAGE_TYPES
        for field in _fields(cls)
        if predicate(field.type)
    ]


def _unwrap_optional(t: Any) -> Any:
    if isinstance(t, mi.UnionType):
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        if len(members) == 1:
            return members[0]
    return t


_SIZED = (mi.StrType, mi.BytesType, mi.VarTupleType)

# --- Schema conventions ----------------------------------------------------------------------


def test_message_types_cover_every_message_class() -> None:
    base = MESSAGE_TYPES[0].__mro__[1]
    assert set(base.__subclasses__()) == set(MESSAGE_TYPES)
    assert len(set(MESSAGE_TYPES)) == len(MESSAGE_TYPES)


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
def test_message_is_frozen_keyword_only_and_tagged_in_snake_case(cls: type[Any]) -> None:
    config = cls.__struct_config__
    assert config.frozen
    assert config.tag_field == "type"
    expected = "_".join(w.lower() for w in re.findall(r"[A-Z][a-z]*", cls.__name__))
    assert config.tag == expected
    parameters = inspect.signature(cls).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
    assert cls.__doc__ and cls.__doc__.strip()


def test_tags_are_unique_and_spot_checked() -> None:
    tags = [control.tag_of(cls) for cls in MESSAGE_TYPES]
    assert len(set(tags)) == len(tags)
    assert control.tag_of(control.FloorRequest) == "floor_request"
    assert control.tag_of(control.LoginOk) == "login_ok"
    assert control.tag_of(control.FloorQueuePosition) == "floor_queue_position"


def test_every_field_has_a_docstring_line() -> None:
    for cls in (*MESSAGE_TYPES, control.ChannelInfo, control.Member):
        # Each message lives in its family's module (control_session, control_channels, ...).
        tree = ast.parse(inspect.getsource(inspect.getmodule(cls)))  # type: ignore[arg-type]
        classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
        body = classes[cls.__name__].body
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign):
                assert isinstance(node.target, ast.Name)
                following = body[i + 1] if i + 1 < len(body) else None
                documented = (
                    isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)
                )
                assert documented, f"{cls.__name__}.{node.target.id} has no docstring line"


def _walk_types(t: Any) -> list[Any]:
    found = [t]
    if isinstance(t, mi.UnionType):
        for member in t.types:
            found += _walk_types(member)
    elif isinstance(t, mi.VarTupleType):
        found += _walk_types(t.item_type)
    elif isinstance(t, mi.StructType):
        for field in t.fields:
            found += _walk_types(field.type)
    return found


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
def test_every_variable_length_field_is_capped(cls: type[Any]) -> None:
    for t in _walk_types(mi.type_info(cls)):
        assert not isinstance(t, mi.ListType | mi.DictType | mi.AnyType), t
        if isinstance(t, mi.StrType):
            assert t.max_length is not None and t.max_length <= control.MAX_TEXT_LENGTH, t
        if isinstance(t, mi.BytesType):
            assert t.max_length is not None and t.max_length < control.MAX_MESSAGE_SIZE, t
        if isinstance(t, mi.VarTupleType):
            assert t.max_length is not None and t.max_length <= control.MAX_LIST_LENGTH, t
        if isinstance(t, mi.IntType):
            assert t.ge is not None and t.le is not None, t
        if isinstance(t, mi.FloatType):
            assert t.le is not None and (t.ge is not None or t.gt is not None), t


def test_constants_match_the_brief() -> None:
    assert control.PROTOCOL_VERSION == 1
    assert control.MAX_MESSAGE_SIZE == 65536
    assert set(control.STATUSES) == {
        "available",
        "busy",
        "en_route",
        "on_scene",
        "emergency",
        "offline",
    }
    assert {"bad_message", "auth_failed", "rate_limited", "internal"} <= control.ERROR_CODES


def test_tunnel_holds_any_media_datagram() -> None:
    from ptt_protocol import media

    assert media.MAX_DATAGRAM_SIZE <= control.MAX_TUNNEL_DATAGRAM


# --- Round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_every_message_type(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(struct_strategy(cls))
    frame = encode(msg)
    assert frame[0] == control.PROTOCOL_VERSION
    back = decode(frame)
    assert type(back) is cls
    assert back == msg
    assert encode(back) == frame


@settings(max_examples=200, deadline=None)
@given(any_message)
def test_round_trip_any_message(msg: control.Message) -> None:
    assert decode(encode(msg)) == msg


def test_round_trip_accepts_every_bytes_like() -> None:
    msg = control.FloorRequest(channel_id=4_000_000_000, priority=4)
    frame = encode(msg)
    assert decode(bytearray(frame)) == msg
    assert decode(memoryview(frame)) == msg


def test_wire_form_is_a_tagged_msgpack_map() -> None:
    frame = encode(control.FloorRequest(channel_id=7, priority=2))
    assert frame[:1] == b"\x01"
    assert msgspec.msgpack.decode(frame[1:]) == {
        "type": "floor_request",
        "channel_id": 7,
        "priority": 2,
    }


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    raw = {"type": "floor_idle", "channel_id": 9, "added_in_a_later_release": [1, 2]}
    assert decode(frame_of(raw)) == control.FloorIdle(channel_id=9)


# --- Envelope errors -------------------------------------------------------------------------


def test_empty_frame_is_refused() -> None:
    with pytest.raises(MalformedError, match="empty"):
        decode(b"")


@pytest.mark.parametrize("version", [0, 2, 0x83, 255])
def test_wrong_version_is_refused(version: int) -> None:
    body = encode(control.Ping(nonce=1))[1:]
    with pytest.raises(UnsupportedVersionError, match=f"version {version}"):
        decode(bytes([version]) + body)


def test_version_byte_alone_is_refused() -> None:
    with pytest.raises(MalformedError):
        decode(b"\x01")


def test_oversize_frame_is_refused_before_decoding() -> None:
    # Valid msgpack up front, then padding: only the size check can refuse it.
    frame = encode(control.Ping(nonce=1)) + b"\x00" * control.MAX_MESSAGE_SIZE
    with pytest.raises(MalformedError, match="exceeds"):
        decode(frame)


def _credentials_of_size(total: int) -> tuple[control.Credentials, bytes]:
    """A Credentials message whose frame is exactly ``total`` bytes, if reachable."""
    full = b"\xaa" * control.MAX_BLOB_SIZE
    for last in range(control.MAX_BLOB_SIZE, 0, -1):
        msg = control.Credentials(credentials=(full, full, full, b"\xbb" * last))
        raw = frame_of(raw_fields(msg))
        if len(raw) <= total:
            return msg, raw
    raise AssertionError("unreachable")


def test_frame_of_exactly_the_limit_decodes_and_one_more_byte_does_not() -> None:
    msg, frame = _credentials_of_size(control.MAX_MESSAGE_SIZE)
    assert len(frame) == control.MAX_MESSAGE_SIZE
    assert encode(msg) == frame
    assert decode(frame) == msg
    bigger = control.Credentials(credentials=(*msg.credentials[:3], msg.credentials[3] + b"\xbb"))
    with pytest.raises(ProtocolError, match="frame limit"):
        encode(bigger)
    with pytest.raises(MalformedError, match="exceeds"):
        decode(frame_of(raw_fields(bigger)))


@pytest.mark.parametrize(
    "body",
    [
        b"\xc1",  # never-used msgpack byte
        b"\x83\xa4type",  # truncated map
        b"\xdb\xff\xff\xff\xff",  # str32 claiming 4 GiB
        b"\xc6\xff\xff\xff\xffabc",  # bin32 claiming 4 GiB
        b"\xdd\xff\xff\xff\xff",  # array32 claiming 4 G items
        b"\xdf\xff\xff\xff\xff",  # map32 claiming 4 G pairs
        encode(control.Ping(nonce=1))[1:] + b"\x00",  # trailing bytes
    ],
)
def test_msgpack_garbage_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedError):
        decode(b"\x01" + body)


@pytest.mark.parametrize(
    "raw",
    [
        {"channel_id": 1},
        {"type": "no_such_message", "channel_id": 1},
        {"type": "FloorIdle", "channel_id": 1},
        {"type": 7, "channel_id": 1},
        ["floor_idle", 1],
        "floor_idle",
        None,
        12,
    ],
)
def test_untagged_or_unknown_message_is_refused(raw: Any) -> None:
    with pytest.raises(MalformedError, match="invalid control message"):
        decode(frame_of(raw))


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    # An unknown field holding nested arrays: skipped by msgspec, recursively.
    head = msgspec.msgpack.encode({"type": "floor_idle", "channel_id": 1})
    body = bytes([head[0] + 1]) + head[1:] + b"\xa1z" + b"\x91" * depth + b"\xc0"
    frame = b"\x01" + body
    if len(frame) > control.MAX_MESSAGE_SIZE:
        with pytest.raises(MalformedError, match="exceeds"):
            decode(frame)
    else:
        # Refusing is as good as skipping the unknown field; crashing is not.
        with contextlib.suppress(MalformedError):
            assert decode(frame) == control.FloorIdle(channel_id=1)


def test_nesting_within_size_limit_but_past_recursion_limit_is_refused() -> None:
    frame = b"\x01" + b"\x91" * (control.MAX_MESSAGE_SIZE - 2) + b"\xc0"
    with pytest.raises(MalformedError):
        decode(frame)


# --- Field errors, derived from the schema ---------------------------------------------------


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
def test_missing_required_field_is_refused(cls: type[Any]) -> None:
    for field in _fields(cls):
        if not field.required:
            continue
        raw = raw_fields(minimal_message(cls))
        del raw[field.name]
        with pytest.raises(MalformedError, match=field.name):
            decode(frame_of(raw))


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
def test_wrong_field_type_is_refused(cls: type[Any]) -> None:
    for field in _fields(cls):
        for wrong in ({"nested": 1}, [[1]], -1.5):
            raw = raw_fields(minimal_message(cls))
            raw[field.name] = wrong
            with pytest.raises(MalformedError, match=field.name):
                decode(frame_of(raw))


@pytest.mark.parametrize(
    ("cls", "field"),
    _params(
        lambda t: (
            not (isinstance(t, mi.UnionType) and any(isinstance(m, mi.NoneType) for m in t.types))
        )
    ),
)
def test_none_for_required_value_is_refused(cls: type[Any], field: Any) -> None:
    raw = raw_for_field(cls, field.name)
    raw[field.name] = None
    with pytest.raises(MalformedError, match=field.name):
        decode(frame_of(raw))


def _at_length(t: Any, n: int) -> Any:
    if isinstance(t, mi.StrType):
        return "é" * n  # caps count characters, not bytes
    if isinstance(t, mi.BytesType):
        return b"\x5a" * n
    return (_minimal_value(t.item_type),) * n


@pytest.mark.parametrize(
    ("cls", "field"), _params(lambda t: isinstance(_unwrap_optional(t), _SIZED))
)
def test_length_caps_are_exact(cls: type[Any], field: Any) -> None:
    t = _unwrap_optional(field.type)
    raw = raw_for_field(cls, field.name)
    raw[field.name] = _at_length(t, t.max_length)
    frame = frame_of(raw)
    if len(frame) <= control.MAX_MESSAGE_SIZE:  # e.g. 1000 max-size blobs cannot fit anyway
        assert msgspec.structs.asdict(decode(frame))[field.name] == raw[field.name]
    raw[field.name] = _at_length(t, t.max_length + 1)
    with pytest.raises(MalformedError):
        decode(frame_of(raw))
    if t.min_length:
        raw[field.name] = _at_length(t, t.min_length - 1)
        with pytest.raises(MalformedError, match=field.name):
            decode(frame_of(raw))


@pytest.mark.parametrize(
    ("cls", "field"),
    _params(lambda t: isinstance(t, mi.VarTupleType) and isinstance(t.item_type, _SIZED)),
)
def test_items_of_sequences_are_capped(cls: type[Any], field: Any) -> None:
    item = field.type.item_type
    raw = raw_fields(minimal_message(cls))
    raw[field.name] = (_at_length(item, item.max_length + 1),)
    with pytest.raises(MalformedError, match=field.name):
        decode(frame_of(raw))


def test_nested_member_fields_are_capped() -> None:
    raw = raw_fields(minimal_message(control.Affiliated))
    raw["members"] = ({"user_id": "u" * 65},)
    with pytest.raises(MalformedError, match="members"):
        decode(frame_of(raw))
    raw["members"] = ({"display_name": "x"},)
    with pytest.raises(MalformedError, match="user_id"):
        decode(frame_of(raw))


@pytest.mark.parametrize(
    ("cls", "field"), _params(lambda t: isinstance(_unwrap_optional(t), mi.IntType))
)
def test_integer_bounds_are_exact(cls: type[Any], field: Any) -> None:
    low, high = _int_bounds(_unwrap_optional(field.type))
    raw = raw_for_field(cls, field.name)
    for ok in (low, high):
        raw[field.name] = ok
        assert getattr(decode(frame_of(raw)), field.name) == ok
    for bad in (low - 1, high + 1):
        raw[field.name] = bad
        with pytest.raises(MalformedError, match=field.name):
            decode(frame_of(raw))


@pytest.mark.parametrize(
    ("cls", "field"), _params(lambda t: isinstance(_unwrap_optional(t), mi.FloatType))
)
def test_times_and_durations_refuse_nan_infinity_and_negatives(cls: type[Any], field: Any) -> None:
    raw = raw_fields(minimal_message(cls))
    for bad in (math.nan, math.inf, -math.inf, -1.0, 1e300):
        raw[field.name] = bad
        with pytest.raises(MalformedError, match=field.name):
            decode(frame_of(raw))


def test_channel_id_is_u32() -> None:
    assert decode(frame_of({"type": "affiliate", "channel_id": 2**32 - 1})) == control.Affiliate(
        channel_id=2**32 - 1
    )
    with pytest.raises(MalformedError, match="channel_id"):
        decode(frame_of({"type": "affiliate", "channel_id": 2**32}))


def test_a_broadcast_names_one_to_max_patched_u32_channels() -> None:
    most = tuple(range(1, control.MAX_PATCHED + 1))
    ok = decode(frame_of({"type": "broadcast_request", "channel_ids": most}))
    assert ok == control.BroadcastRequest(channel_ids=most)
    for bad in ((), (*most, 99), (2**32,), (-1,), ("patrol",), (1.5,), (True,)):
        with pytest.raises(MalformedError, match="channel_ids"):
            decode(frame_of({"type": "broadcast_request", "channel_ids": bad}))
    with pytest.raises(MalformedError, match="channel_ids"):
        decode(frame_of({"type": "broadcast_request"}))


def test_the_broadcast_mark_is_optional_and_a_bool() -> None:
    taken = {
        "type": "floor_taken", "channel_id": 1, "user_id": "disp", "priority": 2,
        "burst_id": 1, "since": 1.0,
    }  # fmt: skip
    assert isinstance(old := decode(frame_of(taken)), control.FloorTaken) and not old.broadcast
    assert decode(frame_of({**taken, "broadcast": True})) == control.FloorTaken(
        channel_id=1, user_id="disp", priority=2, burst_id=1, since=1.0, broadcast=True
    )
    for bad in (1, "yes", None):
        with pytest.raises(MalformedError, match="broadcast"):
            decode(frame_of({**taken, "broadcast": bad}))


def test_priority_must_be_officer_to_emergency() -> None:
    for priority in (1, 2, 3, 4):
        assert decode(frame_of({"type": "floor_request", "channel_id": 1, "priority": priority}))
    for priority in (0, 5, -1):
        with pytest.raises(MalformedError, match="priority"):
            decode(frame_of({"type": "floor_request", "channel_id": 1, "priority": priority}))


def test_unknown_status_and_receipt_kind_are_refused() -> None:
    with pytest.raises(MalformedError, match="status"):
        decode(frame_of({"type": "set_status", "status": "asleep"}))
    raw = raw_fields(minimal_message(control.TextReceipt))
    raw["kind"] = "seen"
    with pytest.raises(MalformedError, match="kind"):
        decode(frame_of(raw))
    for status in control.STATUSES:
        assert decode(frame_of({"type": "set_status", "status": status})) == control.SetStatus(
            status=status  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("cls", _ONE_TARGET, ids=lambda c: c.__name__)
def test_text_goes_to_exactly_one_target(cls: type[Any]) -> None:
    raw = raw_fields(minimal_message(cls))
    for to_user, to_channel in (("bob", 3), (None, None)):
        raw["to_user"], raw["to_channel"] = to_user, to_channel
        with pytest.raises(MalformedError, match="exactly one"):
            decode(frame_of(raw))
        with pytest.raises(ValueError, match="exactly one"):
            cls(**{k: v for k, v in raw.items() if k != "type"})
    raw["to_user"], raw["to_channel"] = None, 3
    decoded = decode(frame_of(raw))
    assert isinstance(decoded, cls) and decoded.to_channel == 3


def test_nonces_and_ids_have_exact_sizes() -> None:
    hello = raw_fields(minimal_message(control.Hello))
    for size in (0, 31, 33):
        hello["server_nonce"] = b"\x01" * size
        with pytest.raises(MalformedError, match="server_nonce"):
            decode(frame_of(hello))
    text = raw_fields(minimal_message(control.TextSend))
    for size in (15, 17):
        text["message_id"] = b"\x01" * size
        with pytest.raises(MalformedError, match="message_id"):
            decode(frame_of(text))
    ok = raw_fields(minimal_message(control.LoginOk))
    ok["hop_key"] = b"\x01" * 31
    with pytest.raises(MalformedError, match="hop_key"):
        decode(frame_of(ok))


def test_strings_must_be_valid_utf8() -> None:
    body = msgspec.msgpack.encode({"type": "set_status", "status": "busy"})
    bad = body.replace(b"\xa4busy", b"\xa4\xff\xfe\xfd\xfc")
    with pytest.raises(MalformedError):
        decode(b"\x01" + bad)


@settings(max_examples=100, deadline=None)
@given(any_message, st.data())
def test_decode_refuses_every_truncation(msg: control.Message, data: st.DataObject) -> None:
    frame = encode(msg)
    cut = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
    with pytest.raises(ProtocolError):
        decode(frame[:cut])


def test_encode_refuses_a_frame_the_peer_would_refuse() -> None:
    blob = b"\x00" * control.MAX_BLOB_SIZE
    msg = control.Credentials(credentials=(blob,) * 5)
    with pytest.raises(ProtocolError, match="split it"):
        encode(msg)
