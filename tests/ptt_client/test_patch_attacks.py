"""Attacks on patches and channel deletion (issue 11), end to end through a real relay.

The relay is untrusted: what it can send a radio is any message at all (the test owns the
server and injects with ``field.server.sessions.by_user[user].send(...)``), but no order or
roster a dispatcher did not sign. A patch must never make an officer's PTT on ``patrol``
reach anyone who is not on ``patrol`` or on a channel a dispatcher on ``patrol`` linked it
with, and nothing the network sends may crash the relay or a radio.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from crypto.identity import Role
from crypto.patch_order import verify_patch
from ptt_admin import channels as admin_channels
from ptt_admin import people
from ptt_admin.session import connect
from ptt_client import channel_admin, events
from ptt_client.channel_admin import ChannelAdminError
from ptt_client.client import RadioClient
from ptt_client.patch_orders import signed_patch
from ptt_protocol import control
from tests.ptt_client.test_patches import on_channel, patched, signed, talk
from tests.tui.org import Field, keys_for, online, open_field, stop


@pytest.fixture
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    async with open_field(tmp_path) as running:
        yield running


async def second_dispatcher(field: Field, user_id: str = "disp2") -> RadioClient:
    """Another dispatcher of the org, on none of its channels yet, online."""
    async with connect(field.authority) as session:
        enrolled = await people.enroll(
            session, user_id, role=Role.DISPATCHER, display_name="Dispatch Two", now=time.time()
        )
    field.bundles[user_id] = enrolled.bundle
    (client,) = await online(field, user_id)
    return client


def heard(client: RadioClient, payload: bytes) -> list[events.VoiceFrame]:
    return [
        e for e in client.drain_events() if isinstance(e, events.VoiceFrame) and e.opus == payload
    ]


@pytest.mark.parametrize("remover", ["console", "authority"])
async def test_a_member_removed_from_a_patched_channel_hears_it_no_more(
    field: Field, remover: str
) -> None:
    """Bob leaves patrol while it is patched with traffic: he was on the patch's channel as a
    patrol member, and must hear neither patrol nor traffic there any more. Taken off by the
    console or by ``ptt-admin`` (no console made that change: the one on the patch notices),
    the patch's channel is rekeyed without him and the patch goes on for the others."""
    patrol = field.channels["patrol"]
    disp, alice, bob, carol = await online(field, "disp", "alice", "bob", "carol")
    try:
        await on_channel(alice, patrol)
        await on_channel(bob, patrol)
        await on_channel(carol, field.channels["traffic"])
        patch = await patched(field, disp, alice, bob, carol)
        if remover == "console":
            await channel_admin.remove_member(disp, patrol, "bob")
        else:
            async with connect(field.authority) as session:
                await admin_channels.change_members(
                    session, "patrol", remove=["bob"], now=time.time()
                )
        try:
            for officer in (alice, carol):
                await keys_for(officer, patch, 2)
                await officer.wait_for(control.Patch, lambda e: e.channel_id == patch)
        except TimeoutError:
            raise AssertionError("nobody rekeyed the patch's channel without bob") from None
        roster = carol.keyring.channels[patch].roster
        assert roster is not None and roster.member("bob") is None
        assert "bob" not in {s.user_id for s in field.server.channels[patch].listeners.values()}
        bob.drain_events()
        assert (await talk(alice, carol, b"bob is gone")).channel_id == patch
        assert (await talk(carol, alice, b"and traffic too")).channel_id == patch
        assert heard(bob, b"bob is gone") == heard(bob, b"and traffic too") == []
        assert bob.keyring.channels[patch].current_epoch == 1  # he holds nothing newer
    finally:
        await stop(disp, alice, bob, carol)


