"""Private calls: the signalling relayed, TURN credentials handed out, the call log kept.

What the relay decides is in :class:`ptt_server.call_core.CallTable`; here its inputs are
gathered (who the callee is, whether it is online), its effects run (messages to sessions,
call-log rows) and its ring timer armed. The signed descriptions are relayed untouched:
the radios check them against each other's credentials; the relay cannot.

In a cluster the caller's node owns the call and the callee may be logged in on another
node: :mod:`ptt_server.cluster.calls` rings it there, forwards what its radio says to the
owner, and keeps its node's *legs* (calls owned elsewhere), which make a user busy too.
On one node ``server.cluster`` is None and nothing of that runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from crypto.identity import Role
from ptt_protocol import control
from ptt_protocol.turn_credentials import rest_credentials
from ptt_server.call_core import (
    CallAnswered,
    CallEffect,
    CallEnded,
    CallOffered,
    EndElsewhere,
    Party,
    SendTo,
)
from ptt_server.cluster import reach
from ptt_server.sessions import Session
from ptt_server.store import StoreError

if TYPE_CHECKING:
    from ptt_server.server import RelayServer

log = logging.getLogger("ptt_server")


def ice_servers_for(server: RelayServer, user_id: str, now: float) -> tuple[control.IceServer, ...]:
    """The configured TURN servers with fresh REST credentials for ``user_id``."""
    config = server.config
    if not config.turn_urls:
        return ()
    username, password = rest_credentials(
        config.turn_secret.encode(), user_id, now, config.turn_credential_ttl
    )
    return (
        control.IceServer(urls=tuple(config.turn_urls), username=username, credential=password),
    )


async def on_ice_servers_request(
    server: RelayServer, session: Session, msg: control.IceServersRequest, now: float
) -> None:
    wall = time.time()
    session.send(
        control.IceServers(
            servers=ice_servers_for(server, session.user_id, wall),
            expires_at=wall + server.config.turn_credential_ttl,
        )
    )


async def on_call_offer(
    server: RelayServer, session: Session, msg: control.CallOffer, now: float
) -> None:
    wall = time.time()
    cluster = server.cluster
    caller = Party(
        session.user_id,
        session.credential.role,
        online=True,
        display_name=session.credential.display_name,
        elsewhere=None if cluster is None else cluster.calls.elsewhere(session.user_id),
    )
    stored = await server.store.get_user(msg.to_user)
    here = msg.to_user in server.sessions.by_user
    callee = Party(
        msg.to_user,
        None if stored is None else Role(stored.role),
        # Logged in on another node, or nowhere: the ring there says (cluster.calls.ring).
        online=here or cluster is not None,
        elsewhere=cluster.calls.elsewhere(msg.to_user) if cluster is not None and here else None,
    )
    ice = ice_servers_for(server, msg.to_user, wall) if callee.online else ()
    try:
        id_logged = await server.store.call_logged(msg.call_id)
    except StoreError as exc:
        log.error("call log not read: %s", exc)  # the call goes on whatever the disk does
        id_logged = False
    effects = server.calls.offer(caller, callee, msg, wall, ice, id_logged=id_logged)
    await run_effects(server, effects)


async def on_call_ringing(
    server: RelayServer, session: Session, msg: control.CallRinging, now: float
) -> None:
    if server.cluster is not None and await server.cluster.calls.forward(session.user_id, msg):
        return  # a call another node owns
    await run_effects(server, server.calls.ringing(session.user_id, msg))


async def on_call_answer(
    server: RelayServer, session: Session, msg: control.CallAnswer, now: float
) -> None:
    if server.cluster is not None and await server.cluster.calls.forward(session.user_id, msg):
        return  # a call another node owns
    await run_effects(server, server.calls.answer(session.user_id, msg, time.time()))


async def on_call_end(
    server: RelayServer, session: Session, msg: control.CallEnd, now: float
) -> None:
    if server.cluster is not None and await server.cluster.calls.forward(session.user_id, msg):
        return  # a call another node owns
    await run_effects(server, server.calls.end(session.user_id, msg, time.time()))


async def on_call_talk(
    server: RelayServer, session: Session, msg: control.CallTalk, now: float
) -> None:
    if server.cluster is not None and await server.cluster.calls.forward(session.user_id, msg):
        return  # a call another node owns
    await run_effects(server, server.calls.talk(session.user_id, msg))


async def on_call_log_request(
    server: RelayServer, session: Session, msg: control.CallLogRequest, now: float
) -> None:
    everyone = session.credential.is_key_manager()
    calls = await server.store.call_log(None if everyone else session.user_id, msg.limit)
    session.send(control.CallLog(calls=tuple(calls)))


async def session_closed(server: RelayServer, session: Session) -> None:
    """A session ended, or a new login of its user took it over: the user's call ends and
    the other party is told at once. (A call belongs to the connection that placed or
    answered it: the radio forgets it when that connection drops, and a new connection
    starts with none, so the user is not left busy in a call nobody holds.)"""
    await run_effects(server, server.calls.user_gone(session.user_id, time.time()))
    if server.cluster is not None:
        await server.cluster.calls.user_gone(session.user_id)


async def run_effects(server: RelayServer, effects: list[CallEffect]) -> None:
    """Send what the call table says to send, write the call log, re-arm the ring timer."""
    cluster = server.cluster
    for effect in effects:
        if isinstance(effect, SendTo):
            message = effect.message
            target = server.sessions.by_user.get(effect.user)
            if target is not None:
                target.send(message, urgent=True)
            elif cluster is not None and isinstance(message, control.CallIncoming):
                await cluster.calls.ring(effect.user, message)  # on the callee's node, if any
            elif cluster is not None:
                reach.to_user(server, effect.user, message, urgent=True)
            continue
        if isinstance(effect, EndElsewhere):
            if cluster is not None:
                await cluster.calls.end_leg(effect.user, effect.call_id, effect.text)
            continue
        try:
            if isinstance(effect, CallOffered):
                call = effect.call
                if cluster is not None and server.calls.get(call.call_id) is not None:
                    await cluster.calls.owning(call.call_id)  # before its row exists
                await server.store.log_call(
                    control.CallRecord(
                        call_id=call.call_id,
                        caller=call.caller,
                        callee=call.callee,
                        mode=call.mode,
                        emergency=call.emergency,
                        offered_at=call.offered_at,
                    )
                )
            elif isinstance(effect, CallAnswered):
                await server.store.call_answered(effect.call_id, effect.at)
            elif isinstance(effect, CallEnded):
                await server.store.call_ended(
                    effect.call_id, effect.at, effect.outcome, effect.ended_by
                )
        except StoreError as exc:
            # The call goes on whatever the disk does; only its log line is lost.
            log.error("call log not written: %s", exc)
        if isinstance(effect, CallEnded) and cluster is not None:
            await cluster.calls.disowned(effect.call_id)  # after its end was written
    _arm_ring_timer(server)


def _arm_ring_timer(server: RelayServer) -> None:
    due = server.calls.next_deadline()
    if server.call_timer is not None:
        server.call_timer.cancel()
        server.call_timer = None
    if due is None or server._stopping:
        return
    server.call_timer = asyncio.get_running_loop().call_later(
        max(0.0, due - time.time()), _on_ring_timer, server
    )


def _on_ring_timer(server: RelayServer) -> None:
    server.call_timer = None
    effects = server.calls.expire(time.time())
    server._spawn(run_effects(server, effects))
