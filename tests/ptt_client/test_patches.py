"""Patches and channel deletion, end to end through a real server with real radios.

A patch links channels (MCPTT group regroup, TETRA patch): nobody leaves their own channel,
traffic crosses between them on the patch's channel, an emergency stays where it was
raised, and ending the patch deletes the patch's channel (issue 11: the old patch pulled
every officer off ``patrol``, one of them in emergency, and ``patrol`` went silent).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from crypto.errors import PatchError
from crypto.patch_order import MAX_PATCH_LIFETIME, PatchOrder
from ptt_admin import channels as admin_channels
from ptt_admin.session import connect
from ptt_client import channel_admin, events
from ptt_client.channel_admin import ChannelAdminError
from ptt_client.client import RadioClient
from ptt_client.patch_orders import signed_patch
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.tui.org import Field, keys_for, online, open_field, stop


@pytest.fixture
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    async with open_field(tmp_path) as running:
        yield running


async def on_channel(client: RadioClient, channel_id: int) -> None:
    await client.affiliate(channel_id)
    await client.wait_for(control.Affiliated, lambda e: e.channel_id == channel_id)


async def on_their_channels(
    field: Field, disp: RadioClient, alice: RadioClient, carol: RadioClient
) -> None:
    """Alice and the dispatcher on patrol, carol on traffic."""
    await on_channel(alice, field.channels["patrol"])
    await on_channel(carol, field.channels["traffic"])
    await on_channel(disp, field.channels["patrol"])


async def patched(field: Field, disp: RadioClient, *officers: RadioClient) -> int:
    """Patch patrol and traffic; return the patch's channel once every officer listens on it."""
    for channel in ("patrol", "traffic"):
        await keys_for(disp, field.channels[channel], 1)
    patch = await channel_admin.patch(disp, [field.channels["patrol"], field.channels["traffic"]])
    for officer in officers:
        await officer.wait_for(control.Affiliated, lambda e: e.channel_id == patch)
        await keys_for(officer, patch, 1)
    return patch


async def talk(talker: RadioClient, listener: RadioClient, payload: bytes) -> events.VoiceFrame:
    """``talker`` presses PTT on its selected channel and sends one frame; what ``listener`` got."""
    await talker.press()
    await talker.wait_for(control.FloorGranted)
    assert await talker.send_voice(payload)
    frame = await listener.wait_for(events.VoiceFrame, lambda f: f.opus == payload)
    await talker.release()
    await listener.wait_for(control.FloorIdle, lambda e: e.channel_id == frame.channel_id)
    return frame


async def test_a_patch_keeps_everyone_on_their_own_channel_and_traffic_crosses(
    field: Field,
) -> None:
    patrol, traffic = field.channels["patrol"], field.channels["traffic"]
    disp, alice, carol = await online(field, "disp", "alice", "carol")
    try:
        await on_their_channels(field, disp, alice, carol)
        patch = await patched(field, disp, alice, carol)
        assert disp.channels[patch] == "patrol+traffic"
        # Nobody was moved: each is still on (and talks from) their own channel.
        assert alice.selected == patrol and carol.selected == traffic
        assert {patrol, patch} <= alice.core.affiliated
        assert {traffic, patch} <= carol.core.affiliated
        # Patrol to traffic, and traffic to patrol.
        heard = await talk(alice, carol, b"patrol speaking")
        assert (heard.talker, heard.channel_id) == ("alice", patch)
        heard = await talk(carol, alice, b"traffic speaking")
        assert (heard.talker, heard.channel_id) == ("carol", patch)
        # Bob, on patrol but offline when it was made, is told of it at login.
        (bob,) = await online(field, "bob")
        try:
            await bob.wait_for(control.Patch, lambda e: e.channel_id == patch)
            await on_channel(bob, patrol)
            await bob.wait_for(control.Affiliated, lambda e: e.channel_id == patch)
            await keys_for(bob, patch, 1)
            assert (await talk(carol, bob, b"late entry")).talker == "carol"
        finally:
            await stop(bob)
        # Unpatched: the patch's channel is deleted; each is back on their own channel only.
        await channel_admin.unpatch(disp, patch)
        for officer in (alice, carol):
            await officer.wait_for(control.ChannelDeleted, lambda e: e.channel_id == patch)
            assert patch not in officer.core.affiliated and patch not in officer.channels
        assert alice.selected == patrol and carol.selected == traffic
        assert patch not in field.server.channels
        assert patch not in {c.channel_id for c in await field.server.store.list_channels()}
        heard = await talk(alice, disp, b"patrol alone")
        assert heard.channel_id == patrol
    finally:
        await stop(disp, alice, carol)


