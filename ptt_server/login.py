"""The login of one connection, the I/O around :class:`ptt_server.session_core.ServerSessionCore`:
send the Hello, take the one Login the core allows, check the device is enrolled (a root-issued
admin credential records itself), make the session and its hop key, replace the user's earlier
session (told "logged in elsewhere"), then send LoginOk and the user's initial state.

Split from :mod:`ptt_server.server`, which runs a session once it exists.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING

import websockets
from websockets.asyncio.server import ServerConnection

from crypto.identity import Credential
from ptt_protocol import control, media
from ptt_server import prelogin
from ptt_server.handlers import calls, initial, presence
from ptt_server.policy import Enrolment, Refusal, enrolment
from ptt_server.session_core import LoginAttempt, ServerSessionCore
from ptt_server.sessions import OUTBOUND_QUEUE_LIMIT, TOO_SLOW, OutboundQueue, Session
from ptt_server.store import StoreError, User

if TYPE_CHECKING:
    from ptt_server.server import RelayServer

__all__ = ["log_in"]

log = logging.getLogger("ptt_server")


async def log_in(server: RelayServer, ws: ServerConnection) -> Session | None:
    """Run the login on a new connection: its session, registered and sent its state, or
    None (refused, timed out or gone; the connection is then closed by the caller)."""
    core = server.session_core(server._loop_clock())
    try:
        await ws.send(control.encode(core.hello(time.time())))
        # The gate closes the connection login_timeout after accept; this bounds the wait
        # on its own as well (a connection the gate does not know, e.g. in a test).
        async with asyncio.timeout(server.config.login_timeout):
            raw = await ws.recv(decode=False)
    except (TimeoutError, websockets.ConnectionClosed):
        return None
    verdict = core.receive(raw, server._loop_clock(), time.time())
    if not isinstance(verdict, LoginAttempt):
        assert isinstance(verdict, Refusal)
        if verdict.code != control.ERROR_BAD_MESSAGE:
            server.metrics.logins.labels("refused").inc()
        await server.send_error(ws, verdict.code, verdict.text)
        return None
    credential = verdict.credential
    now = time.time()
    try:
        enrolled = await server.store.get_user(credential.user_id)
    except StoreError as exc:
        log.error("login aborted: store error", extra={"fields": {"error": str(exc)}})
        await server.send_error(ws, control.ERROR_INTERNAL, "server storage error: try again")
        return None
    found = enrolment(
        credential.role, credential.fingerprint(), enrolled.fingerprint if enrolled else None
    )
    if found is Enrolment.RECORD_AUTHORITY:
        try:
            await server.store.put_user(User.from_credential(credential, now))
        except StoreError as exc:
            log.error("login aborted: store error", extra={"fields": {"error": str(exc)}})
            await server.send_error(ws, control.ERROR_INTERNAL, "server storage error: try again")
            return None
    elif found is Enrolment.NOT_ENROLLED:
        server.metrics.logins.labels("refused").inc()
        await server.send_error(
            ws,
            control.ERROR_AUTH_FAILED,
            f"{credential.user_id!r} is not enrolled on this server with this device:"
            f" ask an operator to run `ptt-admin enroll {credential.user_id}`",
        )
        return None
    prelogin.logged_in(ws)  # a verified, enrolled device: no longer held to the pre-login cap
    core.logged_in(credential)
    session, hop_key = _new_session(server, ws, credential, core)
    previous = server.sessions.add(session)
    if server.cluster is not None:
        await server.cluster.user_online(session)
    if previous is not None:
        previous.send(
            control.Error(
                code=control.ERROR_LOGGED_IN_ELSEWHERE,
                text=f"{credential.user_id!r} logged in again from another connection"
                f" (device {credential.device_id!r}): this one is closed; if that was not"
                " you, report the device lost (`ptt-admin revoke`)",
            ),
            urgent=True,
        )
        previous.close("logged in from another connection")
        server.dispatchers.discard(previous)  # its _logout finds it replaced and returns early
        await server.leave_channels(previous)
        await calls.session_closed(server, previous)
    server.metrics.logins.labels("ok").inc()
    server.metrics.sessions.set(len(server.sessions))
    if credential.is_key_manager():
        server.dispatchers.add(session)
    session.send(
        control.LoginOk(
            user_id=credential.user_id,
            session_index=session.session_index,
            hop_key=hop_key,
            media_port=server.media_port,
            media_host=server.config.public_host,
            server_time=time.time(),
            heartbeat_interval=server.config.heartbeat_interval,
        ),
        urgent=True,  # always the first message of a session, whatever else is urgent
    )
    try:
        await initial.send_initial_state(server, session)
        await presence.set_presence(server, session, online=True)
    except StoreError as exc:
        log.error("login aborted: store error", extra={"fields": {"error": str(exc)}})
        session.closing_reason = "server storage error"
        await server.logout(session)
        await server.send_error(ws, control.ERROR_INTERNAL, "server storage error: try again")
        return None
    log.info(
        "login", extra={"fields": {"user": credential.user_id, "device": credential.device_id}}
    )
    return session


def _new_session(
    server: RelayServer, ws: ServerConnection, credential: Credential, core: ServerSessionCore
) -> tuple[Session, bytes]:
    """A session and its hop secret (sent once in LoginOk, never kept elsewhere)."""
    hop_key = secrets.token_bytes(media.HOP_KEY_SIZE)
    index = server.sessions.new_index()
    outbound = OutboundQueue(OUTBOUND_QUEUE_LIMIT)

    def close(reason: str) -> None:
        session.closing_reason = reason
        if reason == TOO_SLOW or outbound.full():
            # Only a client that stopped reading fills the queue: the writer is stuck in
            # a send and would never see the close, so drop the connection now.
            ws.transport.abort()
        # The writer sends what is queued, then closes the connection.
        outbound.close()

    session = Session(
        credential=credential,
        hop=media.HopSession(index, hop_key, "server"),
        outbound=outbound,
        core=core,
        close=close,
    )
    return session, hop_key
