"""More attacks on private calls, end to end: a hostile relay, a malicious member, a flaky
network. Real relay (TLS, SQLite), real radios, real aiortc media on 127.0.0.1.

A malicious member is a real radio whose own code is bent (its call ids, the messages it
sends through its own connection); a hostile relay is the real one with a handler wrapped
(``evil``) or a message pushed into a session.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from crypto.call_description import CallDescription, sign_call_description
from ptt_client import events
from ptt_client.calls import manager as call_manager
from ptt_client.calls.media import CallMedia
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.orgfixture import Org, joined_radio
from tests.ptt_client.calls.test_call_attacks import Watch, evil


@pytest.fixture
async def radios(org: Org, server: RelayServer) -> AsyncIterator[dict[str, RadioClient]]:
    started: dict[str, RadioClient] = {}
    try:
        for user in ("alice", "bob", "carol"):
            started[user] = await joined_radio(org, server, user)
        yield started
    finally:
        for radio in started.values():
            await radio.stop()


@pytest.fixture
def medias(monkeypatch: pytest.MonkeyPatch) -> list[CallMedia]:
    """Every CallMedia made in the test, to show none is left open."""
    made: list[CallMedia] = []
    real_init = CallMedia.__init__

    def init(self: CallMedia, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(CallMedia, "__init__", init)
    return made


async def ended(radio: RadioClient, reason: str | None = None) -> events.CallEnded:
    return await radio.wait_for(
        events.CallEnded, lambda e: reason is None or e.reason == reason, timeout=15
    )


async def all_closed(medias: list[CallMedia]) -> None:
    """Every peer connection made is closed (its shutdown ran to the end)."""
    for media in medias:
        assert media.ended_reason is not None, "a call's peer connection was left open"
        task = media._shutdown_task
        assert task is not None
        await task


# --- a malicious member --------------------------------------------------------------------


async def test_an_ended_calls_id_cannot_be_reused_to_hide_a_call_or_rewrite_the_log(
    radios: dict[str, RadioClient], server: RelayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice's radio picks the id of a call bob refused for her next call, to carol: the
    relay must refuse it, or carol's call goes unlogged and bob's row shows it answered."""
    alice, bob, carol = radios["alice"], radios["bob"], radios["carol"]
    bob.calls.auto_answer = False
    first = await alice.calls.dial("bob", commencement=control.COMMENCEMENT_MANUAL)
    await bob.wait_for(events.CallAlerting, lambda e: not e.outgoing)
    await bob.calls.refuse()
    await ended(alice)
    # Only this radio's call ids are bent (websockets draws its masks from ``secrets`` too).
    monkeypatch.setattr(
        call_manager, "secrets", SimpleNamespace(token_bytes=lambda n: first.call_id)
    )
    watch_carol = Watch(carol)
    await alice.calls.dial("carol")
    end = await alice.wait_for(
        object, lambda e: isinstance(e, events.CallEnded | events.CallConnected), timeout=15
    )
    if isinstance(end, events.CallConnected):  # the hole: show what the log then says
        await alice.calls.hangup()
        await ended(carol)
        rows = await server.store.call_log(None, 10)
        pytest.fail(f"a reused call id went through; the call log says {rows}")
    assert isinstance(end, events.CallEnded)
    assert end.reason == control.END_FAILED and "call id is in use" in end.text, end
    await carol.ping_server()
    assert not any(isinstance(e, events.CallAlerting) for e in watch_carol.seen)
    (row,) = await server.store.call_log("bob", 10)
    assert (row.callee, row.answered_at, row.outcome) == ("bob", None, control.END_REFUSED)
    assert await server.store.call_log("carol", 10) == []


# --- a flaky network, an impatient officer, a relay that repeats itself --------------------