async def test_an_emergency_on_a_patched_channel_stays_where_it_was_raised(
    field: Field,
) -> None:
    patrol = field.channels["patrol"]
    disp, alice, carol = await online(field, "disp", "alice", "carol")
    try:
        await on_their_channels(field, disp, alice, carol)
        patch = await patched(field, disp, alice, carol)
        alert_id = await alice.raise_emergency()
        alert = await disp.wait_for(control.EmergencyAlert, lambda e: e.alert_id == alert_id)
        assert alert.channel_id == patrol
        # Her emergency talk crosses the patch at emergency priority, pre-empting carol.
        await carol.press()
        await carol.wait_for(control.FloorGranted, lambda e: e.channel_id == patch)
        await alice.press()
        granted = await alice.wait_for(control.FloorGranted)
        assert granted.channel_id == patch
        await carol.wait_for(control.FloorRevoke, lambda e: e.channel_id == patch)
        taken = await carol.wait_for(control.FloorTaken, lambda e: e.user_id == "alice")
        assert (taken.channel_id, taken.priority) == (patch, control.PRIORITY_MAX)
        assert await alice.send_voice(b"officer down")
        frame = await carol.wait_for(events.VoiceFrame, lambda f: f.opus == b"officer down")
        assert frame.priority == control.PRIORITY_MAX
        await alice.release()
        # The patch's end leaves the emergency on patrol, active, with alice still there.
        await channel_admin.unpatch(disp, patch)
        await alice.wait_for(control.ChannelDeleted, lambda e: e.channel_id == patch)
        active = await field.server.store.active_emergencies()
        assert [(a.alert_id, a.channel_id) for a in active] == [(alert_id, patrol)]
        assert alice.selected == patrol
    finally:
        await stop(disp, alice, carol)


async def test_a_patch_outlives_a_restart_of_the_relay(field: Field) -> None:
    patrol, traffic = field.channels["patrol"], field.channels["traffic"]
    disp, alice, carol = await online(field, "disp", "alice", "carol")
    restarted: RelayServer | None = None
    try:
        await on_channel(alice, patrol)
        await on_channel(carol, traffic)
        patch = await patched(field, disp, alice, carol)
        config = msgspec.structs.replace(field.server.config, listen_port=field.server.control_port)
        await field.server.stop()
        restarted = await RelayServer.open(config)
        await restarted.start()
        # Each radio logs in again, is told of the patch, and listens on it again.
        for officer in (alice, carol):
            await officer.wait_for(control.Patch, lambda e: e.channel_id == patch)
            await officer.wait_for(control.Affiliated, lambda e: e.channel_id == patch)
        assert alice.selected == patrol and carol.selected == traffic
        heard = await talk(carol, alice, b"after the restart")
        assert heard.channel_id == patch
    finally:
        await stop(disp, alice, carol)
        if restarted is not None:
            await restarted.stop()


def order_for(holder: RadioClient, patch: int, linked: tuple[int, ...], at: float) -> PatchOrder:
    """An order naming the rosters ``holder`` holds (zeros for one it does not): a relay
    knows every roster, so it can name the ones its victim holds."""
    rosters = []
    for channel_id in (patch, *linked):
        keys = holder.keyring.channels.get(channel_id)
        roster = keys.roster if keys is not None else None
        rosters.append(roster.digest() if roster is not None else bytes(32))
    return PatchOrder(patch, linked, at, at + MAX_PATCH_LIFETIME, tuple(rosters))