async def test_a_patch_channel_roster_replaced_after_the_order_diverts_nobody(
    field: Field,
) -> None:
    """disp2, a dispatcher on none of the channels, signs a new roster of the patch's channel
    with itself on it: refused (a dispatcher changes only a channel it is on). The org
    authority then puts disp2 on it. The order disp signed was for the roster disp made:
    radios stop talking into the patch at once, and disp's console puts the patch's channel
    back to the linked channels' members (a new epoch disp2 does not get) before the patch
    goes on. disp2 never hears alice."""
    patrol = field.channels["patrol"]
    disp, alice, carol = await online(field, "disp", "alice", "carol")
    disp2 = await second_dispatcher(field)
    try:
        await on_channel(alice, patrol)
        await on_channel(carol, field.channels["traffic"])
        await on_channel(disp, patrol)
        patch = await patched(field, disp, alice, carol)
        told: list[object] = []
        alice.add_listener(told.append)
        members = [*channel_admin.current_members(disp, patch), "disp2"]
        with pytest.raises(ChannelAdminError, match="only change a channel it is on"):
            await channel_admin.publish_roster(disp2, patch, members, previous_version=1)
        async with connect(field.authority) as session:
            name = field.server.channels[patch].name
            await admin_channels.change_members(session, name, add=["disp2"], now=time.time())
        await keys_for(alice, patch, 3)  # disp's repair
        await alice.wait_for(control.Patch, lambda e: e.channel_id == patch)
        held = [e for e in told if isinstance(e, events.PatchRefused | control.Patch)]
        assert isinstance(held[0], events.PatchRefused) and "roster" in held[0].reason
        assert alice.core.transmit_channel(None) == patch
        roster = alice.keyring.channels[patch].roster
        assert roster is not None and roster.version == 3 and roster.member("disp2") is None
        disp2.drain_events()
        frame = await talk(alice, disp, b"not for disp2")
        assert frame.channel_id == patch
        assert heard(disp2, b"not for disp2") == []
        assert disp2.keyring.channels[patch].current_epoch == 2  # its own, nothing after
    finally:
        await stop(disp, alice, carol, disp2)


async def test_the_relay_keeps_no_patch_order_radios_would_refuse(field: Field) -> None:
    """The relay keeps one order per patch and hands it to every radio that logs in. A
    renewal from a dispatcher who is on none of the channels, or for other rosters, is one
    no radio follows: stored, it would leave every radio logging in afterwards out of the
    patch."""
    disp, alice, carol = await online(field, "disp", "alice", "carol")
    disp2 = await second_dispatcher(field)
    try:
        await on_channel(alice, field.channels["patrol"])
        await on_channel(carol, field.channels["traffic"])
        patch = await patched(field, disp, alice, carol)
        before = field.server.patches[patch].order
        order, _ = verify_patch(before, field.server.trust, time.time())
        at = time.time() + 1
        newer = msgspec.structs.replace(order, issued_at=at, expires_at=at + 3600)
        renewal = signed_patch(newer, disp2.keys, disp2.credential)
        with pytest.raises(ChannelAdminError, match="on every channel"):
            await channel_admin.send_checked(disp2, [renewal], "a renewal")
        # Nor one from the patch's own dispatcher for rosters that are not the current ones
        # (another console's, late): radios would refuse it too.
        stale = msgspec.structs.replace(newer, rosters=(*order.rosters[:-1], bytes(32)))
        with pytest.raises(ChannelAdminError, match="another roster"):
            await channel_admin.send_checked(
                disp, [signed_patch(stale, disp.keys, disp.credential)], "a stale renewal"
            )
        assert field.server.patches[patch].order == before
        (bob,) = await online(field, "bob")
        try:
            await bob.wait_for(control.Patch, lambda e: e.channel_id == patch)  # followed
            await on_channel(bob, field.channels["patrol"])
            await bob.wait_for(control.Affiliated, lambda e: e.channel_id == patch)
        finally:
            await stop(bob)
    finally:
        await stop(disp, alice, carol, disp2)


