"""Control messages: every way decode must refuse a field, derived from the schema (missing,
wrong type, None, past its length, integer or time bounds, sizes, UTF-8, truncation), and encode
refusing what the peer would refuse.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptt_protocol import control
from ptt_protocol.control import MESSAGE_TYPES, decode, encode
from ptt_protocol.errors import MalformedError, ProtocolError
from tests.ptt_protocol.control_schema import (
    ONE_TARGET,
    SIZED,
    any_message,
    fields_of,
    frame_of,
    int_bounds,
    minimal_message,
    minimal_value,
    params_where,
    raw_fields,
    raw_for_field,
    unwrap_optional,
)

mi = msgspec.inspect

# --- Field errors, derived from the schema ---------------------------------------------------


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
def test_missing_required_field_is_refused(cls: type[Any]) -> None:
    for field in fields_of(cls):
        if not field.required:
            continue
        raw = raw_fields(minimal_message(cls))
        del raw[field.name]
        with pytest.raises(MalformedError, match=field.name):
            decode(frame_of(raw))


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
def test_wrong_field_type_is_refused(cls: type[Any]) -> None:
    for field in fields_of(cls):
        for wrong in ({"nested": 1}, [[1]], -1.5):
            raw = raw_fields(minimal_message(cls))
            raw[field.name] = wrong
            with pytest.raises(MalformedError, match=field.name):
                decode(frame_of(raw))


@pytest.mark.parametrize(
    ("cls", "field"),
    params_where(
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
    return (minimal_value(t.item_type),) * n


@pytest.mark.parametrize(
    ("cls", "field"), params_where(lambda t: isinstance(unwrap_optional(t), SIZED))
)
def test_length_caps_are_exact(cls: type[Any], field: Any) -> None:
    t = unwrap_optional(field.type)
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
    params_where(lambda t: isinstance(t, mi.VarTupleType) and isinstance(t.item_type, SIZED)),
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
    ("cls", "field"), params_where(lambda t: isinstance(unwrap_optional(t), mi.IntType))
)
def test_integer_bounds_are_exact(cls: type[Any], field: Any) -> None:
    low, high = int_bounds(unwrap_optional(field.type))
    raw = raw_for_field(cls, field.name)
    for ok in (low, high):
        raw[field.name] = ok
        assert getattr(decode(frame_of(raw)), field.name) == ok
    for bad in (low - 1, high + 1):
        raw[field.name] = bad
        with pytest.raises(MalformedError, match=field.name):
            decode(frame_of(raw))


@pytest.mark.parametrize(
    ("cls", "field"), params_where(lambda t: isinstance(unwrap_optional(t), mi.FloatType))
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


@pytest.mark.parametrize("cls", ONE_TARGET, ids=lambda c: c.__name__)
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
