"""Affiliation and floor control through the real server (TS 24.380 vocabulary)."""

from __future__ import annotations

import asyncio

from crypto.roster import Member, Roster, sign_roster
from ptt_protocol import control
from ptt_server.server import RelayServer
from ptt_server.store import Store
from tests.orgfixture import Org
from tests.ptt_server.rawclient import connect, logged_in

PRE_EMPTED = "Media Burst pre-empted"


async def test_affiliate_refused_off_roster_and_unknown_channel(
    org: Org, server: RelayServer
) -> None:
    async with logged_in(server, org, "disp", "alice", affiliate=False) as c:
        disp, alice = c["disp"], c["alice"]
        # The dispatcher creates a channel whose roster leaves alice out.
        members = [org.accounts["disp"], org.accounts["bob"]]
        await disp.send(control.ChannelCreate(name="command"))
        command = (await disp.wait_for(control.ChannelCreated)).channel_id
        roster = Roster(command, 1, tuple(Member.from_credential(a.credential) for a in members))
        signed = sign_roster(roster, org.accounts["disp"].keys, org.accounts["disp"].credential)
        await disp.send(control.RosterUpdate(channel_id=command, version=1, signed_roster=signed))
        # Applied at once: the online members are told.
        await disp.wait_for(control.RosterUpdate, lambda m: m.channel_id == command)

        await alice.send(control.Affiliate(channel_id=command))
        error = await alice.wait_for(control.Error)
        assert error.code == control.ERROR_NOT_MEMBER
        await alice.send(control.Affiliate(channel_id=987654))
        error = await alice.wait_for(control.Error)
        assert error.code == control.ERROR_NOT_FOUND
        # Not affiliated: a floor request is refused too, and nothing else changed.
        await alice.send(control.FloorRequest(channel_id=command, priority=1))
        error = await alice.wait_for(control.Error)
        assert error.code == control.ERROR_NOT_MEMBER
        await alice.ping()
        assert server.sessions.by_user["alice"].affiliated == set()
        assert alice.received(control.Affiliated) == []
        assert server.channels[command].listeners == {}
        # The dispatcher, who is on it, may join.
        await disp.affiliate(command)


async def test_floor_request_before_affiliation_refused(org: Org, server: RelayServer) -> None:
    async with logged_in(server, org, "alice", affiliate=False) as c:
        await c["alice"].request_floor(org.channel_id)
        error = await c["alice"].wait_for(control.Error)
        assert error.code == control.ERROR_FORBIDDEN
        assert server.channels[org.channel_id].floor.holder is None


