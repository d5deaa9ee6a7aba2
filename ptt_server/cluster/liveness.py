"""Which nodes of the cluster are alive, and the presence of the users of one that died.

Every node publishes a :class:`wire.Heartbeat` each :data:`HEARTBEAT_S` and notes the
heartbeats it hears (:class:`Liveness`, pure: time is passed in). A node silent for
:data:`DEAD_AFTER_S` is dead: it crashed (``kill -9``, power) or lost the bus. Its users'
presence rows still say online (a dead node writes no logout), and in a cluster a
dispatcher's snapshot trusts that flag (issue 12): so one surviving node, the lowest name
among those alive (every node computes the same one, so no two do the work), marks that
node's users offline in the store (:meth:`Store.mark_node_offline`, one statement that
leaves a user whose radio logged in elsewhere alone) and pushes the offline updates to
every node's consoles by the presence news path.

A node starting under a name marks the rows left online under that name offline first: it
was restarted, and none of those sessions exist any more. A node the cluster declared dead
that is alive after all (its bus link flapped) hears the :class:`news.NodeDownNews` and
stores its own users online again. The sweeping node also marks offline the users of a
node the store names that nobody heard for :data:`DEAD_AFTER_S` (it died before the others
heard it, or while no node was up). While this node has lost the bus it declares nobody
dead (the silence is its own), and on the bus's return it gives every node a fresh
:data:`DEAD_AFTER_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from ptt_protocol import control
from ptt_server.cluster import news, wire
from ptt_server.handlers import presence
from ptt_server.store import StoreError

if TYPE_CHECKING:
    from ptt_server.cluster.node import ClusterNode
    from ptt_server.server import RelayServer

log = logging.getLogger("ptt_server.cluster")

HEARTBEAT_S: Final = 1.0
"""Seconds between a node's heartbeats (and its checks of the others')."""
DEAD_AFTER_S: Final = 3.0
"""Seconds of silence after which a node is dead: three heartbeats missed."""
_ENCODER: Final = msgspec.msgpack.Encoder()


class Liveness:
    """The nodes this node hears and when it last heard each (no I/O, no clock)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._heard: dict[str, float] = {}
        self._unheard: dict[str, float] = {}
        """Nodes the store names but this node never heard -> since when."""

    def heard(self, node: str, now: float) -> bool:
        """Note ``node``'s heartbeat; True if it was not alive to this node before."""
        if node == self.name:
            return False
        new = node not in self._heard
        self._heard[node] = now
        self._unheard.pop(node, None)
        return new

    def unheard(self, named: Iterable[str], now: float) -> list[str]:
        """Of the nodes the store names (``named``: users online on them), the ones never
        heard for :data:`DEAD_AFTER_S` since first named, sorted: dead before this node
        heard them (killed just after starting, or while no node was up)."""
        strangers = set(named) - {self.name} - self._heard.keys()
        self._unheard = {n: self._unheard.get(n, now) for n in strangers}
        return sorted(n for n, since in self._unheard.items() if now - since >= DEAD_AFTER_S)

    def dead(self, now: float) -> list[str]:
        """The nodes silent for :data:`DEAD_AFTER_S` since the last call, sorted; they are
        forgotten (a heartbeat of theirs later makes them alive again)."""
        gone = sorted(n for n, at in self._heard.items() if now - at >= DEAD_AFTER_S)
        for node in gone:
            del self._heard[node]
        return gone

    def live(self) -> list[str]:
        """This node and the nodes it hears, sorted."""
        return sorted({self.name, *self._heard})

    def sweeper(self) -> str:
        """The node that marks a dead node's users offline: the lowest live name."""
        return min(self.live())

    def resume(self, now: float) -> None:
        """The bus is back after an outage of this node's: nobody was heard meanwhile, and
        that silence says nothing about the others."""
        for node in self._heard:
            self._heard[node] = now


