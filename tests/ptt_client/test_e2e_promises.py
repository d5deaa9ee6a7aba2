"""Adversarial tests of the promises in docs/security.md, as a radio sees them.

Real crypto, a real server (``org`` and ``server`` from tests/orgfixture.py) and real
:class:`RadioClient` radios. A malicious relay is the real server with the test acting
through it: :func:`relay_says` queues any control message on a radio's connection and
:func:`relay_forwards` seals any inner frame with the radio's hop key and sends it, exactly
what whoever controls the relay process can do. Listening radios use the WebSocket media
tunnel, so media and control reach them in order and a Ping round trip
(:meth:`RadioClient.ping_server`) proves that everything injected before it was handled.

The last tests drive :class:`ptt_client.e2e.Keyring` directly (no server), for properties
checked over many inputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import roster as roster_module
from crypto.epoch import EpochKey, new_epoch_key, wrap_epoch
from crypto.identity import Credential, DeviceKeys, OrgRoot, Role
from crypto.keyring import DEFAULT_GRACE, DEFAULT_SWITCH_DELAY, FrameSealer
from crypto.roster import Member, Roster, sign_roster
from crypto.sframe import decode_header
from crypto.talker import BurstSigner
from ptt_client import channel_admin, events
from ptt_client.client import RadioClient
from ptt_client.e2e import EARLY_FRAME_LIMIT, EARLY_FRAME_TTL, Keyring
from ptt_protocol import control, media
from ptt_server import tls
from ptt_server.server import RelayServer
from ptt_server.store import Store
from tests.credentials import Issued, bundle_for, issue
from tests.orgfixture import Org
from tests.ptt_server.rawclient import connect

# --- radios and the relay as an adversary ------------------------------------------------------


class Clock:
    """Wall-clock time plus an offset the test moves (the keyring's timers are inputs)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def radio(
    org: Org,
    server: RelayServer,
    user: str,
    *,
    clock: Callable[[], float] = time.time,
    join: bool = True,
) -> RadioClient:
    """A logged-in radio on the media tunnel; with ``join``, holding epoch 1, affiliated to the
    channel and holding every member's credential (needed to check burst signatures)."""
    bundle = org.bundle(user, server)
    client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys), use_udp=False, clock=clock)
    await client.start()
    await client.wait_connected()
    if join:
        # The roster comes first; on it the radio asks for its members' credentials.
        await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
        await client.affiliate(org.channel_id)
        await client.wait_for(control.Affiliated)
        await client.ping_server()
        assert set(org.accounts) <= set(client.keyring.credentials)
    return client


@contextlib.asynccontextmanager
async def radios(
    org: Org, server: RelayServer, *users: str, **options: Any
) -> AsyncIterator[dict[str, RadioClient]]:
    clients: dict[str, RadioClient] = {}
    try:
        for user in users:
            clients[user] = await radio(org, server, user, **options)
        yield clients
    finally:
        for client in clients.values():
            await client.stop()


def relay_says(server: RelayServer, user: str, message: control.Message) -> None:
    """The relay sends ``message`` to ``user``'s radio on its control connection."""
    server.sessions.by_user[user].send(message)


def relay_forwards(server: RelayServer, user: str, inner: bytes) -> bytes:
    """The relay seals ``inner`` with ``user``'s hop key and sends it; returns the datagram."""
    session = server.sessions.by_user[user]
    datagram = session.hop.seal(inner)
    relay_resends(server, user, datagram)
    return datagram


def relay_resends(server: RelayServer, user: str, datagram: bytes) -> None:
    """The relay sends an already sealed datagram to ``user`` again."""
    assert server.relay is not None
    server.relay.send(server.sessions.by_user[user], datagram)


async def handled(client: RadioClient) -> list[object]:
    """Everything the radio reported since the last call, once all injected input is handled."""
    await client.ping_server()
    return client.drain_events()