async def test_simultaneous_requests_grant_one_queue_other(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob", "carol") as c:
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        await asyncio.gather(alice.request_floor(cid), bob.request_floor(cid))
        first = await carol.wait_for(control.FloorTaken)
        winner, loser = (alice, bob) if first.user_id == "alice" else (bob, alice)
        granted = await winner.wait_for(control.FloorGranted)
        assert granted.channel_id == cid
        assert granted.burst_id == first.burst_id
        assert granted.duration_limit == 30.0  # officer T2
        queued = await loser.wait_for(control.FloorQueuePosition)
        assert queued.position == 1
        await loser.ping()
        assert loser.received(control.FloorGranted) == []

        await winner.send(control.FloorRelease(channel_id=cid))
        second = await loser.wait_for(control.FloorGranted)
        assert second.burst_id == granted.burst_id + 1
        taken = await carol.wait_for(control.FloorTaken)
        assert taken.user_id == loser.user_id
        assert taken.display_name == org.accounts[loser.user_id].credential.display_name
        await winner.wait_for(control.FloorTaken, lambda m: m.user_id == loser.user_id)
        assert server.channels[cid].floor.holder == loser.user_id

        await loser.send(control.FloorRelease(channel_id=cid))
        for client in (alice, bob, carol):
            await client.wait_for(control.FloorIdle)
        assert server.channels[cid].floor.holder is None


async def test_dispatcher_pre_empts_officer(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob", "disp") as c:
        alice, bob, disp = c["alice"], c["bob"], c["disp"]
        await alice.take_floor(cid)
        await bob.wait_for(control.FloorTaken, lambda m: m.user_id == "alice")
        # The dispatcher asks for officer priority; the server gives the role's.
        await disp.request_floor(cid, priority=1)
        revoke = await alice.wait_for(control.FloorRevoke)
        assert revoke.cause == PRE_EMPTED
        granted = await disp.wait_for(control.FloorGranted)
        assert granted.duration_limit == 60.0  # dispatcher T2
        for client in (alice, bob):
            taken = await client.wait_for(control.FloorTaken, lambda m: m.user_id == "disp")
            assert taken.priority == 2
        assert server.channels[cid].floor.holder == "disp"
        # An officer cannot take it back.
        await alice.request_floor(cid)
        queued = await alice.wait_for(control.FloorQueuePosition)
        assert queued.position == 1


async def test_officer_cannot_claim_dispatcher_priority(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        await alice.take_floor(cid)
        await bob.request_floor(cid, priority=2)  # asks for dispatcher priority
        queued = await bob.wait_for(control.FloorQueuePosition)
        assert queued.position == 1
        await alice.ping()
        assert alice.received(control.FloorRevoke) == []
        assert server.channels[cid].floor.holder == "alice"


async def test_late_entry_gets_floor_taken_then_media(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        granted = await alice.take_floor(cid)
        burst = granted.burst_id
        await alice.send_media(cid, burst, 0, b"frame-0")
        await bob.wait_datagram()

        carol = await connect(server, org.accounts["carol"])
        try:
            await carol.send(control.Affiliate(channel_id=cid))
            await carol.wait_for(control.Affiliated)
            taken = await carol.wait_for(control.FloorTaken)
            assert (taken.user_id, taken.burst_id, taken.priority) == ("alice", burst, 1)
            assert taken.display_name == "Alice Adams"
            # Nothing of the burst before she joined; the next frame reaches her.
            sent = await alice.send_media(cid, burst, 1, b"frame-1")
            assert sent
            got = await carol.wait_datagram()
            assert got.payload == b"frame-1"
            assert len(carol.media_received()) == 1
        finally:
            await carol.close()


async def test_holder_disconnect_frees_floor_for_queue(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "bob", "carol") as c:
        bob, carol = c["bob"], c["carol"]
        alice = await connect(server, org.accounts["alice"])
        await alice.affiliate(cid)
        await alice.take_floor(cid)
        await bob.request_floor(cid)
        await bob.wait_for(control.FloorQueuePosition)
        await alice.close()
        await bob.wait_for(control.FloorGranted)
        await carol.wait_for(control.FloorTaken, lambda m: m.user_id == "bob")


async def test_deaffiliate_releases_floor(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        await alice.take_floor(cid)
        await alice.send(control.Deaffiliate(channel_id=cid))
        await alice.wait_for(control.Deaffiliated)
        await bob.wait_for(control.FloorIdle)
        assert server.channels[cid].floor.holder is None
        assert alice.login_ok.session_index not in server.channels[cid].listeners


async def test_holder_repeats_request_keeps_burst(org: Org, server: RelayServer) -> None:
    # A radio whose Floor Granted got lost asks again: same burst, no new recording.
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        first = await alice.take_floor(cid)
        await alice.send_media(cid, first.burst_id, 0, b"a")
        await bob.wait_datagram()
        again = await alice.take_floor(cid)
        assert again.burst_id == first.burst_id
        await alice.send_media(cid, first.burst_id, 1, b"b")
        await bob.wait_datagram()
        await alice.send(control.FloorRelease(channel_id=cid))
        await bob.wait_for(control.FloorIdle)
        await bob.ping()
    await server.stop()  # waits for the burst log writes
    async with await Store.open(org.db_path) as store:
        bursts = await store.recent_bursts(cid)
    # Bursts are logged per grant: a repeated request must not log a second one.
    assert [b.burst_id for b in bursts] == [first.burst_id]


async def test_a_disconnect_handing_the_floor_on_is_logged_as_such(
    org: Org, server: RelayServer
) -> None:
    """Issue 10: when a disconnect handed the floor straight to a queued user, the burst log
    said "released" for the silent talker. Through the real server and its store."""
    cid = org.channel_id
    async with logged_in(server, org, "bob") as c:
        bob = c["bob"]
        alice = await connect(server, org.accounts["alice"])
        await alice.affiliate(cid)
        first = await alice.take_floor(cid)
        await bob.request_floor(cid)
        await bob.wait_for(control.FloorQueuePosition)
        await alice.close()
        second = await bob.wait_for(control.FloorGranted)
        await bob.send(control.FloorRelease(channel_id=cid))
        await bob.wait_for(control.FloorIdle)
    await server.stop()  # waits for the burst log writes
    async with await Store.open(org.db_path) as store:
        bursts = {b.burst_id: b for b in await store.recent_bursts(cid)}
    assert (bursts[first.burst_id].talker, bursts[first.burst_id].outcome) == (
        "alice",
        "disconnected",
    )
    assert bursts[second.burst_id].outcome == "released"
