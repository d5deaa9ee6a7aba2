"""Private calls between radios on different nodes of a cluster (issues 12 and 13).

Only signalling crosses nodes (the media goes peer to peer). The **caller's node owns the
call**: its :class:`~ptt_server.call_core.CallTable` entry, its ring timer, its call-log row
and the policy check (the store has every user), exactly as on one node.

- **Ringing** a callee logged in on another node is a request (:class:`wire.CallRing`) on the
  callee's user subject, which only the node holding the callee's session reads. No
  responder means "offline" at once. The callee's node answers ``ringing``, ``busy`` or
  ``offline``: it knows every call its user is in (the calls it owns, and its *legs*: calls
  owned elsewhere whose callee is here), so it decides busy, pre-empts the callee's call for
  an emergency call whichever node owns it, and rings the radio, in one turn of its loop.
  No shared "users in calls" state is needed: one session per user cluster-wide makes the
  user's node the one place where offers to that user meet (a JetStream bucket would say
  the same thing twice, and would have to be kept right when a node dies).
- **Owner to callee**: everything else goes through :func:`ptt_server.cluster.reach.to_user`;
  the callee's node drops its leg when a CallEnd of it goes by (:meth:`ClusterCalls.delivered`).
- **Callee to owner**: what the callee's radio says about the call (ringing, answer, end,
  talk) is forwarded as a :class:`wire.CallOp` on the call's subject, which the owner
  subscribes while the call lives (request/reply: no responder means the owner is gone).
- **Liveness**: the callee's node probes each leg's owner every :data:`PROBE_S`; no
  responder (or :data:`MISSES` silent probes) and the callee is told ``peer_gone`` and the
  row is closed by the callee's node. The owner ends a call whose callee's node has not
  probed for :data:`DEAD_AFTER_S` (that node died with the callee's session).
- **Rows left open** by a node that died with both parties on it are closed by whichever
  node sweeps next (at start and every :data:`SWEEP_S`): it probes each open row's call
  subject and closes those nobody answers for. That is safe because an owner subscribes
  before it writes a call's row and writes its end before it unsubscribes.

Every message from the bus is decoded strictly (:mod:`ptt_server.cluster.wire`); what is
refused is counted (``node.refused``) and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError

from ptt_protocol import control
from ptt_server.call_core import CallEffect, Elsewhere
from ptt_server.cluster import wire
from ptt_server.handlers import calls as call_handlers
from ptt_server.store import StoreError

if TYPE_CHECKING:
    from ptt_server.cluster.node import ClusterNode
    from ptt_server.server import RelayServer

log = logging.getLogger("ptt_server.cluster")

PROBE_S: Final = 1.0
"""Seconds between a callee's node's probes of each leg's owner."""
MISSES: Final = 3
"""Probes in a row that time out before the owner counts as gone (no responder: at once)."""
DEAD_AFTER_S: Final = PROBE_S * (MISSES + 1.5)
"""Seconds without a probe from a callee's node before the owner ends the call."""
REQUEST_TIMEOUT_S: Final = 1.0
"""Seconds a ring or call op waits for the other node's answer."""
SWEEP_S: Final = 60.0
"""Seconds between sweeps of the call log for rows whose owner is gone."""

RINGING: Final = b"ringing"
BUSY: Final = b"busy"
OFFLINE: Final = b"offline"
OK: Final = b"ok"
GONE: Final = b"gone"
_NO_OWNER: Final = b""
"""What :meth:`ClusterCalls._ask` returns when nobody subscribes the call's subject."""
_SILENT: Final = b"?"
"""... and when the owner did not answer in time (or the bus is away)."""


@dataclass(slots=True)
class Leg:
    """A call another node owns whose callee is logged in here."""

    call_id: bytes
    caller: str
    callee: str
    owner: str
    emergency: bool
    misses: int = 0


@dataclass(slots=True)
class _Owned:
    """A call this node owns, while it lives: its subject's subscription."""

    subscription: Subscription
    remote_callee: bool = False
    heard_at: float = 0.0
    """Loop time of the last word from the callee's node (remote callees only)."""


