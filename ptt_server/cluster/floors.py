"""Channel floors across a cluster: one owner node per floor, held with a NATS lease.

The node that first needs a channel's floor (a radio of its own pressed PTT and nobody
answered on the channel's floor subject) takes the lease (:mod:`ptt_server.cluster.leases`,
which holds the buckets). It renews the lease every :data:`TICK_S` while the floor is busy,
and lets it go once the floor has been idle for :data:`IDLE_KEEP_S` (so only channels
that talk hold leases).

- The owner runs the channel's floor (:class:`ptt_server.channel_core.ChannelCore`) and
  answers floor inputs from other nodes on the channel's floor subject (request/reply).
- It publishes :class:`~ptt_server.cluster.wire.FloorNews` on every change and, while the
  floor is held, every tick (its heartbeat). Every node with listeners of the channel keeps
  the news (:class:`~ptt_server.cluster.floor_mirror.FloorMirror`): its relay decides from
  memory, as on one node.
- Media crosses nodes once per node: the talker's node publishes each admitted frame once
  on the channel's media subject; the nodes with listeners (and the owner, whose T1 it
  restarts and which records it) subscribe while they have listeners or own the floor.
- Fencing: an owner that could not renew for :data:`FENCE_S` stops deciding (the burst ends
  for its listeners) before the lease can expire and another node take it; a node whose
  owner's heartbeat stopped for a lease ends the burst for its own listeners.
- Burst ids keep increasing across owners: a new owner numbers on from the last one kept
  (:meth:`ptt_server.cluster.leases.FloorLeases.last_burst`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from ptt_protocol import control, floor
from ptt_server.channel_core import Broadcast
from ptt_server.cluster import wire
from ptt_server.cluster.floor_mirror import FloorMirror
from ptt_server.cluster.leases import LEASE_S as LEASE_S  # importable from here, as before
from ptt_server.cluster.leases import FloorLeases

if TYPE_CHECKING:
    from ptt_server.channels import Channel
    from ptt_server.cluster.node import ClusterNode
    from ptt_server.server import RelayServer
    from ptt_server.sessions import Session

log = logging.getLogger("ptt_server.cluster")

TICK_S: Final = LEASE_S / 4
"""Seconds between renewals, heartbeats and checks of the owners' heartbeats."""
FENCE_S: Final = LEASE_S * 0.75
"""An owner that has not renewed for this long stops deciding (before its lease expires)."""
IDLE_KEEP_S: Final = 10.0
"""Seconds an idle floor keeps its owner (a reply is answered by the same node, quickly)."""
REQUEST_TIMEOUT_S: Final = 0.5
"""Seconds a forwarded floor input waits for the owner's answer."""
ISLAND_BURST_STEP: Final = 1 << 16
"""How far a floor decided without the bus numbers ahead, so no burst id repeats after."""


@dataclass(slots=True)
class _Lease:
    revision: int
    renewed_at: float
    busy_at: float
    subscription: Subscription | None = None