async def test_an_emergency_raised_as_its_channel_is_deleted_is_kept(
    field: Field, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay checks a channel in memory, then stores. An alert on ``incident`` checked
    while the channel's deletion is on its way to the store must still be kept: an emergency
    is never refused, nor lost with its channel."""
    disp, alice = await online(field, "disp", "alice")
    try:
        incident = await channel_admin.create_channel(disp, "incident-9", ["alice"])
        await keys_for(alice, incident, 1)
        await on_channel(alice, incident)
        store = field.server.store
        delete, raise_ = store.delete_channel, store.raise_emergency
        deleting, raising, deleted = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def delete_after_the_alerts_check(channel_id: int, now: float) -> None:
            deleting.set()
            await raising.wait()  # the alert's handler found the channel still there
            await delete(channel_id, now)
            deleted.set()

        async def raise_after_the_delete(*args: Any) -> Any:
            raising.set()
            await deleted.wait()
            return await raise_(*args)

        monkeypatch.setattr(store, "delete_channel", delete_after_the_alerts_check)
        monkeypatch.setattr(store, "raise_emergency", raise_after_the_delete)
        await disp.send_message(control.ChannelDelete(channel_id=incident))
        await deleting.wait()
        alert_id = await alice.raise_emergency()
        await disp.wait_for(control.ChannelDeleted, lambda e: e.channel_id == incident)
        answer = await alice.wait_for(
            object, lambda e: isinstance(e, control.Error | control.EmergencyAlert)
        )
        assert isinstance(answer, control.EmergencyAlert) and answer.alert_id == alert_id
        await disp.wait_for(control.EmergencyAlert, lambda e: e.alert_id == alert_id)
        assert [a.alert_id for a in await field.server.store.active_emergencies()] == [alert_id]
    finally:
        await stop(disp, alice)


async def test_garbage_patches_unpatches_and_deletes_crash_neither_relay_nor_radio(
    field: Field,
) -> None:
    """Every field of Patch, Unpatch and ChannelDelete at its worst, sent by a dispatcher to
    the relay and by the relay to a radio: each is refused or ignored, and both go on."""
    patrol, traffic = field.channels["patrol"], field.channels["traffic"]
    disp, alice = await online(field, "disp", "alice")
    try:
        await on_channel(alice, patrol)
        await on_channel(disp, patrol)
        gone = await channel_admin.create_channel(disp, "gone", ["alice"])
        await channel_admin.delete_channel(disp, gone)
        genuine = signed(disp, gone, (patrol, traffic), time.time()).order
        top = 2**32 - 1
        orders = [b"", b"\x02", bytes(8192), os.urandom(8192), os.urandom(16 * 1024), genuine]
        garbage: list[control.Message] = [
            *(control.Patch(channel_id=gone, linked=(patrol, traffic), order=o) for o in orders),
            control.Patch(channel_id=0, linked=(0, 0), order=genuine),
            control.Patch(channel_id=top, linked=tuple(range(1, 5000)), order=genuine),
            control.Patch(channel_id=patrol, linked=(patrol, traffic), order=genuine),
            control.Patch(channel_id=patrol, linked=(), order=os.urandom(100)),
            *(control.Unpatch(channel_id=c) for c in (0, gone, patrol, top)),
            *(control.ChannelDelete(channel_id=c) for c in (0, gone, top)),
            control.ChannelDeleted(channel_id=top, name="x" * 5000, by_user="y" * 5000),
            control.ChannelDeleted(channel_id=0),
        ]
        for message in garbage:
            with pytest.raises(ChannelAdminError):
                await channel_admin.send_checked(disp, [message], "garbage")
        with pytest.raises(ChannelAdminError, match="only a dispatcher"):  # nor an officer's
            await channel_admin.send_checked(alice, [control.Unpatch(channel_id=gone)], "unpatch")
        # The relay sends them all to alice (first the patches, among them the genuine order
        # of the channel she saw deleted), each time then a Pong: she read every one, is up,
        # and follows none.
        relay = field.server.sessions.by_user["alice"]
        patches = [m for m in garbage if isinstance(m, control.Patch)]
        batches: list[list[control.Message]] = [
            [*patches],
            [m for m in garbage if m not in patches],
        ]
        for nonce, batch in enumerate(batches):
            for message in batch:
                relay.send(message)
            relay.send(control.Pong(nonce=nonce))
            pong = await alice.wait_for(control.Pong, lambda e: e.nonce in (0, 1))
            assert pong.nonce == nonce
            assert alice.core.patches == {} and alice.core.transmit_channel(None) == patrol
        assert patrol in alice.core.affiliated
        assert field.server.patches == {} and gone not in field.server.channels
        assert (await talk(alice, disp, b"still here")).channel_id == patrol
    finally:
        await stop(disp, alice)


async def test_two_consoles_patching_the_same_channels_at_once_make_one_patch(
    field: Field,
) -> None:
    patrol, traffic = field.channels["patrol"], field.channels["traffic"]
    disp, alice, carol = await online(field, "disp", "alice", "carol")
    disp2 = await second_dispatcher(field)
    try:
        async with connect(field.authority) as session:
            for name in ("patrol", "traffic"):
                await admin_channels.change_members(session, name, add=["disp2"], now=time.time())
        for console in (disp, disp2):
            for channel in (patrol, traffic):
                await keys_for(console, channel, 2)
        await on_channel(alice, patrol)
        await on_channel(carol, traffic)
        made = await asyncio.gather(
            channel_admin.patch(disp, [patrol, traffic]),
            channel_admin.patch(disp2, [traffic, patrol]),
            return_exceptions=True,
        )
        [patch] = [m for m in made if isinstance(m, int)]
        [refused] = [m for m in made if isinstance(m, BaseException)]
        assert isinstance(refused, ChannelAdminError) and "in patch" in str(refused)
        assert list(field.server.patches) == [patch]
        assert [p.patch_id for p in await field.server.store.list_patches()] == [patch]
        # The loser's channel is gone, so nobody is left listening on it.
        names = {c.name for c in await field.server.store.list_channels()}
        assert names == {"patrol", "traffic", field.server.channels[patch].name}
        for officer in (alice, carol):
            await officer.wait_for(control.Affiliated, lambda e: e.channel_id == patch)
        assert alice.core.transmit_channel(None) == patch == carol.core.transmit_channel(None)
    finally:
        await stop(disp, alice, carol, disp2)


async def test_an_ended_patch_replayed_after_a_reconnect_or_a_flood_of_ends_is_not_followed(
    field: Field,
) -> None:
    patrol = field.channels["patrol"]
    disp, alice, carol = await online(field, "disp", "alice", "carol")
    try:
        await on_channel(alice, patrol)
        await on_channel(carol, field.channels["traffic"])
        patch = await patched(field, disp, alice, carol)
        replay = field.server.patches[patch]
        await channel_admin.unpatch(disp, patch)
        await alice.wait_for(control.ChannelDeleted, lambda e: e.channel_id == patch)
        field.server.sessions.by_user["alice"].close("the relay drops her")
        await alice.wait_for(events.Connected, lambda e: e.reconnect)
        relay = field.server.sessions.by_user["alice"]
        relay.send(replay)  # order still unexpired
        refused = await alice.wait_for(events.PatchRefused)
        assert "ended" in refused.reason
        # ...and not reported as a patch either (a radio would tell its officer it is on).
        assert not [e for e in alice.drain_events() if isinstance(e, control.Patch)]
        # Ends and deletions of a hundred other channels do not make her forget it ended.
        top = 2**32 - 1
        for n in range(100):
            relay.send(control.Unpatch(channel_id=top - n))
            relay.send(control.ChannelDeleted(channel_id=top - 200 - n))
        relay.send(replay)
        answer = await alice.wait_for(
            object, lambda e: isinstance(e, events.PatchRefused | control.Patch)
        )
        assert isinstance(answer, events.PatchRefused) and "ended" in answer.reason
        assert alice.core.transmit_channel(None) == patrol and patch not in alice.core.affiliated
    finally:
        await stop(disp, alice, carol)


async def test_a_patch_ended_mid_emergency_call_leaves_the_call_on_the_own_channel(
    field: Field,
) -> None:
    """The relay ends the patch (a made-up Unpatch) while alice, in emergency, talks across
    it: she is off the patch at once, and her next press is heard on patrol, at emergency
    priority, by the dispatcher; the alert stays on patrol."""
    patrol = field.channels["patrol"]
    disp, alice, carol = await online(field, "disp", "alice", "carol")
    try:
        await on_channel(alice, patrol)
        await on_channel(carol, field.channels["traffic"])
        await on_channel(disp, patrol)
        patch = await patched(field, disp, alice, carol)
        alert_id = await alice.raise_emergency()
        await alice.press()
        granted = await alice.wait_for(control.FloorGranted)
        assert granted.channel_id == patch
        assert await alice.send_voice(b"across the patch")
        frame = await disp.wait_for(events.VoiceFrame, lambda f: f.opus == b"across the patch")
        assert (frame.channel_id, frame.priority) == (patch, control.PRIORITY_MAX)
        field.server.sessions.by_user["alice"].send(control.Unpatch(channel_id=patch))
        await disp.wait_for(control.FloorIdle, lambda e: e.channel_id == patch)
        assert not alice.ptt_down() and alice.core.transmit_channel(None) == patrol
        await alice.press()
        granted = await alice.wait_for(control.FloorGranted)
        assert granted.channel_id == patrol
        assert await alice.send_voice(b"officer down")
        frame = await disp.wait_for(events.VoiceFrame, lambda f: f.opus == b"officer down")
        assert (frame.channel_id, frame.priority) == (patrol, control.PRIORITY_MAX)
        await alice.release()
        active = await field.server.store.active_emergencies()
        assert [(a.alert_id, a.channel_id) for a in active] == [(alert_id, patrol)]
    finally:
        await stop(disp, alice, carol)
