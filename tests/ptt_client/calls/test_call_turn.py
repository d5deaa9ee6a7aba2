"""CallMedia through a real coturn on 127.0.0.1, relay candidates only on both sides."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.turn import Coturn
from ptt_client.calls import CallMedia, CallMediaError, IceServer, IceSettings
from ptt_protocol.turn_credentials import rest_credentials
from tests.ptt_client.calls.pair import (
    RecordingOutput,
    negotiate,
    relay_settings,
    speech_pcm,
    wav_source,
)
from tests.ptt_client.calls.test_call_media import _aiortc_threads, _socket_count
from tests.ptt_client.speech import similarity


def _candidate_types(sdp: str) -> set[str]:
    return {line.split(" typ ")[1].split()[0] for line in sdp.splitlines() if " typ " in line}


async def test_relay_only_call_goes_through_turn(coturn: Coturn) -> None:
    heard = RecordingOutput()
    caller = CallMedia(relay_settings(coturn, "alice"), wav_source(2), None)
    callee = CallMedia(relay_settings(coturn, "bob"), None, heard)
    try:
        offer = await caller.offer()
        assert _candidate_types(offer) == {"relay"}
        answer = await callee.answer(offer)
        assert _candidate_types(answer) == {"relay"}
        await caller.accept(answer)
        await asyncio.gather(caller.wait_connected(), callee.wait_connected())
        assert caller.media_path() == ("relay", "relay")
        assert callee.media_path() == ("relay", "relay")
        said = speech_pcm(2)
        async with asyncio.timeout(10):
            await heard.wait_for(len(said) + 4_800)
    finally:
        await caller.close()
        await callee.close()
    assert similarity(said, heard.pcm()) > 0.8
    # coturn relayed for both users (its log names each allocation's user).
    log = "\n".join(coturn.lines)
    assert "alice" in log and "bob" in log


async def test_close_is_bounded_when_the_turn_server_went_silent(coturn: Coturn) -> None:
    """aioice retries deleting the allocation for 63 s; CallMedia gives up quickly and leaves
    no socket behind."""
    sockets_before = _socket_count()
    caller = CallMedia(relay_settings(coturn, "alice"), None, None)
    callee = CallMedia(relay_settings(coturn, "bob"), None, None)
    await negotiate(caller, callee)
    await asyncio.gather(caller.wait_connected(), callee.wait_connected())
    coturn.pause()
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(caller.close(), callee.close())
    finally:
        coturn.resume()
    assert _aiortc_threads() == []
    assert _socket_count() == sockets_before


async def test_refused_turn_credentials_leave_no_candidate(coturn: Coturn) -> None:
    username, password = rest_credentials(coturn.secret.encode(), "alice", time.time() - 3600, 60)
    expired = IceSettings((IceServer((coturn.url,), username, password),), relay_only=True)
    caller = CallMedia(expired, None, None)
    try:
        with pytest.raises(CallMediaError, match="no network address"):
            await caller.offer()
    finally:
        await caller.close()
