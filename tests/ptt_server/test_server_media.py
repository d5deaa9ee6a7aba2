"""The UDP media relay end to end: fan-out, floor enforcement, replay, spoofing, roaming, tunnel.

Every "nothing arrived" assertion follows a positive event that must arrive
after the thing that must not: a keepalive answer on the same socket (the
server handles one socket's datagrams in order, and answers on one socket
arrive in order on loopback) or a legitimate frame sent later.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import struct

from ptt_protocol import control, media
from ptt_server.server import RelayServer
from tests.orgfixture import Org
from tests.ptt_server.rawclient import Datagram, RawClient, logged_in, open_control


def frame_of(datagram: Datagram) -> bytes:
    return datagram.payload


async def attacker_socket() -> tuple[asyncio.DatagramTransport, list[bytes]]:
    """A UDP socket that is not any client's, recording what it receives."""
    got: list[bytes] = []

    class Collect(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            got.append(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Collect, local_addr=("127.0.0.1", 0))
    return transport, got


async def test_holder_media_reaches_every_listener_not_sender(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob", "carol", "disp") as c:
        alice = c["alice"]
        listeners = [c["bob"], c["carol"], c["disp"]]
        granted = await alice.take_floor(cid)
        sent: list[bytes] = []
        for seq in range(20):
            frame = os.urandom(60)
            flags = media.END_OF_BURST if seq == 19 else 0
            await alice.send_media(cid, granted.burst_id, seq, frame, flags)
            sent.append(alice.inner(cid, granted.burst_id, seq, frame, flags))
        for listener in listeners:
            got = [await listener.wait_datagram() for _ in sent]
            # Each opened with the listener's own hop key: inner bytes unchanged.
            assert sorted(d.inner for d in got) == sorted(sent)  # type: ignore[type-var]
            assert all(d.via == listener.via for d in got)
            # Re-sealed per listener: no two listeners get the same datagram bytes.
            assert not {d.raw for d in got} & set(sent)
        raws = [{d.raw for d in listener.media_received()} for listener in listeners]
        assert not raws[0] & raws[1] and not raws[1] & raws[2]
        await alice.keepalive()
        assert alice.media_received() == []
        assert server.metrics.relay.forwarded_packets == 20 * 3


async def test_media_from_non_holder_dropped(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob", "carol") as c:
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        granted = await alice.take_floor(cid)
        await bob.wait_for(control.FloorTaken)
        before = server.metrics.relay.drops["not_floor_holder"]
        await bob.send_media(cid, granted.burst_id, 0, b"bob talks over alice")
        await bob.keepalive()  # handled after bob's media
        assert server.metrics.relay.drops["not_floor_holder"] == before + 1
        await alice.send_media(cid, granted.burst_id, 0, b"alice")
        got = await carol.wait_datagram()
        assert frame_of(got) == b"alice"
        assert [frame_of(d) for d in carol.media_received()] == [b"alice"]
        await alice.keepalive()
        assert alice.media_received() == []

        # With the floor idle nobody is forwarded: not another burst of the last talker, not
        # another member. Only the last talker's own burst gets a short grace (its release
        # on TCP can overtake its last datagrams on UDP).
        await alice.send(control.FloorRelease(channel_id=cid))
        await bob.wait_for(control.FloorIdle)
        await alice.send_media(cid, granted.burst_id + 1, 1, b"another burst")
        await carol.send_media(cid, granted.burst_id, 0, b"carol after release")
        await alice.keepalive()
        await carol.keepalive()
        assert server.metrics.relay.drops["not_floor_holder"] == before + 3
        await alice.send_media(cid, granted.burst_id, 2, b"alice's last words")
        assert frame_of(await bob.wait_datagram()) in (b"alice", b"alice's last words")
        await bob.keepalive()
        heard = [frame_of(d) for d in bob.media_received()]
        assert heard[-1] == b"alice's last words"
        assert b"another burst" not in heard and b"carol after release" not in heard


async def test_media_to_unaffiliated_channel_dropped(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        granted = await alice.take_floor(cid)
        before = server.metrics.relay.drops["not_affiliated"]
        await alice.send_media(cid + 1000, granted.burst_id, 0, b"elsewhere")
        await alice.keepalive()
        assert server.metrics.relay.drops["not_affiliated"] == before + 1
        await alice.send_media(cid, granted.burst_id, 1, b"here")
        assert frame_of(await bob.wait_datagram()) == b"here"
        assert len(bob.media_received()) == 1


async def test_replayed_datagram_dropped(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        granted = await alice.take_floor(cid)
        original = await alice.send_media(cid, granted.burst_id, 0, b"once")
        await bob.wait_datagram()
        await alice.send_datagram(original)
        await alice.send_media(cid, granted.burst_id, 1, b"twice?")
        assert frame_of(await bob.wait_datagram()) == b"twice?"
        assert [frame_of(d) for d in bob.media_received()] == [b"once", b"twice?"]
        assert server.metrics.relay.drops["replay"] == 1


async def test_unknown_session_index_dropped(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        granted = await alice.take_floor(cid)
        attacker, got = await attacker_socket()
        try:
            # A well-formed datagram for a session that does not exist.
            index = secrets.randbits(32)
            while index in server.sessions.by_index:
                index = secrets.randbits(32)
            forged = media.HopSession(index, os.urandom(32), "client")
            inner = media.pack_inner(cid, granted.burst_id, 0, 0, b"forged")
            attacker.sendto(forged.seal(inner), ("127.0.0.1", server.media_port))
            attacker.sendto(forged.seal(b"", media.KEEPALIVE), ("127.0.0.1", server.media_port))
            await alice.send_media(cid, granted.burst_id, 0, b"real")
            assert frame_of(await bob.wait_datagram()) == b"real"
            assert len(bob.media_received()) == 1
            assert server.metrics.relay.drops["unknown_session"] == 2
            await alice.keepalive()
            assert got == []
        finally:
            attacker.close()


async def test_spoofed_source_does_not_move_session(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        granted = await alice.take_floor(cid)
        session = server.sessions.by_user["bob"]
        bob_address = session.hop.address
        attacker, got = await attacker_socket()
        server_addr = ("127.0.0.1", server.media_port)
        try:
            # bob's keepalive, seen on the wire by the attacker, then delivered by bob himself.
            captured = bob.hop.seal(b"", media.KEEPALIVE)
            await bob.send_datagram(captured)
            await bob.wait_datagram(kind=media.KEEPALIVE)
            tampered = bytearray(captured)
            tampered[-1] ^= 0x01
            fresh_header_bad_tag = bytearray(bob.hop.seal(b"", media.KEEPALIVE))
            fresh_header_bad_tag[20] ^= 0x80
            reserved_set = bytearray(captured)
            reserved_set[2] = 1
            garbage_body = struct.pack("!BBHIQ", 1, 1, 0, bob.hop.session_index, 10**6)
            garbage_body += os.urandom(40)
            for spoof in (
                captured,  # replay
                bytes(tampered),  # altered tag
                bytes(fresh_header_bad_tag),  # unused counter, forged ciphertext
                bytes(reserved_set),
                garbage_body,
            ):
                attacker.sendto(spoof, server_addr)
            await alice.send_media(cid, granted.burst_id, 0, b"still to bob")
            assert frame_of(await bob.wait_datagram()) == b"still to bob"
            assert session.hop.address == bob_address
            drops = server.metrics.relay.drops
            assert drops["replay"] == 2  # the copy, and the altered copy (same counter)
            assert drops["unauthenticated"] + drops["malformed"] == 3
            await bob.keepalive()
            assert got == []
        finally:
            attacker.close()


async def test_roaming_moves_media_to_new_socket(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        granted = await alice.take_floor(cid)
        await alice.send_media(cid, granted.burst_id, 0, b"before")
        old_via = bob.via
        assert (await bob.wait_datagram()).via == old_via

        bob.sockets[0].close()  # the old NAT mapping is gone, as after a cellular handover
        await bob.open_udp()
        new_via = bob.via
        assert new_via != old_via
        # A timer for most of the probe's wait, armed before the keepalive goes: the relay
        # can only arm its probe's timer after this one, for longer, on the same loop. Had
        # it moved bob before this fired, it did not wait for the probe: an order of two
        # events that load can delay but not swap (no clock is read).
        waited = asyncio.Event()
        asyncio.get_running_loop().call_later(media.ROAM_PROBE_TIMEOUT * 0.9, waited.set)
        answer = await bob.keepalive()
        assert answer.via == new_via  # answered on the path it came from, at once
        await bob.wait_moved()
        # The relay probed the old address and waited for its answer before moving.
        assert waited.is_set()
        assert server.metrics.relay.roam_probes == 1
        assert server.metrics.relay.roam_moves == 1
        for seq in range(1, 6):
            await alice.send_media(cid, granted.burst_id, seq, b"after %d" % seq)
        got = [await bob.wait_datagram() for _ in range(5)]
        assert {d.via for d in got} == {new_via}
        assert [d.via for d in bob.media_received()] == [old_via] + [new_via] * 5

        # Roaming works for the talker too: alice moves and keeps talking, heard at once.
        await alice.open_udp()
        await alice.send_media(cid, granted.burst_id, 6, b"talker moved")
        assert frame_of(await bob.wait_datagram()) == b"talker moved"
        await alice.wait_moved()
        assert server.sessions.by_user["alice"].hop.address[1] == int(alice.via[4:])  # type: ignore[index]


async def test_radio_still_home_answers_the_probe_and_is_not_moved(
    org: Org, server: RelayServer
) -> None:
    """A withheld keepalive released from another address: the radio answers the probe."""
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        granted = await alice.take_floor(cid)
        session = server.sessions.by_user["bob"]
        home, home_via = session.hop.address, bob.via
        attacker, got = await attacker_socket()
        try:
            withheld = bob.hop.seal(b"", media.KEEPALIVE)  # captured on the wire, not delivered
            attacker.sendto(withheld, ("127.0.0.1", server.media_port))
            probe = await bob.wait_datagram(kind=media.PROBE)  # the relay asks bob's home address
            assert probe.via == home_via
            # bob's answer (a keepalive on his current path, home) keeps him there; once
            # the relay's reply to it is here, the answer has been handled.
            await bob.wait_probe_answered()
            assert bob.probe_replies[0].via == home_via
            assert session.hop.address == home and session.hop.candidate is None
            await alice.send_media(cid, granted.burst_id, 0, b"still to bob")
            assert frame_of(await bob.wait_datagram()) == b"still to bob"
            assert server.metrics.relay.roam_moves == 0
            # The attacker got the answer to its one keepalive, and nothing of bob's media.
            assert len(got) == 1 and got[0][1] == media.KEEPALIVE
        finally:
            attacker.close()


async def test_tunnel_fallback_both_directions(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob", "carol", tunnel=("carol",)) as c:
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        assert carol.udp is None
        granted = await alice.take_floor(cid)
        for seq in range(3):
            await alice.send_media(cid, granted.burst_id, seq, b"to tunnel %d" % seq)
        got = [await carol.wait_datagram() for _ in range(3)]
        assert {d.via for d in got} == {"tunnel"}
        assert [frame_of(d) for d in got] == [b"to tunnel 0", b"to tunnel 1", b"to tunnel 2"]
        await alice.send(control.FloorRelease(channel_id=cid))
        await carol.wait_for(control.FloorIdle)

        # carol talks through the tunnel; UDP listeners hear her.
        granted = await carol.take_floor(cid)
        await carol.send_media(cid, granted.burst_id, 0, b"from tunnel")
        for listener in (alice, bob):
            d = await listener.wait_datagram(lambda d: frame_of(d) == b"from tunnel")
            assert d.via.startswith("udp:")

        # A tunnel datagram naming another session is dropped.
        before = server.metrics.relay.drops["wrong_tunnel_session"]
        await carol.send(control.MediaTunnel(datagram=alice.seal_media(cid, 1, 9, b"x")))
        await carol.ping()
        assert server.metrics.relay.drops["wrong_tunnel_session"] == before + 1


async def test_tunnel_client_switches_to_udp(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "carol", tunnel=("carol",)) as c:
        alice, carol = c["alice"], c["carol"]
        granted = await alice.take_floor(cid)
        await alice.send_media(cid, granted.burst_id, 0, b"one")
        assert (await carol.wait_datagram()).via == "tunnel"
        carol.tunnel = False
        await carol.open_udp()
        await carol.keepalive()
        await carol.wait_moved()  # after the tunnel was probed (carol answers over UDP now)
        await alice.send_media(cid, granted.burst_id, 1, b"two")
        assert (await carol.wait_datagram()).via == carol.via


async def test_udp_client_switches_to_tunnel_at_once(org: Org, server: RelayServer) -> None:
    """The tunnel is the radio's own TLS connection: a move to it needs no probe."""
    cid = org.channel_id
    async with logged_in(server, org, "alice", "carol") as c:
        alice, carol = c["alice"], c["carol"]
        granted = await alice.take_floor(cid)
        carol.tunnel = True
        await carol.keepalive()
        await alice.send_media(cid, granted.burst_id, 0, b"one")
        assert (await carol.wait_datagram()).via == "tunnel"
        assert server.metrics.relay.roam_probes == 0


async def test_holder_media_with_unknown_inner_flags_dropped(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        granted = await alice.take_floor(cid)
        inner = struct.pack("!IIIB", cid, granted.burst_id, 0, 0x80) + b"odd flags"
        await alice.send_datagram(alice.hop.seal(inner))
        await alice.send_media(cid, granted.burst_id, 1, b"fine")
        assert frame_of(await bob.wait_datagram()) == b"fine"
        assert len(bob.media_received()) == 1
        assert server.metrics.relay.drops["malformed"] == 1
        await alice.ping()


async def garbage_ws(server: RelayServer, logged_in_client: RawClient) -> None:
    """Garbage frames from a logged-in connection and from a fresh one."""
    for i in range(40):
        junk = os.urandom(1 + i * 7)
        await logged_in_client.ws.send(junk if i % 3 else bytes([1]) + junk)
    await logged_in_client.ws.send("text frame")
    await logged_in_client.ws.send(
        control.encode(control.Hello(server_nonce=bytes(32), server_time=1.0))
    )
    ws, _ = await open_control(server)
    await ws.send(os.urandom(100))
    await ws.close()


async def test_flood_of_garbage_does_not_stop_the_stream(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob", "carol") as c:
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        granted = await alice.take_floor(cid)
        attacker, _ = await attacker_socket()
        server_addr = ("127.0.0.1", server.media_port)
        bob_index = bob.hop.session_index
        ws_task = asyncio.create_task(garbage_ws(server, carol))
        try:
            frames = 60
            for seq in range(frames):
                for n in range(15):
                    kind = n % 5
                    if kind == 0:
                        junk = os.urandom(n * 37 % 1500)
                    elif kind == 1:  # valid header for bob, random body
                        junk = struct.pack("!BBHIQ", 1, 1, 0, bob_index, seq * 100 + n)
                        junk += os.urandom(50)
                    elif kind == 2:  # alice's index, future counters, garbage
                        junk = struct.pack("!BBHIQ", 1, 1, 0, alice.hop.session_index, 2**40 + n)
                        junk += os.urandom(80)
                    elif kind == 3:
                        junk = b"\x01" * (n + 1)
                    else:
                        junk = os.urandom(media.MAX_DATAGRAM_SIZE + 1)
                    attacker.sendto(junk, server_addr)
                await alice.send_media(cid, granted.burst_id, seq, b"legit %d" % seq)

                # Paced by the stream itself, so the flood cannot overrun socket buffers.
                def legit(datagram: Datagram, seq: int = seq) -> bool:  # bound now (B023)
                    return frame_of(datagram) == b"legit %d" % seq

                await bob.wait_datagram(legit)
            await ws_task
            assert [frame_of(d) for d in bob.media_received()] == [
                b"legit %d" % s for s in range(frames)
            ]
            # Every garbage frame on carol's connection got an Error; she is still served.
            await carol.ping()
            assert len(carol.received(control.Error)) == 42
            assert all(e.code == control.ERROR_BAD_MESSAGE for e in carol.received(control.Error))
            await alice.ping()
            assert server.sessions.by_user["bob"].hop.address is not None
            drops = server.metrics.relay.drops
            assert drops["malformed"] + drops["unauthenticated"] + drops["unknown_session"] >= 60
        finally:
            ws_task.cancel()
            attacker.close()
