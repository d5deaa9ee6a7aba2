"""A member cannot speak as another member and be shown verified (docs/security.md, issue 9.2).

Every member can derive every sender key of an epoch, so SFrame alone cannot tell who
sealed a frame. These tests play a malicious member (a modified radio: the test seals
frames under the victim's KID with the forger's own epoch key and sends them on the
forger's own hop session) against a real server and real radios:

* **pre-emption**: the forger pre-empts the victim (imminent peril, which any member may
  request) and sends frames numbered as the victim's burst, before listeners learn of the
  new talker;
* **after idle**: the victim releases, the forger takes the floor and does the same;
* **silencing**: one frame under the victim's KID with a counter far ahead, which used
  to move every listener's replay window past all the victim's later frames.

The listener that matters has a **backlogged control plane**: its WebSocket runs through a
TCP proxy that holds the server's bytes (as a 1 Mbit/s link behind a queue of channel
texts would), while its UDP goes straight to the relay, so the forger's FloorTaken (and
the victim's FloorIdle) reach it late. Talkers use the WebSocket media tunnel, so a Ping
round trip proves the server handled their frames; a UDP keepalive round trip on the
listener then proves it handled what the relay sent it.

Each test checks: zero forged frames played, zero genuine frames lost, and the relay's
drop counters naming why. Each fails on the code before the fix (see the report).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from crypto.identity import DeviceKeys
from crypto.keyring import FrameSealer
from crypto.talker import BurstSigner
from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control, floor, media
from ptt_server.server import RelayServer
from tests.orgfixture import Org
from tests.ptt_client.relay_adversary import radio, relay_forwards, take_floor

TIMEOUT = 5.0


class Gate:
    """Holds the server's bytes to one radio while closed (its control plane is backlogged)."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def wait(self) -> None:
        await self._open.wait()


@contextlib.asynccontextmanager
async def control_gate(server: RelayServer) -> AsyncIterator[tuple[int, Gate]]:
    """A plain TCP proxy to the server's control port (TLS passes through it untouched, so
    the radio's certificate pin holds). Yields its port and the gate on the downstream."""
    gate = Gate()
    pipes: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gated: bool) -> None:
        try:
            while data := await reader.read(65536):
                if gated:
                    await gate.wait()
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", server.control_port)
        for task in (
            asyncio.create_task(pipe(reader, up_writer, gated=False)),
            asyncio.create_task(pipe(up_reader, writer, gated=True)),
        ):
            pipes.add(task)
            task.add_done_callback(pipes.discard)

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield proxy.sockets[0].getsockname()[1], gate
    finally:
        gate.release()
        proxy.close()
        for task in list(pipes):
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)


async def gated_radio(
    org: Org, server: RelayServer, user: str, port: int
) -> tuple[RadioClient, Seen]:
    """A radio whose control connection goes through the gate at ``port`` and whose media is
    UDP straight to the relay; joined like ``relay_adversary.radio``. Returns it and the
    list every event it reports is appended to."""
    bundle = msgspec.structs.replace(org.bundle(user, server), server_url=f"wss://127.0.0.1:{port}")
    client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys), use_udp=True)
    seen = Seen(client)
    await client.start()
    await client.wait_connected()
    assert client.media_path == "udp"
    await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
    await client.affiliate(org.channel_id)
    await client.wait_for(control.Affiliated)
    await client.ping_server()
    assert set(org.accounts) <= set(client.keyring.credentials)
    return client, seen


async def udp_round_trip(client: RadioClient) -> None:
    """A keepalive to the relay and its answer, on the radio's UDP socket: every datagram the
    relay sent this radio before answering has been handled (loopback keeps their order)."""
    assert await client.media.confirm_udp(TIMEOUT), "the relay did not answer on UDP"


class Seen(list[object]):
    """Every event a radio reports, appended as it reports it."""

    def __init__(self, client: RadioClient) -> None:
        super().__init__()
        self._changed = asyncio.Event()
        client.add_listener(self._add)

    def _add(self, event: object) -> None:
        self.append(event)
        self._changed.set()

    async def until(self, found: Callable[[list[object]], bool], what: str) -> None:
        """Wait until the events reported so far satisfy ``found``."""
        try:
            async with asyncio.timeout(TIMEOUT):
                while not found(self):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {what} within {TIMEOUT} s; reported: {self[-10:]}") from None


