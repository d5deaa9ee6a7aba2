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
* **a slow control link behind channel texts**: a member sends as many large channel texts
  as the rate limits allow, then another member talks. On a listener's 640 kbit/s link the
  texts are already in the transport's and the network's buffers, ahead of the FloorTaken
  the relay sends next (its urgent lane only overtakes what is still queued on the server),
  so the talker's first 1.6 s reach the listener before their burst is named.
* **a relay that names the talker**: FloorTaken carries the talker's display name, which
  the relay writes. An evil relay names bob "Alice" while bob talks under his own KID and
  signs his own statements: ptt-radio must not show "Alice ... verified".

Each test counts forged frames played (none) and genuine frames lost (none).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import msgspec

from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.audio import NullOutput
from ptt_client.client import RadioClient
from ptt_client.radio.display import Display
from ptt_client.voice import Player
from ptt_protocol import control, media
from ptt_server.server import RelayServer
from tests.orgfixture import Org
from tests.ptt_client.relay_adversary import radio, take_floor
from tests.ptt_client.test_sender_auth import (
    Seen,
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


LINK_BYTES_PER_S = 80_000.0
"""The listener's downlink: 640 kbit/s, a poor cellular link."""
TALK_FRAMES = 150
"""Three seconds of speech at one frame per 20 ms."""


@contextlib.asynccontextmanager
async def slow_link(server: RelayServer) -> AsyncIterator[int]:
    """A TCP proxy to the server's control port whose downstream carries
    :data:`LINK_BYTES_PER_S` (TLS passes through untouched). It reads from the server only as
    fast as it sends, with a small receive buffer, so a backlog stays where a real slow link
    keeps it: in the server's and the network's buffers. Yields its port."""
    pipes: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, paced: bool) -> None:
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
                if paced:
                    # The link's serialisation time: this models the rate, it waits for nothing.
                    await asyncio.sleep(len(data) / LINK_BYTES_PER_S)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = socket.socket()
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        upstream.setblocking(False)
        await loop.sock_connect(upstream, ("127.0.0.1", server.control_port))
        up_reader, up_writer = await asyncio.open_connection(sock=upstream)
        for task in (
            asyncio.create_task(pipe(reader, up_writer, paced=False)),
            asyncio.create_task(pipe(up_reader, writer, paced=True)),
        ):
            pipes.add(task)
            task.add_done_callback(pipes.discard)

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield proxy.sockets[0].getsockname()[1]
    finally:
        proxy.close()
        for task in list(pipes):
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)


async def test_channel_texts_ahead_on_a_slow_link_lose_none_of_the_next_talkers_frames(
    org: Org, server: RelayServer
) -> None:
    """Bob sends 4,000-character channel texts until the server refuses them (its burst of
    30), then alice talks for three seconds. Carol, on a 640 kbit/s control link, learns of
    alice's burst about 1.6 s after her first frames came over UDP; she still plays every
    one of them, as alice's, and none as anyone else's."""
    cid = org.channel_id
    async with slow_link(server) as port:
        alice = await radio(org, server, "alice")
        bob = await radio(org, server, "bob")
        bundle = msgspec.structs.replace(
            org.bundle("carol", server), server_url=f"wss://127.0.0.1:{port}"
        )
        carol = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys), use_udp=True)
        seen = Seen(carol)
        refused = Seen(bob)
        try:
            await carol.start()
            await carol.wait_connected()
            await carol.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
            await carol.affiliate(cid)
            await carol.wait_for(control.Affiliated)
            await carol.ping_server()
            while not of(control.Error, refused):
                await bob.send_text("x" * 4000, to_channel=cid)
                await bob.ping_server()  # the answer to each text came back first

            b1 = await take_floor(alice, bob)
            words = [b"alice %d" % n for n in range(TALK_FRAMES)]
            sent: list[int] = []
            named_after: list[int] = []
            carol.add_listener(
                lambda e: (
                    named_after.append(len(sent))
                    if isinstance(e, control.FloorTaken) and e.burst_id == b1
                    else None
                )
            )
            for n, frame in enumerate(words):
                assert await alice.send_voice(frame)
                sent.append(n)
                if n + 1 < len(words):
                    # A talker's pace (one frame per 20 ms): the test's point is how long the
                    # first frames wait at carol, so they must not all arrive at once.
                    await asyncio.sleep(0.020)
            await alice.release()
            await seen.until(lambda s: bool(of(control.FloorIdle, s)), "alice's FloorIdle")
            assert [w for talker, w in played(seen) if talker == "alice"] == words
            assert {talker for talker, _ in played(seen)} == {"alice"}
            # The attack worked: more than a second of alice's frames went out before carol
            # heard her burst named (the early-frame share used to be one second).
            assert named_after and named_after[0] > 60, named_after
            await seen.until(
                lambda s: any(e.burst_id == b1 for e in of(events.TalkerVerified, s)),
                "alice's verified statement",
            )
            assert not [e for e in unverified_later(carol) if e.burst_id == b1]
        finally:
            for client in (carol, bob, alice):
                await client.stop()


