"""Control-plane requests with authority: rosters, keys, credentials, presence; slow clients."""

from __future__ import annotations

import os
import time
from typing import Any

from crypto.identity import Credential, DeviceKeys
from crypto.roster import Member, Roster, sign_roster
from ptt_protocol import control
from ptt_server.handlers.recall import RECALL_MAX_FRAMES
from ptt_server.server import RelayServer
from ptt_server.sessions import OUTBOUND_QUEUE_LIMIT
from ptt_server.store import Store
from tests.credentials import issue
from tests.orgfixture import Account, Org, user_record
from tests.ptt_server.rawclient import connect, logged_in


def roster_without(org: Org, version: int, *removed: str) -> bytes:
    members = tuple(
        Member.from_credential(a.credential) for u, a in org.accounts.items() if u not in removed
    )
    disp = org.accounts["disp"]
    return sign_roster(Roster(org.channel_id, version, members), disp.keys, disp.credential)


async def test_removed_member_stops_hearing_the_channel(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "disp", "alice", "bob", "carol") as c:
        disp, alice, bob, carol = c["disp"], c["alice"], c["bob"], c["carol"]
        signed = roster_without(org, 2, "bob")
        await disp.send(control.RosterUpdate(channel_id=cid, version=2, signed_roster=signed))
        gone = await bob.wait_for(control.Deaffiliated)
        assert gone.channel_id == cid
        for client in (alice, bob, carol):
            update = await client.wait_for(control.RosterUpdate, lambda m: m.version == 2)
            assert update.signed_roster == signed
        granted = await alice.take_floor(cid)
        await alice.send_media(cid, granted.burst_id, 0, b"not for bob")
        await carol.wait_datagram()
        await bob.keepalive()
        assert bob.media_received() == []
        # bob can neither rejoin nor talk.
        await bob.send(control.Affiliate(channel_id=cid))
        assert (await bob.wait_for(control.Error)).code == control.ERROR_NOT_MEMBER
        await bob.send_media(cid, 1, 0, b"sneaky")
        await bob.keepalive()
        assert server.metrics.relay.drops["not_affiliated"] >= 1
        await carol.keepalive()
        assert len(carol.media_received()) == 1


async def test_roster_changes_need_a_key_manager_and_a_newer_version(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "disp", "alice") as c:
        disp, alice = c["disp"], c["alice"]
        newer = roster_without(org, 2, "carol")
        await alice.send(control.RosterUpdate(channel_id=cid, version=2, signed_roster=newer))
        assert (await alice.wait_for(control.Error)).code == control.ERROR_FORBIDDEN
        # Replaying the current roster is refused.
        await disp.send(
            control.RosterUpdate(channel_id=cid, version=1, signed_roster=org.signed_roster)
        )
        assert (await disp.wait_for(control.Error)).code == control.ERROR_FORBIDDEN
        # A roster for another channel, or tampered, is refused.
        tampered = bytearray(newer)
        tampered[-5] ^= 0xFF
        await disp.send(
            control.RosterUpdate(channel_id=cid, version=2, signed_roster=bytes(tampered))
        )
        assert (await disp.wait_for(control.Error)).code == control.ERROR_FORBIDDEN
        await disp.ping()
        assert server.channels[cid].roster_version == 1
        assert "carol" in server.channels[cid].members


