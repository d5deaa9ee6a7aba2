"""Emergency alerts: delivery, persistence across a restart, ack, cancel, emergency floor."""

from __future__ import annotations

import os
import time

import msgspec

from crypto.identity import Role
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.orgfixture import Org, start_server
from tests.ptt_server.rawclient import RawClient, connect, logged_in


def alert_from(
    user: str,
    channel_id: int,
    alert_id: bytes | None = None,
    location: bytes = b"sealed-location-blob",
) -> control.EmergencyAlert:
    return control.EmergencyAlert(
        alert_id=alert_id or os.urandom(16),
        user_id=user,
        channel_id=channel_id,
        sealed_location=location,
        raised_at=time.time(),
    )


async def test_alert_survives_restart_then_ack_and_cancel(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    alert = alert_from("alice", cid)
    async with logged_in(server, org, "disp", "alice", "bob") as c:
        disp, alice, bob = c["disp"], c["alice"], c["bob"]
        await alice.send(alert)
        got = await disp.wait_for(control.EmergencyAlert)
        assert (got.alert_id, got.user_id, got.channel_id) == (alert.alert_id, "alice", cid)
        assert got.sealed_location == alert.sealed_location
        # Channel members hear of it too.
        await bob.wait_for(control.EmergencyAlert, lambda a: a.alert_id == alert.alert_id)
        # Nobody raises an alert in someone else's name.
        await bob.send(alert_from("carol", cid))
        assert (await bob.wait_for(control.Error)).code == control.ERROR_FORBIDDEN
        await disp.ping()
        assert len(disp.received(control.EmergencyAlert)) == 1

    await server.stop()
    restarted = await start_server(org)
    try:
        async with logged_in(restarted, org, "disp", "alice", affiliate=False) as c:
            disp, alice = c["disp"], c["alice"]
            again = await disp.wait_for(control.EmergencyAlert)
            assert (again.alert_id, again.user_id) == (alert.alert_id, "alice")
            await disp.send(control.EmergencyAck(alert_id=alert.alert_id, by_user="bob"))
            ack = await alice.wait_for(control.EmergencyAck)
            assert (ack.alert_id, ack.by_user) == (alert.alert_id, "disp")
            # Officers do not acknowledge.
            await alice.send(control.EmergencyAck(alert_id=alert.alert_id, by_user="alice"))
            assert (await alice.wait_for(control.Error)).code == control.ERROR_FORBIDDEN

            await alice.send(control.EmergencyCancel(alert_id=alert.alert_id, by_user="alice"))
            cancel = await disp.wait_for(control.EmergencyCancel)
            assert (cancel.alert_id, cancel.by_user) == (alert.alert_id, "alice")

        disp = await connect(restarted, org.accounts["disp"])
        try:
            await disp.ping()
            assert disp.received(control.EmergencyAlert) == []
        finally:
            await disp.close()
    finally:
        await restarted.stop()


async def test_unknown_alert_ack_and_cancel_refused(org: Org, server: RelayServer) -> None:
    async with logged_in(server, org, "disp", affiliate=False) as c:
        disp = c["disp"]
        await disp.send(control.EmergencyAck(alert_id=os.urandom(16), by_user="disp"))
        assert (await disp.wait_for(control.Error)).code == control.ERROR_NOT_FOUND
        await disp.send(control.EmergencyCancel(alert_id=os.urandom(16), by_user="disp"))
        assert (await disp.wait_for(control.Error)).code == control.ERROR_NOT_FOUND


async def emergency_pre_empts(disp: RawClient, alice: RawClient, bob: RawClient, cid: int) -> None:
    await disp.take_floor(cid)
    await alice.wait_for(control.FloorTaken, lambda m: m.user_id == "disp")
    await alice.request_floor(cid, priority=4)
    revoke = await disp.wait_for(control.FloorRevoke)
    assert revoke.cause == "Media Burst pre-empted"
    granted = await alice.wait_for(control.FloorGranted)
    assert granted.duration_limit == 0.0  # emergency: no T2 limit
    taken = await bob.wait_for(control.FloorTaken, lambda m: m.user_id == "alice")
    assert taken.priority == 4
    taken = await disp.wait_for(control.FloorTaken, lambda m: m.user_id == "alice")
    assert taken.priority == 4


async def test_officer_in_emergency_pre_empts_dispatcher(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "disp", "alice", "bob") as c:
        disp, alice, bob = c["disp"], c["alice"], c["bob"]
        await alice.send(alert_from("alice", cid))
        await disp.wait_for(control.EmergencyAlert)
        await emergency_pre_empts(disp, alice, bob, cid)


async def test_emergency_priority_without_alert_is_capped(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        await alice.take_floor(cid, priority=4)
        taken = await bob.wait_for(control.FloorTaken)
        assert taken.priority < 4


async def test_imminent_peril_comes_with_its_alert_ranks_below_emergency_and_upgrades(
    org: Org, server: RelayServer
) -> None:
    """TS 22.179: imminent peril is the level between dispatcher and emergency. Without an
    active alert a request for it gets the role's priority (any member could claim it on
    every press before issue 13); an emergency press makes the alert an emergency."""
    cid = org.channel_id
    async with logged_in(server, org, "disp", "alice", "bob") as c:
        disp, alice, bob = c["disp"], c["alice"], c["bob"]
        await alice.take_floor(cid, priority=3)
        assert (await bob.wait_for(control.FloorTaken)).priority == 1
        await alice.send(control.FloorRelease(channel_id=cid))
        await bob.wait_for(control.FloorIdle)
        peril = alert_from("alice", cid)
        peril = msgspec.structs.replace(peril, kind=control.ALERT_IMMINENT_PERIL)
        await alice.send(peril)
        shown = await disp.wait_for(control.EmergencyAlert, lambda a: a.alert_id == peril.alert_id)
        assert shown.kind == control.ALERT_IMMINENT_PERIL
        # Asking for 4 under a peril alert gives 3: above the dispatcher, below an emergency.
        await alice.take_floor(cid, priority=4)
        assert (await bob.wait_for(control.FloorTaken)).priority == 3
        await disp.request_floor(cid, priority=2)  # a dispatcher queues behind a peril
        await disp.wait_for(control.FloorQueuePosition)
        await bob.request_floor(cid, priority=4)  # bob has no alert: capped, queued
        await bob.wait_for(control.FloorQueuePosition)
        # An emergency press upgrades alice's alert (same id), and a peril press does not undo it.
        await alice.send(alert_from("alice", cid))
        upgraded = await disp.wait_for(
            control.EmergencyAlert, lambda a: a.kind == control.ALERT_EMERGENCY
        )
        assert upgraded.alert_id == peril.alert_id
        await alice.send(msgspec.structs.replace(peril, alert_id=os.urandom(16)))
        await alice.ping()
        [active] = await server.store.active_emergencies()
        assert (active.alert_id, active.kind, active.presses) == (peril.alert_id, "emergency", 3)


async def test_emergency_floor_survives_restart(org: Org, server: RelayServer) -> None:
    # The alert is still active after a restart, so the officer's emergency priority must be too.
    cid = org.channel_id
    async with logged_in(server, org, "disp", "alice") as c:
        await c["alice"].send(alert_from("alice", cid))
        await c["disp"].wait_for(control.EmergencyAlert)
    await server.stop()
    restarted = await start_server(org)
    try:
        async with logged_in(restarted, org, "disp", "alice", "bob") as c:
            await emergency_pre_empts(c["disp"], c["alice"], c["bob"], cid)
    finally:
        await restarted.stop()


# --- one active emergency per user, a limit on broadcasts (issue 9 section 3) --------------


def alerts_to(client: RawClient) -> list[control.EmergencyAlert]:
    return client.received(control.EmergencyAlert)


async def test_a_flood_of_fresh_ids_is_one_emergency_and_a_bounded_broadcast(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    config = server.config
    async with logged_in(server, org, "disp", "alice", "bob") as c:
        disp, alice, bob = c["disp"], c["alice"], c["bob"]
        flood = [alert_from("alice", cid, location=f"location-{i}".encode()) for i in range(300)]
        started = time.monotonic()
        for alert in flood:
            await alice.send(alert)
        await alice.ping()  # the server has handled all 300
        elapsed = time.monotonic() - started
        # Nothing is lost: the newest location goes out once the limit allows.
        await disp.wait_for(
            control.EmergencyAlert, lambda a: a.sealed_location == b"location-299", timeout=10
        )
        await bob.wait_for(
            control.EmergencyAlert, lambda a: a.sealed_location == b"location-299", timeout=10
        )
        await disp.ping()
        first_id = flood[0].alert_id
        # One emergency (the first id) and a handful of copies, not 300: the limiter's budget
        # over the time the flood took (not a bound on time: a slower run only allows more).
        most = config.rate_emergency_burst + 1 + int(elapsed * config.rate_emergency_per_s)
        for listener in (disp, bob):
            alerts = alerts_to(listener)
            assert {a.alert_id for a in alerts} == {first_id}
            assert len(alerts) <= most, (len(alerts), most)
        # The raiser hears the id of the alert its presses were merged into.
        assert {a.alert_id for a in alerts_to(alice)} == {first_id}
    active = await server.store.active_emergencies()
    assert [(e.alert_id, e.user_id, e.presses) for e in active] == [(first_id, "alice", 300)]
    assert active[0].sealed_location == b"location-299"


async def test_a_first_alert_past_the_limit_is_held_then_sent(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "disp", "alice") as c:
        disp, alice = c["disp"], c["alice"]
        # Raise and cancel, again and again: every raise is a new alert, past the limit soon.
        for _ in range(6):
            cycle = alert_from("alice", cid)
            await alice.send(cycle)
            await alice.send(control.EmergencyCancel(alert_id=cycle.alert_id, by_user="alice"))
        genuine = alert_from("alice", cid)
        await alice.send(genuine)
        await alice.ping()
        # The genuine alert reaches the dispatcher (a token later), and its floor priority
        # is there at once.
        await disp.wait_for(control.EmergencyAlert, lambda a: a.alert_id == genuine.alert_id)
        await disp.ping()
        seen = {a.alert_id for a in alerts_to(disp)}
        cancels = disp.received(control.EmergencyCancel)
        # Consoles never hear the cancel of an alert they were never sent.
        assert {m.alert_id for m in cancels} <= seen
        assert len(seen) <= server.config.rate_emergency_burst + 1
    assert [e.alert_id for e in await server.store.active_emergencies()] == [genuine.alert_id]


async def test_the_raiser_learns_the_recorded_id_and_can_cancel_by_its_own(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "disp", affiliate=False) as c:
        disp = c["disp"]
        alice = await connect(server, org.accounts["alice"])  # not listening to any channel
        try:
            first, second = alert_from("alice", cid), alert_from("alice", cid)
            await alice.send(first)
            assert (await alice.wait_for(control.EmergencyAlert)).alert_id == first.alert_id
            await alice.send(second)  # merged: the answer names the first
            assert (await alice.wait_for(control.EmergencyAlert)).alert_id == first.alert_id
            # Cancelled by the id the radio chose before it heard the answer.
            await alice.send(control.EmergencyCancel(alert_id=second.alert_id, by_user="alice"))
            cancel = await disp.wait_for(control.EmergencyCancel)
            assert (cancel.alert_id, cancel.by_user) == (first.alert_id, "alice")
        finally:
            await alice.close()
    assert await server.store.active_emergencies() == []


async def test_an_ack_or_cancel_after_the_first_is_answered_not_broadcast(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    second = org.issue("disp2", Role.DISPATCHER)
    await org.enroll(second)
    alert = alert_from("alice", cid)
    async with logged_in(server, org, "disp", "alice", "bob") as c:
        disp, alice, bob = c["disp"], c["alice"], c["bob"]
        disp2 = await connect(server, second)
        try:
            await alice.send(alert)
            await disp2.wait_for(control.EmergencyAlert)
            await disp.send(control.EmergencyAck(alert_id=alert.alert_id, by_user="disp"))
            await alice.wait_for(control.EmergencyAck)
            await disp2.wait_for(control.EmergencyAck)
            # The second dispatcher acknowledges too: it learns who was first, nobody else hears.
            await disp2.send(control.EmergencyAck(alert_id=alert.alert_id, by_user="disp2"))
            answer = await disp2.wait_for(control.EmergencyAck)
            assert (answer.alert_id, answer.by_user) == (alert.alert_id, "disp")
            await alice.send(control.EmergencyCancel(alert_id=alert.alert_id, by_user="alice"))
            await disp2.wait_for(control.EmergencyCancel)
            await disp2.send(control.EmergencyCancel(alert_id=alert.alert_id, by_user="disp2"))
            answer_cancel = await disp2.wait_for(control.EmergencyCancel)
            assert (answer_cancel.alert_id, answer_cancel.by_user) == (alert.alert_id, "alice")
            # An ack of the cancelled alert is answered with its cancel.
            await disp2.send(control.EmergencyAck(alert_id=alert.alert_id, by_user="disp2"))
            assert (await disp2.wait_for(control.EmergencyCancel)).by_user == "alice"
            for client in (disp, alice, bob, disp2):
                await client.ping()
            for client in (disp, alice, bob):
                assert len(client.received(control.EmergencyAck)) == 1, client.user_id
                assert len(client.received(control.EmergencyCancel)) == 1, client.user_id
            assert disp2.received(control.Error) == []
        finally:
            await disp2.close()


async def test_only_the_raiser_or_a_dispatcher_cancels(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    alert = alert_from("alice", cid)
    async with logged_in(server, org, "disp", "alice", "bob") as c:
        disp, alice, bob = c["disp"], c["alice"], c["bob"]
        await alice.send(alert)
        await bob.wait_for(control.EmergencyAlert)
        await bob.send(control.EmergencyCancel(alert_id=alert.alert_id, by_user="bob"))
        assert (await bob.wait_for(control.Error)).code == control.ERROR_FORBIDDEN
        for client in (disp, alice, bob):
            await client.ping()
            assert client.received(control.EmergencyCancel) == [], client.user_id
        assert [e.alert_id for e in await server.store.active_emergencies()] == [alert.alert_id]
        # Alice is still in emergency: her call pre-empts the dispatcher's.
        await emergency_pre_empts(disp, alice, bob, cid)
        # A dispatcher may cancel it.
        await disp.send(control.EmergencyCancel(alert_id=alert.alert_id, by_user="disp"))
        cancel = await alice.wait_for(control.EmergencyCancel)
        assert (cancel.alert_id, cancel.by_user) == (alert.alert_id, "disp")
    assert await server.store.active_emergencies() == []


async def test_a_late_retry_of_a_cancelled_alert_does_not_revive_it(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    alert = alert_from("alice", cid)
    async with logged_in(server, org, "disp", "alice", "bob") as c:
        disp, alice, bob = c["disp"], c["alice"], c["bob"]
        await alice.send(alert)
        await disp.wait_for(control.EmergencyAlert)
        await alice.send(control.EmergencyCancel(alert_id=alert.alert_id, by_user="alice"))
        await disp.wait_for(control.EmergencyCancel)
        await alice.wait_for(control.EmergencyCancel)  # her own cancel, broadcast
        await alice.send(alert)  # the same alert again, after its cancel
        answer = await alice.wait_for(control.EmergencyCancel, lambda m: m.by_user == "alice")
        assert answer.alert_id == alert.alert_id
        await disp.ping()
        assert len(alerts_to(disp)) == 1
        assert await server.store.active_emergencies() == []
        # No emergency any more, so no emergency priority either.
        await alice.take_floor(cid, priority=4)
        taken = await bob.wait_for(control.FloorTaken)
        assert taken.priority < 4


async def test_a_member_who_affiliates_during_an_emergency_gets_the_alert_at_once(
    org: Org, server: RelayServer
) -> None:
    """TS 23.280 10.10 late entry: alerts go to the channel's listeners; bob, online but not
    listening when alice raised hers, gets it the moment he affiliates, and once only."""
    cid = org.channel_id
    alert = alert_from("alice", cid)
    async with logged_in(server, org, "disp", "alice", "bob", affiliate=False) as c:
        disp, alice, bob = c["disp"], c["alice"], c["bob"]
        await alice.affiliate(cid)
        await alice.send(alert)
        await disp.wait_for(control.EmergencyAlert, lambda a: a.alert_id == alert.alert_id)
        await bob.ping()  # everything the server sent bob so far has arrived
        assert bob.received(control.EmergencyAlert) == []
        await bob.affiliate(cid)
        late = await bob.wait_for(control.EmergencyAlert, lambda a: a.alert_id == alert.alert_id)
        assert (late.user_id, late.channel_id) == ("alice", cid)
        # Affiliating again (or the raiser, who was told already) repeats nothing.
        for client in (bob, alice):
            await client.send(control.Deaffiliate(channel_id=cid))
            await client.affiliate(cid)
            await client.ping()
        for client in (bob, alice):
            told = [a for a in client.received(control.EmergencyAlert)]
            assert [a.alert_id for a in told] == [alert.alert_id], told
