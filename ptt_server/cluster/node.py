"""This server's place in a cluster: its NATS connection and what travels on it.

Nodes are identical ``ptt-server`` processes sharing one PostgreSQL store and one NATS
bus (``ptt-server --cluster nats://...``). Each has its own control and media ports and
its own sessions; what one node must tell another goes on NATS subjects
(:mod:`ptt_server.cluster.wire`):

- a control message for a user logged in elsewhere goes to that user's subject, which
  only the node holding the user's session reads (:meth:`ClusterNode.to_user`);
- floors and media go through :class:`ptt_server.cluster.floors.ClusterFloors`;
- private calls between nodes go through :class:`ptt_server.cluster.calls.ClusterCalls`
  (a call ring comes on the callee's user subject too);
- cluster-wide events (a roster changed, an emergency was raised ...) go to one subject
  every node reads, each kind to the handler registered for it (:meth:`ClusterNode.on_event`);
- heartbeats say which nodes are alive; the users of a dead one are marked offline
  (:class:`ptt_server.cluster.liveness.NodeWatch`).

NATS itself reconnects and re-subscribes after a restart of ``nats-server``; while it is
away, media is dropped (late voice is no voice) and control messages wait in the
client's bounded buffer. Whatever a node receives is decoded strictly; a refused message
is counted (``fieldradio_bus_refused_total``) and logged, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ptt_protocol import control
from ptt_server.cluster import bus_auth, news, wire
from ptt_server.cluster.floors import ClusterFloors
from ptt_server.startup import StartupError
from ptt_server.store import StoreError

if TYPE_CHECKING:
    from ptt_server.cluster.calls import ClusterCalls
    from ptt_server.relay import MediaRelay
    from ptt_server.server import RelayServer
    from ptt_server.sessions import Session

log = logging.getLogger("ptt_server.cluster")

EventHandler = Callable[[bytes], Awaitable[None]]
M = TypeVar("M", bound=wire.BusMessage)
JOIN_TIMEOUT_S = 5.0
"""Seconds a starting node tries to reach the bus before it refuses to start (systemd then
restarts it): later outages are waited out, reconnecting for ever."""
PUBLISH_BUFFER = 8 * 1024 * 1024
"""Bytes of control messages held while NATS is away (media is never held)."""


class ClusterError(Exception):
    """The cluster cannot be joined (NATS unreachable, JetStream off); says what to check."""


async def join_cluster(server: RelayServer, relay: MediaRelay) -> ClusterNode:
    """Join ``server`` (started: its ports are bound) to the cluster of its config."""
    config = server.config
    urls = [url.strip() for url in config.cluster.split(",") if url.strip()]
    name = config.node_name or f"{socket.gethostname()}-{server.control_port}"
    options: dict[str, Any] = {}
    if config.cluster_credentials_file:
        credentials = bus_auth.read_credentials(Path(config.cluster_credentials_file))
        options.update(credentials.connect_options())
    if config.cluster_ca_file:
        options["tls"] = bus_auth.tls_context(Path(config.cluster_ca_file))
    node = ClusterNode(server, urls, name, options)
    from ptt_server.cluster import events  # the handlers import the server's handlers

    events.register(node)
    try:
        await node.start()
    except ClusterError as exc:
        raise StartupError(str(exc)) from None
    relay.publish = node.floors.publish_media
    return node


class ClusterNode:
    """The NATS side of one node; ``start`` it after the server started, ``stop`` before."""

    def __init__(
        self,
        server: RelayServer,
        urls: list[str],
        name: str,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        from ptt_server.cluster.calls import ClusterCalls  # it runs the server's call handlers
        from ptt_server.cluster.liveness import NodeWatch  # it stores and pushes presence

        self.server = server
        self.urls = urls
        self.name = name
        self._connect_options = connect_options or {}
        """Credentials and TLS for ``nats.connect`` (never logged: they hold the password)."""
        self.nc: NATS | None = None
        self._refused_login: asyncio.Event | None = None
        """While joining: set when the bus refuses this node's credentials."""
        self.floors = ClusterFloors(self)
        self.calls: ClusterCalls = ClusterCalls(self)
        self._handlers: dict[str, EventHandler] = {}
        self.watch = NodeWatch(self)
        """Heartbeats: which nodes are alive; the users of a dead one marked offline."""
        self._user_subs: dict[str, Subscription] = {}
        self._outbox: list[tuple[str, bytes]] = []
        self._draining = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.reconnects = 0
        """Times the bus came back after an outage (NATS restarted, the link flapped)."""
        self.reconnected = asyncio.Event()
        """Set at each return of the bus (tests and tools wait on it; cleared by them)."""
        self.disconnected = asyncio.Event()
        """Set at each loss of the bus (likewise)."""

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        refused_login = self._refused_login = asyncio.Event()
        connecting = asyncio.ensure_future(self._connect())
        refusal = asyncio.ensure_future(refused_login.wait())
        try:
            # nats-py retries a refused login until the deadline: the first refusal ends it.
            await asyncio.wait(
                (connecting, refusal), timeout=JOIN_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._refused_login = None
            refusal.cancel()
        joined = connecting.done()
        if not joined:
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)  # its end, not ours
            if refused_login.is_set():
                raise ClusterError(
                    f"the NATS bus at {', '.join(self.urls)} refused this node's credentials"
                    " (Authorization Violation): check the user and password (or token) in"
                    " cluster_credentials_file against the bus's authorization block"
                )
        try:
            if not joined:
                raise TimeoutError(f"no answer within {JOIN_TIMEOUT_S} s")
            self.nc = connecting.result()
        except Exception as exc:  # nats-py raises several unrelated types for "unreachable"
            raise ClusterError(
                f"cannot reach the cluster's NATS bus at {', '.join(self.urls)}"
                f" ({type(exc).__name__}: {exc}): start nats-server with JetStream (-js),"
                " or fix --cluster"
            ) from None
        assert self.nc is not None
        try:
            await self.floors.start(self.nc)
        except Exception as exc:  # JetStream off, or its buckets refused
            await self.nc.close()
            raise ClusterError(
                f"the NATS bus at {', '.join(self.urls)} refused the floor lease buckets"
                f" ({exc}): run nats-server with JetStream enabled (-js, or jetstream {{}} in"
                " its config)"
            ) from None
        await self.nc.subscribe(wire.EVENTS_SUBJECT, cb=self._on_event_message)
        await self.calls.start()
        await self.watch.start(self.nc)
        log.info("joined the cluster", extra={"fields": {"node": self.name, "bus": self.urls}})

    async def _connect(self) -> NATS:
        return await nats.connect(
            servers=self.urls,
            name=self.name,
            no_echo=True,  # a node never hears what it published itself
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            connect_timeout=2,
            pending_size=PUBLISH_BUFFER,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            **self._connect_options,
        )

    async def stop(self) -> None:
        self._stopping = True
        await self.watch.stop()
        await self.calls.stop()
        await self.floors.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.nc is not None:
            try:
                await self.nc.drain()
            except Exception as exc:  # the bus may be gone already: stopping goes on
                log.warning("leaving the bus failed", extra={"fields": {"error": str(exc)}})

    def spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    # --- publishing --------------------------------------------------------------------------

    def publish_soon(self, subject: str, data: bytes, *, droppable: bool = False) -> None:
        """Publish without awaiting (the relay's hot path): queued, sent in one batch at the
        next turn of the loop. ``droppable`` (media): dropped while the bus is away."""
        if droppable and not self.connected:
            self.server.metrics.bus_dropped.inc()
            return
        self._outbox.append((subject, data))
        if not self._draining:
            self._draining = True
            self.spawn(self._drain())  # a task: it runs at the next turn of the loop

    async def _drain(self) -> None:
        nc = self.nc
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                for subject, data in batch:
                    if nc is None or nc.is_closed:
                        self.server.metrics.bus_dropped.inc()
                        continue
                    try:
                        await nc.publish(subject, data)
                    except Exception as exc:  # buffer full while NATS is away, bus closed
                        self.server.metrics.bus_dropped.inc()
                        log.debug("publish dropped", extra={"fields": {"error": str(exc)}})
        finally:
            self._draining = False

    def to_user(self, user: str, message: control.Message, *, urgent: bool = False) -> None:
        """Send ``message`` to ``user`` on whichever node holds its session (if any)."""
        self.to_user_encoded(user, control.encode(message), urgent=urgent)

    def to_user_encoded(self, user: str, data: bytes, *, urgent: bool = False) -> None:
        envelope = wire.ToUser(user_id=user, message=data, urgent=urgent)
        self.publish_soon(wire.user_subject(user), wire.encode(envelope))

    def publish_event(self, kind: str, body: bytes = b"") -> None:
        """Tell every other node of the cluster (``kind``'s handler runs there)."""
        event = wire.ClusterEvent(kind=kind, origin=self.name, body=body)
        self.publish_soon(wire.EVENTS_SUBJECT, wire.encode(event))

    def on_event(self, kind: str, handler: EventHandler) -> None:
        """Run ``handler(body)`` when another node publishes an event of ``kind``."""
        self._handlers[kind] = handler

    # --- sessions ----------------------------------------------------------------------------

    async def user_online(self, session: Session) -> None:
        """``session`` logged in here: messages for its user come to this node, and a
        session of its user on another node ends (one session per user, cluster-wide)."""
        login = news.LoginNews(
            user_id=session.user_id,
            fingerprint=session.credential.fingerprint(),
            node=self.name,
            at=session.logged_in_at,
        )
        news.publish(self.server, news.LOGIN, login)
        self.floors.user_moved(session.user_id, self.name, session.logged_in_at)  # moved here?
        if self.nc is None or session.user_id in self._user_subs:
            return
        self._user_subs[session.user_id] = await self.nc.subscribe(
            wire.user_subject(session.user_id), cb=self._on_user_message
        )

    async def user_offline(self, user: str) -> None:
        subscription = self._user_subs.pop(user, None)
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except Exception as exc:  # the bus is away: the subscription dies with it
                log.debug("unsubscribe failed", extra={"fields": {"error": str(exc)}})

    # --- receiving ---------------------------------------------------------------------------

    def refused(self, subject: str, reason: str) -> None:
        """Count (and log) a bus message this node refuses."""
        kind = subject.split(".")[1] if subject.count(".") >= 1 else subject
        self.server.metrics.bus_refused.labels(kind).inc()
        log.warning("bus message refused", extra={"fields": {"subject": subject, "why": reason}})

    def accept(
        self,
        msg: Msg,
        kind: type[M],
        subject_of: Callable[[M], str] | None,
        what: str,
    ) -> M | None:
        """``msg`` decoded as a ``kind`` published on the subject ``subject_of`` names for it;
        None (the refusal counted and logged, ``what`` naming what was expected) if not."""
        try:
            message = wire.decode(msg.data)
        except wire.BusMessageError as exc:
            self.refused(msg.subject, str(exc))
            return None
        if not isinstance(message, kind) or (
            subject_of is not None and msg.subject != subject_of(message)
        ):
            self.refused(msg.subject, f"not {what}")
            return None
        return message

    async def _on_user_message(self, msg: Msg) -> None:
        try:
            message = wire.decode(msg.data)
        except wire.BusMessageError as exc:
            self.refused(msg.subject, str(exc))
            return
        if isinstance(message, wire.CallRing):
            await self.calls.on_ring(msg, message)  # request/reply: it answers or refuses
            return
        if not isinstance(message, wire.ToUser) or msg.subject != wire.user_subject(
            message.user_id
        ):
            self.refused(msg.subject, "not a message for this subject's user")
            return
        session = self.server.sessions.by_user.get(message.user_id)
        if session is not None:
            self.calls.delivered(message.user_id, message.message)
            session.send_encoded(message.message, urgent=message.urgent)

    async def _on_event_message(self, msg: Msg) -> None:
        event = self.accept(msg, wire.ClusterEvent, None, "a cluster event")
        if event is None:
            return
        handler = self._handlers.get(event.kind)
        if handler is None:
            self.refused(msg.subject, f"no handler for event {event.kind!r}")
            return
        try:
            await handler(event.body)
        except wire.BusMessageError as exc:
            self.refused(msg.subject, f"{event.kind}: {exc}")
        except StoreError as exc:
            log.error(
                "cluster event failed: store error",
                extra={"fields": {"kind": event.kind, "error": str(exc)}},
            )
        except Exception:
            # A bug an event trips must not end the subscription (every later event would
            # be lost): refused, logged, counted.
            log.exception("cluster event handler failed", extra={"fields": {"kind": event.kind}})
            self.server.metrics.bus_refused.labels("handler-error").inc()

    # --- connection news ---------------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        if self._refused_login is not None and "authorization violation" in str(exc).lower():
            self._refused_login.set()
        log.warning("bus error", extra={"fields": {"error": str(exc)}})

    async def _on_disconnected(self) -> None:
        self.disconnected.set()
        if not self._stopping:
            log.warning("lost the bus: reconnecting", extra={"fields": {"node": self.name}})

    async def _on_reconnected(self) -> None:
        await self.floors.bus_back()
        self.watch.bus_back()
        self.reconnects += 1
        self.reconnected.set()
        log.info("bus back", extra={"fields": {"node": self.name}})
