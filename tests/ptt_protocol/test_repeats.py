"""Redundant media datagrams (RFC 2198 style): layout, round trip, refusals, fuzz."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptt_protocol import media
from ptt_protocol.errors import MalformedError
from ptt_protocol.media import (
    END_OF_BURST,
    FEC,
    PRIORITY,
    REDUNDANT,
    SIGNATURE,
    InnerFrame,
    pack_inner,
    unpack_inner,
)
from ptt_protocol.repeats import (
    MAX_DISTANCE,
    MAX_REPEATS,
    Repeat,
    explode,
    pack_redundant,
)

CHANNEL, BURST = 0x01020304, 0xA0B0C0D0
U32 = st.integers(0, 0xFFFF_FFFF)
VOICE_FLAGS = st.sampled_from(
    [0, END_OF_BURST, FEC, PRIORITY, FEC | PRIORITY, END_OF_BURST | FEC | PRIORITY]
)
FRAME = st.binary(min_size=1, max_size=200)


def redundant(
    body: bytes, sequence: int = 20, flags: int = REDUNDANT, channel: int = CHANNEL
) -> InnerFrame:
    """A received inner frame with ``body`` behind its header, as unpack_inner gives it."""
    return unpack_inner(struct.pack("!IIIB", channel, BURST, sequence, flags) + body)


def table(reach: int, *entries: tuple[int, int, int]) -> bytes:
    """The repeat header: reach, count and (distance, flags, length) entries (docstring layout)."""
    out = bytes([reach, len(entries)])
    for distance, flags, length in entries:
        out += struct.pack("!BBH", distance, flags, length)
    return out


# --- Layout, from the module docstring -------------------------------------------------------


def test_layout_is_header_reach_count_entries_primary_then_repeats() -> None:
    inner = pack_redundant(
        CHANNEL,
        BURST,
        9,
        FEC,
        b"PRIMARY",
        [Repeat(1, FEC, b"one-back"), Repeat(3, END_OF_BURST | PRIORITY, b"3b")],
        reach=4,
    )
    expected = (
        bytes.fromhex("01020304 A0B0C0D0 00000009")
        + bytes([FEC | REDUNDANT])
        + bytes([4, 2])
        + bytes([1, FEC, 0, 8])
        + bytes([3, END_OF_BURST | PRIORITY, 0, 2])
        + b"PRIMARY"
        + b"one-back"
        + b"3b"
    )
    assert inner == expected


def test_explode_gives_each_frame_as_sealed_oldest_first() -> None:
    inner = pack_redundant(
        CHANNEL,
        BURST,
        9,
        PRIORITY,
        b"P",
        [Repeat(1, FEC, b"eight"), Repeat(3, 0, b"six")],
        reach=3,
    )
    exploded = explode(unpack_inner(inner))
    assert exploded.reach == 3
    assert exploded.frames == (
        (pack_inner(CHANNEL, BURST, 6, 0, b"six"), True),
        (pack_inner(CHANNEL, BURST, 8, FEC, b"eight"), True),
        (pack_inner(CHANNEL, BURST, 9, PRIORITY, b"P"), False),
    )


def test_a_frame_carrying_no_repeat_yet_announces_its_reach() -> None:
    inner = pack_redundant(CHANNEL, BURST, 0, 0, b"first", [], reach=2)
    exploded = explode(unpack_inner(inner))
    assert exploded == (2, ((pack_inner(CHANNEL, BURST, 0, 0, b"first"), False),))
    assert inner[13 + 2 :] == b"first"  # header, reach and count, then the frame


# --- Round trip ------------------------------------------------------------------------------


@st.composite
def redundant_frames(
    draw: st.DrawFn,
) -> tuple[int, int, int, int, bytes, list[Repeat], int]:
    sequence = draw(U32)
    farthest = min(MAX_DISTANCE, sequence)
    distances = (
        sorted(draw(st.lists(st.integers(1, farthest), unique=True, max_size=MAX_REPEATS)))
        if farthest
        else []
    )
    reps = [Repeat(d, draw(VOICE_FLAGS), draw(FRAME)) for d in distances]
    return (
        draw(U32),
        draw(U32),
        sequence,
        draw(VOICE_FLAGS),
        draw(FRAME),
        reps,
        draw(st.integers(distances[-1] if distances else 0, MAX_DISTANCE)),
    )


@given(redundant_frames())
@settings(max_examples=300)
def test_round_trip_gives_back_the_plain_inner_frames(
    case: tuple[int, int, int, int, bytes, list[Repeat], int],
) -> None:
    channel, burst, sequence, flags, primary, reps, reach = case
    inner = pack_redundant(channel, burst, sequence, flags, primary, reps, reach)
    frame = unpack_inner(inner)
    assert frame.flags == flags | REDUNDANT
    assert (frame.channel_id, frame.burst_id, frame.sequence) == (channel, burst, sequence)
    exploded = explode(frame)
    expected = [
        (pack_inner(channel, burst, sequence - r.distance, r.flags, r.frame), True)
        for r in sorted(reps, key=lambda r: -r.distance)
    ]
    expected.append((pack_inner(channel, burst, sequence, flags, primary), False))
    assert exploded.reach == reach
    assert list(exploded.frames) == expected
    sequences = [struct.unpack_from("!I", f, 8)[0] for f, _ in exploded.frames]
    assert sequences == sorted(sequences) and sequences[-1] == sequence
    at = 13 + 2 + 4 * len(reps)  # the primary sits behind the repeat table
    assert inner[at : at + len(primary)] == primary


@given(U32, U32, U32, st.integers(0, media.KNOWN_FLAGS & ~REDUNDANT), FRAME)
def test_a_plain_frame_comes_back_as_itself(
    channel: int, burst: int, sequence: int, flags: int, frame: bytes
) -> None:
    inner = pack_inner(channel, burst, sequence, flags, frame)
    assert explode(unpack_inner(inner)) == (0, ((inner, False),))


def test_a_plain_empty_frame_comes_back_as_itself() -> None:
    inner = pack_inner(CHANNEL, BURST, 3, 0, b"")
    assert explode(unpack_inner(inner)) == (0, ((inner, False),))


# --- pack_redundant refuses ------------------------------------------------------------------


def refused(
    reps: list[Repeat],
    *,
    sequence: int = 20,
    flags: int = 0,
    reach: int = 2,
    primary: bytes = b"primary",
) -> str:
    with pytest.raises(ValueError) as caught:
        pack_redundant(CHANNEL, BURST, sequence, flags, primary, reps, reach)
    assert caught.type is ValueError  # not a MalformedError: it is our own input
    return str(caught.value)


def test_pack_refuses_more_than_three_repeats() -> None:
    refused([Repeat(d, 0, b"x") for d in (1, 2, 3, 4)])


@pytest.mark.parametrize(
    ("distances", "sequence"),
    [
        ((2, 1), 20),
        ((1, 1), 20),
        ((0,), 20),
        ((1, 0), 20),
        ((MAX_DISTANCE + 1,), 20),
        ((1, 2, MAX_DISTANCE + 1), 20),
        ((2,), 1),
        ((1,), 0),
        ((1, 2, 3), 2),
        ((-1,), 20),
    ],
)
def test_pack_refuses_bad_distances(distances: tuple[int, ...], sequence: int) -> None:
    refused([Repeat(d, 0, b"x") for d in distances], sequence=sequence)


def test_pack_accepts_the_farthest_distance_and_the_whole_burst() -> None:
    pack_redundant(CHANNEL, BURST, 8, 0, b"p", [Repeat(MAX_DISTANCE, 0, b"x")], 8)
    pack_redundant(CHANNEL, BURST, 3, 0, b"p", [Repeat(1, 0, b"x"), Repeat(3, 0, b"y")], 3)


@pytest.mark.parametrize("flags", [SIGNATURE, REDUNDANT, SIGNATURE | END_OF_BURST, REDUNDANT | FEC])
def test_pack_refuses_a_statement_or_redundant_primary(flags: int) -> None:
    refused([Repeat(1, 0, b"x")], flags=flags)
    refused([], flags=flags)


@pytest.mark.parametrize("reach", [-1, 0, MAX_DISTANCE + 1, 255])
def test_pack_refuses_reach_out_of_range(reach: int) -> None:
    refused([Repeat(1, 0, b"x")], reach=reach)


@pytest.mark.parametrize("flags", [SIGNATURE, REDUNDANT, 0x20, 0x80, FEC | SIGNATURE, -1, 0x100])
def test_pack_refuses_forbidden_repeat_flags(flags: int) -> None:
    refused([Repeat(1, flags, b"x")])


def test_pack_refuses_what_does_not_fit_a_datagram() -> None:
    half = media.MAX_FRAME_SIZE // 2
    refused([Repeat(1, 0, bytes(half)), Repeat(2, 0, bytes(half))])


def test_pack_refuses_an_oversized_repeat_with_value_error() -> None:
    # BUG (documented contract): "Raises ValueError when ... the result would not fit a
    # datagram". A repeat longer than the u16 length field escapes as struct.error instead.
    refused([Repeat(1, 0, bytes(0x1_0000))])


@pytest.mark.parametrize(
    ("primary", "reps"),
    [(b"", [Repeat(1, 0, b"x")]), (b"p", [Repeat(1, 0, b"")]), (b"", [])],
)
def test_pack_makes_only_frames_explode_accepts(primary: bytes, reps: list[Repeat]) -> None:
    # BUG (pack/explode asymmetry): pack_redundant accepts an empty primary or an empty
    # repeat and returns bytes that explode() rejects as malformed. It should refuse them.
    try:
        inner = pack_redundant(CHANNEL, BURST, 5, 0, primary, reps, 1)
    except ValueError:
        return
    explode(unpack_inner(inner))


# --- explode refuses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "sequence", "flags"),
    [
        # truncated repeat header
        (b"", 20, REDUNDANT),
        (b"\x02", 20, REDUNDANT),
        # table longer than the body
        (bytes([2, 1]), 20, REDUNDANT),
        (table(2, (1, 0, 1), (2, 0, 1))[:-1], 20, REDUNDANT),
        (bytes([2, 3]) + struct.pack("!BBH", 1, 0, 1) * 2, 20, REDUNDANT),
        # lengths that leave no primary
        (table(1, (1, 0, 3)) + b"abc", 20, REDUNDANT),
        (table(1, (1, 0, 4)) + b"abc", 20, REDUNDANT),
        (table(2, (1, 0, 2), (2, 0, 2)) + b"abcd", 20, REDUNDANT),
        (table(1, (1, 0, 0xFFFF)) + b"abc", 20, REDUNDANT),
        (table(0), 20, REDUNDANT),
        # a zero-length repeat
        (table(1, (1, 0, 0)) + b"primary", 20, REDUNDANT),
        (table(2, (1, 0, 1), (2, 0, 0)) + b"primary" + b"x", 20, REDUNDANT),
        # distances out of order or range
        (table(2, (2, 0, 1), (1, 0, 1)) + b"p" + b"xy", 20, REDUNDANT),
        (table(2, (1, 0, 1), (1, 0, 1)) + b"p" + b"xy", 20, REDUNDANT),
        (table(2, (0, 0, 1)) + b"p" + b"x", 20, REDUNDANT),
        (table(8, (MAX_DISTANCE + 1, 0, 1)) + b"p" + b"x", 20, REDUNDANT),
        (table(2, (2, 0, 1)) + b"p" + b"x", 1, REDUNDANT),
        (table(1, (1, 0, 1)) + b"p" + b"x", 0, REDUNDANT),
        # reach beyond MAX_DISTANCE, more than MAX_REPEATS
        (table(MAX_DISTANCE + 1, (1, 0, 1)) + b"p" + b"x", 20, REDUNDANT),
        (table(255) + b"p", 20, REDUNDANT),
        (table(2, *((d, 0, 1) for d in (1, 2, 3, 4))) + b"p" + b"wxyz", 20, REDUNDANT),
        (bytes([2, 255]) + bytes(4 * 255) + b"p", 20, REDUNDANT),
        # forbidden repeat flags
        (table(1, (1, SIGNATURE, 1)) + b"p" + b"x", 20, REDUNDANT),
        (table(1, (1, REDUNDANT, 1)) + b"p" + b"x", 20, REDUNDANT),
        (table(1, (1, 0x20, 1)) + b"p" + b"x", 20, REDUNDANT),
        # a burst statement carrying repeats
        (table(1, (1, 0, 1)) + b"p" + b"x", 20, REDUNDANT | SIGNATURE),
        (table(0) + b"p", 1 << 31, REDUNDANT | SIGNATURE),
    ],
)
def test_explode_refuses_malformed_frames(body: bytes, sequence: int, flags: int) -> None:
    with pytest.raises(MalformedError):
        explode(redundant(body, sequence, flags))


def test_the_cases_explode_refuses_are_one_field_away_from_valid() -> None:
    # The refusals above are not accidents of some other field: the neighbours pass.
    ok = table(2, (1, FEC, 1), (2, 0, 2)) + b"p" + b"x" + b"yz"
    assert [f for f, _ in explode(redundant(ok)).frames] == [
        pack_inner(CHANNEL, BURST, 18, 0, b"yz"),
        pack_inner(CHANNEL, BURST, 19, FEC, b"x"),
        pack_inner(CHANNEL, BURST, 20, 0, b"p"),
    ]
    assert explode(redundant(table(MAX_DISTANCE, (MAX_DISTANCE, 0, 1)) + b"p" + b"x")).reach == 8
    assert len(explode(redundant(table(1, (1, 0, 1)) + b"p" + b"x", sequence=1)).frames) == 2
    assert explode(redundant(table(0) + b"p")).frames == (
        (pack_inner(CHANNEL, BURST, 20, 0, b"p"), False),
    )


@st.composite
def near_valid_bodies(draw: st.DrawFn) -> bytes:
    """Repeat tables with small fields, so some bodies parse and the rest fail late."""
    count = draw(st.integers(0, MAX_REPEATS + 1))
    head = bytes([draw(st.integers(0, MAX_DISTANCE + 1)), count])
    entries = b"".join(
        struct.pack(
            "!BBH",
            draw(st.integers(0, MAX_DISTANCE + 1)),
            draw(st.sampled_from([0, FEC, PRIORITY, END_OF_BURST, SIGNATURE, REDUNDANT, 0x40])),
            draw(st.integers(0, 6)),
        )
        for _ in range(count)
    )
    return head + entries + draw(st.binary(max_size=24))


@given(
    st.one_of(st.binary(max_size=300), near_valid_bodies()),
    U32,
    st.sampled_from([0, END_OF_BURST, FEC, PRIORITY, SIGNATURE, FEC | PRIORITY | END_OF_BURST]),
)
@settings(max_examples=500)
def test_explode_raises_nothing_but_malformed_error(body: bytes, sequence: int, extra: int) -> None:
    frame = redundant(body, sequence, REDUNDANT | extra)
    try:
        exploded = explode(frame)
    except MalformedError:
        return
    # Whatever it accepted is well-formed: plain voice frames of the same burst, oldest
    # first, the primary last, and packing them again gives back the very same bytes.
    assert not extra & SIGNATURE
    assert 0 <= exploded.reach <= MAX_DISTANCE
    assert 1 <= len(exploded.frames) <= MAX_REPEATS + 1
    parts = [unpack_inner(f) for f, _ in exploded.frames]
    assert [r for _, r in exploded.frames] == [True] * (len(parts) - 1) + [False]
    assert all((p.channel_id, p.burst_id) == (CHANNEL, BURST) for p in parts)
    assert all(not p.flags & (REDUNDANT | SIGNATURE) for p in parts)
    assert all(p.frame for p in parts)
    sequences = [p.sequence for p in parts]
    assert sequences == sorted(set(sequences)) and sequences[-1] == sequence
    assert sequence - sequences[0] <= MAX_DISTANCE
    primary = parts[-1]
    again = pack_redundant(
        CHANNEL,
        BURST,
        sequence,
        primary.flags,
        primary.frame,
        [Repeat(sequence - p.sequence, p.flags, p.frame) for p in reversed(parts[:-1])],
        exploded.reach,
    )
    assert again == struct.pack("!IIIB", CHANNEL, BURST, sequence, REDUNDANT | extra) + body


def test_a_reach_shorter_than_the_farthest_repeat_is_refused() -> None:
    with pytest.raises(MalformedError, match="reach"):
        explode(redundant(table(1, (2, 0, 1)) + b"p" + b"x"))
    with pytest.raises(ValueError, match="reach"):
        pack_redundant(CHANNEL, BURST, 9, 0, b"p", [Repeat(2, 0, b"x")], reach=1)
