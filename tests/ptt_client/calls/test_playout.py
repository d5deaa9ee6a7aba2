"""The call's receive side without a network (ptt_client.calls.playout): packets and times in.

The point of replacing aiortc's audio jitter buffer: after a lost packet the delay must not
grow (aiortc issue #543 - aiortc's stays 280 ms behind for the rest of the call)."""

from __future__ import annotations

import numpy as np
import pytest
from aiortc.jitterbuffer import JitterBuffer as AiortcJitterBuffer
from aiortc.rtp import RtpPacket

from ptt_client.calls.playout import CallPlayout, Frame, SequenceUnwrapper
from ptt_client.codec import OpusEncoder
from tests.ptt_client.calls.pair import speech_pcm

FRAME = 0.020
TICK = 0.005


def _packets(count: int) -> list[bytes]:
    encoder = OpusEncoder(bitrate=24_000, fec=True)
    pcm = np.resize(speech_pcm(0), count * 960)
    return [encoder.encode(pcm[i * 960 : (i + 1) * 960]) for i in range(count)]


def _run(
    playout: CallPlayout,
    packets: list[bytes],
    lost: set[int] = frozenset(),  # type: ignore[assignment]
    first_sequence: int = 1000,
    arrival: dict[int, float] | None = None,
) -> list[tuple[Frame, float]]:
    """Packet i is sent at i * 20 ms and arrives 30 ms later (or at ``arrival[i]``); the
    playout is polled every 5 ms. Returns each frame of the stream with the time it came out
    (not the three frames concealed after the last packet, as the stream fades out)."""
    arrivals = sorted(
        ((arrival or {}).get(i, i * FRAME + 0.030), i) for i in range(len(packets)) if i not in lost
    )
    out: list[tuple[Frame, float]] = []
    k = 0
    for step in range(int((len(packets) * FRAME + 0.5) / TICK)):
        now = step * TICK
        while k < len(arrivals) and arrivals[k][0] <= now:
            i = arrivals[k][1]
            playout.push((first_sequence + i) % 65536, packets[i], arrivals[k][0])
            k += 1
        while (frame := playout.pop(now)) is not None:
            out.append((frame, now))
    last = SequenceUnwrapper().extend(first_sequence % 65536) + len(packets) - 1
    return [(f, t) for f, t in out if f.sequence <= last]


def _delays(out: list[tuple[Frame, float]], first: int) -> dict[int, float]:
    """Play time minus send time, per packet index."""
    base = SequenceUnwrapper().extend(first % 65536)
    return {f.sequence - base: round(t - (f.sequence - base) * FRAME, 4) for f, t in out}


def test_sequence_unwrapper_counts_across_the_wrap_and_keeps_reordering() -> None:
    unwrap = SequenceUnwrapper()
    a = unwrap.extend(65534)
    assert [unwrap.extend(s) - a for s in (65535, 0, 1, 65535, 2)] == [1, 2, 3, 1, 4]
    with pytest.raises(ValueError):
        unwrap.extend(65536)


def test_clean_path_plays_every_frame_at_a_constant_low_delay() -> None:
    packets = _packets(100)
    out = _run(CallPlayout(initial_delay_ms=40), packets)
    assert [f.kind for f, _ in out] == ["play"] * 100
    delays = set(_delays(out, 1000).values())
    assert len(delays) == 1 and delays.pop() <= 0.030 + 0.040 + TICK


def test_one_lost_packet_is_rebuilt_and_the_delay_does_not_grow() -> None:
    packets = _packets(200)
    out = _run(CallPlayout(initial_delay_ms=40), packets, lost={50})
    kinds = {i: f.kind for i, (f, _) in enumerate(out)}
    assert kinds[50] == "fec"  # rebuilt from packet 51's in-band FEC
    assert sum(k != "play" for k in kinds.values()) == 1
    delays = _delays(out, 1000)
    assert len(delays) == 200
    before, after = delays[49], [delays[i] for i in range(51, 200)]
    assert set(after) == {before}


def test_aiortc_buffer_still_accumulates_delay_after_one_loss() -> None:
    """Why CallPlayout replaces it: if this starts failing, aiortc fixed issue #543 and the
    tap in ptt_client.calls.aiortc_patches may no longer be needed."""
    buffer = AiortcJitterBuffer(capacity=16, prefetch=4)
    lag: dict[int, int] = {}  # frame -> packets received before it came out
    for i in range(200):
        if i == 50:
            continue
        packet = RtpPacket(payload_type=96, sequence_number=i, timestamp=i * 960)
        packet._data = b"x"  # type: ignore[attr-defined]
        _, frame = buffer.add(packet)
        if frame is not None:
            lag[frame.timestamp // 960] = i - frame.timestamp // 960
    assert lag[40] < lag[150]


def test_a_loss_with_its_neighbour_conceals_and_keeps_the_clock() -> None:
    packets = _packets(100)
    out = _run(CallPlayout(initial_delay_ms=40), packets, lost={30, 31})
    kinds = [f.kind for f, _ in out]
    assert kinds[30:32] == ["conceal", "fec"]
    delays = _delays(out, 1000)
    assert delays[29] == delays[32] == delays[99]


def test_sequence_numbers_wrapping_mid_call_play_on() -> None:
    packets = _packets(60)
    out = _run(CallPlayout(initial_delay_ms=40), packets, first_sequence=65_520)
    assert [f.kind for f, _ in out] == ["play"] * 60


def test_a_stall_leaves_the_delay_bounded() -> None:
    """Packets 40-69 are held 600 ms by the network and then arrive at once: the backlog is
    trimmed, and the delay stays within the buffer's maximum (it learnt the stall as jitter)
    instead of the 600 ms the backlog would add."""
    packets = _packets(150)
    stall = {i: 70 * FRAME + 0.030 for i in range(40, 70)}
    playout = CallPlayout(initial_delay_ms=40, max_delay_ms=200)
    out = _run(playout, packets, arrival=stall)
    delays = _delays(out, 1000)
    assert max(delays[i] for i in range(75, 150)) <= 0.200 + FRAME
    assert playout.stats.discarded + playout.stats.late > 0


def test_empty_and_undecodable_payloads_are_concealed() -> None:
    playout = CallPlayout(initial_delay_ms=20)
    assert not playout.push(5, b"", 0.0)
    packets = _packets(3)
    playout.push(1, packets[0], 0.0)
    playout.push(2, b"\xff\xff\xff\xff\xff", 0.02)
    playout.push(3, packets[2], 0.04)
    kinds = []
    for step in range(40):
        while (frame := playout.pop(step * TICK)) is not None:
            kinds.append(frame.kind)
            assert len(frame.pcm) == 960
    assert kinds[:3] == ["play", "conceal", "play"]
