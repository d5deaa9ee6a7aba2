"""CallMedia over a direct (host candidate) path: two real aiortc peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading

import pytest

from ptt_client.calls import CallMedia, CallMediaError, IceSettings, sdp_fingerprints
from ptt_client.calls.media import CLOSED_HERE, HUNG_UP
from tests.ptt_client.calls.pair import (
    Ended,
    RecordingOutput,
    negotiate,
    speech_pcm,
    wav_source,
)
from tests.ptt_client.speech import similarity

DIRECT = IceSettings()


def _socket_count() -> int:
    import os

    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


def _aiortc_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.endswith("-decoder")]


async def test_direct_call_carries_speech_both_ways() -> None:
    sockets_before = _socket_count()
    heard_by_callee, heard_by_caller = RecordingOutput(), RecordingOutput()
    caller = CallMedia(DIRECT, wav_source(0), heard_by_caller)
    callee = CallMedia(DIRECT, wav_source(1), heard_by_callee)
    try:
        await negotiate(caller, callee)
        await asyncio.gather(caller.wait_connected(), callee.wait_connected())
        assert caller.media_path() == ("host", "host")
        said_by_caller, said_by_callee = speech_pcm(0), speech_pcm(1)
        async with asyncio.timeout(10):
            await heard_by_callee.wait_for(len(said_by_caller) + 4_800)
            await heard_by_caller.wait_for(len(said_by_callee) + 4_800)
    finally:
        await caller.close()
        await callee.close()
    assert similarity(said_by_caller, heard_by_callee.pcm()) > 0.8
    assert similarity(said_by_callee, heard_by_caller.pcm()) > 0.8
    assert similarity(said_by_callee, heard_by_callee.pcm()) < 0.5  # not its own voice
    assert caller.first_frame_at is not None and callee.first_frame_at is not None
    assert caller.frames_sent > 0 and callee.frames_received > 0
    # The peer connections left nothing running: decoder threads, sockets.
    assert _aiortc_threads() == []
    assert _socket_count() == sockets_before


async def test_fingerprints_in_the_sdp_are_the_local_ones() -> None:
    caller, callee = CallMedia(DIRECT, None, None), CallMedia(DIRECT, None, None)
    try:
        assert {alg for alg, _ in caller.local_fingerprints} >= {"sha-256"}
        offer = await caller.offer()
        assert sdp_fingerprints(offer) == caller.local_fingerprints
        answer = await callee.answer(offer)
        assert sdp_fingerprints(answer) == callee.local_fingerprints
        assert callee.local_fingerprints != caller.local_fingerprints  # one certificate per call
    finally:
        await caller.close()
        await callee.close()


async def test_offer_is_opus_only_with_every_candidate() -> None:
    caller = CallMedia(DIRECT, None, None)
    try:
        offer = await caller.offer()
    finally:
        await caller.close()
    (m_line,) = [line for line in offer.splitlines() if line.startswith("m=")]
    assert m_line.startswith("m=audio ")
    assert [line for line in offer.splitlines() if line.startswith("a=rtpmap:")] == [
        "a=rtpmap:96 opus/48000/2"
    ]
    assert "a=candidate:" in offer and "a=end-of-candidates" in offer
    assert "stun.l.google.com" not in offer


async def test_rewritten_fingerprint_fails_the_dtls_handshake() -> None:
    """aiortc checks the peer's certificate against the SDP it was given: a relay that swaps
    the fingerprint (and cannot present a matching certificate) gets no media through."""
    ended_caller, ended_callee = Ended(), Ended()
    caller = CallMedia(DIRECT, None, None, on_ended=ended_caller)
    callee = CallMedia(DIRECT, None, None, on_ended=ended_callee)
    try:
        offer = await caller.offer()
        forged = re.sub(
            r"(a=fingerprint:sha-256 )([0-9A-F:]+)",
            lambda m: m.group(1) + ("00" if m.group(2)[:2] != "00" else "11") + m.group(2)[2:],
            offer,
        )
        assert forged != offer and sdp_fingerprints(forged) != caller.local_fingerprints
        answer = await callee.answer(forged)
        await caller.accept(answer)
        with pytest.raises(CallMediaError, match="DTLS"):
            await callee.wait_connected()
    finally:
        await caller.close()
        await callee.close()
    assert len(ended_callee.reasons) == 1 and "DTLS" in ended_callee.reasons[0]
    assert callee.frames_received == 0


async def test_hang_up_ends_the_other_side_with_its_reason() -> None:
    ended = Ended()
    ended_event = asyncio.Event()

    def on_ended(reason: str) -> None:
        ended(reason)
        ended_event.set()

    caller = CallMedia(DIRECT, None, None, on_ended=on_ended)
    callee_ended = Ended()
    callee = CallMedia(DIRECT, None, None, on_ended=callee_ended)
    try:
        await negotiate(caller, callee)
        await asyncio.gather(caller.wait_connected(), callee.wait_connected())
        await callee.close()
        async with asyncio.timeout(5):
            await ended_event.wait()
    finally:
        await caller.close()
        await callee.close()
    assert ended.reasons == [HUNG_UP]
    assert callee_ended.reasons == []  # closed here: no callback
    assert callee.ended_reason == CLOSED_HERE


async def test_half_duplex_sends_silence_and_the_watchdog_stays_quiet() -> None:
    heard = RecordingOutput()
    ended = Ended()
    # A watchdog of 1 s, not less: a shared machine can stall this process's event loop
    # for some hundreds of ms, and the test is about silence, not about a stall.
    caller = CallMedia(DIRECT, wav_source(0), None, rtp_timeout=1.0)
    callee = CallMedia(DIRECT, None, heard, rtp_timeout=1.0, on_ended=ended)
    caller.set_sending(False)
    try:
        await negotiate(caller, callee)
        await asyncio.gather(caller.wait_connected(), callee.wait_connected())
        # Three watchdog periods of silence (3 s of audio).
        async with asyncio.timeout(20):
            await heard.wait_for(48_000 * 3)
        assert ended.reasons == [] and callee.ended_reason is None
        assert caller.frames_sent >= 150
    finally:
        await caller.close()
        await callee.close()
    assert int(abs(heard.pcm().astype(int)).max()) < 100  # silence, not speech


async def test_vanished_peer_ends_the_call_by_the_rtp_watchdog() -> None:
    """The callee's packets stop without a close_notify (as a radio out of coverage): its
    ICE transport is stopped under it."""
    ended_event = asyncio.Event()
    reasons: list[str] = []

    def on_ended(reason: str) -> None:
        reasons.append(reason)
        ended_event.set()

    caller = CallMedia(DIRECT, None, None, rtp_timeout=0.5, on_ended=on_ended)
    callee = CallMedia(DIRECT, None, None)
    try:
        await negotiate(caller, callee)
        await asyncio.gather(caller.wait_connected(), callee.wait_connected())
        ice = callee._dtls.transport
        await ice._connection.close()  # the socket goes, nothing is said
        async with asyncio.timeout(10):
            await ended_event.wait()
    finally:
        await caller.close()
        await callee.close()
    assert reasons == ["no audio from the other radio for 0.5 s"]


async def test_no_path_raises_within_the_connect_timeout() -> None:
    """The answer points at a port nothing listens on: ICE never connects."""
    caller = CallMedia(DIRECT, None, None, connect_timeout=0.5)
    callee = CallMedia(DIRECT, None, None)
    ended = Ended()
    caller._on_ended = ended
    try:
        offer = await caller.offer()
        answer = await callee.answer(offer)
        dead = re.sub(r"(a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 )(\d+)", r"\g<1>9", answer)
        assert dead != answer
        await callee.close()
        await caller.accept(dead)
        with pytest.raises(CallMediaError, match="no media path"):
            await caller.wait_connected()
    finally:
        await caller.close()
    assert len(ended.reasons) == 1 and "no media path" in ended.reasons[0]


async def test_close_is_idempotent_and_refuses_reuse() -> None:
    media = CallMedia(DIRECT, None, None)
    await media.offer()
    await media.close()
    await media.close()
    with pytest.raises(CallMediaError, match="ended"):
        await media.offer()


async def test_killed_peer_process_ends_the_call_by_the_rtp_watchdog() -> None:
    """The callee's process dies (SIGKILL: no close_notify, no goodbye)."""
    ended_event = asyncio.Event()
    reasons: list[str] = []

    def on_ended(reason: str) -> None:
        reasons.append(reason)
        ended_event.set()

    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.ptt_client.calls.callee_process",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    caller = CallMedia(DIRECT, None, None, rtp_timeout=0.5, on_ended=on_ended)
    try:
        child.stdin.write(json.dumps(await caller.offer()).encode() + b"\n")
        await child.stdin.drain()
        async with asyncio.timeout(20):
            await caller.accept(json.loads(await child.stdout.readline()))
            assert json.loads(await child.stdout.readline()) == "connected"
            await caller.wait_connected()
            child.kill()
            await ended_event.wait()
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
        await caller.close()
    assert reasons == ["no audio from the other radio for 0.5 s"]
