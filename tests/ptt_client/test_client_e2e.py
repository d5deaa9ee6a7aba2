"""RadioClient against a real server: login, floor, voice end to end, reconnects, texts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.identity import DeviceKeys
from crypto.roster import Member, Roster, sign_roster
from ptt_client import events
from ptt_client.audio import WavDirectoryOutput, WavFileInput, WavFileOutput, load_wav
from ptt_client.client import RadioClient
from ptt_client.codec import Pcm
from ptt_client.samples import sample_paths
from ptt_client.voice import Played, Player, SavedBurst, Transmitter
from ptt_protocol import control, media
from ptt_server.server import RelayServer
from tests.orgfixture import Org, start_server
from tests.ptt_client.speech import similarity


async def radio(org: Org, server: RelayServer, user: str, **options: object) -> RadioClient:
    bundle = org.bundle(user, server)
    client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys), **options)  # type: ignore[arg-type]
    await client.start()
    await client.wait_connected()
    return client


@pytest.fixture
async def radios(org: Org, server: RelayServer) -> AsyncIterator[dict[str, RadioClient]]:
    clients = {u: await radio(org, server, u) for u in ("alice", "bob")}
    for client in clients.values():
        await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
        await client.affiliate(org.channel_id)
        await client.wait_for(control.Affiliated)
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.stop()


async def test_voice_frames_reach_the_other_radio_decrypted(
    org: Org, radios: dict[str, RadioClient]
) -> None:
    alice, bob = radios["alice"], radios["bob"]
    await alice.press()
    await alice.wait_for(control.FloorGranted)
    await bob.wait_for(control.FloorTaken, lambda m: m.user_id == "alice")
    sent = [bytes([i]) * 40 for i in range(5)]
    for payload in sent:
        assert await alice.send_voice(payload)
    got = [await bob.wait_for(events.VoiceFrame) for _ in sent]
    assert [f.opus for f in got] == sent
    assert all(f.talker == "alice" for f in got)
    await alice.release()
    verified = await bob.wait_for(events.TalkerVerified)
    assert verified.talker == "alice"


async def test_speech_wav_in_at_one_radio_comes_out_similar_at_another(
    org: Org, radios: dict[str, RadioClient], tmp_path: Path
) -> None:
    alice, bob = radios["alice"], radios["bob"]
    sample, other = sample_paths()[0], sample_paths()[1]
    played: list[Played] = []
    heard_all = asyncio.Event()
    expected = len(list(WavFileInput(sample).frames()))

    def on_played(frame: Played) -> None:
        played.append(frame)
        # The last frame or two may reach the player after their play-out slot once the
        # FloorIdle ended the burst on a loaded machine (lost, as late audio is on the air).
        if len(played) >= expected - 2:
            heard_all.set()

    out_path = tmp_path / "bob.wav"
    output = WavFileOutput(out_path)
    player = Player(bob, output, tones=False, on_played=on_played)
    player.start()
    result = await Transmitter(alice).talk(WavFileInput(sample))
    assert result.outcome == "granted" and result.frames_sent == expected
    async with asyncio.timeout(5):
        await heard_all.wait()
    await player.stop()
    output.close()
    assert {p.talker for p in played} == {"alice"}
    # Loopback loses nothing, but a loaded machine may deliver a frame after its play-out
    # time: the jitter buffer then conceals it. Nearly all must be played as sent.
    assert [p.kind for p in played].count("play") >= expected * 0.95, [p.kind for p in played]
    received = load_wav(out_path)
    reference = load_wav(sample)
    same = similarity(reference, received)
    different = similarity(load_wav(other), received)
    assert same > 0.8, same
    assert same > different + 0.3, (same, different)


async def test_two_radios_press_at_once_one_granted_one_queued(
    radios: dict[str, RadioClient],
) -> None:
    alice, bob = radios["alice"], radios["bob"]
    await asyncio.gather(alice.press(), bob.press())
    answers = await asyncio.gather(
        alice.wait_for(control.FloorGranted | control.FloorQueuePosition | control.FloorDeny),  # type: ignore[arg-type]
        bob.wait_for(control.FloorGranted | control.FloorQueuePosition | control.FloorDeny),  # type: ignore[arg-type]
    )
    kinds = sorted(type(a).__name__ for a in answers)
    assert kinds == ["FloorGranted", "FloorQueuePosition"], kinds
    holder, waiter = (alice, bob) if isinstance(answers[0], control.FloorGranted) else (bob, alice)
    await holder.release()
    await waiter.wait_for(control.FloorGranted)


async def test_late_entry_hears_the_rest_of_the_burst(
    org: Org, server: RelayServer, radios: dict[str, RadioClient]
) -> None:
    alice = radios["alice"]
    await alice.press()
    await alice.wait_for(control.FloorGranted)
    assert await alice.send_voice(b"before carol")
    carol = await radio(org, server, "carol")
    try:
        await carol.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
        await carol.affiliate(org.channel_id)
        taken = await carol.wait_for(control.FloorTaken)
        assert taken.user_id == "alice"
        assert await alice.send_voice(b"after carol joined")
        frame = await carol.wait_for(events.VoiceFrame)
        assert frame.opus == b"after carol joined" and frame.talker == "alice"
    finally:
        await carol.stop()


async def test_radios_come_back_and_reaffiliate_after_a_server_restart(
    org: Org, server: RelayServer, radios: dict[str, RadioClient]
) -> None:
    alice, bob = radios["alice"], radios["bob"]
    control_port, media_port = server.control_port, server.media_port
    await server.stop()
    for client in (alice, bob):
        await client.wait_for(events.Disconnected)
    restarted = await start_server(org, listen_port=control_port, media_port=media_port)
    try:
        # Within 3 s is a bench (tests/bench/test_timing_goals.py); here, that they do.
        for client in (alice, bob):
            await client.wait_for(events.Connected, lambda e: e.reconnect)
            await client.wait_for(control.Affiliated)
        await alice.press()
        await alice.wait_for(control.FloorGranted)
        assert await alice.send_voice(b"after restart")
        assert (await bob.wait_for(events.VoiceFrame)).opus == b"after restart"
    finally:
        await restarted.stop()


async def test_text_to_an_offline_officer_arrives_once_when_they_reconnect(
    org: Org, server: RelayServer, radios: dict[str, RadioClient]
) -> None:
    alice = radios["alice"]
    message_id = await alice.send_text("meet at the north gate", to_user="carol")
    await alice.send_text("and bring the van", to_channel=org.channel_id)
    await alice.wait_for(control.TextReceipt, lambda r: r.kind == control.RECEIPT_STORED)
    carol = await radio(org, server, "carol")
    try:
        texts = [await carol.wait_for(events.TextReceived) for _ in range(2)]
        assert sorted(t.text for t in texts) == ["and bring the van", "meet at the north gate"]
        direct = next(t for t in texts if t.to_channel is None)
        assert direct.message_id == message_id and direct.from_user == "alice"
        receipt = await alice.wait_for(
            control.TextReceipt,
            lambda r: r.kind == control.RECEIPT_DELIVERED and r.message_id == message_id,
        )
        assert receipt.by_user == "carol"
        # A resend (same id, as after a lost acknowledgement) is not shown twice.
        await alice.send_message(
            control.TextSend(message_id=message_id, to_user="carol", sealed=b"x" * 10)
        )
        await carol.ping_server()
        assert not any(isinstance(e, events.TextReceived) for e in carol.drain_events())
    finally:
        await carol.stop()


async def test_a_removed_member_hears_nothing_after_the_rekey(
    org: Org, server: RelayServer, radios: dict[str, RadioClient]
) -> None:
    alice, bob = radios["alice"], radios["bob"]
    carol = await radio(org, server, "carol")
    try:
        await carol.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
        await carol.affiliate(org.channel_id)
        await carol.wait_for(control.Affiliated)
        # The dispatcher removes carol: roster v2, epoch 2 wrapped for the others only.
        disp = org.accounts["disp"]
        kept = [a for u, a in org.accounts.items() if u != "carol"]
        roster = Roster(
            org.channel_id, 2, tuple(Member.from_credential(a.credential) for a in kept)
        )
        signed = sign_roster(roster, disp.keys, disp.credential)
        key = new_epoch_key(org.channel_id, 2, 2)
        envelopes = wrap_epoch(
            key, roster, {a.user_id: a.credential for a in kept}, disp.keys, disp.credential
        )
        console = await radio(org, server, "disp")
        try:
            await console.send_message(
                control.RosterUpdate(channel_id=org.channel_id, version=2, signed_roster=signed)
            )
            for user, envelope in envelopes.items():
                await console.send_message(
                    control.KeyEnvelope(
                        channel_id=org.channel_id, epoch=2, recipient=user, envelope=envelope
                    )
                )
            for client in (alice, bob):
                await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 2)
            await carol.wait_for(control.Deaffiliated)
            assert 2 not in carol.keyring.channels[org.channel_id].epochs
        finally:
            await console.stop()
        # Alice talks under the new epoch (after the sender switch delay).
        later = time.time() + 5
        await alice.press()
        await alice.wait_for(control.FloorGranted)
        sealer = alice.keyring.channels[org.channel_id].sealer
        assert sealer is not None
        header = media.pack_inner(org.channel_id, 99, 0, 0, b"")
        inner = header + sealer.seal(header, b"carol must not hear this", later)
        assert sealer.epoch == 2
        assert await alice.send_voice(b"carol must not hear this either")
        frame = await bob.wait_for(events.VoiceFrame)
        assert frame.opus == b"carol must not hear this either"
        # The relay no longer sends her anything; and even a relay that did would not help:
        carol.keyring.expect_talker(org.channel_id, "alice", 99, later)
        refused = carol.keyring.open_media(inner, later, carol.floors)
        assert [type(e) for e in refused] == [events.VoiceRejected]
        await carol.ping_server()
        assert not [e for e in carol.drain_events() if isinstance(e, events.VoiceFrame)]
    finally:
        await carol.stop()


async def test_media_falls_back_to_the_websocket_when_udp_is_blocked(
    org: Org, server: RelayServer, radios: dict[str, RadioClient]
) -> None:
    bob = radios["bob"]
    dave = await radio(org, server, "carol", use_udp=False)
    try:
        assert dave.media_path == "tunnel"
        await dave.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
        await dave.affiliate(org.channel_id)
        await dave.wait_for(control.Affiliated)
        await dave.press()
        await dave.wait_for(control.FloorGranted)
        assert await dave.send_voice(b"through the tunnel")
        assert (await bob.wait_for(events.VoiceFrame)).opus == b"through the tunnel"
        await dave.release()
        await bob.press()
        await bob.wait_for(control.FloorGranted)
        assert await bob.send_voice(b"back through the tunnel")
        assert (await dave.wait_for(events.VoiceFrame)).opus == b"back through the tunnel"
    finally:
        await dave.stop()


async def test_a_frame_that_overtakes_its_floor_taken_is_played_once_the_talker_is_known(
    org: Org, radios: dict[str, RadioClient]
) -> None:
    alice, bob = radios["alice"], radios["bob"]
    sealer = alice.keyring.channels[org.channel_id].sealer
    assert sealer is not None
    now = time.time()
    header = media.pack_inner(org.channel_id, 7, 0, 0, b"")
    inner = header + sealer.seal(header, b"first words", now)
    assert bob.keyring.open_media(inner, now, bob.floors) == []  # UDP came before FloorTaken
    opened = bob.keyring.expect_talker(org.channel_id, "alice", 7, now)
    assert [(type(e), getattr(e, "opus", None)) for e in opened] == [
        (events.VoiceFrame, b"first words")
    ]
    # Held frames of a burst whose talker is someone else are not played as alice's.
    inner2 = header[:4] + media.pack_inner(org.channel_id, 8, 1, 0, b"")[4:]
    inner2 += sealer.seal(inner2, b"for burst eight", now)
    assert bob.keyring.open_media(inner2, now, bob.floors) == []
    refused = bob.keyring.expect_talker(org.channel_id, "carol", 8, now)
    assert [type(e) for e in refused] == [events.VoiceRejected]


class StallingInput(WavFileInput):
    """A microphone whose driver stalls once, mid-burst, for longer than the listener's jitter
    buffer holds (it runs dry and goes idle), as a stalled link would."""

    blocking = True  # read in a thread, so the stall holds the talker, not the event loop

    def __init__(self, path: Path, stall_at: int, stall_s: float) -> None:
        super().__init__(path)
        self._left, self._stall_s = stall_at, stall_s

    def read_frame(self) -> Pcm | None:
        self._left -= 1
        if self._left == 0:
            time.sleep(self._stall_s)  # the stall under test, in the talker's thread
        return super().read_frame()


async def test_a_burst_heard_into_a_directory_is_one_file_across_a_stall(
    org: Org, radios: dict[str, RadioClient], tmp_path: Path
) -> None:
    alice, bob = radios["alice"], radios["bob"]
    sample = sample_paths()[0]
    saved: list[SavedBurst] = []
    done = asyncio.Event()

    def on_saved(burst: SavedBurst) -> None:
        saved.append(burst)
        done.set()

    played: list[Played] = []
    player = Player(
        bob,
        WavDirectoryOutput(tmp_path / "heard"),
        tones=False,
        on_played=played.append,
        on_saved=on_saved,
    )
    player.start()
    try:
        # 0.4 s without a frame: far past the buffer's delay and its 3 concealed frames.
        result = await Transmitter(alice).talk(StallingInput(sample, 40, 0.4))
        assert result.outcome == "granted"
        async with asyncio.timeout(10):  # a guard against a hang, not a timing goal
            await done.wait()
        await bob.ping_server()
    finally:
        await player.stop()
    assert any(p.kind == "plc" for p in played)  # the buffer did run dry in the middle
    (burst,) = saved
    assert (burst.channel_id, burst.talker) == (org.channel_id, "alice")
    assert sorted((tmp_path / "heard").iterdir()) == [burst.path]
    assert burst.seconds == len(load_wav(burst.path)) / 48_000 >= result.frames_sent * 0.02 * 0.9