def forge(
    forger: RadioClient, victim: RadioClient, burst: int, sequence: int, words: bytes, ahead: int
) -> bytes:
    """An inner frame sealed by ``forger`` under ``victim``'s KID, ``ahead`` counters past the
    victim's next one (counters travel in clear in every SFrame header)."""
    cid = next(iter(forger.affiliated))
    key = forger.keyring.epoch_key(cid)
    roster = forger.keyring.channels[cid].roster
    victims = victim.keyring.channels[cid].sealer
    assert roster is not None and victims is not None
    sealer = FrameSealer(
        key, roster.sender_index(victim.user_id), first_counter=victims.next_counter + ahead
    )
    header = media.pack_inner(cid, burst, sequence, 0, b"")
    return header + sealer.seal(header, words, time.time())


async def send_raw(client: RadioClient, inner: bytes) -> None:
    """What a modified radio does: any inner frame on its own hop session."""
    await client.media.send(client.media.seal(inner))


def played(seen: list[object]) -> list[tuple[str, bytes]]:
    return [(e.talker, e.opus) for e in seen if isinstance(e, events.VoiceFrame)]


def of(kind: type[Any], seen: list[object]) -> list[Any]:
    return [e for e in seen if isinstance(e, kind)]


def drops(server: RelayServer) -> dict[str, int]:
    return dict(server.metrics.relay.drops)


def unverified_later(client: RadioClient) -> list[events.TalkerUnverified]:
    """The TalkerUnverified events the radio's next checks would report (time passed in)."""
    return of(events.TalkerUnverified, client.keyring.tick(time.time() + 60))


# --- the attacks -------------------------------------------------------------------------------


async def test_a_member_who_pre_empts_cannot_speak_as_the_talker_it_pre_empted(
    org: Org, server: RelayServer
) -> None:
    """Alice talks; bob pre-empts her (he raised an imminent peril) and, before carol's backlogged control
    plane names him, sends frames numbered as alice's burst under alice's KID, and frames
    of his own burst under her KID. Carol plays none of them, and all of alice's and bob's
    genuine frames, each under its own talker."""
    async with control_gate(server) as (port, gate):
        alice = await radio(org, server, "alice")
        bob = await radio(org, server, "bob")
        carol, seen = await gated_radio(org, server, "carol", port)
        try:
            b1 = await take_floor(alice, bob, carol)
            alice_words = [b"alice %d" % n for n in range(3)]
            for words in alice_words:
                assert await alice.send_voice(words)
            await seen.until(lambda s: len(played(s)) == 3, "alice's frames at carol")
            before = drops(server)

            # Imminent peril: the level above a dispatcher's comes with its alert (issue 13).
            peril = await bob.raise_emergency(peril=True)
            await bob.wait_for(control.EmergencyAlert, lambda a: a.alert_id == peril)
            gate.hold()
            await bob.press(priority=int(floor.Priority.IMMINENT_PERIL))
            b2 = (await bob.wait_for(control.FloorGranted)).burst_id
            await alice.wait_for(control.FloorRevoke)
            assert b2 != b1
            sequence = (alice.last_voice_sequence or 0) + 1
            forged = [
                forge(bob, alice, b1, sequence, b"alice never said this", ahead=10),
                forge(bob, alice, b2, 0, b"nor this", ahead=20),
            ]
            for inner in forged:
                await send_raw(bob, inner)
            bob_words = [b"bob %d" % n for n in range(3)]
            for words in bob_words:
                assert await bob.send_voice(words)
            await bob.ping_server()  # the relay handled all of it ...
            await udp_round_trip(carol)  # ... and carol handled what it sent her
            assert played(seen) == [("alice", w) for w in alice_words]

            gate.release()
            await seen.until(lambda s: len(played(s)) == 6, "bob's frames at carol")
            await bob.release()
            await seen.until(
                lambda s: any(e.talker == "bob" for e in of(events.TalkerVerified, s)),
                "bob's verified statement",
            )
            # Alice's tail was signed when she heard the revoke, and carol checked it.
            await seen.until(
                lambda s: any(e.burst_id == b1 for e in of(events.TalkerVerified, s)),
                "alice's final statement, sent on the revoke",
            )
            assert played(seen) == [("alice", w) for w in alice_words] + [
                ("bob", w) for w in bob_words
            ]
            after = drops(server)
            assert after.get("wrong_burst", 0) == before.get("wrong_burst", 0) + 1
            assert after.get("wrong_sender", 0) == before.get("wrong_sender", 0) + 1
            assert of(events.TalkerUnverified, seen) == [] == unverified_later(carol)
        finally:
            for client in (carol, bob, alice):
                await client.stop()


