"""More ways a member might speak as, or silence, another member (issue 9.2, red team).

The attacks of ``test_sender_auth.py`` forge frames under the victim's KID. These go
around the KID check instead, through an honest relay, with the same real server, real
radios and a listener (carol) whose control plane is held back by a TCP gate while its
UDP goes straight to the relay:

* **flooding the early-frame buffer**: a listener holds frames of bursts it has not yet
  heard named (UDP overtakes the FloorTaken). The relay forwards a talker's burst
  statements for 1 s after its burst ended, unchecked (they carry no KID), so a member who
  just released can send a burst of junk "statements" for its own old burst exactly while
  the next talker's first frames wait at a backlogged listener. They must not push the
  next talker's genuine frames out.

Each test counts forged frames played (none) and genuine frames lost (none).
"""

from __future__ import annotations

from ptt_client import events
from ptt_protocol import control, media
from ptt_server.server import RelayServer
from tests.orgfixture import Org
from tests.ptt_client.test_e2e_promises import radio, take_floor
from tests.ptt_client.test_sender_auth import (
    control_gate,
    drops,
    gated_radio,
    of,
    played,
    send_raw,
    udp_round_trip,
    unverified_later,
)

JUNK_STATEMENTS = 120
"""More than a listener holds for one burst: the flood must stay in its own burst's share."""


async def test_a_flood_of_trailing_statements_pushes_out_none_of_the_next_talkers_early_frames(
    org: Org, server: RelayServer
) -> None:
    """Bob talks and releases; alice takes the floor and talks. Carol's control plane is
    backlogged, so both bursts are still unnamed there and their frames wait as early
    frames. Within the second the relay still forwards bob's statements for his burst, bob
    sends 120 junk ones. When carol's control plane catches up she plays all of alice's
    frames, as alice's and verified, and no junk."""
    cid = org.channel_id
    async with control_gate(server) as (port, gate):
        alice = await radio(org, server, "alice")
        bob = await radio(org, server, "bob")
        carol, seen = await gated_radio(org, server, "carol", port)
        try:
            gate.hold()
            b1 = await take_floor(bob, alice)
            assert await bob.send_voice(b"bob 0")
            await bob.release()
            await alice.wait_for(control.FloorIdle)
            b2 = await take_floor(alice, bob)
            alice_words = [b"alice %d" % n for n in range(5)]
            for words in alice_words:
                assert await alice.send_voice(words)
            await alice.ping_server()
            before = drops(server)
            for n in range(JUNK_STATEMENTS):
                junk = media.pack_inner(cid, b1, 2**31 + 1000 + n, media.SIGNATURE, b"junk")
                await send_raw(bob, junk)
            await bob.ping_server()
            # The relay forwarded every one (still inside the talker's statement grace):
            # the attack really reached carol.
            assert drops(server).get("not_floor_holder", 0) == before.get("not_floor_holder", 0)
            await udp_round_trip(carol)
            assert played(seen) == []  # all early: nothing named yet at carol

            gate.release()
            await carol.wait_for(control.FloorTaken, lambda m: m.burst_id == b2)
            await carol.ping_server()
            assert [w for talker, w in played(seen) if talker == "alice"] == alice_words
            assert all(words in (b"bob 0",) for talker, words in played(seen) if talker == "bob")

            await alice.release()
            await seen.until(
                lambda s: any(e.burst_id == b2 for e in of(events.TalkerVerified, s)),
                "alice's verified statement",
            )
            assert not [e for e in of(events.TalkerUnverified, seen) if e.burst_id == b2]
            assert not [e for e in unverified_later(carol) if e.burst_id == b2]
        finally:
            for client in (carol, bob, alice):
                await client.stop()