async def test_a_call_hung_up_while_dialing_never_rings_and_leaves_nothing_open(
    radios: dict[str, RadioClient], server: RelayServer, medias: list[CallMedia]
) -> None:
    """The officer hangs up while the radio still gathers its candidates."""
    alice, bob = radios["alice"], radios["bob"]
    watch_bob = Watch(bob)
    hung_up: list[asyncio.Task[None]] = []

    def hang_up_at_once(call: Any) -> tuple[None, None]:
        # Called as the peer connection is made, before the offer: hang up right then.
        hung_up.append(asyncio.ensure_future(alice.calls.hangup()))
        return None, None

    alice.calls.audio = hang_up_at_once
    call = await alice.calls.dial("bob")
    await hung_up[0]
    assert call.ended.is_set() and alice.calls.active is None
    await alice.ping_server()  # the relay has seen whatever alice sent before
    await bob.ping_server()
    assert len(server.calls) == 0, "the relay rings a call the caller hung up"
    assert not any(isinstance(e, events.CallAlerting) for e in watch_bob.seen)
    assert await server.store.call_log("bob", 10) == []
    await all_closed(medias)


async def test_a_repeated_call_incoming_is_one_call(
    radios: dict[str, RadioClient],
    server: RelayServer,
    medias: list[CallMedia],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The relay sends bob every CallIncoming twice: bob answers once, and the call is his."""
    alice, bob = radios["alice"], radios["bob"]
    watch_bob = Watch(bob)
    session = server.sessions.by_user["bob"]
    honest_send = session.send

    def send_twice(message: control.Message, **options: Any) -> None:
        honest_send(message, **options)
        if isinstance(message, control.CallIncoming):
            honest_send(message, **options)

    monkeypatch.setattr(session, "send", send_twice)
    await alice.calls.dial("bob")
    await alice.wait_for(events.CallConnected, timeout=10)
    await bob.ping_server()  # the repeat has arrived too
    assert [type(e) for e in watch_bob.seen if isinstance(e, events.CallAlerting)] == [
        events.CallAlerting
    ]
    assert not any(isinstance(e, events.CallEnded) for e in watch_bob.seen), watch_bob.seen
    assert bob.calls.active is not None
    await bob.calls.hangup()
    assert (await ended(alice)).reason == control.END_HANGUP
    await all_closed(medias)


async def test_a_callee_that_logs_in_again_while_ringing_ends_the_call_at_once(
    org: Org, radios: dict[str, RadioClient], server: RelayServer
) -> None:
    """alice's radio reconnects (a new connection takes over her session) while bob's call
    rings there: the relay forgets that call, bob is told, alice's new session is free."""
    alice, bob = radios["alice"], radios["bob"]
    alice.calls.auto_answer = False
    await bob.calls.dial("alice", commencement=control.COMMENCEMENT_MANUAL)
    await alice.wait_for(events.CallAlerting, lambda e: not e.outgoing)
    again = await joined_radio(org, server, "alice")
    try:
        end = await ended(bob)
        assert end.reason == control.END_PEER_GONE, end
        assert server.calls.call_of("alice") is None and len(server.calls) == 0
        assert again.reconnects == 0  # its login went through the first time
        await again.calls.dial("carol")
        await again.wait_for(events.CallConnected, timeout=10)
    finally:
        await again.stop()


# --- a hostile relay -----------------------------------------------------------------------


async def test_a_replayed_call_incoming_of_an_ended_call_does_not_ring_again(
    radios: dict[str, RadioClient], server: RelayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offer is fresh (signed seconds ago) and names its own call: only the radio's
    memory of the calls offered to it tells a replay from a call."""
    alice, bob = radios["alice"], radios["bob"]
    session = server.sessions.by_user["bob"]
    honest_send = session.send
    recorded: list[control.CallIncoming] = []

    def record(message: control.Message, **options: Any) -> None:
        if isinstance(message, control.CallIncoming):
            recorded.append(message)
        honest_send(message, **options)

    monkeypatch.setattr(session, "send", record)
    await alice.calls.dial("bob")
    await bob.wait_for(events.CallConnected, timeout=10)
    await alice.calls.hangup()
    await ended(bob)
    watch_bob = Watch(bob)
    honest_send(recorded[0])
    end = await ended(bob)
    assert end.reason == control.END_FAILED and "offered to this radio before" in end.text, end
    assert not any(isinstance(e, events.CallAlerting) for e in watch_bob.seen)
    assert bob.calls.active is None


async def test_only_a_signed_emergency_ends_the_call_a_radio_is_in(
    radios: dict[str, RadioClient], server: RelayServer
) -> None:
    """The relay's emergency flag on a CallIncoming it made up does not end bob's call."""
    alice, bob = radios["alice"], radios["bob"]
    await alice.calls.dial("bob")
    await bob.wait_for(events.CallConnected, timeout=10)
    server.sessions.by_user["bob"].send(
        control.CallIncoming(
            call_id=b"e" * 16, from_user="carol", emergency=True, description=b"\x01forged"
        )
    )
    end = await ended(bob)
    assert end.call_id == b"e" * 16 and "offer from carol refused" in end.text, end
    assert bob.calls.active is not None and bob.calls.active.peer == "alice"
    assert alice.calls.active is not None


async def test_the_relay_cannot_mute_a_full_duplex_call_or_ring_a_connected_one(
    radios: dict[str, RadioClient], server: RelayServer
) -> None:
    """A full-duplex call has no floor: a CallTalker for it (or a late CallRinging) changes
    nothing on the radio, which would otherwise send silence and show the call ringing."""
    alice = radios["alice"]
    await alice.calls.dial("bob")
    await alice.wait_for(events.CallConnected, timeout=10)
    call = alice.calls.active
    assert call is not None and call.media is not None
    watch_alice = Watch(alice)
    session = server.sessions.by_user["alice"]
    session.send(control.CallTalker(call_id=call.call_id, user_id="bob"))
    session.send(control.CallRinging(call_id=call.call_id))
    await alice.ping_server()
    assert call.media.sending, "the relay muted alice in a full-duplex call"
    assert call.state == "connected"
    assert not any(isinstance(e, events.CallAlerting) for e in watch_alice.seen)


async def test_twenty_failed_calls_leave_no_thread_socket_or_peer_connection_behind(
    radios: dict[str, RadioClient],
    server: RelayServer,
    medias: list[CallMedia],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Calls refused by the caller after the callee made its media (a rewritten answer), by
    the callee (manual, refused) and by the relay (no answer): afterwards the process holds
    what it held before."""
    alice, bob = radios["alice"], radios["bob"]
    server.calls.offer_burst = 100
    server.calls.ring_timeout = 0.3

    async def bad_answer(answer: control.CallAnswer) -> control.CallAnswer:
        flipped = answer.description[:-1] + bytes((answer.description[-1] ^ 1,))
        return msgspec.structs.replace(answer, description=flipped)  # a signature byte

    evil(monkeypatch, control.CallAnswer, bad_answer)

    async def fail_calls(count: int) -> None:
        for n in range(count):
            if n % 3 == 0:
                bob.calls.auto_answer = True
                await alice.calls.dial("bob")
                await ended(bob)
            else:
                bob.calls.auto_answer = False
                await alice.calls.dial("bob", commencement=control.COMMENCEMENT_MANUAL)
                await bob.wait_for(events.CallAlerting, lambda e: not e.outgoing)
                if n % 3 == 1:
                    await bob.calls.refuse()
                else:
                    await ended(bob, control.END_NO_ANSWER)
            await ended(alice)
        await all_closed(medias)

    await fail_calls(3)  # aiortc and the executor make their pools once
    threads, sockets = threading.active_count(), open_sockets()
    await fail_calls(20)
    assert len(medias) >= 20 and alice.calls.active is None and bob.calls.active is None
    assert all(t.done() for t in (*alice.calls._tasks, *bob.calls._tasks))
    assert (threading.active_count(), open_sockets()) == (threads, sockets)
    assert len(server.calls) == 0


def open_sockets() -> int:
    return sum(1 for fd in os.listdir("/proc/self/fd") if "socket" in _link(f"/proc/self/fd/{fd}"))


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


async def test_every_ended_call_has_its_end_and_outcome_in_the_log(
    org: Org, radios: dict[str, RadioClient], server: RelayServer
) -> None:
    """One call down each path (hung up, refused, unanswered, offline, busy, pre-empted, a
    party gone while ringing and while connected); then every row is complete and in order."""
    alice, bob, carol = radios["alice"], radios["bob"], radios["carol"]
    server.calls.offer_burst = 20
    server.calls.ring_timeout = 0.3
    await alice.calls.dial("bob")
    await bob.wait_for(events.CallConnected, timeout=10)
    await alice.calls.hangup()
    await ended(bob)
    bob.calls.auto_answer = False
    for refuse in (True, False):
        call = await alice.calls.dial("bob", commencement=control.COMMENCEMENT_MANUAL)
        await bob.wait_for(events.CallAlerting, lambda e: not e.outgoing)
        if refuse:
            await bob.calls.refuse()
        await call.ended.wait()
    bob.calls.auto_answer = True
    await (await alice.calls.dial("nobody")).ended.wait()
    to_carol = await alice.calls.dial("carol")
    await carol.wait_for(events.CallConnected, timeout=10)
    busy = await bob.calls.dial("carol")
    await busy.ended.wait()
    assert busy.end is not None and busy.end.reason == control.END_BUSY
    urgent = await bob.calls.dial("carol", emergency=True)
    await to_carol.ended.wait()
    assert to_carol.end is not None and to_carol.end.reason == control.END_PREEMPTED
    await carol.wait_for(events.CallConnected, lambda e: e.peer == "bob", timeout=10)
    assert carol._socket is not None
    carol._socket.transport.abort()  # carol's radio drops off the network mid-call
    await urgent.ended.wait()
    await carol.wait_for(events.Connected, timeout=15)  # it reconnects
    carol.calls.auto_answer = False
    ringing = await bob.calls.dial("carol", commencement=control.COMMENCEMENT_MANUAL)
    await carol.wait_for(events.CallAlerting, lambda e: not e.outgoing and e.peer == "bob")
    assert carol._socket is not None
    carol._socket.transport.abort()  # and again while it rings
    await ringing.ended.wait()
    assert ringing.end is not None and ringing.end.reason == control.END_PEER_GONE
    rows = await server.store.call_log(None, 50)
    outcomes = sorted(r.outcome for r in rows)
    assert outcomes == sorted(
        [
            control.END_HANGUP,
            control.END_REFUSED,
            control.END_NO_ANSWER,
            control.END_FORBIDDEN,
            control.END_PREEMPTED,
            control.END_BUSY,
            control.END_PEER_GONE,
            control.END_PEER_GONE,
        ]
    ), rows
    for row in rows:
        assert row.ended_at is not None and row.offered_at <= row.ended_at, row
        if row.answered_at is not None:
            assert row.offered_at <= row.answered_at <= row.ended_at, row
    assert len(server.calls) == 0


async def test_a_member_revoked_mid_call_is_cut_off_and_cannot_call_back(
    org: Org, radios: dict[str, RadioClient], server: RelayServer
) -> None:
    """bob's device is reported lost during a call with alice: the relay drops its session,
    so alice's call ends at once, and a description bob's keys still sign is refused."""
    alice, bob = radios["alice"], radios["bob"]
    await alice.calls.dial("bob")
    await bob.wait_for(events.CallConnected, timeout=10)
    await org.revoke(server, 1, org.accounts["bob"])
    end = await ended(alice)
    assert end.reason == control.END_PEER_GONE, end
    assert len(server.calls) == 0
    await alice.ping_server()  # alice has the new revocation list
    forged = await bob_offers_alice_directly(org, server)
    refused = await ended(alice)
    assert refused.call_id == forged and "revoked" in refused.text, refused


async def bob_offers_alice_directly(org: Org, server: RelayServer) -> bytes:
    """The relay (or a copy of bob's keys) hands alice an offer bob's revoked device signed."""
    call_id = b"r" * 16
    bob = org.accounts["bob"]
    description = CallDescription(
        call_id=call_id,
        side="offer",
        caller="bob",
        callee="alice",
        mode="full_duplex",
        emergency=False,
        commencement="automatic",
        sdp="v=0\r\n",
        fingerprints=(("sha-256", "AA"),),
        issued_at=time.time(),
    )
    server.sessions.by_user["alice"].send(
        control.CallIncoming(
            call_id=call_id,
            from_user="bob",
            description=sign_call_description(description, bob.keys, bob.credential),
        )
    )
    return call_id
