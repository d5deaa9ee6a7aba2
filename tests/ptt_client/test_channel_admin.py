"""Dispatcher operations against a real server with real officers' clients (no mocks)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest

from crypto.keyring import DEFAULT_SWITCH_DELAY
from ptt_client import channel_admin
from ptt_client.audio import WavFileInput
from ptt_client.channel_admin import ChannelAdminError
from ptt_client.client import ClientError, RadioClient
from ptt_client.codec import OpusDecoder
from ptt_client.voice import Transmitter
from ptt_protocol import control
from tests.tui.org import Field, keys_for, make_bundle, online, open_field, recorded, stop

SAMPLES = Path(__file__).resolve().parents[2] / "ptt_client" / "samples"


def first_step(operation: Coroutine[Any, Any, object]) -> None:
    """Run ``operation`` up to the first time it would wait; fail if it gets that far."""
    try:
        operation.send(None)
    except StopIteration:
        pass
    else:
        operation.close()
        pytest.fail("the operation waited instead of failing at once")


@pytest.fixture
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    async with open_field(tmp_path) as running:
        yield running


async def test_create_channel_publishes_roster_and_keys(field: Field) -> None:
    disp, alice, carol = await online(field, "disp", "alice", "carol")
    try:
        channel_id = await channel_admin.create_channel(disp, "incident-7", ["alice"])
        assert channel_id not in field.channels.values()
        # The dispatcher holds roster v1 and epoch 1, with itself on the roster.
        keys = disp.keyring.channels[channel_id]
        assert keys.current_epoch == 1 and keys.roster is not None
        assert [m.user_id for m in keys.roster.members] == ["alice", "disp"]
        await keys_for(alice, channel_id, 1)
        assert alice.channels[channel_id] == "incident-7"
        await alice.affiliate(channel_id)
        await alice.wait_for(control.Affiliated, lambda e: e.channel_id == channel_id)
        # Carol is not a member: no channel, no key.
        assert channel_id not in carol.keyring.channels
        assert channel_id not in carol.channels
    finally:
        await stop(disp, alice, carol)


async def test_create_channel_with_an_unknown_member_creates_nothing(field: Field) -> None:
    (disp,) = await online(field, "disp")
    try:
        # Said only once the server answered the credential request (its Pong came): a request
        # left unanswered raises "no answer from the server" instead. (How fast the answer
        # comes is a bench: tests/bench/test_timing_goals.py.)
        with pytest.raises(ChannelAdminError, match="no enrolled user 'zed'"):
            await channel_admin.create_channel(disp, "incident-8", ["alice", "zed"])
        async with field.server.store as store:
            assert await store.channel_by_name("incident-8") is None
    finally:
        await stop(disp)


async def test_create_channel_with_a_taken_name_is_refused(field: Field) -> None:
    (disp,) = await online(field, "disp")
    try:
        with pytest.raises(ChannelAdminError, match="exists already"):
            await channel_admin.create_channel(disp, "patrol", ["alice"])
    finally:
        await stop(disp)


async def test_an_officer_cannot_change_a_roster(field: Field) -> None:
    (alice,) = await online(field, "alice")
    try:
        with pytest.raises(ChannelAdminError, match="only a dispatcher or admin"):
            await channel_admin.set_members(alice, field.channels["patrol"], ["alice"])
    finally:
        await stop(alice)


async def test_remove_member_rekeys_without_the_removed_member(field: Field) -> None:
    patrol = field.channels["patrol"]
    disp, alice, bob = await online(field, "disp", "alice", "bob")
    try:
        for client in (disp, alice, bob):
            await keys_for(client, patrol, 1)
        envelopes_to_bob: list[control.KeyEnvelope] = []
        bob.add_listener(
            lambda e: envelopes_to_bob.append(e) if isinstance(e, control.KeyEnvelope) else None
        )
        epoch = await channel_admin.remove_member(disp, patrol, "bob")
        assert epoch == 2
        await keys_for(alice, patrol, 2)
        roster = alice.keyring.channels[patrol].roster
        assert roster is not None and roster.member("bob") is None
        assert [m.user_id for m in roster.members] == ["disp", "alice"]  # order kept
        # Bob learns he is off the roster, and never gets the new key.
        await bob.wait_for(control.RosterUpdate, lambda e: e.channel_id == patrol)
        assert bob.keyring.channels[patrol].current_epoch == 1
        assert 2 not in bob.keyring.channels[patrol].epochs
        assert all(e.epoch != 2 for e in envelopes_to_bob)
        with pytest.raises(ChannelAdminError, match="not on channel"):
            await channel_admin.remove_member(disp, patrol, "bob")
        with pytest.raises(ChannelAdminError, match="stays on the channels"):
            await channel_admin.remove_member(disp, patrol, "disp")
    finally:
        await stop(disp, alice, bob)


async def test_add_member_gives_the_new_member_the_new_epoch(field: Field) -> None:
    patrol = field.channels["patrol"]
    disp, carol = await online(field, "disp", "carol")
    try:
        await keys_for(disp, patrol, 1)
        assert await channel_admin.add_member(disp, patrol, "carol") == 2
        await keys_for(carol, patrol, 2)
        assert carol.channels.get(patrol) == "patrol"
        assert channel_admin.current_members(disp, patrol)[-1] == "carol"
        with pytest.raises(ChannelAdminError, match="already on channel"):
            await channel_admin.add_member(disp, patrol, "carol")
    finally:
        await stop(disp, carol)


async def test_recall_opens_a_burst_only_with_the_channel_key(field: Field) -> None:
    patrol = field.channels["patrol"]
    # Alice's clock is an input: moving it past the sender's switch delay (crypto.keyring)
    # makes her seal with the new epoch at once instead of a second later.
    skew = [0.0]
    alice = field.client("alice", clock=lambda: time.time() + skew[0])
    await alice.start()
    disp, bob = await online(field, "disp", "bob")
    await alice.wait_connected()
    try:
        await alice.affiliate(patrol)
        await keys_for(alice, patrol, 1)
        result = await Transmitter(alice).talk(
            WavFileInput(SAMPLES / "traffic_stop.wav"), channel_id=patrol, duration=1.0
        )
        assert result.outcome == "granted" and result.frames_sent == 50
        burst = await recorded(disp, patrol, "alice", 50)
        frames = await channel_admin.recall_frames(disp, patrol, burst.burst_key)
        assert [f.sequence for f in frames] == sorted(f.sequence for f in frames)
        opened = channel_admin.open_recalled(disp, patrol, burst, frames)
        assert len(opened.opus) == 50 and opened.refused == 0
        decoder = OpusDecoder()
        assert all(len(decoder.decode(packet)) == 960 for packet in opened.opus)
        # Bob still holds epoch 1: he opens this burst too.
        assert len(channel_admin.open_recalled(bob, patrol, burst, frames).opus) == 50
        # Remove bob; alice talks under epoch 2, which bob never received.
        await channel_admin.remove_member(disp, patrol, "bob")
        await keys_for(alice, patrol, 2)
        skew[0] = 2 * DEFAULT_SWITCH_DELAY
        second = await Transmitter(alice).talk(
            WavFileInput(SAMPLES / "medical.wav"), channel_id=patrol, duration=0.4
        )
        assert second.outcome == "granted" and second.frames_sent == 20
        newer = await recorded(disp, patrol, "alice", 20, after=burst.burst_key)
        frames = await channel_admin.recall_frames(disp, patrol, newer.burst_key)
        by_disp = channel_admin.open_recalled(disp, patrol, newer, frames)
        assert len(by_disp.opus) == 20 and by_disp.refused == 0
        by_bob = channel_admin.open_recalled(bob, patrol, newer, frames)
        assert by_bob.opus == () and by_bob.refused == 20
    finally:
        await stop(disp, alice, bob)


async def test_operations_without_a_connection_fail_at_once() -> None:
    bundle = make_bundle("disp", "Dispatch One")
    client = RadioClient(bundle, bundle.open_keys(None))
    # At once: each raises in its first step, before it waits for anything at all.
    with pytest.raises(ClientError, match="not connected"):
        first_step(channel_admin.create_channel(client, "incident-1", ["alice"]))
    with pytest.raises(ClientError, match="not connected"):
        first_step(channel_admin.recall(client, 1))
    with pytest.raises(ChannelAdminError, match="holds no key for channel 1"):
        channel_admin.open_recalled(
            client,
            1,
            control.BurstInfo(burst_key=1, burst_id=1, talker="alice", priority=1, started_at=1.0),
            [],
        )
