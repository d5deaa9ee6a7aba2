"""Limits and checks that no earlier test noticed when removed (issue 10): each test here
fails if its limit or check is taken out of the server."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from crypto.epoch import new_epoch_key, wrap_epoch
from ptt_protocol import control, media
from ptt_server.server import RelayServer
from ptt_server.sessions import OUTBOUND_BYTES_LIMIT, OUTBOUND_QUEUE_LIMIT, OutboundQueue, Session
from tests.orgfixture import Org, start_server
from tests.ptt_server.rawclient import logged_in


async def test_floor_requests_past_the_rate_limit_are_refused(
    org: Org, server: RelayServer
) -> None:
    async with logged_in(server, org, "alice") as c:
        alice = c["alice"]
        burst = int(server.config.rate_floor_per_s * 2)  # the bucket's capacity
        for _ in range(burst + 5):
            await alice.request_floor(org.channel_id)
            await alice.send(control.FloorRelease(channel_id=org.channel_id))
        await alice.ping()
        limited = [e for e in alice.received(control.Error) if e.code == control.ERROR_RATE_LIMITED]
        assert limited and "floor requests" in limited[0].text
        assert len(alice.received(control.FloorGranted)) <= burst


async def test_control_bytes_past_the_rate_limit_are_refused(org: Org) -> None:
    server = await start_server(org, rate_control_bytes_per_s=2000.0)
    try:
        async with logged_in(server, org, "alice") as c:
            alice = c["alice"]
            for nonce in range(60):  # ~100 bytes each, far over 2 x 2000 bytes at once
                await alice.send(control.Ping(nonce=nonce))
                await alice.send(control.SetStatus(status=control.STATUS_BUSY))
                await alice.send(control.MediaTunnel(datagram=secrets.token_bytes(60)))
            limited = await alice.wait_for(
                control.Error, lambda e: e.code == control.ERROR_RATE_LIMITED
            )
            assert "too many bytes" in limited.text
            assert len(alice.received(control.Pong)) < 60
    finally:
        await server.stop()


def test_a_slow_consumer_is_cut_off_by_bytes_before_the_message_count() -> None:
    """A few big messages to a client that does not read fill the byte cap long before the
    queue's message count: the session closes instead of buffering them."""
    closed: list[str] = []
    loop = asyncio.new_event_loop()
    try:
        queue = OutboundQueue(OUTBOUND_QUEUE_LIMIT)
        session = Session(
            credential=None,  # type: ignore[arg-type]
            hop=media.HopSession(1, bytes(32), "server"),
            outbound=queue,
            core=None,  # type: ignore[arg-type]
            close=closed.append,
        )
        big = control.encode(control.Credentials(credentials=(bytes(16_000),) * 3))
        sent = 0
        while not closed:
            session.send_encoded(big)
            sent += 1
            assert sent < OUTBOUND_QUEUE_LIMIT
        assert sent * len(big) > OUTBOUND_BYTES_LIMIT
        assert session.queued_bytes <= OUTBOUND_BYTES_LIMIT
        assert "too slow" in closed[0]
    finally:
        loop.close()


async def test_an_envelope_addressed_otherwise_than_its_message_is_refused(
    org: Org, server: RelayServer
) -> None:
    disp = org.accounts["disp"]
    credentials = {u: a.credential for u, a in org.accounts.items()}
    envelopes = wrap_epoch(
        new_epoch_key(org.channel_id, 1, 1), org.roster, credentials, disp.keys, disp.credential
    )
    async with logged_in(server, org, "disp", "bob") as c:
        sender, bob = c["disp"], c["bob"]
        # Alice's envelope, labelled for bob: the server would store it as bob's key.
        await sender.send(
            control.KeyEnvelope(
                channel_id=org.channel_id, epoch=1, recipient="bob", envelope=envelopes["alice"]
            )
        )
        error = await sender.wait_for(control.Error)
        assert error.code == control.ERROR_BAD_MESSAGE and "addressed otherwise" in error.text
        await bob.ping()
        assert [e.recipient for e in bob.received(control.KeyEnvelope)] == ["bob"]  # login's only
        stored = await server.store.envelopes_for("bob")
        assert [s.envelope for s in stored] != [envelopes["alice"]]


async def test_location_reports_are_pushed_at_once_but_written_behind(
    org: Org, server: RelayServer
) -> None:
    """Every report reaches the dispatchers; the store sees one write per interval, and the
    newest location is stored by the time the officer logs out."""
    writes: list[object] = []
    real_put = server.store.put_presence

    async def counted(presence: object) -> None:
        writes.append(presence)
        await real_put(presence)  # type: ignore[arg-type]

    server.store.put_presence = counted  # type: ignore[method-assign]
    async with logged_in(server, org, "disp", "alice") as c:
        disp, alice = c["disp"], c["alice"]
        await disp.send(control.PresenceSubscribe())
        await disp.wait_for(control.PresenceUpdate, lambda p: p.user_id == "alice")
        before = len(writes)
        for n in range(20):
            await alice.send(control.LocationReport(sealed_location=bytes([n]) * 40))
        last = bytes([19]) * 40
        await disp.wait_for(control.PresenceUpdate, lambda p: p.sealed_location == last)
        await alice.ping()
        assert len(writes) - before <= 2  # the first report, and maybe the interval's end
        assert len([e for e in alice.received(control.Error) if e.code == "rate_limited"]) == 0
        await alice.close()
        await disp.wait_for(control.PresenceUpdate, lambda p: p.user_id == "alice" and not p.online)
    stored = await server.store.get_presence("alice")
    assert stored is not None and stored.sealed_location == last and not stored.online


async def test_floor_messages_overtake_a_backlog_and_a_close_waits_for_the_queue() -> None:
    queue = OutboundQueue(8)
    for n in range(3):
        assert queue.put(b"text %d" % n)
    assert queue.put(b"floor taken", urgent=True)
    queue.close()
    assert not queue.put(b"late")  # nothing after the close
    got = [await queue.get() for _ in range(5)]
    assert got == [b"floor taken", b"text 0", b"text 1", b"text 2", None]


def test_the_queue_is_bounded_in_messages() -> None:
    queue = OutboundQueue(2)
    assert queue.put(b"a") and queue.put(b"b", urgent=True)
    assert queue.full() and not queue.put(b"c", urgent=True)
    assert len(queue) == 2


async def test_a_handler_that_fails_refuses_the_message_and_keeps_the_session(
    org: Org, server: RelayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ptt_server import handlers

    async def broken(*_: object) -> None:
        raise RuntimeError("a bug tripped by this message")

    monkeypatch.setitem(handlers.HANDLERS, control.SetStatus, broken)
    async with logged_in(server, org, "alice") as c:
        alice = c["alice"]
        await alice.send(control.SetStatus(status=control.STATUS_BUSY))
        error = await alice.wait_for(control.Error)
        assert error.code == control.ERROR_INTERNAL and "bug" not in error.text
        await alice.ping()  # the connection and its session go on
        assert "alice" in server.sessions.by_user
