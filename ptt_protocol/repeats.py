"""Redundant media datagrams: one inner frame that also carries earlier frames of its burst.

RFC 2198 (RTP payload for redundant audio) applied to end-to-end sealed frames. A talker on a
lossy path repeats the previous one or two voice frames of the burst in each datagram, so a
listener who lost a datagram gets the frame from the next one (or the one after). Each repeat
is the very SFrame ciphertext sent before - sealed once, under its own inner header, simply
repeated - so redundancy uses no key twice and the relay can forward the bytes without
opening anything (it checks each repeat's SFrame KID like any voice frame's).

Layout, when the inner flags carry :data:`REDUNDANT`::

    | inner header (flags | REDUNDANT) | reach u8 | count u8 |
    | count x (distance u8, flags u8, length u16) | primary E2E frame | repeats, in entry order |

- The primary is the frame numbered by the inner header; its end-to-end associated data is
  that header *without* :data:`REDUNDANT` (the packaging is not part of what was sealed).
- Repeat ``i`` is frame ``sequence - distance_i`` of the same channel and burst, sealed with
  its own ``flags_i``; distances are strictly increasing, 1..:data:`MAX_DISTANCE`. Repeats
  carry voice only (no burst statement, no nested redundancy).
- ``reach`` is the largest distance the talker repeats at in this burst (0..MAX_DISTANCE),
  also in frames that carry no repeat yet (the first ones of a burst): how long a listener's
  playout must wait for a lost frame's repeat.

:func:`explode` turns such an inner frame back into plain inner frames, oldest first, each
exactly as it was sealed; anything malformed is a :class:`MalformedError` and nothing is
returned. Pure: no I/O, no clock.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final, NamedTuple

from ptt_protocol import media
from ptt_protocol.errors import MalformedError

__all__ = [
    "MAX_DISTANCE",
    "MAX_REPEATS",
    "REDUNDANT",
    "Exploded",
    "Repeat",
    "explode",
    "pack_redundant",
]

REDUNDANT: Final = media.REDUNDANT
MAX_REPEATS: Final = 3
"""Earlier frames one datagram may carry."""
MAX_DISTANCE: Final = 8
"""Farthest back (in frames) a repeat may reach: 160 ms at 20 ms frames."""
_PREFIX: Final = struct.Struct("!BB")
_ENTRY: Final = struct.Struct("!BBH")
_REPEAT_FLAGS: Final = media.FEC | media.PRIORITY | media.END_OF_BURST
"""Flags a repeated voice frame may have been sealed with."""


class Repeat(NamedTuple):
    """An earlier frame of the burst, as sealed: ``distance`` frames before the primary."""

    distance: int
    flags: int
    frame: bytes


class Exploded(NamedTuple):
    """A received inner frame as the plain inner frames it carries."""

    reach: int
    """The talker's announced repeat reach in frames (0: no redundancy)."""
    frames: tuple[tuple[bytes, bool], ...]
    """``(inner bytes, is_repeat)``, oldest sequence first; the primary is last."""


def pack_redundant(
    channel_id: int,
    burst_id: int,
    sequence: int,
    flags: int,
    primary: bytes,
    repeats: Sequence[Repeat],
    reach: int,
) -> bytes:
    """The inner bytes of ``primary`` (frame ``sequence``) carrying ``repeats``.

    Raises ``ValueError`` when a field is out of range or the result would not fit a datagram.
    """
    if not 0 <= reach <= MAX_DISTANCE:
        raise ValueError(f"reach {reach} must be 0..{MAX_DISTANCE}")
    if len(repeats) > MAX_REPEATS:
        raise ValueError(f"{len(repeats)} repeats; at most {MAX_REPEATS}")
    if flags & (REDUNDANT | media.SIGNATURE):
        raise ValueError("the primary of a redundant frame is a plain voice frame")
    if not primary:
        raise ValueError("the primary frame is empty")
    if repeats and reach < repeats[-1].distance:
        raise ValueError(f"reach {reach} is shorter than the farthest repeat")
    entries, previous = [], 0
    for repeat in repeats:
        if not previous < repeat.distance <= min(MAX_DISTANCE, sequence):
            raise ValueError(
                f"repeat distances must increase, within 1..{MAX_DISTANCE} and the burst"
            )
        if repeat.flags & ~_REPEAT_FLAGS:
            raise ValueError(f"a repeat cannot carry flags {repeat.flags:#x}")
        if not 0 < len(repeat.frame) <= media.MAX_FRAME_SIZE:
            raise ValueError(f"a repeated frame of {len(repeat.frame)} bytes cannot be sent")
        entries.append(_ENTRY.pack(repeat.distance, repeat.flags, len(repeat.frame)))
        previous = repeat.distance
    body = b"".join([_PREFIX.pack(reach, len(repeats)), *entries, primary])
    body += b"".join(r.frame for r in repeats)
    return media.pack_inner(channel_id, burst_id, sequence, flags | REDUNDANT, body)


def explode(frame: media.InnerFrame) -> Exploded:
    """The plain inner frames carried by ``frame`` (already :func:`media.unpack_inner`-ed).

    A frame without :data:`REDUNDANT` comes back as itself. Raises :class:`MalformedError`.
    """
    plain = media.INNER_HEADER.pack(frame.channel_id, frame.burst_id, frame.sequence, 0)
    if not frame.flags & REDUNDANT:
        return Exploded(0, ((plain[:-1] + bytes([frame.flags]) + frame.frame, False),))
    if frame.flags & media.SIGNATURE:
        raise MalformedError("a burst statement cannot carry repeats")
    body = frame.frame
    if len(body) < _PREFIX.size:
        raise MalformedError("redundant frame without its repeat header")
    reach, count = _PREFIX.unpack_from(body)
    if reach > MAX_DISTANCE or count > MAX_REPEATS:
        raise MalformedError(f"redundant frame with reach {reach}, {count} repeats")
    at = _PREFIX.size + count * _ENTRY.size
    if len(body) < at:
        raise MalformedError("redundant frame shorter than its repeat table")
    entries = [_ENTRY.unpack_from(body, _PREFIX.size + i * _ENTRY.size) for i in range(count)]
    repeated = sum(length for _, _, length in entries)
    primary_end = len(body) - repeated
    if primary_end <= at:
        raise MalformedError("redundant frame whose repeats leave no primary")
    out: list[tuple[bytes, bool]] = []
    previous, cursor = 0, primary_end
    for distance, flags, length in entries:
        if not previous < distance <= min(MAX_DISTANCE, frame.sequence):
            raise MalformedError(f"repeat distance {distance} out of order or range")
        if flags & ~_REPEAT_FLAGS or length == 0:
            raise MalformedError(f"repeat with flags {flags:#x} and {length} bytes")
        header = media.INNER_HEADER.pack(
            frame.channel_id, frame.burst_id, frame.sequence - distance, flags
        )
        out.append((header + body[cursor : cursor + length], True))
        cursor += length
        previous = distance
    if entries and reach < entries[-1][0]:
        raise MalformedError(f"reach {reach} is shorter than the farthest repeat")
    out.reverse()  # farthest back first: oldest sequence first
    primary_flags = frame.flags & ~REDUNDANT
    primary_header = plain[:-1] + bytes([primary_flags])
    out.append((primary_header + body[at:primary_end], False))
    return Exploded(reach, tuple(out))