def of(kind: type[Any], reported: list[object]) -> list[Any]:
    return [e for e in reported if isinstance(e, kind)]


async def take_floor(talker: RadioClient, *listeners: RadioClient) -> int:
    """``talker`` holds the floor and every listener knows it; returns the burst id."""
    await talker.press()
    granted = await talker.wait_for(control.FloorGranted)
    for listener in listeners:
        await listener.wait_for(control.FloorTaken, lambda m: m.burst_id == granted.burst_id)
    return granted.burst_id


# --- the relay never sees plaintext --------------------------------------------------------------

VOICE_MARKER = b"PLAINTEXT-voice-e2e-8c41d7"
TEXT_MARKER = "PLAINTEXT-channel-text-e2e-2b9f60"
DIRECT_MARKER = "PLAINTEXT-direct-text-e2e-d03a5e"
LATITUDE, LONGITUDE = 48.858370123456, 2.294481123456
PLACE_MARKER = struct.pack("!dd", LATITUDE, LONGITUDE)  # the sealed location's plaintext


def stored_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("fieldradio.db*")))


async def test_the_relay_stores_and_logs_only_ciphertext_of_real_radio_traffic(
    org: Org, server: RelayServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Real radios: SFrame voice, channel and direct text, a location. The listener gets the
    plaintext (so the markers really were sent); the server's database (every recorded frame
    the relay forwarded, every stored message and location) and its logs hold none of it."""
    caplog.set_level(logging.DEBUG)
    cid = org.channel_id
    async with radios(org, server, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        burst = await take_floor(alice, bob)
        spoken = [VOICE_MARKER + bytes([n]) * 20 for n in range(5)]
        for payload in spoken:
            assert await alice.send_voice(payload)
        heard = [await bob.wait_for(events.VoiceFrame) for _ in spoken]
        assert [f.opus for f in heard] == spoken
        await alice.release()
        assert (await bob.wait_for(events.TalkerVerified)).burst_id == burst
        await alice.send_text(TEXT_MARKER, to_channel=cid)
        await alice.send_text(DIRECT_MARKER, to_user="bob")
        texts = {(await bob.wait_for(events.TextReceived)).text for _ in range(2)}
        assert texts == {TEXT_MARKER, DIRECT_MARKER}
        await alice.send_location(LATITUDE, LONGITUDE)
        await alice.ping_server()
        presence = await server.store.get_presence("alice")
        assert presence is not None and presence.sealed_location is not None
        sealed_place = presence.sealed_location
        alice_credential = bob.keyring.credentials["alice"]
        assert bob.keyring.open_location(sealed_place, alice_credential) == (LATITUDE, LONGITUDE)
    await server.stop()  # flushes the burst recording and checkpoints the WAL
    at_rest = stored_bytes(org.data_dir)
    async with await Store.open(org.db_path) as store:
        recorded = await store.recent_bursts(cid, 5)
        frames = await store.burst_frames(recorded[0].burst_key)
    # The search is meaningful: the sealed forms are really on disk.
    voice = [f.frame for f in frames if not f.flags & media.SIGNATURE]
    assert len(voice) == len(spoken)
    assert all(frame in at_rest for frame in voice)
    assert sealed_place in at_rest
    for marker in (VOICE_MARKER, TEXT_MARKER.encode(), DIRECT_MARKER.encode(), PLACE_MARKER):
        assert marker not in at_rest
        assert not any(marker in frame for frame in voice)
        assert marker.decode("latin-1") not in caplog.text


# --- replays -------------------------------------------------------------------------------------


async def test_a_replayed_frame_is_dropped_by_the_hop_layer_and_by_sframe(
    org: Org, server: RelayServer
) -> None:
    """The same datagram twice: the radio's hop window drops it silently. The same frame
    re-sealed with a fresh hop counter (only the relay can do that): the radio already took
    that frame of the burst, so it is a duplicate (as a repeat of a received frame is) and is
    not even opened; SFrame's replay window stands behind that (tests/crypto). Either way it
    is heard once."""
    async with radios(org, server, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        burst = await take_floor(alice, bob)
        now = time.time()
        first = alice.keyring.seal_voice(org.channel_id, burst, 0, 0, b"heard once", now)
        second = alice.keyring.seal_voice(org.channel_id, burst, 1, 0, b"heard too", now)
        datagram = relay_forwards(server, "bob", first)
        relay_resends(server, "bob", datagram)  # hop-layer replay
        relay_forwards(server, "bob", first)  # end-to-end replay
        relay_forwards(server, "bob", second)
        reported = await handled(bob)
        assert [f.opus for f in of(events.VoiceFrame, reported)] == [b"heard once", b"heard too"]
        assert of(events.VoiceRejected, reported) == []
        assert bob.reception.duplicates == 1  # the end-to-end replay; the hop one never got here


# --- tampering -----------------------------------------------------------------------------------


async def test_frames_the_relay_altered_or_moved_are_refused_and_the_genuine_one_plays(
    org: Org, server: RelayServer
) -> None:
    async with radios(org, server, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        burst = await take_floor(alice, bob)
        inner = alice.keyring.seal_voice(org.channel_id, burst, 5, 0, b"genuine", time.time())
        header, frame = inner[:13], inner[13:]

        def with_header(sequence: int = 5, flags: int = 0, channel: int = org.channel_id) -> bytes:
            return media.pack_inner(channel, burst, sequence, flags, frame)

        flipped_tag = inner[:-1] + bytes([inner[-1] ^ 0x80])
        flipped_body = bytearray(inner)
        flipped_body[len(header) + len(frame) // 2] ^= 0x01
        altered = [
            flipped_tag,
            bytes(flipped_body),
            with_header(sequence=6),  # moved to another position
            with_header(flags=media.FEC),  # flags are authenticated too
            with_header(flags=media.SIGNATURE),  # a voice frame passed off as a statement
            with_header(channel=org.channel_id + 1),  # moved to another channel
            inner[:20],  # truncated
        ]
        for candidate in altered:
            relay_forwards(server, "bob", candidate)
        relay_forwards(server, "bob", inner)
        reported = await handled(bob)
        assert [f.opus for f in of(events.VoiceFrame, reported)] == [b"genuine"]
        assert len(of(events.VoiceRejected, reported)) == len(altered)


# --- impersonation (burst signatures) ------------------------------------------------------------


async def test_a_member_speaking_as_the_talker_is_played_then_reported_by_the_signature(
    org: Org, server: RelayServer
) -> None:
    """Bob holds the epoch key, so he can seal a frame under alice's KID; with the relay's
    help it reaches carol inside alice's burst. SFrame cannot tell (shared group key):
    carol plays it as alice (the documented limit). It takes the place of alice's next
    frame (a radio keeps the first copy of each frame, as it does with repeats), alice's
    signed statement then lists another hash for that sequence, and carol reports the
    forgery; a statement bob signs for alice's burst is refused outright."""
    cid = org.channel_id
    async with radios(org, server, "alice", "bob", "carol") as c:
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        burst = await take_floor(alice, bob, carol)
        for n in range(3):
            assert await alice.send_voice(b"alice %d" % n)
        assert [(await carol.wait_for(events.VoiceFrame)).talker for _ in range(3)] == ["alice"] * 3
        sent = alice.last_voice_sequence
        assert sent is not None
        sequence = sent + 1  # alice's next frame

        key = bob.keyring.epoch_key(cid)
        roster = bob.keyring.channels[cid].roster
        assert roster is not None
        # Counters travel in clear in every SFrame header: bob picks one just ahead of alice's.
        sealer = alice.keyring.channels[cid].sealer
        assert sealer is not None
        ahead = sealer.next_counter + 100
        forger = FrameSealer(key, roster.sender_index("alice"), first_counter=ahead)
        header = media.pack_inner(cid, burst, sequence, 0, b"")
        forged = header + forger.seal(header, b"words alice never said", time.time())
        relay_forwards(server, "carol", forged)
        bob_signs = BurstSigner(bob.keys, cid, burst, time.time())
        bob_signs.add(sequence, forged[13:])
        statement = bob_signs.sign(time.time())
        relay_forwards(
            server,
            "carol",
            media.pack_inner(cid, burst, sequence + 1000, media.SIGNATURE, statement),
        )
        reported = await handled(carol)
        played = of(events.VoiceFrame, reported)
        assert [(f.talker, f.opus) for f in played] == [("alice", b"words alice never said")]
        refused = of(events.VoiceRejected, reported)
        assert len(refused) == 1 and "not signed by 'alice'" in refused[0].reason
        assert of(events.TalkerVerified, reported) == []
        assert await alice.send_voice(b"alice 3")  # too late: carol already took that frame
        duplicates = carol.reception.duplicates

        await alice.release()  # alice's final statement covers every frame she sent
        # The relay forwards the statement to bob and carol in the same step.
        assert (await bob.wait_for(events.TalkerVerified)).talker == "alice"
        reported = await handled(carol)
        reports = of(events.ForgedAudio, reported)
        assert len(reports) == 1, reported
        assert of(events.VoiceFrame, reported) == []  # alice's own frame came second
        assert carol.reception.duplicates == duplicates + 1
        assert reports[0].talker == "alice"
        assert "do not match" in reports[0].reason and str(sequence) in reports[0].reason
        assert of(events.TalkerVerified, reported) == []


