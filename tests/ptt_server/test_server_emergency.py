"""Emergency alerts: delivery, persistence across a restart, ack, cancel, emergency floor."""

from __future__ import annotations

import os
import time

from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.orgfixture import Org, start_server
from tests.ptt_server.rawclient import RawClient, connect, logged_in


def alert_from(user: str, channel_id: int, alert_id: bytes | None = None) -> control.EmergencyAlert:
    return control.EmergencyAlert(
        alert_id=alert_id or os.urandom(16),
        user_id=user,
        channel_id=channel_id,
        sealed_location=b"sealed-location-blob",
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
