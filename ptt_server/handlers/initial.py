"""What a radio is sent the moment it logs in: revocations, channels, rosters, its key
envelopes, texts waiting for it, and active emergencies (late entry, TS 23.280 10.10)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ptt_protocol import control
from ptt_server.sessions import (
    Session,
)

if TYPE_CHECKING:
    from ptt_server.server import RelayServer

from ptt_server.handlers import emergencies, keys, patches

log = logging.getLogger("ptt_server")


def channel_list(server: RelayServer, user: str) -> control.ChannelList:
    return control.ChannelList(
        channels=tuple(
            control.ChannelInfo(channel_id=c.channel_id, name=c.name)
            for c in server.channels.values()
            if user in c.members
        )
    )


async def send_initial_state(server: RelayServer, session: Session) -> None:
    user = session.user_id
    if server.trust.revocations is not None:
        session.send(control.RevocationUpdate(signed_list=server.trust.revocations.to_bytes()))
    mine = [c for c in server.channels.values() if user in c.members]
    session.send(channel_list(server, user))
    for channel in mine:
        if channel.signed_roster is not None:
            session.send(keys.roster_message(channel))
    for patch in patches.patches_for(server, session):
        session.send(patch)
    for envelope in await server.store.envelopes_for(user):
        session.send(keys.envelope_message(envelope))
        keys.key_delivered(server, envelope.channel_id, envelope.epoch)
    for message in await server.store.pending_for(user):
        session.send(
            control.TextDeliver(
                message_id=message.message_id,
                from_user=message.from_user,
                to_user=message.to_user,
                to_channel=message.to_channel,
                sealed=message.sealed,
                sent_at=message.sent_at,
            )
        )
    channel_ids = {c.channel_id for c in mine}
    for alert in await server.store.active_emergencies():
        if alert.user_id == user:
            # The alert outlives a reconnect or a restart, and so must the officer's
            # emergency floor priority and status (else a priority-4 request is capped).
            session.emergency_alert = alert.alert_id
            session.alert_kind = alert.kind
            session.status = control.STATUS_EMERGENCY
        # The raiser too, whatever the channel: its radio learns the id to cancel.
        if (
            session in server.dispatchers
            or alert.channel_id in channel_ids
            or alert.user_id == user
        ):
            emergencies.send_alert(server, session, alert)
