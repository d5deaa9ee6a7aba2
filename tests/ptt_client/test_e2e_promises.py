"""Adversarial tests of the promises in docs/security.md about what a radio plays: the relay
never sees plaintext, and replayed, altered, moved, impersonated or non-member frames are
refused, even with the relay's help (the adversary is :mod:`tests.ptt_client.relay_adversary`).
"""

from __future__ import annotations

import logging
import os
import struct
import time
from pathlib import Path

import pytest

from crypto.epoch import EpochKey
from crypto.keyring import FrameSealer
from crypto.talker import BurstSigner
from ptt_client import events
from ptt_protocol import control, media
from ptt_server.server import RelayServer
from ptt_server.store import Store
from tests.orgfixture import Org
from tests.ptt_client.relay_adversary import (
    handled,
    of,
    radios,
    relay_forwards,
    relay_resends,
    take_floor,
)
from tests.ptt_server.rawclient import connect

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