class ClusterCalls:
    """The cluster side of private calls on one node; ``start`` after the bus is joined."""

    def __init__(self, node: ClusterNode) -> None:
        self._node = node
        self.legs: dict[bytes, Leg] = {}
        self._leg_of: dict[str, bytes] = {}
        self._owned: dict[bytes, _Owned] = {}
        self._ticker: asyncio.Task[None] | None = None

    @property
    def _server(self) -> RelayServer:
        return self._node.server

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    # --- the callee's node -------------------------------------------------------------------

    def leg_of(self, user: str) -> Leg | None:
        call_id = self._leg_of.get(user)
        return None if call_id is None else self.legs[call_id]

    def elsewhere(self, user: str) -> Elsewhere | None:
        """``user``'s call that another node owns, for the call table's busy checks."""
        leg = self.leg_of(user)
        return None if leg is None else Elsewhere(leg.call_id, leg.emergency)

    async def on_ring(self, msg: Msg, ring: wire.CallRing) -> None:
        """Another node rings one of this node's users (the bus message was checked)."""
        incoming = wire.check_control(ring.incoming)
        assert isinstance(incoming, control.CallIncoming)  # wire.decode checked it
        callee = ring.callee
        if msg.subject != wire.user_subject(callee) or incoming.from_user == callee:
            self._node.refused(msg.subject, "a call ring for another user")
            return
        session = self._server.sessions.by_user.get(callee)
        if session is None:  # logged out a moment ago: its subscription is going
            await _respond(msg, OFFLINE)
            return
        table = self._server.calls
        current = table.call_of(callee)
        leg = self.leg_of(callee)
        busy = current or leg
        if incoming.call_id in self.legs or table.get(incoming.call_id) is not None:
            await _respond(msg, BUSY)  # a call id in use here: never two calls under one id
            return
        if busy is not None:
            if not incoming.emergency or busy.emergency:
                await _respond(msg, BUSY)
                return
            # TS 23.379 emergency private call: the callee's other call ends, whoever owns it.
            text = f"ended for an emergency call from {incoming.from_user} to {callee}"
            preempted = control.CallEnd(
                call_id=busy.call_id, reason=control.END_PREEMPTED, text=text
            )
            session.send(preempted, urgent=True)
            if current is not None:
                effects = table.end_for(
                    callee, current.call_id, control.END_PREEMPTED, text, time.time()
                )
                await call_handlers.run_effects(self._server, effects)
            elif leg is not None:
                self._drop_leg(leg.call_id)
                self._node.spawn(self._tell_owner_ended(leg, "preempted", text))
        self.legs[incoming.call_id] = Leg(
            incoming.call_id, incoming.from_user, callee, ring.owner, incoming.emergency
        )
        self._leg_of[callee] = incoming.call_id
        session.send(incoming, urgent=True)
        await _respond(msg, RINGING)

    async def forward(self, user: str, message: control.Message) -> bool:
        """``user``'s radio speaks of a call: to its owner if that is another node.
        False when the call is not a leg here (the call table handles it)."""
        assert isinstance(message, wire.CALL_OP_MESSAGES)
        leg = self.legs.get(message.call_id)
        if leg is None or leg.callee != user:
            return False
        ended = isinstance(message, control.CallEnd)
        if ended:
            self._drop_leg(leg.call_id)  # the radio's side is over, whatever the owner says
        op = wire.CallOp(call_id=leg.call_id, user_id=user, message=control.encode(message))
        reply = await self._ask(op)
        if reply == _NO_OWNER:
            await self._owner_gone(leg, tell=not ended)
        elif reply == GONE and not ended:
            self._drop_leg(leg.call_id)
            self._tell(leg, control.END_FAILED, f"the call with {leg.caller} is over")
        return True

    def delivered(self, user: str, data: bytes) -> None:
        """A control message from another node went to ``user``: a CallEnd of its leg ends
        the leg (the owner ended the call)."""
        call_id = self._leg_of.get(user)
        if call_id is None:
            return
        message = wire.check_control(data)
        if isinstance(message, control.CallEnd) and message.call_id == call_id:
            self._drop_leg(call_id)

    async def user_gone(self, user: str) -> None:
        """``user``'s session ended: its leg ends and the owner is told (peer gone)."""
        leg = self.leg_of(user)
        if leg is not None:
            self._drop_leg(leg.call_id)
            await self._tell_owner_ended(leg, "peer_gone", f"{user}'s radio lost its connection")

    async def end_leg(self, user: str, call_id: bytes, text: str) -> None:
        """An emergency call placed here pre-empts ``user``'s call owned by another node."""
        leg = self.legs.get(call_id)
        if leg is None or leg.callee != user:
            return
        self._drop_leg(call_id)
        self._tell(leg, control.END_PREEMPTED, text)
        self._node.spawn(self._tell_owner_ended(leg, "preempted", text))

    def _drop_leg(self, call_id: bytes) -> None:
        leg = self.legs.pop(call_id, None)
        if leg is not None and self._leg_of.get(leg.callee) == call_id:
            del self._leg_of[leg.callee]

    def _tell(self, leg: Leg, reason: control.EndReason, text: str) -> None:
        session = self._server.sessions.by_user.get(leg.callee)
        if session is not None:
            session.send(
                control.CallEnd(call_id=leg.call_id, reason=reason, text=text), urgent=True
            )

    async def _tell_owner_ended(self, leg: Leg, why: wire.CallRelayEnd, text: str) -> None:
        op = wire.CallOp(call_id=leg.call_id, user_id=leg.callee, relay_end=why, text=text)
        if await self._ask(op) == _NO_OWNER:
            await self._owner_gone(leg, tell=False)

    async def _owner_gone(self, leg: Leg, *, tell: bool) -> None:
        """Nobody carries the call any more (its owner died): this node ends it."""
        self._drop_leg(leg.call_id)
        if tell:
            self._tell(leg, control.END_PEER_GONE, f"{leg.caller}'s relay node is gone: call again")
        log.warning(
            "call owner gone: call ended",
            extra={"fields": {"owner": leg.owner, "callee": leg.callee}},
        )
        try:
            await self._server.store.call_ended(leg.call_id, time.time(), control.END_PEER_GONE, "")
        except StoreError as exc:
            log.error("call log not written: %s", exc)  # a later sweep closes the row

    async def _ask(self, op: wire.CallOp) -> bytes:
        """The owner's answer to ``op``; :data:`_NO_OWNER` or :data:`_SILENT` without one."""
        nc = self._node.nc
        if nc is None:
            return _SILENT
        try:
            reply = await nc.request(
                wire.call_subject(op.call_id), wire.encode(op), timeout=REQUEST_TIMEOUT_S
            )
        except NoRespondersError:
            return _NO_OWNER
        except Exception as exc:  # timed out, or the bus is away: the probes go on
            log.debug("call op not answered", extra={"fields": {"error": str(exc)}})
            return _SILENT
        return reply.data

    # --- the owner (the caller's node) -------------------------------------------------------

    async def owning(self, call_id: bytes) -> None:
        """A call placed here goes ahead: listen on its subject before its row is written
        (a sweeping node that finds the row open then finds its owner)."""
        nc = self._node.nc
        if nc is None or call_id in self._owned:
            return
        try:
            subscription = await nc.subscribe(wire.call_subject(call_id), cb=self._on_call_op)
            await nc.flush(timeout=1)
        except Exception as exc:  # the bus is away: the call goes on, its callee is here
            log.warning("call subject not held", extra={"fields": {"error": str(exc)}})
            return
        self._owned[call_id] = _Owned(subscription)

    async def disowned(self, call_id: bytes) -> None:
        """The call ended and its end was written: stop listening on its subject."""
        owned = self._owned.pop(call_id, None)
        if owned is not None:
            with contextlib.suppress(Exception):  # the bus is away: it dies with it
                await owned.subscription.unsubscribe()

    async def ring(self, callee: str, incoming: control.CallIncoming) -> None:
        """Ring ``callee``, logged in on another node (or nowhere), for a call owned here."""
        nc = self._node.nc
        ring = wire.CallRing(
            owner=self._node.name, callee=callee, incoming=control.encode(incoming)
        )
        verdict = _SILENT
        if nc is not None:
            try:
                reply = await nc.request(
                    wire.user_subject(callee), wire.encode(ring), timeout=REQUEST_TIMEOUT_S
                )
                verdict = reply.data
            except NoRespondersError:
                verdict = OFFLINE
            except Exception as exc:
                log.warning("call ring not answered", extra={"fields": {"error": str(exc)}})
        owned = self._owned.get(incoming.call_id)
        if verdict == RINGING:
            if owned is not None:
                owned.remote_callee = True
                owned.heard_at = asyncio.get_running_loop().time()
            return
        reason: control.EndReason
        if verdict == BUSY:
            reason, text = control.END_BUSY, f"{callee} is in another call"
        elif verdict == OFFLINE:
            reason, text = control.END_OFFLINE, f"{callee} is not logged in: send a text instead"
        else:
            reason, text = control.END_FAILED, f"{callee}'s relay node did not answer: call again"
        effects = self._server.calls.end_for(callee, incoming.call_id, reason, text, time.time())
        await call_handlers.run_effects(self._server, effects)

    async def _on_call_op(self, msg: Msg) -> None:
        op = self._node.accept(
            msg, wire.CallOp, lambda o: wire.call_subject(o.call_id), "a call op for this call"
        )
        if op is None:
            return
        server = self._server
        call = server.calls.get(op.call_id)
        if call is None:
            await _respond(msg, GONE)
            return
        if op.user_id is None:  # another node sweeping the call log: this call lives
            await _respond(msg, OK)
            return
        if op.user_id != call.callee or op.user_id in server.sessions.by_user:
            self._node.refused(msg.subject, "a call op for a user that is not a remote callee")
            return
        owned = self._owned.get(op.call_id)
        if owned is not None:
            owned.heard_at = asyncio.get_running_loop().time()
        await _respond(msg, OK)  # before the log is written: the callee's node waits on it
        user, now = op.user_id, time.time()
        message = wire.call_op_message(op)
        effects: list[CallEffect] = []
        if op.relay_end is not None:
            text = op.text or f"{user}'s relay node ended the call"
            effects = server.calls.end_for(user, op.call_id, op.relay_end, text, now)
        elif isinstance(message, control.CallRinging):
            effects = server.calls.ringing(user, message)
        elif isinstance(message, control.CallAnswer):
            effects = server.calls.answer(user, message, now)
        elif isinstance(message, control.CallEnd):
            effects = server.calls.end(user, message, now)
        elif isinstance(message, control.CallTalk):
            effects = server.calls.talk(user, message)
        await call_handlers.run_effects(server, effects)

    # --- the tick: probes, silent callee nodes, the sweep ---------------------------------------

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        while True:
            try:
                await self._tick(loop.time())
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + SWEEP_S
                    await self.sweep()
            except StoreError as exc:
                log.warning("call sweep failed", extra={"fields": {"error": str(exc)}})
            except Exception:
                log.exception("call tick failed")
            await asyncio.sleep(PROBE_S)

    async def _tick(self, now: float) -> None:
        legs = list(self.legs.values())
        replies = await asyncio.gather(
            *(self._ask(wire.CallOp(call_id=leg.call_id, user_id=leg.callee)) for leg in legs)
        )
        for leg, reply in zip(legs, replies, strict=True):
            if self.legs.get(leg.call_id) is not leg:
                continue  # ended while the probe was out
            if reply == OK:
                leg.misses = 0
            elif reply == GONE:  # ended at its owner; its CallEnd went astray
                self._drop_leg(leg.call_id)
                self._tell(leg, control.END_FAILED, f"the call with {leg.caller} is over")
            elif reply == _NO_OWNER:
                await self._owner_gone(leg, tell=True)
            else:
                leg.misses += 1
                if leg.misses >= MISSES:
                    await self._owner_gone(leg, tell=True)
        for call_id, owned in list(self._owned.items()):
            call = self._server.calls.get(call_id)
            if call is None or not owned.remote_callee or now - owned.heard_at <= DEAD_AFTER_S:
                continue
            text = f"{call.callee}'s relay node is gone"
            effects = self._server.calls.end_for(
                call.callee, call_id, control.END_PEER_GONE, text, time.time()
            )
            await call_handlers.run_effects(self._server, effects)

    async def sweep(self) -> int:
        """Close the call log's open rows that no node carries any more; returns how many."""
        closed = 0
        for call_id in await self._server.store.open_call_ids():
            if call_id in self._owned or call_id in self.legs:
                continue
            if await self._ask(wire.CallOp(call_id=call_id)) == _NO_OWNER:
                if await self._server.store.close_call_left_open(call_id, time.time()):
                    closed += 1
        if closed:
            log.info("calls left open closed", extra={"fields": {"calls": closed}})
        return closed


async def _respond(msg: Msg, data: bytes) -> None:
    with contextlib.suppress(Exception):  # the asker gave up, or the bus is away
        await msg.respond(data)