async def test_a_member_who_takes_the_floor_after_idle_cannot_speak_as_the_last_talker(
    org: Org, server: RelayServer
) -> None:
    """Alice talks and releases; bob takes the floor and, while carol's backlogged control
    plane still shows alice, sends frames numbered as alice's burst under her KID."""
    async with control_gate(server) as (port, gate):
        alice = await radio(org, server, "alice")
        bob = await radio(org, server, "bob")
        carol, seen = await gated_radio(org, server, "carol", port)
        try:
            b1 = await take_floor(alice, bob, carol)
            alice_words = [b"alice %d" % n for n in range(3)]
            for words in alice_words:
                assert await alice.send_voice(words)
            await seen.until(lambda s: len(played(s)) == 3, "alice's frames at carol")
            before = drops(server)

            gate.hold()
            await alice.release()
            await bob.wait_for(control.FloorIdle)
            b2 = await take_floor(bob)
            sequence = (alice.last_voice_sequence or 0) + 1
            for inner in (
                forge(bob, alice, b1, sequence, b"alice never said this", ahead=10),
                forge(bob, alice, b1, sequence + 1, b"nor this", ahead=11),
                forge(bob, alice, b2, 0, b"nor that", ahead=12),
            ):
                await send_raw(bob, inner)
            bob_words = [b"bob %d" % n for n in range(3)]
            for words in bob_words:
                assert await bob.send_voice(words)
            await bob.ping_server()
            await udp_round_trip(carol)
            assert played(seen) == [("alice", w) for w in alice_words]

            gate.release()
            await seen.until(lambda s: len(played(s)) == 6, "bob's frames at carol")
            await bob.release()
            await seen.until(
                lambda s: {e.burst_id for e in of(events.TalkerVerified, s)} >= {b1, b2},
                "alice's and bob's verified statements",
            )
            assert played(seen) == [("alice", w) for w in alice_words] + [
                ("bob", w) for w in bob_words
            ]
            after = drops(server)
            assert after.get("wrong_burst", 0) == before.get("wrong_burst", 0) + 2
            assert after.get("wrong_sender", 0) == before.get("wrong_sender", 0) + 1
            assert of(events.TalkerUnverified, seen) == [] == unverified_later(carol)
        finally:
            for client in (carol, bob, alice):
                await client.stop()


async def test_one_forged_far_ahead_frame_silences_none_of_the_victims_later_frames(
    org: Org, server: RelayServer
) -> None:
    """Bob, holding the floor after alice, sends one frame under alice's KID and burst with a
    counter a million ahead. Alice's next burst is heard in full."""
    async with control_gate(server) as (port, gate):
        alice = await radio(org, server, "alice")
        bob = await radio(org, server, "bob")
        carol, seen = await gated_radio(org, server, "carol", port)
        try:
            b1 = await take_floor(alice, bob, carol)
            assert await alice.send_voice(b"alice before")
            await seen.until(lambda s: len(played(s)) == 1, "alice's frame at carol")

            gate.hold()
            await alice.release()
            await bob.wait_for(control.FloorIdle)
            await take_floor(bob)
            sequence = (alice.last_voice_sequence or 0) + 1
            await send_raw(bob, forge(bob, alice, b1, sequence, b"far ahead", ahead=10**6))
            await bob.ping_server()
            await udp_round_trip(carol)
            await bob.release()
            await alice.wait_for(control.FloorIdle)
            gate.release()
            await seen.until(lambda s: len(of(control.FloorIdle, s)) == 2, "both FloorIdles")

            b3 = await take_floor(alice, carol)
            later = [b"alice after %d" % n for n in range(20)]
            for words in later:
                assert await alice.send_voice(words)
            await alice.release()
            await seen.until(
                lambda s: any(e.burst_id == b3 for e in of(events.TalkerVerified, s)),
                "alice's verified statement for her next burst",
            )
            assert played(seen) == [("alice", b"alice before")] + [("alice", w) for w in later]
            assert of(events.TalkerUnverified, seen) == [] == unverified_later(carol)
        finally:
            for client in (carol, bob, alice):
                await client.stop()


