"""Presence: who is online, their status and sealed location, pushed to dispatchers.

Handlers take the server, the session, the message and ``now``; they raise
:class:`ptt_server.policy.Refused` to answer with an Error. Who may send each message is
decided before, by :data:`ptt_server.policy.RULES`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

from ptt_protocol import control
from ptt_server.cluster import news
from ptt_server.policy import Refused, on_the_air
from ptt_server.sessions import (
    OUTBOUND_QUEUE_LIMIT,
    Session,
)
from ptt_server.store import Presence

if TYPE_CHECKING:
    from ptt_server.server import RelayServer

log = logging.getLogger("ptt_server")

PRESENCE_WRITE_INTERVAL = 5.0
"""Seconds between store writes of one user's location reports (each is pushed at once)."""

ENROLLED_PART_BYTES = 48 * 1024
"""Bytes of user ids in one :class:`control.EnrolledUsers` part (a frame holds 64 KiB)."""
ENROLLED_PART_USERS = 900
"""Users in one part (the list cap is ``MAX_LIST_LENGTH``)."""


async def set_presence(
    server: RelayServer,
    session: Session,
    *,
    online: bool,
    location: bytes | None = None,
    durable: bool = True,
) -> None:
    """Push the user's presence to dispatchers now and store it.

    A location report (``durable=False``) is stored at most once every
    ``PRESENCE_WRITE_INTERVAL`` per user: every report used to cost a store read and a
    write on the one store thread. The next durable change (status, channel, logout)
    stores the newest location anyway.
    """
    if not on_the_air(session.credential.role):
        return
    if not online and session.closing_reason in (news.MOVED, news.REPLACED_ELSEWHERE):
        return  # the user is logged in on another node, which stored it online already
    if not session.presence_loaded:
        previous = await server.store.get_presence(session.user_id)
        session.presence_loaded = True
        if session.sealed_location is None and previous is not None:
            session.sealed_location = previous.sealed_location
    if location is not None:
        session.sealed_location = location
    status = session.status if online else control.STATUS_OFFLINE
    presence = Presence(
        user_id=session.user_id,
        status=status,
        online=online,
        last_seen=time.time(),
        sealed_location=session.sealed_location,
        # The node holding the session, so the survivors can mark its users offline if it
        # dies (ptt_server.cluster.liveness); None on one node, which needs no such thing.
        node=server.cluster.name if server.cluster is not None else None,
    )
    now = server._loop_clock()
    wait = session.presence_written_at + PRESENCE_WRITE_INTERVAL - now
    if durable or wait <= 0 or not session.location_stored:
        if session.presence_flush is not None:
            session.presence_flush.cancel()
            session.presence_flush = None
        session.presence_written_at = now
        session.location_stored = session.sealed_location is not None
        await server.store.put_presence(presence)  # stored before anyone is told
        push_presence(server, session, presence)
        return
    push_presence(server, session, presence)
    if session.presence_flush is None:
        # Written behind: the newest location goes to the store when the interval ends.
        session.presence_flush = asyncio.get_running_loop().call_later(
            wait, functools.partial(flush_presence, server), session
        )


def flush_presence(server: RelayServer, session: Session) -> None:
    session.presence_flush = None
    if server.sessions.by_user.get(session.user_id) is session and not server._stopping:
        server._spawn(set_presence(server, session, online=True))


def push_presence(server: RelayServer, session: Session, presence: Presence) -> None:
    update = control.encode(
        control.PresenceUpdate(
            user_id=presence.user_id,
            display_name=session.credential.display_name,
            online=presence.online,
            status=presence.status,  # type: ignore[arg-type]
            channel_id=session.selected_channel,
            last_seen=presence.last_seen,
            sealed_location=presence.sealed_location,
        )
    )
    push_update(server, update, presence.user_id)
    news.publish(server, news.PRESENCE, news.PresenceNews(update=update))


def push_update(server: RelayServer, update: bytes, user_id: str) -> None:
    """An encoded PresenceUpdate of ``user_id`` to this node's subscribed consoles."""
    for subscriber in server.dispatchers:
        if subscriber.presence_subscriber and subscriber.user_id != user_id:
            subscriber.send_encoded(update)


SNAPSHOT_BACKLOG: Final = OUTBOUND_QUEUE_LIMIT // 4
"""Messages a presence snapshot leaves waiting for its dispatcher at most."""


def enrolled_parts(users: Sequence[control.EnrolledUser]) -> Iterator[control.EnrolledUsers]:
    """``users`` in parts that each fit a control frame; the last part has ``last`` set."""
    part: list[control.EnrolledUser] = []
    size = 0
    for user in users:
        weight = len(user.user_id.encode()) + 32  # msgpack keys, headers and the time
        if part and (size + weight > ENROLLED_PART_BYTES or len(part) >= ENROLLED_PART_USERS):
            yield control.EnrolledUsers(users=tuple(part), last=False)
            part, size = [], 0
        part.append(user)
        size += weight
    yield control.EnrolledUsers(users=tuple(part), last=True)


async def on_presence_subscribe(
    server: RelayServer, session: Session, msg: control.PresenceSubscribe, now: float
) -> None:
    """The snapshot: every enrolled user (officers who never logged in too) with when they
    were last heard, then each stored presence; live changes follow as they happen."""
    session.presence_subscriber = True
    wanted = set(msg.user_ids) if msg.user_ids is not None else None
    users = await server.store.list_users()
    names = {u.user_id: u.display_name for u in users}
    listed = [
        u.user_id
        for u in users
        if on_the_air(u.role)
        and u.user_id != session.user_id
        and (wanted is None or u.user_id in wanted)
    ]
    heard = await server.store.last_heard(listed)
    enrolled = [control.EnrolledUser(user_id=u, last_heard=heard.get(u)) for u in listed]
    for part in enrolled_parts(enrolled):
        session.send(part)
    for presence in await server.store.all_presence():
        if wanted is not None and presence.user_id not in wanted:
            continue
        # One update per user: with thousands of them, wait for the client to read, or the
        # snapshot alone would fill its queue and drop the dispatcher as too slow.
        await session.outbound.wait_below(SNAPSHOT_BACKLOG)
        live = server.sessions.by_user.get(presence.user_id)
        # In a cluster the user may be logged in on another node: the shared store says so.
        online = live is not None or (server.cluster is not None and presence.online)
        session.send(
            control.PresenceUpdate(
                user_id=presence.user_id,
                display_name=names.get(presence.user_id, ""),
                online=online,
                status=presence.status if online else control.STATUS_OFFLINE,  # type: ignore[arg-type]
                channel_id=live.selected_channel if live is not None else None,
                last_seen=presence.last_seen,
                sealed_location=presence.sealed_location,
            )
        )


async def on_set_status(
    server: RelayServer, session: Session, msg: control.SetStatus, now: float
) -> None:
    if msg.status == control.STATUS_OFFLINE:
        raise Refused(control.ERROR_BAD_MESSAGE, "log out to go offline")
    session.status = msg.status
    await set_presence(server, session, online=True)


async def on_location(
    server: RelayServer, session: Session, msg: control.LocationReport, now: float
) -> None:
    await set_presence(server, session, online=True, location=msg.sealed_location, durable=False)
