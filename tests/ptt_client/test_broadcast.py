"""Broadcast group calls (3GPP TS 22.179 6.2.3), end to end through a real server with real
radios: a dispatcher talks one way to several channels at once, over ordinary talk on them;
listeners hear it, sealed under each channel's own key, marked as a broadcast."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ptt_admin import channels as admin_channels
from ptt_admin.session import connect
from ptt_client import events
from ptt_client.audio import WavFileInput
from ptt_client.client import ClientError, RadioClient
from ptt_client.codec import OpusDecoder
from ptt_client.errors import BroadcastRefused
from ptt_client.voice import Transmitter
from ptt_protocol import control
from tests.tui.org import Field, keys_for, online, open_field, recorded, stop

IN_PROGRESS = "Broadcast in progress"


@pytest.fixture
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    async with open_field(tmp_path) as running:
        # A third channel for the dispatcher and bob, and one the dispatcher is not on.
        async with connect(running.authority) as session:
            for name, members in (("k9", ["disp", "bob"]), ("detectives", ["alice"])):
                made = await admin_channels.create(session, name, members, now=time.time())
                running.channels[name] = made.channel_id
        yield running


async def on_channels(client: RadioClient, *channel_ids: int) -> None:
    for channel_id in channel_ids:
        await client.affiliate(channel_id)
        await affiliated(client, channel_id)
        await keys_for(client, channel_id, 1)


async def affiliated(client: RadioClient, channel_id: int) -> None:
    await client.wait_for(control.Affiliated, lambda e: e.channel_id == channel_id)


async def idle(client: RadioClient, channel_id: int) -> None:
    await client.wait_for(control.FloorIdle, lambda e: e.channel_id == channel_id)


async def heard_on(client: RadioClient, channel_id: int) -> events.VoiceFrame:
    return await client.wait_for(events.VoiceFrame, lambda f: f.channel_id == channel_id)


async def placed(field: Field) -> tuple[RadioClient, RadioClient, RadioClient, RadioClient]:
    """The dispatcher on patrol, traffic and k9; alice on patrol, carol on traffic, bob on k9."""
    disp, alice, carol, bob = await online(field, "disp", "alice", "carol", "bob")
    c = field.channels
    await on_channels(disp, c["patrol"], c["traffic"], c["k9"])
    await on_channels(alice, c["patrol"])
    await on_channels(carol, c["traffic"])
    await on_channels(bob, c["k9"])
    return disp, alice, carol, bob


async def test_a_broadcast_is_heard_on_every_channel_marked_and_pre_empts_ordinary_talk(
    field: Field,
) -> None:
    c = field.channels
    everywhere = (c["patrol"], c["traffic"], c["k9"])
    disp, alice, carol, bob = await placed(field)
    try:
        await alice.press()
        await alice.wait_for(control.FloorGranted)
        outcome = await disp.broadcast(everywhere)
        assert outcome.granted == everywhere and outcome.denied == {}
        # TS 22.179: the broadcast overrides ordinary talk; alice's burst is pre-empted.
        revoke = await alice.wait_for(control.FloorRevoke)
        assert revoke.cause == "Media Burst pre-empted"
        for listener, channel in ((alice, "patrol"), (carol, "traffic"), (bob, "k9")):
            taken = await listener.wait_for(control.FloorTaken, lambda e: e.user_id == "disp")
            assert taken.channel_id == c[channel] and taken.broadcast
            assert listener.floors[c[channel]].broadcast
        assert all(disp.floors[ch].broadcast for ch in everywhere)
        assert await disp.send_voice(b"all units, all channels")
        for listener, channel in ((alice, "patrol"), (carol, "traffic"), (bob, "k9")):
            frame = await listener.wait_for(
                events.VoiceFrame, lambda f: f.opus == b"all units, all channels"
            )
            assert (frame.channel_id, frame.talker) == (c[channel], "disp")
        # One way: an officer's press is refused with the cause, not queued behind it.
        await carol.press()
        denied = await carol.wait_for(control.FloorDeny)
        assert (denied.channel_id, denied.cause) == (c["traffic"], IN_PROGRESS)
        assert field.server.channels[c["traffic"]].floor.queue == []
        await carol.release()
        await disp.end_broadcast()
        for listener, channel in ((alice, "patrol"), (carol, "traffic"), (bob, "k9")):
            await idle(listener, c[channel])
            assert not listener.floors[c[channel]].broadcast
        assert disp.broadcasting == () and disp.keys_down() == []
        # The burst log says broadcast, on each channel.
        burst = await recorded(disp, c["k9"], "disp", 1)
        assert burst.broadcast
        # After it the floor is ordinary again.
        await carol.press()
        await carol.wait_for(control.FloorGranted)
        await carol.release()
    finally:
        await stop(disp, alice, carol, bob)


async def test_real_speech_broadcast_decodes_on_each_channel(field: Field) -> None:
    c = field.channels
    disp, alice, carol, bob = await placed(field)
    try:
        transmitter = Transmitter(disp)
        wav = Path(__file__).parents[2] / "ptt_client" / "samples" / "all_clear.wav"
        with WavFileInput(wav) as source:
            result = await transmitter.broadcast(source, (c["patrol"], c["traffic"]), duration=0.2)
        assert result.outcome == "granted" and result.frames_sent == 10
        assert result.broadcast is not None and result.broadcast.granted == (
            c["patrol"],
            c["traffic"],
        )
        for listener, channel in ((alice, "patrol"), (carol, "traffic")):
            decoder = OpusDecoder()
            frame = await heard_on(listener, c[channel])
            assert len(decoder.decode(frame.opus)) > 0
            await idle(listener, c[channel])
        assert disp.keys_down() == []
    finally:
        await stop(disp, alice, carol, bob)


async def test_an_emergency_pre_empts_a_broadcast_on_its_channel_only(field: Field) -> None:
    c = field.channels
    disp, alice, carol, bob = await placed(field)
    try:
        await disp.broadcast((c["patrol"], c["traffic"]))
        await alice.wait_for(control.FloorTaken, lambda e: e.broadcast)
        await alice.raise_emergency()
        await alice.press()
        granted = await alice.wait_for(control.FloorGranted)
        assert granted.channel_id == c["patrol"]
        revoke = await disp.wait_for(control.FloorRevoke)
        assert revoke.channel_id == c["patrol"]
        # Traffic still hears the broadcast.
        assert await disp.send_voice(b"traffic still hears")
        frame = await carol.wait_for(events.VoiceFrame, lambda f: f.opus == b"traffic still hears")
        assert frame.channel_id == c["traffic"]
        assert disp.core.talking_burst(c["patrol"]) is None
        # A broadcast does not pre-empt the emergency, and is not queued behind it.
        await disp.end_broadcast()
        await carol.wait_for(control.FloorIdle)
        outcome = await disp.broadcast((c["patrol"], c["traffic"]))
        assert outcome.granted == (c["traffic"],)
        assert outcome.denied == {c["patrol"]: "Another MCPTT client has permission"}
        assert field.server.channels[c["patrol"]].floor.holder == "alice"
        await disp.end_broadcast()
    finally:
        await stop(disp, alice, carol, bob)


async def test_an_officer_may_not_broadcast(field: Field) -> None:
    c = field.channels
    (alice,) = await online(field, "alice")
    try:
        await on_channels(alice, c["patrol"], c["detectives"])
        with pytest.raises(BroadcastRefused, match="only a dispatcher") as refused:
            await alice.broadcast((c["patrol"], c["detectives"]))
        assert refused.value.code == control.ERROR_FORBIDDEN
        assert alice.broadcasting == () and alice.keys_down() == []
        assert field.server.channels[c["patrol"]].floor.holder is None
        # Her own PTT works as ever afterwards.
        await alice.press()
        await alice.wait_for(control.FloorGranted)
    finally:
        await stop(alice)


async def test_a_broadcast_naming_a_channel_not_the_dispatchers_changes_nothing(
    field: Field,
) -> None:
    c = field.channels
    disp, alice, carol, bob = await placed(field)
    try:
        await alice.press()
        await alice.wait_for(control.FloorGranted)
        # Sent as it is (the library refuses such a call before it goes out: see below).
        for foreign, code in (
            (c["detectives"], control.ERROR_NOT_MEMBER),
            (4242, control.ERROR_NOT_FOUND),
        ):
            await disp.send_message(control.BroadcastRequest(channel_ids=(c["traffic"], foreign)))
            error = await disp.wait_for(control.Error)
            assert error.code == code and error.text.startswith("broadcast refused")
        assert field.server.channels[c["patrol"]].floor.holder == "alice"
        assert field.server.channels[c["traffic"]].floor.holder is None
        # Alice kept talking: nothing revoked her, and carol was told of nobody.
        assert await alice.send_voice(b"still mine")
        await disp.wait_for(events.VoiceFrame, lambda f: f.opus == b"still mine")
        assert not [e for e in alice.drain_events() if isinstance(e, control.FloorRevoke)]
        assert not [e for e in carol.drain_events() if isinstance(e, control.FloorTaken)]
    finally:
        await stop(disp, alice, carol, bob)


async def test_the_library_refuses_a_broadcast_the_server_would(field: Field) -> None:
    c = field.channels
    disp, alice, carol, bob = await placed(field)
    try:
        with pytest.raises(ClientError, match="at least one channel"):
            await disp.broadcast(())
        with pytest.raises(ClientError, match="named twice"):
            await disp.broadcast((c["patrol"], c["patrol"]))
        with pytest.raises(ClientError, match="at most 8"):
            await disp.broadcast(tuple(range(1, 10)))
        with pytest.raises(ClientError, match="affiliate to channel"):
            await disp.broadcast((c["patrol"], c["detectives"]))
        await disp.broadcast((c["patrol"],))
        with pytest.raises(ClientError, match="on already"):
            await disp.broadcast((c["traffic"],))
        await disp.end_broadcast()
    finally:
        await stop(disp, alice, carol, bob)
