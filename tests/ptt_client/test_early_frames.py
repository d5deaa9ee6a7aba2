"""EarlyFrames: frames held for their FloorTaken, each burst with its own share (pure)."""

from __future__ import annotations

from ptt_client.early_frames import (
    EARLY_BURST_LIMIT,
    EARLY_FRAME_LIMIT,
    EARLY_FRAME_TTL,
    EarlyFrames,
)

_T0 = 1000.0


def test_one_bursts_flood_evicts_only_its_own_frames() -> None:
    early = EarlyFrames()
    early.hold(2, b"alice 0", _T0)
    early.hold(2, b"alice 1", _T0)
    for n in range(3 * EARLY_FRAME_LIMIT):
        early.hold(1, b"junk %d" % n, _T0)
    assert early.take(2, _T0) == [b"alice 0", b"alice 1"]
    assert early.take(1, _T0) == [
        b"junk %d" % n for n in range(2 * EARLY_FRAME_LIMIT, 3 * EARLY_FRAME_LIMIT)
    ]
    assert len(early) == 0


def test_a_burst_over_the_limit_drops_the_burst_held_longest() -> None:
    early = EarlyFrames()
    early.hold(0, b"frame of 0", _T0)
    for burst in range(1, EARLY_BURST_LIMIT + 1):
        early.hold(0, b"more of 0", _T0)  # being added to does not make a burst newer
        early.hold(burst, b"frame of %d" % burst, _T0)
    assert early.take(0, _T0) == []
    assert early.take(1, _T0) == [b"frame of 1"]
    assert early.take(EARLY_BURST_LIMIT, _T0) == [b"frame of %d" % EARLY_BURST_LIMIT]


def test_frames_age_from_their_own_arrival_and_ended_bursts_are_dropped() -> None:
    early = EarlyFrames()
    early.hold(1, b"old", _T0)
    early.hold(1, b"new", _T0 + 1)
    early.hold(2, b"ended", _T0 + 1)
    early.keep_only(lambda burst: burst != 2, _T0 + EARLY_FRAME_TTL + 0.5)
    assert len(early) == 1
    assert early.take(1, _T0 + EARLY_FRAME_TTL + 0.5) == [b"new"]
    early.hold(3, b"late", _T0)
    assert early.take(3, _T0 + EARLY_FRAME_TTL + 0.1) == []
