"""Revocation while logged in, graceful stop, and what the server keeps on disk or forwards."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto.text import seal_channel_text, seal_for_channel
from ptt_protocol import control, media
from ptt_server.server import RelayServer
from tests.orgfixture import Org, start_server
from tests.ptt_server.rawclient import connect, logged_in


async def test_revoked_mid_session_is_disconnected(org: Org, server: RelayServer) -> None:
    async with logged_in(server, org, "alice", "bob", "disp") as c:
        alice, bob, disp = c["alice"], c["bob"], c["disp"]
        await alice.take_floor(org.channel_id)
        await org.revoke(server, 1, org.accounts["alice"])  # what `ptt-admin revoke` sends
        # Applied as it arrives (no polling): by the time the authority's own Pong came
        # back, the server had already told alice and closed her session.
        error = await alice.wait_for(
            control.Error, lambda e: e.code == control.ERROR_CREDENTIAL_REVOKED
        )
        assert "alice" in error.text
        await alice.wait_closed()
        # Her floor is freed and her media session is gone.
        await bob.wait_for(control.FloorIdle)
        assert "alice" not in server.sessions.by_user
        assert alice.login_ok.session_index not in server.sessions.by_index
        # Everyone else stays, and newcomers get the new list.
        await bob.ping()
        await disp.ping()
        carol = await connect(server, org.accounts["carol"])
        try:
            update = await carol.wait_for(control.RevocationUpdate)
            revoked = org.trust.verify_revocations(update.signed_list)
            assert revoked.revokes(org.accounts["alice"].credential)
        finally:
            await carol.close()
        # And she cannot come back.
        try:
            again = await connect(server, org.accounts["alice"])
        except Exception as exc:
            assert "credential_revoked" in str(exc)
        else:
            await again.close()
            raise AssertionError("a revoked credential logged in again")


async def test_stop_says_goodbye(org: Org, server: RelayServer) -> None:
    async with logged_in(server, org, "alice", "bob", tunnel=("bob",)) as c:
        await server.stop("maintenance")
        for client in c.values():
            await client.wait_closed()
            goodbyes = client.received(control.Goodbye)
            assert [g.reason for g in goodbyes] == ["maintenance"]
            assert goodbyes[0].retry_after > 0


def stored_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("fieldradio.db*")))


async def test_server_never_sees_plaintext(org: Org, server: RelayServer) -> None:
    """Known plaintext goes in sealed; it is found nowhere on disk or on the wire."""
    cid = org.channel_id
    text_marker = "PLAINTEXT-MARKER-text-7f3a9c"
    voice_marker = b"PLAINTEXT-MARKER-voice-51be0d"
    place_marker = b"PLAINTEXT-MARKER-place-c4d210"
    alice = org.accounts["alice"]
    voice_key = AESGCM(os.urandom(32))
    frames: list[bytes] = []
    async with logged_in(server, org, "alice", "bob", "carol") as c:
        talker, bob, carol = c["alice"], c["bob"], c["carol"]
        sealed_text = seal_channel_text(
            org.epoch_key, text_marker, alice.keys, alice.credential, time.time()
        )
        message_id = os.urandom(16)
        await talker.send(
            control.TextSend(message_id=message_id, to_channel=cid, sealed=sealed_text)
        )
        await talker.wait_for(control.TextReceipt)
        await bob.wait_for(control.TextDeliver)
        sealed_place = seal_for_channel(
            org.epoch_key, "location", place_marker, alice.keys, alice.credential, time.time()
        )
        await talker.send(control.LocationReport(sealed_location=sealed_place))
        await talker.send(
            control.EmergencyAlert(
                alert_id=os.urandom(16),
                user_id="alice",
                channel_id=cid,
                sealed_location=sealed_place,
                raised_at=time.time(),
            )
        )
        await bob.wait_for(control.EmergencyAlert)

        granted = await talker.take_floor(cid, priority=4)
        for seq in range(25):
            nonce = seq.to_bytes(12, "big")
            frame = nonce + voice_key.encrypt(nonce, voice_marker + b" #%d" % seq, None)
            frames.append(frame)
            flags = media.END_OF_BURST if seq == 24 else 0
            await talker.send_media(cid, granted.burst_id, seq, frame, flags)
        for listener in (bob, carol):
            for _ in frames:
                await listener.wait_datagram()
        await talker.send(control.FloorRelease(channel_id=cid))
        await bob.wait_for(control.FloorIdle)

        while_running = stored_bytes(org.data_dir)
        wire: list[bytes] = []
        for client in c.values():
            for d in client.datagrams:
                wire.append(d.raw)
                wire.append(d.inner or b"")
            wire.extend(control.encode(m) for m in client.history)
    await server.stop()  # flushes the burst recording and checkpoints the WAL
    at_rest = stored_bytes(org.data_dir)

    # The searches are meaningful: the sealed forms are really there.
    assert sealed_text in at_rest
    assert all(frame in at_rest for frame in frames)
    assert any(frames[0] in blob for blob in wire)
    for marker in (text_marker.encode(), voice_marker, place_marker):
        assert marker not in while_running
        assert marker not in at_rest
        assert not any(marker in blob for blob in wire)


async def test_recordings_and_messages_past_retention_are_pruned(org: Org) -> None:
    relay = await start_server(org, recording_retention_s=60.0, message_retention_s=60.0)
    try:
        store = relay.store
        now = time.time()
        key = await store.start_burst(org.channel_id, 1, "alice", 1, now - 120)
        await store.record_frames(key, [(0, 0, b"old sealed frame")])
        await store.end_burst(key, 1.0, "released")
        fresh = await store.start_burst(org.channel_id, 2, "alice", 1, now)
        await store.record_frames(fresh, [(0, 0, b"new sealed frame")])
        await store.store_message(b"o" * 16, "alice", "bob", None, b"sealed", now - 120, ["bob"])
        await store.store_message(b"n" * 16, "alice", "bob", None, b"sealed", now, ["bob"])
        frames, messages = await relay.prune(now)
        assert (frames, messages) == (1, 1)
        assert await store.burst_frames(key) == []
        assert len(await store.burst_frames(fresh)) == 1
        assert await store.get_message(b"o" * 16) is None
        assert await store.get_message(b"n" * 16) is not None
    finally:
        await relay.stop()