class ClusterFloors:
    """The :class:`ptt_server.channels.FloorLink` of a cluster node."""

    def __init__(self, node: ClusterNode) -> None:
        self._node = node
        self._nc: NATS | None = None
        self._leases = FloorLeases(node.name, node.refused)
        self._owned: dict[int, _Lease] = {}
        self._listening: dict[int, list[Subscription]] = {}
        self._acquiring: dict[int, asyncio.Future[bool]] = {}
        """The lease being taken for a floor, shared by every request that needs it."""
        self._sequence = 0
        self._last_burst: dict[int, int] = {}
        self._islands: set[int] = set()
        """Floors this node decides for its own radios while the bus is away (no lease)."""
        self._requesters: dict[tuple[int, str], tuple[str, float]] = {}
        """(channel, user) -> (the node whose radio asked, unix time it asked), for the floors
        this node owns."""
        self._ticker: asyncio.Task[None] | None = None

    @property
    def _server(self) -> RelayServer:
        return self._node.server

    @property
    def leases_ok(self) -> bool:
        """The lease bucket answered at its last use (False: JetStream is away, e.g. its
        leader died, while the bus itself may be up)."""
        return self._leases.ok

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, nc: NATS) -> None:
        self._nc = nc
        await self._leases.start(nc)
        for channel in self._server.channels.values():
            self.attach(channel)
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        now = asyncio.get_running_loop().time()
        for channel_id in list(self._owned):
            await self._release(channel_id, now)

    def attach(self, channel: Channel) -> None:
        """Make ``channel`` a cluster channel (it starts owned by nobody known)."""
        if channel.link is self:
            return
        channel.link = self
        channel.mirror = FloorMirror(channel.channel_id)
        if channel.listeners:
            self.listening(channel, True)

    def owns(self, channel_id: int) -> bool:
        return channel_id in self._owned

    # --- FloorLink ---------------------------------------------------------------------------

    def forward(
        self,
        channel: Channel,
        action: wire.FloorAction,
        session: Session,
        priority: floor.Priority = floor.Priority.OFFICER,
        broadcast: bool = False,
    ) -> None:
        op = wire.FloorOp(
            action=action,
            channel_id=channel.channel_id,
            user_id=session.user_id,
            node=self._node.name,
            display_name=session.credential.display_name,
            priority=int(priority),
            broadcast=broadcast,
        )
        self._node.spawn(self._forward(channel, op))

    def to_user(self, user: str, message: control.Message) -> None:
        self._node.to_user(user, message, urgent=True)

    def news(self, channel: Channel, broadcasts: list[Broadcast]) -> None:
        lease = self._owned.get(channel.channel_id)
        if lease is None:
            return
        now = asyncio.get_running_loop().time()
        lease.busy_at = now
        self._publish_news(channel, now, broadcasts)
        burst_id = channel.burst_id
        if burst_id is not None and burst_id != self._last_burst.get(channel.channel_id):
            self._last_burst[channel.channel_id] = burst_id
            self._node.spawn(self._leases.remember_burst(channel.channel_id, burst_id))

    def listening(self, channel: Channel, listening: bool) -> None:
        self._node.spawn(self._update_interest(channel.channel_id))

    # --- forwarding a floor input to the owner -----------------------------------------------

    async def _forward(self, channel: Channel, op: wire.FloorOp) -> None:
        assert self._nc is not None
        loop = asyncio.get_running_loop()
        # Long enough for a dead owner's lease to run out and this node to take it over.
        deadline = loop.time() + LEASE_S + 2 * REQUEST_TIMEOUT_S
        data = wire.encode(op)
        while loop.time() < deadline:
            if channel.mirror is None:  # this node owns the floor (now)
                self._apply(channel, op, loop.time())
                return
            if not self._node.connected or not self.leases_ok:
                if op.action == "request":
                    self._island(channel, op, loop.time())
                return
            try:
                reply = await self._nc.request(
                    wire.floor_subject(op.channel_id), data, timeout=REQUEST_TIMEOUT_S
                )
            except NoRespondersError:
                if op.action != "request":
                    return  # nobody owns the floor: there is nothing to release
                await self._acquire(channel)
                continue
            except NatsTimeout:
                await self._acquire(channel)  # succeeds only once a dead owner's lease expired
                continue
            except Exception as exc:  # the bus is away
                log.warning("floor input not forwarded", extra={"fields": {"error": str(exc)}})
                break
            if reply.data == b"ok":
                return
            await asyncio.sleep(0)  # "moved": the owner let go a moment ago; ask again
        if op.action == "request":
            deny = control.FloorDeny(
                channel_id=op.channel_id,
                cause=floor.DenyCause.NO_RESOURCES_AVAILABLE.phrase,
            )
            session = self._server.sessions.by_user.get(op.user_id)
            if session is not None:
                session.send(deny, urgent=True)

    def _apply(self, channel: Channel, op: wire.FloorOp, now: float) -> None:
        key = (op.channel_id, op.user_id)
        if op.action == "request":
            self._requesters[key] = (op.node, time.time())
        else:
            self._requesters.pop(key, None)
        channel.floor_input(
            op.action,
            op.user_id,
            op.display_name,
            floor.Priority(op.priority),
            op.broadcast,
            now,
        )

    async def _on_floor_op(self, msg: Msg) -> None:
        op = self._node.accept(
            msg, wire.FloorOp, lambda o: wire.floor_subject(o.channel_id), "a floor input here"
        )
        if op is None:
            return
        channel = self._server.channels.get(op.channel_id)
        if channel is None or op.user_id not in channel.members:
            self._node.refused(msg.subject, f"{op.user_id!r} is not a member of the channel")
            return
        if channel.mirror is not None:
            await _respond(msg, b"moved")
            return
        if op.node == self._node.name or op.user_id in self._server.sessions.by_user:
            # No honest node sends this: this node applies its own radios' inputs itself, and
            # a user logged in here has no session elsewhere that could ask (an old session's
            # late "disconnect" must not end what the new one holds). Answered, so an honest
            # asker racing a move does not retry; refused and counted.
            self._node.refused(msg.subject, f"a floor input for {op.user_id!r}, who is here")
            await _respond(msg, b"ok")
            return
        self._apply(channel, op, asyncio.get_running_loop().time())
        await _respond(msg, b"ok")

    def user_moved(self, user: str, node: str, at: float) -> None:
        """``user`` logged in on ``node`` at ``at`` (unix time): in the floors this node owns,
        what the user's session on another node asked for before that is over (that node
        died, or the radio moved), at once rather than at T1."""
        now = asyncio.get_running_loop().time()
        for channel_id in list(self._owned):
            asked = self._requesters.get((channel_id, user))
            channel = self._server.channels.get(channel_id)
            if asked is None or asked[0] == node or asked[1] > at or channel is None:
                continue  # nothing asked, asked from there, or asked after that login
            del self._requesters[(channel_id, user)]
            channel.floor_input("disconnect", user, "", floor.Priority.OFFICER, False, now)

    # --- leases ------------------------------------------------------------------------------

    async def _acquire(self, channel: Channel) -> bool:
        """Take the floor's lease if nobody holds it; True if this node owns it now."""
        channel_id = channel.channel_id
        if channel_id in self._owned:
            return True
        # One try at a time per floor: requests pressed together wait for the same answer.
        taking = self._acquiring.get(channel_id)
        if taking is None:
            taking = asyncio.ensure_future(self._take_lease(channel))
            self._acquiring[channel_id] = taking
            taking.add_done_callback(lambda _: self._acquiring.pop(channel_id, None))
        # Shielded: one asker given up must not cancel the others' lease.
        return await asyncio.shield(taking)

    async def _take_lease(self, channel: Channel) -> bool:
        assert self._nc is not None
        revision = await self._leases.take(channel.channel_id)
        if revision is None:
            return False  # another node holds it, or the bucket is away
        now = asyncio.get_running_loop().time()
        last = await self._leases.last_burst(channel.channel_id)
        mirror = channel.mirror
        known = max(last, mirror.last_burst_id if mirror is not None else 0)
        lease = _Lease(revision, now, now)
        self._owned[channel.channel_id] = lease
        channel.own(known)
        lease.subscription = await self._nc.subscribe(
            wire.floor_subject(channel.channel_id), cb=self._on_floor_op
        )
        await self._update_interest(channel.channel_id)
        self._server.metrics.floor_leases.labels("taken").inc()
        log.info(
            "floor owned",
            extra={"fields": {"channel": channel.channel_id, "node": self._node.name}},
        )
        return True

    async def _release(self, channel_id: int, now: float, *, lost: bool = False) -> None:
        lease = self._owned.pop(channel_id, None)
        if lease is None:
            return
        for key in [k for k in self._requesters if k[0] == channel_id]:
            del self._requesters[key]
        channel = self._server.channels.get(channel_id)
        if channel is not None:
            channel.disown(now)
            self._publish_news_idle(channel_id)
        if lease.subscription is not None:
            with contextlib.suppress(Exception):
                await lease.subscription.unsubscribe()
        if not lost:
            await self._leases.give_back(channel_id, lease.revision)
        self._server.metrics.floor_leases.labels("lost" if lost else "released").inc()
        await self._update_interest(channel_id)

    async def _renew(self, channel_id: int, lease: _Lease, now: float) -> None:
        revision = await self._leases.renew(channel_id, lease.revision)
        if revision is None:
            return
        lease.revision = revision
        lease.renewed_at = now
        self._server.metrics.floor_leases.labels("renewed").inc()

    # --- without the bus: islands ---------------------------------------------------------------

    def _island(self, channel: Channel, op: wire.FloorOp, now: float) -> None:
        """The bus is away: this node decides the floor for its own radios (no lease can be
        taken), rather than leave the channel silent. Radios on other nodes cannot hear
        them meanwhile; once the bus is back and the floor is idle, leases decide again."""
        mirror = channel.mirror
        if mirror is not None:
            last = max(self._last_burst.get(channel.channel_id, 0), mirror.last_burst_id)
            channel.own(min(last + ISLAND_BURST_STEP, 0xFFFF_0000))
            self._islands.add(channel.channel_id)
            self._server.metrics.floor_leases.labels("island").inc()
            log.warning(
                "bus away: floor decided here for this node's radios",
                extra={"fields": {"channel": channel.channel_id}},
            )
        self._apply(channel, op, now)

    async def bus_back(self) -> None:
        """The bus reconnected: see whether the lease bucket answers, rejoin idle islands."""
        await self._probe_leases()
        self.rejoin_islands(asyncio.get_running_loop().time())

    async def _probe_leases(self) -> None:
        if self._node.connected:
            await self._leases.probe()

    def rejoin_islands(self, now: float) -> None:
        """The bus is back: every idle island floor is decided by leases again (a busy one
        when its burst ends), its last burst id kept for the next owner."""
        if not self._node.connected or not self.leases_ok:
            return
        for channel_id in list(self._islands):
            channel = self._server.channels.get(channel_id)
            if channel is not None and not channel.core.idle:
                continue
            self._islands.discard(channel_id)
            if channel is not None:
                self._node.spawn(self._leases.remember_burst(channel_id, channel.floor.burst_id))
                channel.disown(now)

    def _becomes_island(self, channel_id: int, lease: _Lease) -> None:
        """An owned floor whose lease cannot be renewed because the bus is away: its burst
        goes on for this node's radios (nobody else can hear or take it meanwhile)."""
        del self._owned[channel_id]
        self._islands.add(channel_id)
        if lease.subscription is not None:
            self._node.spawn(_unsubscribe(lease.subscription))
        self._server.metrics.floor_leases.labels("island").inc()
        log.warning(
            "bus away: floor kept for this node's radios", extra={"fields": {"channel": channel_id}}
        )

    # --- the tick: renewals, heartbeats, fencing, dead owners ---------------------------------

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self._tick(loop.time())
            except Exception:
                log.exception("floor tick failed")

    async def _tick(self, now: float) -> None:
        for channel_id, lease in list(self._owned.items()):
            channel = self._server.channels.get(channel_id)
            if channel is None:
                await self._release(channel_id, now)
                continue
            if now - lease.renewed_at > FENCE_S:
                if not self._node.connected or not self.leases_ok:  # away, not taken
                    self._becomes_island(channel_id, lease)
                    continue
                log.warning("floor lease lost: fencing", extra={"fields": {"channel": channel_id}})
                await self._release(channel_id, now, lost=True)
                continue
            if channel.core.idle and now - lease.busy_at > IDLE_KEEP_S:
                await self._release(channel_id, now)
                continue
            await self._renew(channel_id, lease, now)
            if not channel.core.idle:
                self._publish_news(channel, now, [])  # the heartbeat
        await self._probe_leases()
        self.rejoin_islands(now)
        for channel in self._server.channels.values():
            mirror = channel.mirror
            if mirror is not None and mirror.owner_lost(now, LEASE_S):
                log.warning(
                    "floor owner silent: burst ended",
                    extra={"fields": {"channel": channel.channel_id, "owner": mirror.owner}},
                )
                channel.owner_gone(now)

    # --- news and interest -------------------------------------------------------------------

    def _publish_news(self, channel: Channel, now: float, broadcasts: list[Broadcast]) -> None:
        news = channel.news(now, self._node.name, self._sequence + 1, broadcasts)
        if news is None:
            return
        self._sequence += 1
        self._node.publish_soon(wire.news_subject(channel.channel_id), wire.encode(news))

    def _publish_news_idle(self, channel_id: int) -> None:
        """The last news of a floor this node let go: idle, and FloorIdle for listeners."""
        self._sequence += 1
        idle = control.encode(control.FloorIdle(channel_id=channel_id))
        news = wire.FloorNews(
            channel_id=channel_id,
            owner=self._node.name,
            sequence=self._sequence,
            broadcasts=((idle, None),),
        )
        self._node.publish_soon(wire.news_subject(channel_id), wire.encode(news))

    async def _update_interest(self, channel_id: int) -> None:
        """Subscribe to the channel's news and media while this node has listeners of it
        or owns its floor; unsubscribe when neither (so media reaches only such nodes)."""
        if self._nc is None:
            return
        channel = self._server.channels.get(channel_id)
        wanted = channel is not None and (bool(channel.listeners) or channel_id in self._owned)
        held = self._listening.get(channel_id)
        if wanted and held is None:
            self._listening[channel_id] = []
            subscriptions = [
                await self._nc.subscribe(wire.news_subject(channel_id), cb=self._on_news),
                await self._nc.subscribe(
                    wire.media_subject(channel_id), cb=self._media_reader(channel_id)
                ),
            ]
            if channel_id in self._listening:
                self._listening[channel_id] = subscriptions
            else:  # interest ended while subscribing
                for subscription in subscriptions:
                    await subscription.unsubscribe()
        elif not wanted and held is not None:
            del self._listening[channel_id]
            for subscription in held:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()

    async def _on_news(self, msg: Msg) -> None:
        news = self._node.accept(
            msg, wire.FloorNews, lambda n: wire.news_subject(n.channel_id), "floor news here"
        )
        if news is None:
            return
        channel = self._server.channels.get(news.channel_id)
        if channel is None:
            return
        now = asyncio.get_running_loop().time()
        if news.channel_id in self._islands and channel.core.idle:
            # Another node owns the floor again (it holds the lease): an idle island here
            # gives way at once rather than at this node's next probe.
            self._islands.discard(news.channel_id)
            channel.disown(now)
        mirror = channel.mirror
        if mirror is not None and news.owner != mirror.owner:
            # A new owner is checked once, against the lease bucket (not every heartbeat):
            # a node that does not hold the lease has no floor to tell about. Checked
            # beside, not before: the talker's node must know its grant as soon as the
            # talker does, or the burst's first words are dropped.
            self._node.spawn(self._check_owner(msg.subject, news.channel_id, news.owner))
        channel.apply_news(news, now)

    async def _check_owner(self, subject: str, channel_id: int, owner: str) -> None:
        if await self._leases.holds(channel_id, owner):
            return
        channel = self._server.channels.get(channel_id)
        if channel is not None and channel.mirror is not None and channel.mirror.owner == owner:
            channel.owner_gone(asyncio.get_running_loop().time())  # what it said is undone
        self._node.refused(subject, f"floor news from {owner!r}, which holds no lease")

    def _media_reader(self, channel_id: int) -> Callable[[Msg], Awaitable[None]]:
        """The callback of one channel's media subscription (its channel known once, not
        read from each message's subject)."""
        relay = self._server.relay

        async def on_media(msg: Msg) -> None:
            try:
                user, inner = wire.unpack_media(msg.data)
            except wire.BusMessageError as exc:
                self._node.refused(msg.subject, str(exc))
                return
            if relay is not None:
                relay.receive_from_bus(channel_id, user, inner)

        return on_media

    def publish_media(self, channel_id: int, user: str, inner: bytes) -> None:
        """The relay admitted a frame of a radio here: once on the bus for the other nodes."""
        self._node.publish_soon(
            wire.media_subject(channel_id),
            wire.pack_media(user, inner),
            droppable=True,
        )


async def _unsubscribe(subscription: Subscription) -> None:
    with contextlib.suppress(Exception):  # the bus is away: the subscription dies with it
        await subscription.unsubscribe()


async def _respond(msg: Msg, data: bytes) -> None:
    with contextlib.suppress(Exception):  # the asker gave up, or the bus is away
        await msg.respond(data)
