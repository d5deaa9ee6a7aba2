"""Channels: affiliation, selection, floor requests and releases, broadcasts, tunnelled media.

Handlers take the server, the session, the message and ``now``; they raise
:class:`ptt_server.policy.Refused` to answer with an Error. Who may send each message is
decided before, by :data:`ptt_server.policy.RULES`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ptt_protocol import control, floor
from ptt_server.channels import Channel
from ptt_server.cluster import news
from ptt_server.handlers import emergencies, keys, presence
from ptt_server.link_feedback import ReportRefused
from ptt_server.policy import Refused
from ptt_server.sessions import (
    Session,
)

if TYPE_CHECKING:
    from ptt_server.server import RelayServer

log = logging.getLogger("ptt_server")


def channel_for(
    server: RelayServer, session: Session, channel_id: int, *, affiliated: bool = False
) -> Channel:
    channel = server.channels.get(channel_id)
    if channel is None:
        raise Refused(control.ERROR_NOT_FOUND, f"no channel {channel_id}")
    if session.user_id not in channel.members:
        raise Refused(
            control.ERROR_NOT_MEMBER,
            f"you are not on the roster of {channel.name!r}: ask a dispatcher",
        )
    if affiliated and channel_id not in session.affiliated:
        raise Refused(control.ERROR_FORBIDDEN, f"affiliate to {channel.name!r} first")
    return channel


async def on_affiliate(
    server: RelayServer, session: Session, msg: control.Affiliate, now: float
) -> None:
    channel = channel_for(server, session, msg.channel_id)
    session.send_encoded(channel.affiliated_message())
    channel.add_listener(session)
    await emergencies.late_entry(server, session, channel.channel_id)
    if session.selected_channel is None:
        session.selected_channel = channel.channel_id
    server.metrics.channels.set(sum(1 for c in server.channels.values() if c.listeners))
    await presence.set_presence(server, session, online=True)


async def on_deaffiliate(
    server: RelayServer, session: Session, msg: control.Deaffiliate, now: float
) -> None:
    channel = server.channels.get(msg.channel_id)
    if channel is not None and msg.channel_id in session.affiliated:
        channel.remove_listener(session, now)
    session.send(control.Deaffiliated(channel_id=msg.channel_id, reason="at your request"))


async def on_select(
    server: RelayServer, session: Session, msg: control.SelectChannel, now: float
) -> None:
    channel_for(server, session, msg.channel_id, affiliated=True)
    session.selected_channel = msg.channel_id
    await presence.set_presence(server, session, online=True)


def effective_priority(server: RelayServer, session: Session, requested: int) -> floor.Priority:
    """The priority a request gets: the role's, raised only where the user may raise it."""
    # TS 22.179: the two priorities above a dispatcher's come with an active alert only
    # (before issue 13 any member could claim imminent peril on every press).
    if session.emergency_alert is not None:
        if requested >= floor.Priority.EMERGENCY and session.alert_kind == control.ALERT_EMERGENCY:
            return floor.Priority.EMERGENCY
        if requested >= floor.Priority.IMMINENT_PERIL:
            return floor.Priority.IMMINENT_PERIL
    if session.credential.is_key_manager():
        return floor.Priority.DISPATCHER
    return floor.Priority.OFFICER


async def on_floor_request(
    server: RelayServer, session: Session, msg: control.FloorRequest, now: float
) -> None:
    channel = channel_for(server, session, msg.channel_id, affiliated=True)
    channel.request_floor(session, effective_priority(server, session, msg.priority), now)


async def on_broadcast_request(
    server: RelayServer, session: Session, msg: control.BroadcastRequest, now: float
) -> None:
    """A dispatcher's broadcast group call (TS 22.179 6.2.3) on every named channel.

    The whole call is checked before any floor is touched, so a refusal changes nothing:
    a broadcast is one call, not as many requests as it has channels. Each channel then
    answers as for a FloorRequest; the relay forwards each channel's frames as ever (the
    dispatcher holds each floor and seals each channel's frames under its own key).
    """
    if len(set(msg.channel_ids)) != len(msg.channel_ids):
        raise Refused(control.ERROR_BAD_MESSAGE, "broadcast refused: a channel is named twice")
    involved = []
    for channel_id in msg.channel_ids:
        channel = server.channels.get(channel_id)
        if channel is None:
            raise Refused(control.ERROR_NOT_FOUND, f"broadcast refused: no channel {channel_id}")
        if session.user_id not in channel.members:
            raise Refused(
                control.ERROR_NOT_MEMBER,
                f"broadcast refused: you are not on the roster of {channel.name!r}; broadcast"
                " to your own channels",
            )
        if channel_id not in session.affiliated:
            raise Refused(
                control.ERROR_FORBIDDEN, f"broadcast refused: affiliate to {channel.name!r} first"
            )
        involved.append(channel)
    log.info("broadcast", extra={"fields": {"by": session.user_id, "channels": msg.channel_ids}})
    for channel in involved:
        channel.request_floor(session, floor.Priority.DISPATCHER, now, broadcast=True)


async def on_floor_release(
    server: RelayServer, session: Session, msg: control.FloorRelease, now: float
) -> None:
    channel = server.channels.get(msg.channel_id)
    if channel is not None:
        channel.release_floor(session, now)


async def on_media_tunnel(
    server: RelayServer, session: Session, msg: control.MediaTunnel, now: float
) -> None:
    if server.relay is not None:
        server.relay.receive_tunnelled(session, msg.datagram)


async def on_ping(server: RelayServer, session: Session, msg: control.Ping, now: float) -> None:
    session.send(control.Pong(nonce=msg.nonce))


async def on_channel_create(
    server: RelayServer, session: Session, msg: control.ChannelCreate, now: float
) -> None:
    if await server.store.channel_by_name(msg.name) is not None:
        raise Refused(control.ERROR_FORBIDDEN, f"a channel named {msg.name!r} exists already")
    channel_id = await server.store.create_channel(msg.name, time.time())
    await keys.sync_channel(server, channel_id, msg.name)
    news.publish(server, news.CHANNEL, news.ChannelNews(channel_id=channel_id, name=msg.name))
    session.send(control.ChannelCreated(channel_id=channel_id, name=msg.name))


async def on_receiver_report(
    server: RelayServer, session: Session, msg: control.ReceiverReport, now: float
) -> None:
    """A listener's downlink figures, for the channel's talkers' protection."""
    channel = channel_for(server, session, msg.channel_id, affiliated=True)
    try:
        channel.feedback.receiver_report(session.session_index, msg, now)
    except ReportRefused as exc:
        raise Refused(control.ERROR_RATE_LIMITED, f"{exc}: slow down") from None
