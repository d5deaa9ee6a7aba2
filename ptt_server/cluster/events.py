"""This node's side of the cluster's events: what another node changed, done here too.

Each handler gets the body another node published (:mod:`ptt_server.cluster.news`),
decodes it strictly (a bad body is refused and counted by :class:`ClusterNode`) and acts
on this node's own sessions only: the node that received the change from a radio or the
org authority has stored it and told its own sessions already.

Signed objects (rosters, revocation lists) are verified here against the pinned org root
before anything changes; the store is read first, as the truth, and the signed object in
the event only fills in when this node's store has not got it (yet).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from crypto.errors import CryptoError
from crypto.identity import TrustAnchor
from crypto.patch_order import verify_patch
from crypto.roster import RosterState
from ptt_protocol import control
from ptt_server.cluster import news, wire
from ptt_server.handlers import authority, emergencies, keys, patches, presence

if TYPE_CHECKING:
    from ptt_server.cluster.node import ClusterNode
    from ptt_server.server import RelayServer

log = logging.getLogger("ptt_server.cluster")


def register(node: ClusterNode) -> None:
    """Handle every kind of event on ``node`` (before it subscribes)."""
    server = node.server

    async def on_emergency(body: bytes) -> None:
        await emergency(server, news.decode(body, news.EmergencyNews))

    async def on_channel(body: bytes) -> None:
        await channel_changed(server, news.decode(body, news.ChannelNews))

    async def on_channel_deleted(body: bytes) -> None:
        channel_deleted(server, news.decode(body, news.ChannelDeletedNews))

    async def on_patch(body: bytes) -> None:
        patch_changed(server, news.decode(body, news.PatchNews))

    async def on_revocations(body: bytes) -> None:
        await revocations(server, news.decode(body, news.RevocationNews))

    async def on_presence(body: bytes) -> None:
        update = news.control_of(
            news.decode(body, news.PresenceNews).update, control.PresenceUpdate
        )
        presence.push_update(server, control.encode(update), update.user_id)

    async def on_login(body: bytes) -> None:
        logged_in_elsewhere(server, news.decode(body, news.LoginNews))

    node.on_event(news.EMERGENCY, on_emergency)
    node.on_event(news.CHANNEL, on_channel)
    node.on_event(news.CHANNEL_DELETED, on_channel_deleted)
    node.on_event(news.PATCH, on_patch)
    node.on_event(news.UNPATCH, on_patch)
    node.on_event(news.REVOCATIONS, on_revocations)
    node.on_event(news.PRESENCE, on_presence)
    node.on_event(news.LOGIN, on_login)

    async def on_key_delivered(body: bytes) -> None:
        event = news.decode(body, news.KeyDeliveredNews)
        keys.key_delivered(server, event.channel_id, event.epoch)

    node.on_event(news.KEY_DELIVERED, on_key_delivered)

    async def on_enrolled(body: bytes) -> None:
        # The store says which device is enrolled now (the event only says whom to check).
        user_id = news.decode(body, news.EnrolledNews).user_id
        enrolled = await server.store.get_user(user_id)
        if enrolled is not None:
            authority.end_replaced_session(server, user_id, enrolled.fingerprint)

    node.on_event(news.ENROLLED, on_enrolled)


async def emergency(server: RelayServer, event: news.EmergencyNews) -> None:
    """An alert, ack or cancel from another node, to this node's part of its audience."""
    messages = [wire.check_control(encoded) for encoded in event.messages]
    ids = set()
    for message in messages:
        if not isinstance(
            message, control.EmergencyAlert | control.EmergencyAck | control.EmergencyCancel
        ):
            raise wire.BusMessageError(f"an emergency event carrying a {type(message).__name__}")
        if isinstance(message, control.EmergencyAlert) and message.user_id != event.raiser:
            raise wire.BusMessageError("an emergency event whose alert names another raiser")
        ids.add(message.alert_id)
    if len(ids) != 1:
        raise wire.BusMessageError("an emergency event about more than one alert")
    alert_id = ids.pop()
    for message in messages:
        if isinstance(message, control.EmergencyCancel):
            await emergencies.raiser_cancelled(server, event.raiser, alert_id, tell=True)
    for target in emergencies.emergency_audience(server, event.channel_id, event.raiser):
        for message in messages:
            if isinstance(message, control.EmergencyAlert):
                target.told_alert(alert_id)  # late entry does not send it again
            target.send(message, urgent=True)


