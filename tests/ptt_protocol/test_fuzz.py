"""Hostile bytes: every parser refuses with ProtocolError or succeeds; nothing else may escape.

Each test calls the parser directly, so any other exception (IndexError,
struct.error, RecursionError, msgspec errors, ...) fails the test as it would
crash a connection handler or the relay.
"""

from __future__ import annotations

import contextlib
import os
import struct
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptt_protocol import control, media
from ptt_protocol.errors import ProtocolError
from ptt_protocol.media import KEEPALIVE, HopSession, peek_session_index, unpack_inner
from tests.ptt_protocol.control_schema import any_message

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ADDRESS = ("198.51.100.7", 40000)
ATTACKER = ("192.0.2.66", 6666)


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` after one to four byte-level mutations (flip, overwrite, cut, insert, repeat)."""
    data = bytearray(base)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["flip", "set", "delete", "insert", "truncate", "repeat"]))
        at = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xC1, 0xDB, 0xDD, 0xDF, 0xFF]))
        elif op == "delete":
            del data[at : at + draw(st.integers(min_value=1, max_value=8))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "truncate":
            del data[at:]
        elif op == "repeat":
            data[at:at] = data[at : at + draw(st.integers(min_value=1, max_value=16))]
    return bytes(data)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=12,
)


def _decode_or_refuse(data: bytes) -> control.Message | None:
    try:
        return control.decode(data)
    except ProtocolError:
        return None


# --- Control frames --------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=200))
def test_decode_random_bytes(data: bytes) -> None:
    _decode_or_refuse(data)
    _decode_or_refuse(b"\x01" + data)  # past the version check, into msgpack


@FUZZ
@given(st.data())
def test_decode_mutated_valid_frames(data: st.DataObject) -> None:
    frame = control.encode(data.draw(any_message))
    result = _decode_or_refuse(data.draw(mutated(frame)))
    assert result is None or isinstance(result, control.MESSAGE_TYPES)


@FUZZ
@given(st.sampled_from(control.MESSAGE_TYPES), st.data())
def test_decode_right_tag_with_arbitrary_field_values(cls: type[Any], data: st.DataObject) -> None:
    names = [f.name for f in msgspec.structs.fields(cls)]
    fields = data.draw(st.dictionaries(st.sampled_from(names), msgpack_values)) if names else {}
    raw = {"type": control.tag_of(cls), **fields}
    result = _decode_or_refuse(b"\x01" + msgspec.msgpack.encode(raw))
    assert result is None or type(result) is cls


@FUZZ
@given(msgpack_values)
def test_decode_arbitrary_msgpack(value: Any) -> None:
    _decode_or_refuse(b"\x01" + msgspec.msgpack.encode(value))


def test_decode_pathological_frames() -> None:
    limit = control.MAX_MESSAGE_SIZE
    for frame in (
        b"\x01" + b"\x91" * (limit - 2) + b"\xc0",  # arrays nested to the size limit
        b"\x01" + b"\x81\xa1k" * ((limit - 2) // 3) + b"\xc0",  # maps nested likewise
        b"\x01" + b"\xdd\xff\xff\xff\xff",  # 4 G-item array header, no items
        b"\x01" + b"\xc6\x7f\xff\xff\xff",  # 2 GiB binary header, no body
        b"\x01" + b"\xde\xff\xff" + b"\xc0\xc0" * 1000,  # map of nil keys
        b"\x01" + b"\xd4\x01\x00",  # msgpack extension type
        b"\x01" + b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",  # a bare NaN
        b"\x01" * limit,
        b"\x01" * (limit + 1),
    ):
        assert _decode_or_refuse(frame) is None


# --- Datagrams -------------------------------------------------------------------------------


def _fresh_pair() -> tuple[HopSession, HopSession]:
    key = os.urandom(32)
    return (
        HopSession(0x11223344, key, "client"),
        HopSession(0x11223344, key, "server", address=ADDRESS),
    )


def _open_or_refuse(session: HopSession, datagram: bytes) -> tuple[int, bytes] | None:
    before = (session.address, session.newest_received, session.candidate, session.probe_due)
    try:
        return session.open(datagram, ATTACKER)
    except ProtocolError:
        # Refused input changes nothing, roaming state included.
        after = (session.address, session.newest_received, session.candidate, session.probe_due)
        assert after == before
        return None


@FUZZ
@given(st.binary(max_size=1300))
def test_datagram_parsers_random_bytes(data: bytes) -> None:
    _, server = _fresh_pair()
    for candidate in (data, b"\x01" + data, struct.pack("!BBHI", 1, 1, 0, 0x11223344) + data):
        with contextlib.suppress(ProtocolError):
            peek_session_index(candidate)
        assert _open_or_refuse(server, candidate) is None  # nobody can forge without the key
        with contextlib.suppress(ProtocolError):
            unpack_inner(candidate)


@FUZZ
@given(st.data())
def test_open_mutated_valid_datagrams(data: st.DataObject) -> None:
    client, server = _fresh_pair()
    keepalive = data.draw(st.booleans())
    inner = b"" if keepalive else media.pack_inner(1, 2, 3, media.FEC, data.draw(st.binary()))
    datagram = client.seal(inner, KEEPALIVE if keepalive else media.DATA)
    candidate = data.draw(mutated(datagram))
    with contextlib.suppress(ProtocolError):
        peek_session_index(candidate)
    result = _open_or_refuse(server, candidate)
    if result is not None:  # only the untouched datagram may pass
        assert candidate == datagram
        assert result[1] == inner
        # Authentic and newer than any: a roaming candidate, not yet a move (probe first).
        assert server.address == ADDRESS and server.candidate == ATTACKER


@FUZZ
@given(st.data())
def test_unpack_mutated_inner(data: st.DataObject) -> None:
    inner = media.pack_inner(
        data.draw(st.integers(0, 2**32 - 1)), 5, 6, media.END_OF_BURST, data.draw(st.binary())
    )
    try:
        frame = unpack_inner(data.draw(mutated(inner)))
    except ProtocolError:
        return
    assert not frame.flags & ~media.KNOWN_FLAGS
