"""Emergencies: raised, held when a user floods, broadcast, acknowledged, cancelled.

Handlers take the server, the session, the message and ``now``; they raise
:class:`ptt_server.policy.Refused` to answer with an Error. Who may send each message is
decided before, by :data:`ptt_server.policy.RULES`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING

from ptt_protocol import control
from ptt_server.cluster import news
from ptt_server.handlers import presence
from ptt_server.policy import Refused, may_cancel_emergency
from ptt_server.sessions import (
    Session,
)
from ptt_server.store import Emergency, NotFoundError, StoreError

if TYPE_CHECKING:
    from ptt_server.server import RelayServer

log = logging.getLogger("ptt_server")

EMERGENCY_TIMER_SLACK = 0.001
"""Held alerts are sent this long after their token is due, so the token is surely there."""


def cancel_message(alert: Emergency) -> control.EmergencyCancel:
    """The cancel of an alert that is over (merged alerts were closed by nobody: the raiser)."""
    return control.EmergencyCancel(
        alert_id=alert.alert_id, by_user=alert.cancelled_by or alert.user_id
    )


def alert_message(alert: Emergency) -> control.EmergencyAlert:
    return control.EmergencyAlert(
        alert_id=alert.alert_id,
        user_id=alert.user_id,
        channel_id=alert.channel_id or 0,
        sealed_location=alert.sealed_location,
        raised_at=alert.raised_at,
        kind=alert.kind,  # type: ignore[arg-type]  # the store's CHECK allows only these
    )


def send_alert(server: RelayServer, session: Session, alert: Emergency) -> None:
    """The alert as stored (its first time, newest location) and its ack, if any."""
    session.told_alert(alert.alert_id)
    session.send(alert_message(alert), urgent=True)
    if alert.acked_by is not None:
        session.send(
            control.EmergencyAck(alert_id=alert.alert_id, by_user=alert.acked_by), urgent=True
        )


async def late_entry(server: RelayServer, session: Session, channel_id: int) -> None:
    """TS 23.280 10.10: a member who affiliates while an emergency is active on the channel
    gets the alert at once (it was sent to the listeners, which this session was not)."""
    for alert in await server.store.active_emergencies():
        if alert.channel_id == channel_id and alert.alert_id not in session.told_alerts:
            send_alert(server, session, alert)


def emergency_audience(
    server: RelayServer, channel_id: int | None, raiser: str | None = None
) -> set[Session]:
    """Every dispatcher, the channel's listeners and (for acks and cancels) the raiser."""
    audience = set(server.dispatchers)
    channel = server.channels.get(channel_id) if channel_id is not None else None
    if channel is not None:
        audience.update(channel.listeners.values())
    raiser_session = server.sessions.by_user.get(raiser) if raiser is not None else None
    if raiser_session is not None:
        audience.add(raiser_session)
    return audience


async def on_emergency_alert(
    server: RelayServer, session: Session, msg: control.EmergencyAlert, now: float
) -> None:
    if msg.user_id != session.user_id:
        raise Refused(control.ERROR_FORBIDDEN, "raise emergencies for yourself only")
    # An emergency is never refused: a channel the officer is not on is replaced by
    # the selected one, and every dispatcher gets the alert whatever the channel.
    channel_id: int | None = msg.channel_id
    channel = server.channels.get(msg.channel_id)
    if channel is None or session.user_id not in channel.members:
        channel_id = session.selected_channel
    # One active emergency per user: the store merges a press with a fresh id into it.
    try:
        raised = await server.store.raise_emergency(
            msg.alert_id, session.user_id, channel_id, msg.sealed_location, time.time(), msg.kind
        )
    except NotFoundError:
        # The channel was deleted while the alert was on its way to the store (the delete
        # checked for an active alert before this one existed): keep it, without a channel.
        raised = await server.store.raise_emergency(
            msg.alert_id, session.user_id, None, msg.sealed_location, time.time(), msg.kind
        )
    alert = raised.alert
    if raised.outcome == "foreign":
        raise Refused(control.ERROR_FORBIDDEN, "that alert id belongs to someone else")
    if raised.outcome == "closed":
        # A late retry of an alert that is over: the radio hears so, nobody else again.
        session.send(cancel_message(alert))
        return
    session.emergency_alert = alert.alert_id
    session.alert_kind = alert.kind
    session.status = control.STATUS_EMERGENCY
    new = raised.outcome == "created"
    if new:
        server.metrics.emergencies.inc()
        log.warning(
            "emergency",
            extra={"fields": {"user": session.user_id, "channel": channel_id, "kind": alert.kind}},
        )
    if not server.emergency_broadcasts.raised(
        session.user_id, alert.alert_id, msg.alert_id, now, new=new
    ):
        # Past this user's limit: recorded, and its newest state goes out once the limit
        # allows. No Error: nothing was refused, and a radio must not retry an emergency.
        server.metrics.emergencies_held.inc()
        send_alert(server, session, alert)  # the radio learns the id it was recorded under
        arm_emergency_timer(server)
        return
    broadcast_alert(server, alert)
    await presence.set_presence(server, session, online=True, location=msg.sealed_location)