async def channel_changed(server: RelayServer, event: news.ChannelNews) -> None:
    """A channel created, or its roster changed, on another node: reload it from the store."""
    channel = await keys.sync_channel(server, event.channel_id, event.name)
    if event.signed_roster is None:
        return
    # Verified on a probe first: nothing changes for a roster the org root does not vouch for.
    try:
        roster = RosterState(event.channel_id).accept(
            event.signed_roster, server.trust, time.time()
        )
    except CryptoError as exc:
        raise wire.BusMessageError(f"a roster event refused: {exc}") from None
    if roster.version > channel.roster_version:
        # This node's store has not got it (yet): the verified roster is installed anyway.
        members = frozenset(m.user_id for m in roster.members)
        keys.install_roster(server, channel, roster.version, event.signed_roster, members)
        await keys.push_envelopes(server, channel)


def channel_deleted(server: RelayServer, event: news.ChannelDeletedNews) -> None:
    channel = server.channels.get(event.channel_id)
    if channel is not None:
        patches.drop_channel(server, channel, event.by_user, server._loop_clock())


def patch_changed(server: RelayServer, event: news.PatchNews) -> None:
    if event.patch is None:
        patches.end_patch(server, event.channel_id)
        return
    announced = news.control_of(event.patch, control.Patch)
    if announced.channel_id != event.channel_id:
        raise wire.BusMessageError("a patch event about another channel than it names")
    try:
        verify_patch(announced.order, server.trust, time.time())
    except CryptoError as exc:
        raise wire.BusMessageError(f"a patch event refused: {exc}") from None
    patches.install_patch(server, announced)


async def revocations(server: RelayServer, event: news.RevocationNews) -> None:
    """A revocation list stored by another node: installed here, its sessions ended."""
    current = server.trust.revocations
    stored = await server.store.get_revocations()
    signed = event.signed_list
    if stored is not None and (current is None or stored.version > current.version):
        signed = stored.signed  # the store's list is the truth (and at least as new)
    try:
        listed = TrustAnchor(server.trust_root, current).verify_revocations(signed)
    except CryptoError as exc:
        raise wire.BusMessageError(f"a revocation event refused: {exc}") from None
    if current is not None and listed.version == current.version:
        return
    server.apply_revocations(listed)


def logged_in_elsewhere(server: RelayServer, event: news.LoginNews) -> None:
    """One session per user in the whole cluster: a login on another node ends this one."""
    if server.cluster is not None:
        server.cluster.floors.user_moved(event.user_id, event.node, event.at)
    session = server.sessions.by_user.get(event.user_id)
    if session is None or session.logged_in_at >= event.at:
        return  # nobody here, or a newer login here than the one the news is about
    if session.credential.fingerprint() == event.fingerprint:
        # The same radio moved (a failover, a new address): nothing to tell it.
        session.close(news.MOVED)
    else:
        session.send(
            control.Error(
                code=control.ERROR_LOGGED_IN_ELSEWHERE,
                text=f"{event.user_id!r} logged in again from another device on node"
                f" {event.node!r}: this one is closed; if that was not you, report the device"
                " lost (`ptt-admin revoke`)",
            ),
            urgent=True,
        )
        session.close(news.REPLACED_ELSEWHERE)
    log.info(
        "session ended by a login elsewhere",
        extra={"fields": {"user": event.user_id, "node": event.node}},
    )