# --- non-members ---------------------------------------------------------------------------------


async def test_a_non_member_cannot_inject_audio_even_with_the_relays_help(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    dave = org.issue("dave")
    await org.enroll(dave)  # a valid credential of this org, but not on the channel's roster
    async with radios(org, server, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        burst = await take_floor(alice, bob)
        outsider = await connect(server, dave, udp=False)
        try:
            await outsider.send(control.Affiliate(channel_id=cid))
            assert (await outsider.wait_for(control.Error)).code == control.ERROR_NOT_MEMBER
            # Without the epoch key dave can only make one up, under alice's sender index.
            made_up = EpochKey(cid, 1, 1, os.urandom(32))
            roster = bob.keyring.channels[cid].roster
            assert roster is not None
            header = media.pack_inner(cid, burst, 0, 0, b"")
            fake = FrameSealer(made_up, roster.sender_index("alice")).seal(
                header, b"dave here", time.time()
            )
            dropped = server.metrics.relay.drops["not_affiliated"]
            await outsider.send_media(cid, burst, 0, fake)
            await outsider.ping()
            assert server.metrics.relay.drops["not_affiliated"] == dropped + 1
            assert of(events.VoiceFrame, await handled(bob)) == []
            # A relay that forwards it anyway gets it refused by the listener.
            relay_forwards(server, "bob", header + fake)
            reported = await handled(bob)
            assert of(events.VoiceFrame, reported) == []
            refused = of(events.VoiceRejected, reported)
            assert len(refused) == 1 and "authentication failed" in refused[0].reason
            assert await alice.send_voice(b"alice")  # the floor holder is still heard
            assert (await bob.wait_for(events.VoiceFrame)).opus == b"alice"
        finally:
            await outsider.close()


# --- rosters, revocations, credentials, envelopes pushed by the relay -------------------------


def forge_roster(roster: Roster, keys: DeviceKeys, credential: Credential) -> bytes:
    """A roster signed by anyone (a modified client bypassing sign_roster's role check)."""
    signature = keys.sign(roster_module._signed_part(roster, credential.fingerprint()))
    signed = roster_module._SignedRoster(roster, credential.to_bytes(), signature)
    return b"\x01" + msgspec.msgpack.encode(signed)


async def test_rosters_the_radio_refuses_officer_foreign_expired_and_rolled_back(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    v2 = Roster(cid, 2, org.roster.members)
    alice = org.accounts["alice"]
    stranger_root = OrgRoot.generate()
    foreign_dispatcher = org.issue("disp", Role.DISPATCHER, root=stranger_root)
    now = time.time()
    expired_dispatcher = org.issue(
        "disp2", Role.DISPATCHER, not_before=now - 7200, not_after=now - 60
    )
    disp = org.accounts["disp"]
    refused_rosters = [
        forge_roster(v2, alice.keys, alice.credential),  # signed by an officer
        sign_roster(v2, foreign_dispatcher.keys, foreign_dispatcher.credential),
        sign_roster(v2, expired_dispatcher.keys, expired_dispatcher.credential),
        sign_roster(Roster(cid + 1, 2, v2.members), disp.keys, disp.credential),  # other channel
    ]
    genuine = sign_roster(v2, disp.keys, disp.credential)
    async with radios(org, server, "bob") as c:
        bob = c["bob"]
        for signed in [*refused_rosters, genuine, org.signed_roster, genuine]:
            relay_says(
                server, "bob", control.RosterUpdate(channel_id=cid, version=2, signed_roster=signed)
            )
        reported = await handled(bob)
        state = bob.keyring.channels[cid].roster_state
        assert state.signed == genuine  # v1 (rollback) and v2 again (replay) were refused
        assert [e.roster_version for e in of(events.KeysUpdated, reported)] == [2]


async def test_revocation_lists_and_credentials_the_relay_pushes_must_chain_to_the_root(
    org: Org, server: RelayServer
) -> None:
    now = time.time()
    lost = org.issue("erin")
    expired = org.issue("frank", not_before=now - 7200, not_after=now - 60)
    impostor = org.issue("alice", root=OrgRoot.generate())  # attacker keys, foreign root
    altered = bytearray(org.accounts["alice"].credential.to_bytes())
    altered[-70] ^= 0x01  # inside the root's signature
    newcomer = org.issue("gina")
    current = org.root.sign_revocations(
        version=2, issued_at=int(now), serials=[lost.credential.serial]
    )
    older = org.root.sign_revocations(version=1, issued_at=int(now), serials=[])
    foreign = OrgRoot.generate().sign_revocations(version=9, issued_at=int(now), serials=[])
    async with radios(org, server, "bob") as c:
        bob = c["bob"]
        genuine_alice = bob.keyring.credentials["alice"]
        for revocations in (current, older, foreign):
            relay_says(server, "bob", control.RevocationUpdate(signed_list=revocations.to_bytes()))
        blobs = [lost, expired, impostor]
        relay_says(
            server,
            "bob",
            control.Credentials(
                credentials=(
                    *(a.credential.to_bytes() for a in blobs),
                    bytes(altered),
                    newcomer.credential.to_bytes(),
                )
            ),
        )
        await handled(bob)
        held = bob.keyring.trust.revocations
        assert held is not None and held.version == 2 and held.revokes(lost.credential)
        known = bob.keyring.credentials
        assert "erin" not in known and "frank" not in known
        assert known["alice"] == genuine_alice
        assert "gina" in known  # the push itself was processed: a valid credential is taken


async def test_envelopes_for_someone_else_another_channel_or_another_org_are_refused(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    disp = org.accounts["disp"]
    credentials = {u: a.credential for u, a in org.accounts.items()}
    roster2 = Roster(cid, 2, org.roster.members)  # epoch N is made for roster version N
    epoch2 = wrap_epoch(new_epoch_key(cid, 2, 2), roster2, credentials, disp.keys, disp.credential)
    elsewhere = Roster(cid + 1, 2, org.roster.members)
    other_channel = wrap_epoch(
        new_epoch_key(cid + 1, 2, 2), elsewhere, credentials, disp.keys, disp.credential
    )["bob"]
    stranger = org.issue("disp", Role.DISPATCHER, root=OrgRoot.generate())
    foreign = wrap_epoch(
        new_epoch_key(cid, 2, 2), roster2, credentials, stranger.keys, stranger.credential
    )["bob"]
    async with radios(org, server, "bob") as c:
        bob = c["bob"]
        relay_says(
            server,
            "bob",
            control.RosterUpdate(
                channel_id=cid,
                version=2,
                signed_roster=sign_roster(roster2, disp.keys, disp.credential),
            ),
        )
        for envelope in (epoch2["carol"], other_channel, foreign, epoch2["bob"]):
            relay_says(
                server,
                "bob",
                control.KeyEnvelope(channel_id=cid, epoch=2, recipient="bob", envelope=envelope),
            )
        reported = await handled(bob)
        assert set(bob.keyring.channels[cid].epochs) == {1, 2}
        assert [e.epoch for e in of(events.KeysUpdated, reported) if e.roster_version == 2][-1] == 2
        assert [e.epoch for e in of(events.EpochInstalled, reported)] == [2]


# --- removed members -----------------------------------------------------------------------------


async def test_a_removed_member_opens_nothing_new_and_is_not_heard_even_with_the_relays_help(
    org: Org, server: RelayServer
) -> None:
    """The dispatcher console removes carol (signed roster v2, epoch 2 for the others). The
    relay then hands carol every envelope of epoch 2 and alice's epoch-2 frames; and it
    passes carol's old-epoch frames to bob, as herself and as alice."""
    cid = org.channel_id
    alice_clock, bob_clock = Clock(), Clock()
    alice = await radio(org, server, "alice", clock=alice_clock)
    bob = await radio(org, server, "bob", clock=bob_clock)
    async with radios(org, server, "carol", "disp") as c:
        carol, disp = c["carol"], c["disp"]
        try:
            assert await channel_admin.remove_member(disp, cid, "carol") == 2
            for client in (alice, bob):
                await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 2)
            await carol.wait_for(control.Deaffiliated)
            for user in ("alice", "bob", "disp"):
                for stored in await server.store.envelopes_for(user):
                    relay_says(
                        server,
                        "carol",
                        control.KeyEnvelope(
                            channel_id=cid,
                            epoch=stored.epoch,
                            recipient="carol",
                            envelope=stored.envelope,
                        ),
                    )
            assert of(events.KeysUpdated, await handled(carol)) == []
            assert set(carol.keyring.channels[cid].epochs) == {1}

            alice_clock.offset = DEFAULT_SWITCH_DELAY + 0.5  # alice now seals under epoch 2
            burst = await take_floor(alice, bob)
            inner = alice.keyring.seal_voice(cid, burst, 0, 0, b"not for carol", alice_clock())
            relay_forwards(server, "bob", inner)
            assert [f.opus for f in of(events.VoiceFrame, await handled(bob))] == [b"not for carol"]
            relay_says(server, "carol", taken(cid, "alice", burst))
            relay_forwards(server, "carol", inner)
            reported = await handled(carol)
            assert of(events.VoiceFrame, reported) == []
            assert "no key for the epoch" in of(events.VoiceRejected, reported)[0].reason

            # Carol still holds epoch 1: as herself she is not on bob's roster any more ...
            as_carol = carol.keyring.seal_voice(cid, 777, 0, 0, b"carol again", time.time())
            relay_says(server, "bob", taken(cid, "carol", 777))
            relay_forwards(server, "bob", as_carol)
            # ... and as alice (alice's epoch-1 key derives from the secret carol kept)
            # she is refused once epoch 1's grace has passed at bob.
            epoch1 = carol.keyring.channels[cid].epochs[1]
            old_roster = carol.keyring.channels[cid].rosters[1]
            header = media.pack_inner(cid, 778, 0, 0, b"")
            as_alice = header + FrameSealer(epoch1, old_roster.sender_index("alice")).seal(
                header, b"carol as alice", time.time()
            )
            bob_clock.offset = DEFAULT_GRACE + 0.5
            relay_says(server, "bob", taken(cid, "alice", 778))
            relay_forwards(server, "bob", as_alice)
            reported = await handled(bob)
            assert of(events.VoiceFrame, reported) == []
            reasons = [e.reason for e in of(events.VoiceRejected, reported)]
            assert len(reasons) == 2, reasons
            assert "carol is not on the roster" in reasons[0]
            assert "ended" in reasons[1]
        finally:
            await alice.stop()
            await bob.stop()


def taken(channel_id: int, talker: str, burst: int) -> control.FloorTaken:
    return control.FloorTaken(
        channel_id=channel_id, user_id=talker, priority=1, burst_id=burst, since=time.time()
    )


# --- login: a man in the middle, a credential revoked mid-session ----------------------------


@contextlib.asynccontextmanager
async def man_in_the_middle(tmp_path: Path, server: RelayServer) -> AsyncIterator[tuple[int, str]]:
    """A TLS proxy with its own certificate that relays bytes to the real server over a
    second TLS connection. Yields its port and its certificate's fingerprint."""
    cert, key = tmp_path / "mitm-cert.pem", tmp_path / "mitm-key.pem"
    tls.ensure_self_signed(cert, key, [])
    upstream_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    upstream_tls.check_hostname = False
    upstream_tls.verify_mode = ssl.CERT_NONE

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", server.control_port, ssl=upstream_tls
        )
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=tls.server_context(cert, key))
    try:
        yield proxy.sockets[0].getsockname()[1], tls.fingerprint(cert)
    finally:
        proxy.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await proxy.wait_closed()


async def test_a_man_in_the_middle_with_another_certificate_gets_no_session(
    org: Org, server: RelayServer, tmp_path: Path
) -> None:
    """A radio pinning the real certificate refuses the proxy's. A radio made to pin the
    proxy's certificate logs in through it, but the login statement it signs names the
    proxy's certificate, so the real server refuses the relayed login."""
    genuine = org.bundle("alice", server)
    async with man_in_the_middle(tmp_path, server) as (port, mitm_fingerprint):
        url = f"wss://127.0.0.1:{port}"
        outcomes = []
        for pin in (genuine.tls_fingerprint, mitm_fingerprint):
            bundle = msgspec.structs.replace(genuine, server_url=url, tls_fingerprint=pin)
            client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys), use_udp=False)
            await client.start()
            try:
                outcomes.append(await client.wait_for(events.LoginRefused))
            finally:
                await client.stop()
    assert outcomes[0].code == "certificate"
    assert outcomes[1].code == control.ERROR_AUTH_FAILED
    assert "alice" not in server.sessions.by_user