def broadcast_alert(server: RelayServer, alert: Emergency) -> None:
    for target in emergency_audience(server, alert.channel_id, alert.user_id):
        send_alert(server, target, alert)
    # The other nodes' dispatchers and listeners (the alert is in the store already).
    messages = [control.encode(alert_message(alert))]
    if alert.acked_by is not None:
        ack = control.EmergencyAck(alert_id=alert.alert_id, by_user=alert.acked_by)
        messages.append(control.encode(ack))
    tell_cluster(server, alert, *messages)


def tell_cluster(server: RelayServer, alert: Emergency, *messages: bytes) -> None:
    """The other nodes send ``messages`` to their own part of the alert's audience."""
    body = news.EmergencyNews(
        raiser=alert.user_id, channel_id=alert.channel_id, messages=tuple(messages)
    )
    news.publish(server, news.EMERGENCY, body)


def arm_emergency_timer(server: RelayServer) -> None:
    due = server.emergency_broadcasts.next_due()
    if due is None or server._stopping:
        return
    due += EMERGENCY_TIMER_SLACK
    if server._emergency_timer is not None:
        if server._emergency_timer.when() <= due:
            return
        server._emergency_timer.cancel()
    server._emergency_timer = asyncio.get_running_loop().call_at(
        due, functools.partial(on_emergency_timer, server)
    )


def on_emergency_timer(server: RelayServer) -> None:
    server._emergency_timer = None
    if not server._stopping:  # held alerts are stored: consoles get them at their next login
        server._spawn(send_held_alerts(server))


async def send_held_alerts(server: RelayServer) -> None:
    """Broadcast the held alerts whose users have a token again, each as stored now."""
    for user_id, alert_id in server.emergency_broadcasts.due(server._loop_clock()):
        try:
            alert = await server.store.get_emergency(alert_id)
            if alert is None or not alert.active:
                continue
            broadcast_alert(server, alert)
            raiser = server.sessions.by_user.get(user_id)
            if raiser is not None:
                await presence.set_presence(
                    server, raiser, online=True, location=alert.sealed_location
                )
        except StoreError as exc:
            # Still in the store: every console gets the alert when it next logs in.
            log.error("held emergency not sent", extra={"fields": {"error": str(exc)}})
    arm_emergency_timer(server)


async def on_emergency_ack(
    server: RelayServer, session: Session, msg: control.EmergencyAck, now: float
) -> None:
    alert = await server.store.get_emergency(msg.alert_id)
    if alert is None:
        raise Refused(control.ERROR_NOT_FOUND, "no such emergency")
    if not await server.store.ack_emergency(msg.alert_id, session.user_id, time.time()):
        # Acknowledged or cancelled already: the acker learns by whom; nobody hears it twice.
        current = await server.store.get_emergency(msg.alert_id) or alert
        if not current.active:
            session.send(cancel_message(current))
        elif current.acked_by is not None:
            session.send(control.EmergencyAck(alert_id=msg.alert_id, by_user=current.acked_by))
        return
    ack = control.encode(control.EmergencyAck(alert_id=msg.alert_id, by_user=session.user_id))
    for target in emergency_audience(server, alert.channel_id, alert.user_id):
        target.send_encoded(ack)
    tell_cluster(server, alert, ack)


async def on_emergency_cancel(
    server: RelayServer, session: Session, msg: control.EmergencyCancel, now: float
) -> None:
    alert_id = server.emergency_broadcasts.resolve(session.user_id, msg.alert_id)
    alert = await server.store.get_emergency(alert_id)
    if alert is None:
        raise Refused(control.ERROR_NOT_FOUND, "no such emergency")
    if not may_cancel_emergency(session.user_id, session.credential.role, alert.user_id):
        raise Refused(
            control.ERROR_FORBIDDEN, "only the officer or a dispatcher cancels an emergency"
        )
    if not await server.store.cancel_emergency(alert_id, session.user_id, time.time()):
        # Cancelled already: the canceller learns by whom; nobody hears it twice.
        session.send(cancel_message(await server.store.get_emergency(alert_id) or alert))
        return
    # An alert cancelled while still held was never sent out: its cancel is news to nobody.
    fresh = server.emergency_broadcasts.cancelled(alert.user_id, alert_id)
    await raiser_cancelled(server, alert.user_id, alert_id, tell=fresh)
    cancel = control.encode(control.EmergencyCancel(alert_id=alert_id, by_user=session.user_id))
    targets = emergency_audience(server, alert.channel_id, alert.user_id) if fresh else {session}
    for target in targets:
        target.send_encoded(cancel)
    if fresh:
        # On another node the raiser's radio and the rest of the audience hear it there.
        tell_cluster(server, alert, cancel)


async def raiser_cancelled(
    server: RelayServer, raiser_id: str, alert_id: bytes, *, tell: bool
) -> None:
    """The raiser's session here (if any) is out of its emergency: status and priority."""
    raiser = server.sessions.by_user.get(raiser_id)
    if raiser is not None and raiser.emergency_alert == alert_id:
        raiser.emergency_alert = None
        raiser.status = control.STATUS_AVAILABLE
        if tell:
            await presence.set_presence(server, raiser, online=True)