class NodeWatch:
    """The heartbeats of one node: sent, heard, and the sweep of the nodes that died."""

    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self.liveness = Liveness(node.name)
        self._pending: set[str] = set()
        """Dead nodes whose sweep failed on a store error: tried again each heartbeat."""
        self._loop_task: asyncio.Task[None] | None = None
        self.heard_new = asyncio.Event()
        """Set when a node is first heard (or heard again); tests and tools clear it."""
        node.on_event(news.NODE_DOWN, self._on_node_down)

    @property
    def _server(self) -> RelayServer:
        return self.node.server

    async def start(self, nc: NATS) -> None:
        """Clear this name's stale rows, then hear and send heartbeats."""
        await self.sweep(self.node.name, "this node (re)started under its name")
        await nc.subscribe(wire.HEARTBEAT_SUBJECT, cb=self._on_heartbeat)
        self._loop_task = asyncio.create_task(self._beat_loop())

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task

    def bus_back(self) -> None:
        self.liveness.resume(asyncio.get_running_loop().time())

    async def _on_heartbeat(self, msg: Msg) -> None:
        beat = self.node.accept(msg, wire.Heartbeat, None, "a heartbeat")
        if beat is None:
            return
        if beat.node == self.node.name:
            # no_echo: never this node's own. Two nodes share a name, and each would take
            # the other's users for its own: said, not acted on.
            self.node.refused(msg.subject, "a heartbeat under this node's name: fix node_name")
            return
        if self.liveness.heard(beat.node, asyncio.get_running_loop().time()):
            self.heard_new.set()

    async def _beat_loop(self) -> None:
        beat = wire.encode(wire.Heartbeat(node=self.node.name))
        loop = asyncio.get_running_loop()
        while True:
            # Dropped while the bus is away: a burst of stale heartbeats on its return
            # would say nothing true.
            self.node.publish_soon(wire.HEARTBEAT_SUBJECT, beat, droppable=True)
            if self.node.connected:
                try:
                    await self._check(loop.time())
                except Exception:  # a bug here must not end the heartbeats (we would "die")
                    log.exception("checking the nodes' heartbeats failed")
            await asyncio.sleep(HEARTBEAT_S)

    async def _check(self, now: float) -> None:
        self._pending.update(self.liveness.dead(now))
        if self.liveness.sweeper() != self.node.name:
            self._pending.clear()  # a lower live node does it
            return
        # One small query a second, on one node: the nodes users are stored online on.
        try:
            named = await self._server.store.online_nodes()
        except StoreError:
            named = []  # the store is away: its outage is logged where it hurts
        self._pending.update(self.liveness.unheard(named, now))
        for dead in sorted(self._pending):
            if dead not in self.liveness.live():  # not heard again meanwhile
                await self.sweep(dead, "the node fell silent")

    async def sweep(self, dead: str, why: str) -> None:
        """Store ``dead``'s users offline and tell every node's consoles."""
        server = self._server
        try:
            users = await server.store.mark_node_offline(dead, time.time())
            self._pending.discard(dead)
            if users:
                log.warning(
                    "a node's users marked offline",
                    extra={"fields": {"node": dead, "why": why, "users": len(users)}},
                )
                await publish_offline(self.node, users)
        except StoreError as exc:
            if dead != self.node.name:
                self._pending.add(dead)
            log.error(
                "could not mark a node's users offline: consoles may show them online;"
                " check the store",
                extra={"fields": {"node": dead, "error": str(exc)}},
            )
            return
        if dead != self.node.name:
            self.node.publish_event(news.NODE_DOWN, _ENCODER.encode(news.NodeDownNews(node=dead)))

    async def _on_node_down(self, body: bytes) -> None:
        event = news.decode(body, news.NodeDownNews)
        if event.node != self.node.name:
            return
        server = self._server
        log.warning(
            "the cluster took this node for dead (bus link lost?): storing its users online",
            extra={"fields": {"node": self.node.name}},
        )
        for session in list(server.sessions.by_user.values()):
            if not session.closing_reason:
                await presence.set_presence(server, session, online=True)


async def publish_offline(node: ClusterNode, users: Iterable[str]) -> None:
    """Offline updates of ``users`` (stored offline) to this node's consoles and every
    other node's, as each row now stands (a user whose radio logged in elsewhere since
    is online again: no update). Published by ``node`` itself: at its start the server
    does not know it yet (``server.cluster``), and :func:`news.publish` would be a no-op."""
    server = node.server
    wanted = set(users)
    names = {u.user_id: u.display_name for u in await server.store.list_users()}
    for row in await server.store.all_presence():
        if row.user_id not in wanted or row.online or row.user_id in server.sessions.by_user:
            continue
        update = control.encode(
            control.PresenceUpdate(
                user_id=row.user_id,
                display_name=names.get(row.user_id, ""),
                online=False,
                status=control.STATUS_OFFLINE,
                last_seen=row.last_seen,
                sealed_location=row.sealed_location,
            )
        )
        presence.push_update(server, update, row.user_id)
        node.publish_event(news.PRESENCE, _ENCODER.encode(news.PresenceNews(update=update)))
