"""Control messages: the schema's conventions, round trips for every type, and every way decode
must refuse a frame as a whole (empty, wrong version, oversize, garbage, nesting).

The field-by-field refusals are in ``test_control_fields.py``.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import re
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptt_protocol import control
from ptt_protocol.control import MESSAGE_TYPES, decode, encode
from ptt_protocol.errors import MalformedError, ProtocolError, UnsupportedVersionError
from tests.ptt_protocol.control_schema import (
    any_message,
    frame_of,
    raw_fields,
    struct_strategy,
)

mi = msgspec.inspect

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