async def test_even_with_the_relays_help_one_far_ahead_frame_silences_nobody(
    org: Org, server: RelayServer
) -> None:
    """The relay itself delivers bob's far-ahead frame inside alice's live burst, where carol
    expects alice (a relay can always do that; burst statements then catch the words).
    Carol refuses it as implausible, and hears the rest of that burst and the next one."""
    cid = org.channel_id
    alice = await radio(org, server, "alice")
    bob = await radio(org, server, "bob")
    carol = await radio(org, server, "carol")
    seen = Seen(carol)
    try:
        b1 = await take_floor(alice, bob, carol)
        assert await alice.send_voice(b"alice 0")
        await seen.until(lambda s: len(played(s)) == 1, "alice's first frame")
        sequence = (alice.last_voice_sequence or 0) + 1
        relay_forwards(server, "carol", forge(bob, alice, b1, sequence, b"far", ahead=10**6))
        await carol.ping_server()
        refused = of(events.VoiceRejected, seen)
        assert len(refused) == 1 and "no talker counts that fast" in refused[0].reason
        rest = [b"alice %d" % n for n in range(1, 11)]
        for words in rest:
            assert await alice.send_voice(words)
        await alice.release()
        b2 = await take_floor(alice, carol)
        assert await alice.send_voice(b"alice next burst")
        await alice.release()
        await seen.until(
            lambda s: any(e.burst_id == b2 for e in of(events.TalkerVerified, s)),
            "alice's next burst verified",
        )
        assert played(seen) == [("alice", b"alice 0")] + [("alice", w) for w in rest] + [
            ("alice", b"alice next burst")
        ]
        assert cid in carol.affiliated
    finally:
        for client in (carol, bob, alice):
            await client.stop()


# --- verified means verified -------------------------------------------------------------------


async def test_audio_no_statement_covers_is_reported_and_never_shown_verified(
    org: Org, server: RelayServer
) -> None:
    """With the relay's help bob slips a frame into alice's live burst under a sequence no
    statement of hers lists. Alice's statements verify everything else, but carol reports
    the burst as unverified once the bound has passed, and shows no verified mark for it
    afterwards, whatever statements arrive."""
    cid = org.channel_id
    alice = await radio(org, server, "alice")
    bob = await radio(org, server, "bob")
    carol = await radio(org, server, "carol")
    seen = Seen(carol)
    try:
        b1 = await take_floor(alice, bob, carol)
        assert await alice.send_voice(b"alice 0")
        slipped = forge(bob, alice, b1, 1_000_000, b"words no statement lists", ahead=5)
        relay_forwards(server, "carol", slipped)
        await carol.ping_server()
        assert ("alice", b"words no statement lists") in played(seen)  # the documented limit
        # Bob cannot sign for alice: a statement of his for her burst is refused.
        bob_signs = BurstSigner(bob.keys, cid, b1, time.time())
        bob_signs.add(1_000_000, slipped[media.INNER_HEADER.size :])
        relay_forwards(
            server,
            "carol",
            media.pack_inner(cid, b1, 2**31 + 5, media.SIGNATURE, bob_signs.sign(time.time())),
        )
        await alice.release()  # her final statement covers all she sent
        await seen.until(
            lambda s: any(e.burst_id == b1 for e in of(events.TalkerVerified, s)),
            "alice's statement",
        )
        assert of(events.TalkerUnverified, seen) == []
        reports = unverified_later(carol)
        assert [(e.talker, e.burst_id) for e in reports] == [("alice", b1)]
        assert "1 frame(s)" in reports[0].reason
    finally:
        for client in (carol, bob, alice):
            await client.stop()
