"""Private calls end to end: real relay, real radios, real aiortc media on 127.0.0.1.

Each test places calls through a :class:`RelayServer` with real TLS and SQLite; the media
goes peer to peer between the two radios' aiortc peer connections (or through a real
coturn), carrying real speech.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from bench.turn import Coturn
from ptt_client import events
from ptt_client.calls.manager import Call
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.orgfixture import Org, joined_radio, start_server, user_record
from tests.ptt_client.calls.pair import RecordingOutput, speech_pcm, wav_source
from tests.ptt_client.speech import similarity


@pytest.fixture
async def radios(org: Org, server: RelayServer) -> AsyncIterator[dict[str, RadioClient]]:
    started: dict[str, RadioClient] = {}
    try:
        for user in ("alice", "bob", "carol", "disp"):
            started[user] = await joined_radio(org, server, user)
        yield started
    finally:
        for radio in started.values():
            await radio.stop()


def speaks(
    index: int, heard: RecordingOutput | None = None
) -> Callable[[Call], tuple[object, object]]:
    return lambda call: (wav_source(index), heard)


async def ended(radio: RadioClient, reason: str | None = None) -> events.CallEnded:
    return await radio.wait_for(
        events.CallEnded, lambda e: reason is None or e.reason == reason, timeout=15
    )


async def test_a_call_carries_speech_both_ways_and_is_logged(
    radios: dict[str, RadioClient], server: RelayServer
) -> None:
    alice, bob = radios["alice"], radios["bob"]
    heard_by_bob, heard_by_alice = RecordingOutput(), RecordingOutput()
    alice.calls.audio = speaks(0, heard_by_alice)  # type: ignore[assignment]
    bob.calls.audio = speaks(1, heard_by_bob)  # type: ignore[assignment]
    call = await alice.calls.dial("bob")
    alerted = await bob.wait_for(events.CallAlerting)
    assert (alerted.peer, alerted.display_name, alerted.outgoing) == ("alice", "Alice Adams", False)
    up = await alice.wait_for(events.CallConnected, timeout=10)
    assert (up.peer, up.mode, up.relayed) == ("bob", control.CALL_FULL_DUPLEX, False)
    await bob.wait_for(events.CallConnected, timeout=10)
    async with asyncio.timeout(15):
        await heard_by_bob.wait_for(len(speech_pcm(0)))
        await heard_by_alice.wait_for(len(speech_pcm(1)))
    assert similarity(speech_pcm(0), heard_by_bob.pcm()) > 0.8
    assert similarity(speech_pcm(1), heard_by_alice.pcm()) > 0.8
    await alice.calls.hangup()
    end = await ended(bob)
    assert (end.reason, end.peer) == (control.END_HANGUP, "alice") and "alice hung up" in end.text
    assert call.ended.is_set() and alice.calls.active is None and bob.calls.active is None
    (record,) = await server.store.call_log("bob", 10)
    assert (record.caller, record.callee, record.outcome, record.ended_by) == (
        "alice",
        "bob",
        control.END_HANGUP,
        "alice",
    )
    assert record.answered_at is not None and record.ended_at is not None
    assert record.offered_at <= record.answered_at <= record.ended_at


async def test_a_call_through_turn_keeps_to_relay_candidates(org: Org) -> None:
    with Coturn() as turn:
        server = await start_server(org, turn_urls=[turn.url], turn_secret=turn.secret)
        alice = await joined_radio(org, server, "alice")
        bob = await joined_radio(org, server, "bob")
        try:
            heard = RecordingOutput()
            alice.calls.audio = speaks(0)  # type: ignore[assignment]
            bob.calls.audio = speaks(1, heard)  # type: ignore[assignment]
            alice.calls.relay_only = bob.calls.relay_only = True
            await alice.calls.dial("bob")
            up = await alice.wait_for(events.CallConnected, timeout=15)
            assert up.relayed
            assert (await bob.wait_for(events.CallConnected, timeout=15)).relayed
            async with asyncio.timeout(15):
                await heard.wait_for(len(speech_pcm(0)) // 2)
            # Both radios' allocations are coturn's: the relay handed out working credentials.
            assert any("alice" in line for line in turn.lines)
            assert any("bob" in line for line in turn.lines)
        finally:
            await alice.stop()
            await bob.stop()
            await server.stop()


async def test_manual_commencement_rings_until_accepted_or_refused(
    radios: dict[str, RadioClient],
) -> None:
    alice, bob = radios["alice"], radios["bob"]
    bob.calls.auto_answer = False
    await alice.calls.dial("bob", commencement=control.COMMENCEMENT_MANUAL)
    await bob.wait_for(events.CallAlerting, lambda e: not e.outgoing)
    await alice.wait_for(events.CallAlerting, lambda e: e.outgoing)  # ringing at bob's
    await bob.calls.refuse()
    end = await ended(alice)
    assert end.reason == control.END_REFUSED and "bob refused" in end.text
    await alice.calls.dial("bob", commencement=control.COMMENCEMENT_MANUAL)
    await bob.wait_for(events.CallAlerting, lambda e: not e.outgoing)
    await bob.calls.accept()
    await alice.wait_for(events.CallConnected, timeout=10)
    await bob.calls.hangup()
    assert (await ended(alice)).reason == control.END_HANGUP


async def test_a_call_left_ringing_times_out_on_both_sides(
    radios: dict[str, RadioClient], server: RelayServer
) -> None:
    alice, bob = radios["alice"], radios["bob"]
    server.calls.ring_timeout = 0.5
    bob.calls.auto_answer = False
    await alice.calls.dial("bob", commencement=control.COMMENCEMENT_MANUAL)
    assert (await ended(alice)).reason == control.END_NO_ANSWER
    assert (await ended(bob)).reason == control.END_NO_ANSWER
    assert bob.calls.active is None


async def test_offline_forbidden_and_busy_callees_are_refused_with_a_reason(
    org: Org, radios: dict[str, RadioClient], server: RelayServer
) -> None:
    alice, bob, carol = radios["alice"], radios["bob"], radios["carol"]
    await server.store.put_user(user_record(org.admin))  # the authority, as ptt-admin enrols it
    server.calls.offer_burst = 10  # more calls than an officer places in a row
    await bob.stop()
    await alice.calls.dial("bob")
    end = await ended(alice)
    assert end.reason == control.END_OFFLINE and "not logged in" in end.text
    await alice.calls.dial("admin")
    end = await ended(alice)
    assert end.reason == control.END_FORBIDDEN and "may not call admin" in end.text
    await alice.calls.dial("nobody")
    assert (await ended(alice)).reason == control.END_FORBIDDEN
    # Busy: carol calls alice while alice talks with the dispatcher.
    await alice.calls.dial("disp")
    await alice.wait_for(events.CallConnected, timeout=10)
    await carol.calls.dial("alice")
    end = await ended(carol)
    assert end.reason == control.END_BUSY and "alice is in another call" in end.text
    assert alice.calls.active is not None and alice.calls.active.peer == "disp"


async def test_an_emergency_call_preempts_and_is_answered_at_once(
    radios: dict[str, RadioClient],
) -> None:
    alice, bob, carol = radios["alice"], radios["bob"], radios["carol"]
    bob.calls.auto_answer = False  # an emergency call is answered all the same
    await alice.calls.dial("bob", commencement=control.COMMENCEMENT_MANUAL)
    await bob.wait_for(events.CallAlerting, lambda e: not e.outgoing)
    await carol.calls.dial("bob", emergency=True)
    assert (await ended(alice)).reason == control.END_PREEMPTED
    up = await bob.wait_for(events.CallConnected, timeout=10)
    assert (up.peer, up.emergency) == ("carol", True)


async def test_a_peer_that_vanishes_ends_the_call_for_the_other(
    radios: dict[str, RadioClient],
) -> None:
    alice, bob = radios["alice"], radios["bob"]
    await alice.calls.dial("bob")
    await alice.wait_for(events.CallConnected, timeout=10)
    # Bob's radio drops off the network: its control connection is cut, no goodbye.
    assert bob._socket is not None
    bob._socket.transport.abort()
    end = await ended(alice)
    assert end.reason in (control.END_PEER_GONE, control.END_FAILED), end
    assert alice.calls.active is None


async def test_half_duplex_the_floor_goes_to_who_presses_first(
    radios: dict[str, RadioClient],
) -> None:
    alice, bob = radios["alice"], radios["bob"]
    await alice.calls.dial("bob", mode=control.CALL_HALF_DUPLEX)
    await alice.wait_for(events.CallConnected, timeout=10)
    await bob.wait_for(events.CallConnected, timeout=10)
    await alice.calls.talk(True)
    await bob.wait_for(control.CallTalker, lambda m: m.user_id == "alice")
    assert alice.calls.active is not None and alice.calls.active.media is not None
    await alice.wait_for(control.CallTalker, lambda m: m.user_id == "alice")
    assert alice.calls.active.media.sending
    bob_call = bob.calls.active
    assert bob_call is not None and bob_call.media is not None and not bob_call.media.sending
    await alice.calls.talk(False)
    await bob.wait_for(control.CallTalker, lambda m: m.user_id == "")


async def test_an_offer_flood_is_rate_limited(radios: dict[str, RadioClient]) -> None:
    alice = radios["alice"]
    reasons = []
    for _ in range(5):
        await alice.calls.dial("nobody")
        reasons.append((await ended(alice)).reason)
    assert reasons[:3] == [control.END_FORBIDDEN] * 3
    assert control.END_RATE_LIMITED in reasons[3:]


async def test_garbage_call_messages_do_not_hurt_a_radio(
    org: Org, radios: dict[str, RadioClient], server: RelayServer
) -> None:
    """A relay (or a bug) sends call messages for calls that do not exist, or mangled ones."""
    bob = radios["bob"]
    session = server.sessions.by_user["bob"]
    for message in (
        control.CallAnswer(call_id=b"x" * 16, description=b"garbage"),
        control.CallEnd(call_id=b"x" * 16, reason=control.END_HANGUP),
        control.CallIncoming(call_id=b"y" * 16, from_user="alice", description=b"\x01garbage"),
        control.CallTalker(call_id=b"x" * 16, user_id="alice"),
    ):
        session.send(message)
    end = await ended(bob)
    assert end.reason == control.END_FAILED and "refused" in end.text
    await bob.ping_server()
    assert bob.calls.active is None
    # Still a working radio: it places a call.
    await bob.calls.dial("alice")
    await bob.wait_for(events.CallConnected, timeout=10)


async def test_an_emergency_call_stops_the_callees_group_talk(
    org: Org, radios: dict[str, RadioClient]
) -> None:
    bob, carol = radios["bob"], radios["carol"]
    await bob.press(org.channel_id)
    await bob.wait_for(control.FloorGranted)
    assert bob.keys_down() == [org.channel_id]
    await carol.calls.dial("bob", emergency=True)
    await bob.wait_for(events.CallConnected, timeout=10)
    assert bob.keys_down() == []
    idle = await carol.wait_for(control.FloorIdle, lambda m: m.channel_id == org.channel_id)
    assert idle.channel_id == org.channel_id