def signed(
    client: RadioClient,
    patch: int,
    linked: tuple[int, ...],
    at: float,
    holder: RadioClient | None = None,
) -> control.Patch:
    """``client``'s order for the rosters ``holder`` (default: ``client``) holds."""
    order = order_for(holder or client, patch, linked, at)
    return signed_patch(order, client.keys, client.credential)


async def test_patches_are_refused_unless_they_can_be_kept(field: Field) -> None:
    patrol, traffic = field.channels["patrol"], field.channels["traffic"]
    disp, alice = await online(field, "disp", "alice")
    try:
        for channel in (patrol, traffic):
            await keys_for(disp, channel, 1)
        short = await channel_admin.create_channel(disp, "short", ["alice"])
        now = time.time()
        # An officer may not patch (and cannot sign an order either).
        with pytest.raises(ChannelAdminError, match="only a dispatcher or the org authority"):
            await channel_admin.send_checked(
                alice, [control.Patch(channel_id=short, linked=(patrol, traffic))], "a patch"
            )
        with pytest.raises(PatchError, match="not a dispatcher"):
            signed(alice, short, (patrol, traffic), now)
        refused = {
            "patch refused: patch order format version none": control.Patch(
                channel_id=short, linked=(patrol, traffic)
            ),
            "the order names other channels": control.Patch(
                channel_id=short,
                linked=(patrol, short + 1000),
                order=signed(disp, short, (patrol, traffic), now).order,
            ),
            "order expired": signed(disp, short, (patrol, traffic), now - 3700),
            # A patch channel whose roster leaves a linked member out would leave them deaf.
            "'bob' is on a linked channel but not on 'short'": signed(
                disp, short, (patrol, traffic), now
            ),
        }
        for fragment, message in refused.items():
            with pytest.raises(ChannelAdminError, match=re.escape(fragment)):
                await channel_admin.send_checked(disp, [message], "a patch")
        patch = await channel_admin.patch(disp, [patrol, traffic])
        # A renewal (a newer order for the same channels) is taken and passed on.
        first = field.server.patches[patch].order
        await channel_admin.send_checked(
            disp, [signed(disp, patch, (traffic, patrol), time.time() + 1)], "a renewal"
        )
        assert field.server.patches[patch].order != first
        # A channel is in one patch at a time; a patched channel is not deleted.
        with pytest.raises(ChannelAdminError, match="in patch"):
            await channel_admin.patch(disp, [patrol, short])
        # ...and the channel made for the refused patch is not left behind.
        assert "patrol+short" not in {c.name for c in await field.server.store.list_channels()}
        with pytest.raises(ChannelAdminError, match="end the patch first"):
            await channel_admin.delete_channel(disp, patrol)
        with pytest.raises(ChannelAdminError, match="is not a patch"):
            await channel_admin.unpatch(disp, patrol)
        await channel_admin.unpatch(disp, patch)
        assert field.server.patches == {}
        assert await field.server.store.list_patches() == []
    finally:
        await stop(disp, alice)