async def test_only_key_managers_hand_out_keys_and_watch_presence(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        await alice.send(
            control.KeyEnvelope(channel_id=cid, epoch=9, recipient="bob", envelope=b"evil key")
        )
        assert (await alice.wait_for(control.Error)).code == control.ERROR_FORBIDDEN
        await alice.send(control.PresenceSubscribe())
        assert (await alice.wait_for(control.Error)).code == control.ERROR_FORBIDDEN
        await bob.ping()
        assert [e.epoch for e in bob.received(control.KeyEnvelope)] == [1]


async def test_credential_request_answers_in_frames_that_fit(org: Org, server: RelayServer) -> None:
    async with logged_in(server, org, "alice", affiliate=False) as c:
        alice = c["alice"]
        wanted = ("disp", "bob", "carol", "nobody") * 25  # 75 credentials of ~1.4 KB
        await alice.send(control.CredentialRequest(user_ids=wanted))
        await alice.ping()
        replies = alice.received(control.Credentials)
        assert replies, "no Credentials reply"
        got = [Credential.from_bytes(b).user_id for r in replies for b in r.credentials]
        assert sorted(set(got)) == ["bob", "carol", "disp"]
        for blob in (b for r in replies for b in r.credentials):
            org.trust.verify_credential(blob, time.time())


async def test_oversized_frame_closes_only_that_connection(org: Org, server: RelayServer) -> None:
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        await alice.ws.send(b"\x01" + os.urandom(control.MAX_MESSAGE_SIZE + 10))
        await alice.wait_closed()
        await bob.ping()
        assert "alice" not in server.sessions.by_user


async def test_client_that_stops_reading_is_dropped(org: Org, server: RelayServer) -> None:
    """A client that stops reading must be dropped, not buffered without end."""
    everyone = await enroll_many(org, 600)
    async with logged_in(server, org, "disp", "alice") as c:
        disp, alice = c["disp"], c["alice"]
        await disp.send(control.PresenceSubscribe())
        await disp.wait_for(control.PresenceUpdate, lambda p: p.user_id == "alice")
        bob = await connect(server, org.accounts["bob"], receive_buffer=4096)
        try:
            await disp.wait_for(control.PresenceUpdate, lambda p: p.user_id == "bob" and p.online)
            bob.ws.transport.pause_reading()
            # Big answers fill the TCP buffers until the server's writer blocks ...
            for _ in range(4):
                await bob.send(control.CredentialRequest(user_ids=everyone))
            # ... then small ones fill its outbound queue.
            for nonce in range(OUTBOUND_QUEUE_LIMIT + 500):
                await bob.send(control.Ping(nonce=nonce))
            offline = await disp.wait_for(
                control.PresenceUpdate, lambda p: p.user_id == "bob" and not p.online, timeout=10
            )
            assert offline.status == control.STATUS_OFFLINE
            assert "bob" not in server.sessions.by_user
            await alice.ping()
            bob.ws.transport.resume_reading()
            await bob.wait_closed()  # the server really hung up
        finally:
            await bob.close()


async def test_presence_status_and_sealed_location_reach_dispatcher(
    org: Org, server: RelayServer
) -> None:
    async with logged_in(server, org, "disp", "alice", affiliate=False) as c:
        disp, alice = c["disp"], c["alice"]
        await disp.send(control.PresenceSubscribe(user_ids=("alice",)))
        first = await disp.wait_for(control.PresenceUpdate)
        assert (first.user_id, first.online) == ("alice", True)
        await alice.send(control.SetStatus(status=control.STATUS_ON_SCENE))
        update = await disp.wait_for(control.PresenceUpdate, lambda p: p.status == "on_scene")
        assert update.display_name == "Alice Adams"
        await alice.send(control.LocationReport(sealed_location=b"sealed place"))
        located = await disp.wait_for(
            control.PresenceUpdate, lambda p: p.sealed_location == b"sealed place"
        )
        assert located.status == control.STATUS_ON_SCENE
        await alice.send(control.SetStatus(status=control.STATUS_OFFLINE))
        assert (await alice.wait_for(control.Error)).code == control.ERROR_BAD_MESSAGE
        await alice.affiliate(org.channel_id)
        selected = await disp.wait_for(
            control.PresenceUpdate, lambda p: p.channel_id == org.channel_id
        )
        assert selected.online


async def enroll_many(org: Org, count: int) -> tuple[str, ...]:
    """``count`` more enrolled users (one shared key pair: only their credentials matter)."""
    keys = DeviceKeys.generate()
    users = []
    async with await Store.open(org.db_path) as store:
        for n in range(count):
            user_id = f"extra{n:04d}"
            _, credential = issue(org.root, user_id, serial=10_000 + n, keys=keys)
            await store.put_user(user_record(Account(user_id, keys, credential)))
            users.append(user_id)
    return tuple(users)


async def test_a_recall_returns_at_most_its_bound_of_frames(org: Org, server: RelayServer) -> None:
    """Issue 10: RecallFrames had no bound. A recording longer than RECALL_MAX_FRAMES (one a
    T2 raised for a dispatcher could make) comes back cut at the bound, in chunks, the
    last one marked, so one request cannot fill the session's queue."""
    key = await server.store.start_burst(org.channel_id, 1, "bob", 1, time.time())
    frames = [(seq, 0, b"f%d" % seq) for seq in range(RECALL_MAX_FRAMES + 200)]
    assert await server.store.record_frames(key, frames) == len(frames)
    await server.store.end_burst(key, 130.0, "released")
    async with logged_in(server, org, "alice") as c:
        alice = c["alice"]
        await alice.send(control.RecallFrames(channel_id=org.channel_id, burst_key=key))
        await alice.wait_for(control.RecallFrames, lambda m: m.last)
        replies = alice.received(control.RecallFrames)
        got = [f.sequence for r in replies for f in r.frames]
        assert got == list(range(RECALL_MAX_FRAMES))
        assert [r.last for r in replies].count(True) == 1 and replies[-1].last


async def test_a_credential_request_is_one_store_call_however_long(
    org: Org, server: RelayServer
) -> None:
    """Issue 10: one CredentialRequest of 1,000 ids cost 1,000 serial calls on the one store
    thread. The real store runs; its entry point only counts what it is asked to do."""
    calls: list[str] = []
    real_call = server.store._call

    async def counted(op: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(op)
        return await real_call(op, *args, **kwargs)

    async with logged_in(server, org, "alice", affiliate=False) as c:
        alice = c["alice"]
        wanted = (*(f"user{n}" for n in range(200)), "bob", "carol")
        server.store._call = counted  # type: ignore[method-assign]
        try:
            await alice.send(control.CredentialRequest(user_ids=wanted))
            await alice.wait_for(control.Credentials)
        finally:
            del server.store._call  # the class's own method again
        got = [
            Credential.from_bytes(b).user_id
            for b in alice.received(control.Credentials)[0].credentials
        ]
        assert sorted(got) == ["bob", "carol"]
    assert calls.count("read users") == 1 and "read user" not in calls, calls