async def test_a_credential_revoked_mid_session_cuts_the_radio_off_for_good(
    org: Org, server: RelayServer
) -> None:
    async with radios(org, server, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        await take_floor(alice, bob)
        await org.revoke(server, 1, org.accounts["alice"])  # what `ptt-admin revoke alice` sends
        error = await alice.wait_for(control.Error, timeout=5)
        assert error.code == control.ERROR_CREDENTIAL_REVOKED
        await bob.wait_for(control.FloorIdle, timeout=5)
        again = await alice.wait_for(events.LoginRefused, timeout=5)  # its reconnect
        assert again.code == control.ERROR_CREDENTIAL_REVOKED
        assert "alice" not in server.sessions.by_user


# --- the keyring alone: properties over many inputs -------------------------------------------

_T0 = 1_900_000_000.0
_ROOT = OrgRoot.generate()
_CHANNEL = 12
_BURST = 3


_DISP = issue(_ROOT, "disp", Role.DISPATCHER, serial=1, now=_T0)
_ALICE = issue(_ROOT, "alice", serial=2, now=_T0)
_BOB = issue(_ROOT, "bob", serial=3, now=_T0)
_ROSTER = Roster(_CHANNEL, 1, tuple(Member.from_credential(a[1]) for a in (_DISP, _ALICE, _BOB)))
_SIGNED_ROSTER = sign_roster(_ROSTER, *_DISP)
_ENVELOPES = wrap_epoch(
    new_epoch_key(_CHANNEL, 1, 1),
    _ROSTER,
    {a[1].user_id: a[1] for a in (_DISP, _ALICE, _BOB)},
    *_DISP,
)


def _keyring(account: Issued, now: float) -> Keyring:
    keys, credential = account
    keyring = Keyring(bundle_for(_ROOT, account), keys, lambda: now)
    keyring.accept_roster(_CHANNEL, _SIGNED_ROSTER, now)
    keyring.accept_envelope(_CHANNEL, _ENVELOPES[credential.user_id], now)
    keyring.add_credentials([a[1].to_bytes() for a in (_DISP, _ALICE, _BOB)], now)
    return keyring


_GENUINE = _keyring(_ALICE, _T0).seal_voice(_CHANNEL, _BURST, 9, 0, b"genuine opus", _T0)


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_no_bit_flip_of_a_received_inner_frame_is_ever_played(bit: int) -> None:
    """Whatever single bit the relay flips (channel, burst, sequence, flags, KID, counter,
    ciphertext, tag), the radio plays nothing, and the genuine frame still plays after."""
    listener = _keyring(_BOB, _T0)
    listener.expect_talker(_CHANNEL, "alice", _BURST, _T0)
    flipped = bytearray(_GENUINE)
    bit %= len(flipped) * 8
    flipped[bit // 8] ^= 1 << (bit % 8)
    reported = listener.open_media(bytes(flipped), _T0, {})
    assert of(events.VoiceFrame, reported) == []
    played = of(events.VoiceFrame, listener.open_media(_GENUINE, _T0, {}))
    assert [f.opus for f in played] == [b"genuine opus"]


def test_counters_restart_from_the_wall_clock_so_a_restarted_radio_reuses_no_nonce() -> None:
    """Two runs of alice's radio 1 ms apart, each sending 1,000 frames: no (KID, CTR) pair
    (an AES-GCM nonce under one key) is used twice."""

    def run(start: float) -> list[tuple[int, int]]:
        keyring = _keyring(_ALICE, start)
        sent = []
        for sequence in range(1000):
            inner = keyring.seal_voice(_CHANNEL, _BURST, sequence, 0, b"x", start)
            header = decode_header(inner[media.INNER_HEADER.size :])
            sent.append((header.kid, header.ctr))
        return sent

    first, second = run(_T0), run(_T0 + 0.001)
    assert len(set(first)) == len(first) == 1000
    assert not set(first) & set(second)
    assert first[0][1] == int(_T0 * 1000) << 12


def test_early_frames_wait_for_their_floor_taken_but_not_forever_and_not_unbounded() -> None:
    alice = _keyring(_ALICE, _T0)
    frames = [
        alice.seal_voice(_CHANNEL, _BURST, n, 0, bytes([n]), _T0)
        for n in range(EARLY_FRAME_LIMIT + 10)
    ]
    listener = _keyring(_BOB, _T0)
    for inner in frames:
        assert listener.open_media(inner, _T0, {}) == []  # UDP overtook FloorTaken: held
    opened = listener.expect_talker(_CHANNEL, "alice", _BURST, _T0 + 0.1)
    played = [f.opus for f in of(events.VoiceFrame, opened)]
    assert played == [bytes([n]) for n in range(10, EARLY_FRAME_LIMIT + 10)]  # newest 50 kept

    late = _keyring(_BOB, _T0)
    assert late.open_media(frames[0], _T0, {}) == []
    assert late.expect_talker(_CHANNEL, "alice", _BURST, _T0 + EARLY_FRAME_TTL + 0.1) == []
