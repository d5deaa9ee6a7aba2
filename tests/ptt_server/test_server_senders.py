"""The relay forwards the floor holder's frames only in the granted burst and under its own KID.

Real server, raw clients (tests/ptt_server/rawclient.py) that put an SFrame header with a
KID of the test's choosing in front of each voice frame: the relay reads only that header,
never a key. As in test_server_media.py, every "nothing else arrived" assertion follows a
frame that must arrive after the ones that must not (one socket's datagrams are handled,
and forwarded, in order).
"""

from __future__ import annotations

import asyncio

from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.keyring import make_kid
from ptt_protocol import control, media
from ptt_server.channel_core import TRAILING_STATEMENT_GRACE
from ptt_server.server import RelayServer
from tests.orgfixture import Org
from tests.ptt_server.rawclient import kid_of, logged_in
from tests.ptt_server.test_server_control import roster_without


def dropped(server: RelayServer, reason: str) -> int:
    return server.metrics.relay.drops[reason]


async def test_the_holder_is_forwarded_only_in_its_burst_under_its_own_kid(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        burst = (await alice.take_floor(cid)).burst_id
        before = dict(server.metrics.relay.drops)

        alice.kid = kid_of(org, "bob")  # bob's KID: alice speaking as bob
        await alice.send_media(cid, burst, 0, b"as bob")
        alice.kid = make_kid(org.roster.sender_index("alice"), 5)  # an epoch nobody holds
        await alice.send_media(cid, burst, 1, b"unknown epoch")
        alice.kid = kid_of(org, "alice")
        for other in (burst - 1, burst + 1):  # her own KID, another burst's number
            await alice.send_media(cid, other, 2, b"another burst")
        alice.kid = None
        await alice.send_media(cid, burst, 3, b"\x90")  # KID announced, not there
        # A burst statement has no SFrame header: bound to her session and burst only.
        await alice.send_media(cid, burst, 2**31, b"statement bytes", media.SIGNATURE)
        await alice.send_media(cid, burst + 1, 2**31 + 1, b"elsewhere", media.SIGNATURE)
        alice.kid = kid_of(org, "alice")
        await alice.send_media(cid, burst, 4, b"alice")

        last = await bob.wait_datagram(lambda d: d.payload == b"alice")
        assert last.inner is not None
        assert [d.payload for d in bob.media_received()] == [b"statement bytes", b"alice"]
        for reason, more in (("wrong_sender", 2), ("wrong_burst", 3), ("malformed", 1)):
            assert dropped(server, reason) == before.get(reason, 0) + more, reason


async def test_a_pre_empted_talkers_signed_tail_is_forwarded_briefly_its_voice_is_not(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "disp", "bob") as c:
        alice, disp, bob = c["alice"], c["disp"], c["bob"]
        burst = (await alice.take_floor(cid)).burst_id
        await disp.take_floor(cid, priority=2)  # a dispatcher pre-empts an officer
        await alice.wait_for(control.FloorRevoke)
        before = dropped(server, "not_floor_holder")
        await alice.send_media(cid, burst, 7, b"after the revoke")
        await alice.send_media(cid, burst, 2**31, b"her final statement", media.SIGNATURE)
        await disp.send_media(cid, burst + 1, 0, b"disp")
        got = await bob.wait_datagram(lambda d: d.payload == b"disp")
        assert got.inner is not None
        assert [d.payload for d in bob.media_received()] == [b"her final statement", b"disp"]
        assert dropped(server, "not_floor_holder") == before + 1
        channel = server.channels[cid]
        later = asyncio.get_running_loop().time() + TRAILING_STATEMENT_GRACE
        assert not channel.accepts_trailing("alice", burst, True, later)


async def test_after_a_removal_old_epoch_kids_pass_until_the_grace_after_the_new_key(
    org: Org, server: RelayServer
) -> None:
    """The dispatcher removes itself (index 0), so alice moves from index 1 to 0. Until an
    envelope of epoch 2 exists nobody can seal under it and epoch 1's indexes stand; once
    one went out they stand for the rekey grace only. Each epoch's own indexes count:
    alice under index 0 of epoch 1 is the dispatcher's KID."""
    cid = org.channel_id
    async with logged_in(server, org, "disp", "alice", "bob") as c:
        disp, alice, bob = c["disp"], c["alice"], c["bob"]
        signed = roster_without(org, 2, "disp")
        await disp.send(control.RosterUpdate(channel_id=cid, version=2, signed_roster=signed))
        await bob.wait_for(control.RosterUpdate, lambda m: m.version == 2)
        burst = (await alice.take_floor(cid)).burst_id

        async def heard(kids: list[int]) -> list[bytes]:
            for n, kid in enumerate(kids):
                alice.kid = kid
                await alice.send_media(cid, burst, n, b"kid %d" % kid)
            alice.kid = make_kid(0, 2)
            await alice.send_media(cid, burst, 99, b"marker")
            await bob.wait_datagram(lambda d: d.payload == b"marker")
            got = [d.payload for d in bob.media_received()]
            bob.datagrams.clear()
            return got[:-1]

        old, new = make_kid(1, 1), make_kid(0, 2)
        disp_old, bob_new = make_kid(0, 1), make_kid(1, 2)
        assert await heard([old, new, disp_old, bob_new]) == [b"kid %d" % old, b"kid %d" % new]

        members = {u: a.credential for u, a in org.accounts.items() if u != "disp"}
        roster = server.rosters[cid].current
        assert roster is not None and roster.version == 2
        disp_account = org.accounts["disp"]
        envelopes = wrap_epoch(
            new_epoch_key(cid, 2, 2), roster, members, disp_account.keys, disp_account.credential
        )
        await disp.send(
            control.KeyEnvelope(
                channel_id=cid, epoch=2, recipient="alice", envelope=envelopes["alice"]
            )
        )
        await alice.wait_for(control.KeyEnvelope, lambda m: m.epoch == 2)
        senders = server.channels[cid].sender_indexes
        deadline = senders.next_expiry()
        assert deadline is not None
        assert await heard([old, new]) == [b"kid %d" % old, b"kid %d" % new]  # in the grace
        senders.expire(deadline)  # what the channel's timer does at the deadline
        assert await heard([old, new]) == [b"kid %d" % new]