async def test_a_relay_cannot_put_another_members_name_beside_the_verified_mark(
    org: Org, server: RelayServer
) -> None:
    """The relay's operator rewrites the name bob's FloorTaken carries to alice's. Bob's
    statements verify (they are his), so carol's status line shows the mark, but beside
    the name his root-signed credential carries, never beside the relay's word."""
    cid = org.channel_id
    alice = await radio(org, server, "alice")
    bob = await radio(org, server, "bob")
    carol = await radio(org, server, "carol")
    display = Display(carol, Player(carol, NullOutput()))

    def take_note(event: object) -> None:
        display.event_note(event)

    carol.add_listener(take_note)
    seen = Seen(carol)
    try:
        alices_name = carol.keyring.credentials["alice"].display_name
        bobs_name = carol.keyring.credentials["bob"].display_name
        assert alices_name != bobs_name
        server.channels[cid].core.names["bob"] = alices_name  # what an evil relay does
        b1 = await take_floor(bob, carol)
        taken = of(control.FloorTaken, seen)[-1]
        assert (taken.user_id, taken.display_name) == ("bob", alices_name)
        n = 0
        while not any(e.burst_id == b1 for e in of(events.TalkerVerified, seen)):
            assert await bob.send_voice(b"bob %d" % n)  # a statement every 40 frames
            n += 1
            await bob.ping_server()
            await carol.ping_server()
        view = display.view(transmitting=False)
        assert view.verified
        assert view.talker == bobs_name, view
        await bob.release()
    finally:
        for client in (carol, bob, alice):
            await client.stop()


async def test_frames_that_overtook_their_floor_taken_play_at_its_priority(
    org: Org, server: RelayServer
) -> None:
    """Issue 10: a real radio played the frames that reached it before their FloorTaken at
    priority 0 (the keyring was right, RadioClient passed it nothing), so an emergency's
    first words lost the mix. Carol's control plane is held back while alice talks; when
    FloorTaken arrives, the frames held for it play at the priority it names."""
    async with control_gate(server) as (port, gate):
        alice = await radio(org, server, "alice")
        carol, seen = await gated_radio(org, server, "carol", port)
        try:
            gate.hold()
            await alice.press()
            granted = await alice.wait_for(control.FloorGranted)
            words = [b"alice %d" % n for n in range(3)]
            for said in words:
                assert await alice.send_voice(said)
            await alice.ping_server()
            await udp_round_trip(carol)
            assert played(seen) == []  # all early: the burst is not named at carol yet
            gate.release()
            taken = await carol.wait_for(
                control.FloorTaken, lambda m: m.burst_id == granted.burst_id
            )
            await carol.ping_server()
            heard = [e for e in of(events.VoiceFrame, seen) if e.talker == "alice"]
            assert [e.opus for e in heard] == words
            assert taken.priority > 0
            assert {e.priority for e in heard} == {taken.priority}
        finally:
            for client in (carol, alice):
                await client.stop()
