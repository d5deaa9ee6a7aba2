"""Texts: sealed messages stored and delivered, receipts back to the sender.

Handlers take the server, the session, the message and ``now``; they raise
:class:`ptt_server.policy.Refused` to answer with an Error. Who may send each message is
decided before, by :data:`ptt_server.policy.RULES`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ptt_protocol import control
from ptt_server.cluster import reach
from ptt_server.handlers import channels
from ptt_server.policy import Refused
from ptt_server.sessions import (
    Session,
)

if TYPE_CHECKING:
    from ptt_server.server import RelayServer

log = logging.getLogger("ptt_server")


async def on_text_send(
    server: RelayServer, session: Session, msg: control.TextSend, now: float
) -> None:
    if msg.to_channel is not None:
        channel = channels.channel_for(server, session, msg.to_channel)
        recipients = sorted(channel.members - {session.user_id})
    else:
        assert msg.to_user is not None
        if await server.store.get_user(msg.to_user) is None:
            raise Refused(control.ERROR_NOT_FOUND, f"no user {msg.to_user!r}")
        recipients = [msg.to_user]
    sent_at = time.time()
    new = await server.store.store_message(
        msg.message_id,
        session.user_id,
        msg.to_user,
        msg.to_channel,
        msg.sealed,
        sent_at,
        recipients,
    )
    session.send(
        # by_user must be a non-empty Id or the client's decoder refuses the whole frame.
        control.TextReceipt(
            message_id=msg.message_id, kind=control.RECEIPT_STORED, by_user=session.user_id
        )
    )
    if not new:
        return  # a resend after reconnect: already stored and delivered once
    server.metrics.messages.inc()
    deliver = control.encode(
        control.TextDeliver(
            message_id=msg.message_id,
            from_user=session.user_id,
            to_user=msg.to_user,
            to_channel=msg.to_channel,
            sealed=msg.sealed,
            sent_at=sent_at,
        )
    )
    # Delivery is recorded only by the recipient's delivered receipt, on whichever node it
    # is logged in, as on one node: a text the bus lost is still pending at the next login.
    for user in recipients:
        reach.to_user(server, user, deliver)


async def on_text_receipt(
    server: RelayServer, session: Session, msg: control.TextReceipt, now: float
) -> None:
    if msg.kind == control.RECEIPT_READ:
        changed = await server.store.mark_read(msg.message_id, session.user_id, time.time())
    elif msg.kind == control.RECEIPT_DELIVERED:
        changed = await server.store.mark_delivered(msg.message_id, session.user_id, time.time())
    else:
        raise Refused(control.ERROR_BAD_MESSAGE, "clients send delivered or read receipts")
    stored = await server.store.get_message(msg.message_id)
    if changed and stored is not None:
        receipt = control.TextReceipt(
            message_id=msg.message_id, kind=msg.kind, by_user=session.user_id
        )
        reach.to_user(server, stored.from_user, receipt)