async def test_an_evil_relay_cannot_divert_a_channel_through_a_patch(field: Field) -> None:
    """The relay (the test owns it) sends radios patches of its own: none is followed, and
    what alice says on patrol is never heard by carol on traffic."""
    patrol, traffic = field.channels["patrol"], field.channels["traffic"]
    disp, alice, carol = await online(field, "disp", "alice", "carol")
    try:
        await on_their_channels(field, disp, alice, carol)
        # A channel alice and carol are both on, made by the dispatcher for something else.
        other = await channel_admin.create_channel(disp, "both", ["alice", "carol"])
        for officer in (alice, carol):
            await keys_for(officer, other, 1)
        # A channel the authority keyed for alice alone: the dispatcher is not on it.
        async with connect(field.authority) as session:
            secret = await admin_channels.create(session, "secret", ["alice"], now=time.time())
        await keys_for(alice, secret.channel_id, 1)
        await on_channel(alice, secret.channel_id)
        admin = field.authority.admin_bundle().decoded_credential()
        now = time.time()
        forged = [
            # A dispatcher on the patch's channel but not on "secret" cannot divert it.
            signed(disp, other, (secret.channel_id, traffic), now, holder=alice),
            control.Patch(channel_id=other, linked=(patrol, traffic)),  # no order
            signed_patch(  # the org authority is a key manager, but on neither channel
                order_for(alice, other, (patrol, traffic), now), field.authority.admin_keys, admin
            ),
            # An expired order, replayed.
            signed(disp, other, (patrol, traffic), now - 3650, holder=alice),
            control.Patch(  # a genuine order for other channels, relabelled
                channel_id=other,
                linked=(patrol, traffic),
                order=signed(disp, other, (patrol, short_of(field)), now, holder=alice).order,
            ),
        ]
        relay = field.server.sessions.by_user["alice"]
        for message in forged:
            relay.send(message)
            refused = await alice.wait_for(events.PatchRefused)
            assert refused.channel_id == other, refused
        assert alice.core.transmit_channel(None) == patrol and other not in alice.core.patches
        heard = await talk(alice, disp, b"for patrol only")
        assert heard.channel_id == patrol
        assert not [
            e
            for e in carol.drain_events()
            if isinstance(e, events.VoiceFrame) and e.opus == b"for patrol only"
        ]
        # After a genuine patch ends, the relay replays its (unexpired) order: refused too.
        patch = await patched(field, disp, alice, carol)
        replay = field.server.patches[patch]
        await channel_admin.unpatch(disp, patch)
        await alice.wait_for(control.ChannelDeleted, lambda e: e.channel_id == patch)
        relay.send(replay)
        refused = await alice.wait_for(events.PatchRefused)
        assert "ended" in refused.reason and alice.core.transmit_channel(None) == patrol
    finally:
        await stop(disp, alice, carol)


def short_of(field: Field) -> int:
    """A channel id that is not patrol's or traffic's."""
    return max(field.channels.values()) + 100


async def test_a_deleted_channel_is_gone_for_everyone_and_its_name_is_free(field: Field) -> None:
    disp, alice = await online(field, "disp", "alice")
    try:
        incident = await channel_admin.create_channel(disp, "incident-4", ["alice"])
        await keys_for(alice, incident, 1)
        await on_channel(alice, incident)
        await alice.press(incident)
        await alice.wait_for(control.FloorGranted, lambda e: e.channel_id == incident)
        await channel_admin.delete_channel(disp, incident)
        left = await alice.wait_for(control.Deaffiliated, lambda e: e.channel_id == incident)
        assert "incident-4 was deleted" in left.reason
        await alice.wait_for(control.ChannelDeleted, lambda e: e.channel_id == incident)
        assert incident not in alice.channels and incident not in alice.core.affiliated
        with pytest.raises(ChannelAdminError, match=f"no channel {incident}"):
            await channel_admin.send_checked(
                alice, [control.Affiliate(channel_id=incident)], "affiliating"
            )
        # A radio logging in now is not offered it; the name can be used again, not the id.
        (bob,) = await online(field, "bob")
        try:
            listed = await bob.wait_for(control.ChannelList)
            assert incident not in {c.channel_id for c in listed.channels}
        finally:
            await stop(bob)
        again = await channel_admin.create_channel(disp, "incident-4", ["alice"])
        assert again > incident
    finally:
        await stop(disp, alice)


async def test_an_officer_may_not_delete_and_an_emergency_keeps_its_channel(field: Field) -> None:
    disp, alice = await online(field, "disp", "alice")
    try:
        incident = await channel_admin.create_channel(disp, "incident-5", ["alice"])
        await keys_for(alice, incident, 1)
        with pytest.raises(ChannelAdminError, match="only a dispatcher"):
            await channel_admin.delete_channel(alice, incident)
        await on_channel(alice, incident)
        alert_id = await alice.raise_emergency()
        await disp.wait_for(control.EmergencyAlert, lambda e: e.alert_id == alert_id)
        with pytest.raises(ChannelAdminError, match="emergency is active"):
            await channel_admin.delete_channel(disp, incident)
        assert incident in field.server.channels
        await alice.cancel_emergency()
        await disp.wait_for(control.EmergencyCancel, lambda e: e.alert_id == alert_id)
        await channel_admin.delete_channel(disp, incident)
        assert incident not in field.server.channels
    finally:
        await stop(disp, alice)
