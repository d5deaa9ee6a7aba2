"""The relay server: TLS WebSocket control plane, UDP media relay, and what joins them.

One task per connection (a reader and a writer in a TaskGroup); everything
else is event-driven: floor timers are armed per channel, presence is pushed
to subscribers on change, and what the org authority (``ptt-admin``, a logged-in
admin client) sends is applied the moment it arrives (:mod:`ptt_server.handlers.authority`).
Nothing here ever holds a channel key or a signing key: rosters, credentials and
revocation lists are verified against the pinned org root, envelopes and sealed
texts are stored and forwarded as opaque bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.server import Server, ServerConnection, serve

from crypto.errors import CryptoError
from crypto.identity import RevocationList, TrustAnchor
from crypto.roster import RosterState
from ptt_protocol import control, floor
from ptt_server import gc_freeze, heap, login, prelogin, tls
from ptt_server.call_core import CallTable
from ptt_server.channels import Channel
from ptt_server.cluster.node import ClusterNode, join_cluster
from ptt_server.config import DATABASE_NAME, ServerConfig, org_root_path
from ptt_server.emergencies import EmergencyBroadcasts
from ptt_server.handlers import HANDLERS, calls, keys, presence
from ptt_server.keyfiles import (
    OrgRootError,
    PrivateKeyFound,
    check_root_signed,
    load_org_root,
    refuse_private_keys,
)
from ptt_server.metrics import ServerMetrics
from ptt_server.policy import Refusal, Refused
from ptt_server.relay import MediaRelay
from ptt_server.session_core import Dispatch, RateLimits, ServerSessionCore
from ptt_server.sessions import (
    Session,
    SessionTable,
)
from ptt_server.startup import StartupError, bind_refused
from ptt_server.store import Store, StoreError

log = logging.getLogger("ptt_server")

SEND_PIECE = 8192
"""Largest single TLS write (see _writer): measured 156 -> 80 KB per idle session."""
PRUNE_INTERVAL = 3600.0
"""Seconds between sweeps of expired recordings and messages."""


class RelayServer:
    """The whole server; ``open`` it, ``start`` it, ``stop`` it."""

    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        root_public_key: bytes,
        cert: Path,
        key: Path,
    ) -> None:
        trust = TrustAnchor(root_public_key)
        self.config = config
        self.store = store
        self.trust = trust
        self.trust_root = root_public_key
        """The pinned org root public key (raw Ed25519), for checks on a copy of :attr:`trust`."""
        self.metrics = ServerMetrics()
        self.sessions = SessionTable()
        self.channels: dict[int, Channel] = {}
        self.rosters: dict[int, RosterState] = {}
        self.patches: dict[int, control.Patch] = {}
        """Active patches by their channel (as announced; also in the store)."""
        self.dispatchers: set[Session] = set()
        self._cert = cert
        self._key = key
        self.tls_fingerprint = tls.fingerprint(cert)
        self._tls_fingerprint_bytes = bytes.fromhex(self.tls_fingerprint)
        self._loop_clock = time.monotonic
        self._floor_config = floor.FloorConfig(
            queue_capacity=config.floor_queue_capacity,
            t1_end_of_media=config.floor_t1_end_of_media,
            t2_officer=config.floor_t2_officer,
            t2_dispatcher=config.floor_t2_dispatcher,
            t3_grace=config.floor_t3_grace,
        )
        self._rate_limits = RateLimits(
            floor_per_s=config.rate_floor_per_s,
            messages_per_s=config.rate_messages_per_s,
            control_bytes_per_s=config.rate_control_bytes_per_s,
        )
        self._ws_server: Server | None = None
        self._gate: prelogin.LoginGate | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._gc: gc_freeze.GcFreezer | None = None
        self.relay: MediaRelay | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self.emergency_broadcasts = EmergencyBroadcasts(
            config.rate_emergency_per_s, config.rate_emergency_burst
        )
        self._emergency_timer: asyncio.TimerHandle | None = None
        self.calls = CallTable(ring_timeout=config.call_ring_timeout)
        self.call_timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._started = False
        self._metrics_server: Any = None
        self.cluster: ClusterNode | None = None
        """This node's place in a cluster (``config.cluster``); None on one node."""

    # --- lifecycle -------------------------------------------------------------------------

    @classmethod
    async def open(cls, config: ServerConfig) -> RelayServer:
        """Open the store and load the organisation; raises :class:`StartupError`."""
        data_dir = config.resolved_data_dir()
        root_file = org_root_path(data_dir)
        if not root_file.exists():
            raise StartupError(
                f"no organisation root in {root_file}: run `ptt-admin init` on the org"
                " authority's machine, then start once with `ptt-server --data-dir"
                f" {data_dir} --org-root PATH/TO/root.pub`"
            )
        try:
            refuse_private_keys(data_dir)
        except PrivateKeyFound as exc:
            raise StartupError(str(exc)) from None
        try:
            root_public_key = load_org_root(root_file, data_dir)
        except OrgRootError as exc:
            raise StartupError(str(exc)) from None

        def vet(credentials: list[bytes]) -> None:
            check_root_signed(TrustAnchor(root_public_key), credentials, root_file, data_dir)

        # Everything that only reads comes first, so a refused start changes no file.
        self_signed = not config.tls_cert
        if self_signed:
            cert, key = data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem"
        else:
            cert, key = Path(config.tls_cert), Path(config.tls_key)
        try:
            tls.check_pair(cert, key, self_signed=self_signed)
            if config.store:  # PostgreSQL, shared by the cluster's nodes: no directory lock
                store = await Store.open(config.store)
            else:
                store = await Store.open(
                    data_dir / DATABASE_NAME, exclusive=True, vet_credentials=vet
                )
        except (tls.TLSFilesError, StoreError, OrgRootError) as exc:
            raise StartupError(str(exc)) from None
        try:
            if self_signed and tls.ensure_self_signed(cert, key, [config.client_host()]):
                log.info(
                    "made a self-signed TLS certificate", extra={"fields": {"path": str(cert)}}
                )
            server = cls(config, store, root_public_key, cert, key)
            await server._load()
        except BaseException as exc:
            await store.close()  # and with it the data-directory lock
            if isinstance(exc, tls.TLSFilesError):
                raise StartupError(str(exc)) from None
            raise
        return server

    async def _load(self) -> None:
        revocations = await self.store.get_revocations()
        if revocations is not None:
            try:
                self.trust.verify_revocations(revocations.signed)
            except CryptoError as exc:
                raise StartupError(f"stored revocation list refused: {exc}") from None
        for channel in await self.store.list_channels():
            await keys.sync_channel(self, channel.channel_id, channel.name)
        for patch in await self.store.list_patches():
            self.patches[patch.patch_id] = control.Patch(
                channel_id=patch.patch_id,
                linked=patch.linked,
                by_user=patch.created_by,
                order=patch.signed_order,
            )
        if not self.config.cluster:  # the relay stopped mid-call; in a cluster each node's
            await self.store.close_calls_left_open(time.time())  # sweep closes only the rows
        # that no node carries any more (ptt_server.cluster.calls).

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop_clock = loop.time
        media_host = self.config.media_host or self.config.listen_host
        relay = MediaRelay(self.sessions, self.channels, self.metrics.relay, loop.time)
        self.relay = relay
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: relay, local_addr=(media_host, self.config.media_port)
            )
        except OSError as exc:
            raise bind_refused(
                "the media port (UDP)", media_host, self.config.media_port, "--media-port", exc
            ) from None
        self._udp = transport

        # The store is loaded: from here on the collector walks only what is new.
        self._gc = gc_freeze.GcFreezer(loop, on_reclaim=self.metrics.count_gc_reclaim)
        self._gc.start()

        # Before the control port: a refused start then has nothing listening to undo.
        if self.config.metrics_port:
            from prometheus_client import start_http_server

            try:
                self._metrics_server = start_http_server(
                    self.config.metrics_port, addr="127.0.0.1", registry=self.metrics.registry
                )
            except OSError as exc:
                port = self.config.metrics_port
                raise bind_refused(
                    "the metrics port", "127.0.0.1", port, "--metrics-port", exc
                ) from None

        # TLS is started by the gate, per admitted connection (ptt_server.prelogin), so the
        # listening socket is plain TCP: a connection past the cap never costs a handshake.
        self._gate = prelogin.LoginGate(
            tls.server_context(self._cert, self._key),
            limit=self.config.max_pending_logins,
            timeout=self.config.login_timeout,
            metrics=self.metrics,
            heap=heap.HeapTrimmer(
                loop, heap.glibc_malloc_trim(), on_trim=self.metrics.count_heap_trim
            ),
            on_closed=self._gc.connection_ended,
        )
        try:
            self._ws_server = await serve(
                self._handle_connection,
                self.config.listen_host,
                self.config.listen_port,
                create_connection=self._gate.connection_class(),
                # The gate bounds the whole pre-login phase from accept; this only backs it up.
                open_timeout=self.config.login_timeout,
                max_size=control.MAX_MESSAGE_SIZE + 1,
                ping_interval=self.config.heartbeat_interval,
                ping_timeout=self.config.idle_timeout - self.config.heartbeat_interval,
                compression=None,
            )
        except OSError as exc:
            host, port = self.config.listen_host, self.config.listen_port
            raise bind_refused("the control port", host, port, "--listen", exc) from None
        self._poller = asyncio.create_task(self._prune_loop())
        if self.config.cluster:
            self.cluster = await join_cluster(self, relay)
        self._started = True
        log.info(
            "started",
            extra={"fields": {"control_port": self.control_port, "media_port": self.media_port}},
        )

    @property
    def control_port(self) -> int:
        assert self._ws_server is not None
        port: int = next(iter(self._ws_server.sockets)).getsockname()[1]
        return port

    @property
    def media_port(self) -> int:
        assert self._udp is not None
        port: int = self._udp.get_extra_info("sockname")[1]
        return port

    async def stop(self, reason: str = "server shutting down") -> None:
        """Tell every client, stop accepting, flush recordings and close the store."""
        if self._stopping:
            return
        self._stopping = True
        goodbye = control.encode(control.Goodbye(reason=reason, retry_after=1.0))
        for session in list(self.sessions.by_index.values()):
            session.send_encoded(goodbye)
            session.close(reason)
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._gate is not None:
            self._gate.close()  # connections not logged in yet are unknown to websockets
        if self._ws_server is not None:
            self._ws_server.close()
            await self._ws_server.wait_closed()
        if self.cluster is not None:
            await self.cluster.stop()  # the floors it owns are let go for other nodes
        if self._udp is not None:
            self._udp.close()
        if self._gc is not None:
            self._gc.close()
        for channel in self.channels.values():
            channel.close()
        for timer in (self._emergency_timer, self.call_timer):
            if timer is not None:
                timer.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._metrics_server is not None:
            self._metrics_server[0].shutdown()
        await self.store.close()
        if self._started:  # a refused start says so in one line (the caller's), no more
            log.info("stopped", extra={"fields": {"reason": reason}})

    def _spawn(self, future: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(future)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- channels and rosters --------------------------------------------------------------

    async def _prune_loop(self) -> None:
        """Drop recordings and messages past their retention, once at start and then hourly."""
        while True:
            try:
                await self.prune(time.time())
            except StoreError as exc:
                log.warning("pruning failed", extra={"fields": {"error": str(exc)}})
            await asyncio.sleep(PRUNE_INTERVAL)

    async def prune(self, now: float) -> tuple[int, int]:
        """Drop recordings and direct messages past their retention; returns (frames, messages)."""
        frames = await self.store.prune_recordings(now - self.config.recording_retention_s)
        messages = await self.store.prune_messages(now, self.config.message_retention_s)
        if frames or messages:
            log.info("pruned", extra={"fields": {"frames": frames, "messages": messages}})
        return frames, messages

    def apply_revocations(self, revocations: RevocationList) -> None:
        """Install a verified, stored revocation list: push it, end every revoked session."""
        self.trust.verify_revocations(revocations)
        # Every radio learns the new list at once, so none keeps trusting a revoked
        # credential it cached (a rare event: one pass over the sessions is fine).
        update = control.encode(control.RevocationUpdate(signed_list=revocations.to_bytes()))
        for session in list(self.sessions.by_index.values()):
            session.send_encoded(update)
            if revocations.revokes(session.credential):
                session.send(
                    control.Error(
                        code=control.ERROR_CREDENTIAL_REVOKED,
                        text=f"credential for {session.user_id!r} was revoked",
                    )
                )
                session.close("credential revoked")

    # --- connections -----------------------------------------------------------------------

    async def _handle_connection(self, ws: ServerConnection) -> None:
        session = await login.log_in(self, ws)
        if session is None:
            return
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._writer(ws, session))
                group.create_task(self._reader(ws, session))
        except* (websockets.ConnectionClosed, OSError):
            pass
        finally:
            await self.logout(session)

    async def send_error(self, ws: ServerConnection, code: str, text: str) -> None:
        """Send an ``Error`` on ``ws`` (before a session exists, or instead of one)."""
        self.metrics.control_errors.labels(code).inc()
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(control.encode(control.Error(code=code, text=text)))

    def session_core(self, now: float) -> ServerSessionCore:
        """The pure core of a new connection's session (its nonce fresh), on this server's
        trust anchor, certificate and rate limits."""
        return ServerSessionCore(
            secrets.token_bytes(control.NONCE_SIZE),
            self.trust,
            self._tls_fingerprint_bytes,
            self._rate_limits,
            now,
            self.config.login_timeout,
        )

    async def _writer(self, ws: ServerConnection, session: Session) -> None:
        queue = session.outbound
        while True:
            data = await queue.get()
            if data is None:
                await ws.close(1000, session.closing_reason[:100])
                return
            session.queued_bytes -= len(data)
            if len(data) > SEND_PIECE:
                # OpenSSL keeps a connection's write buffer as large as its largest write:
                # big messages go out in pieces so an idle session stays small.
                await ws.send([data[i : i + SEND_PIECE] for i in range(0, len(data), SEND_PIECE)])
            else:
                await ws.send(data)
            del data  # do not keep the last message alive while waiting for the next

    async def _reader(self, ws: ServerConnection, session: Session) -> None:
        core = session.core
        async for raw in ws:
            verdict = core.receive(raw, self._loop_clock(), time.time())
            if isinstance(verdict, Refusal):
                self.metrics.control_errors.labels(verdict.code).inc()
                session.send(control.Error(code=verdict.code, text=verdict.text))
                continue
            if not isinstance(verdict, Dispatch):
                continue  # a Login on a live session is refused by the core itself
            try:
                await self._dispatch(session, verdict.message, self._loop_clock())
            except Refused as refused:
                self.metrics.control_errors.labels(refused.code).inc()
                session.send(control.Error(code=refused.code, text=refused.text))
            except StoreError as exc:
                log.error(
                    "store error", extra={"fields": {"user": session.user_id, "error": str(exc)}}
                )
                session.send(
                    control.Error(
                        code=control.ERROR_INTERNAL, text="server storage error: try again"
                    )
                )
            except Exception:
                # A bug a message trips must not end the connection (nor reach the peer):
                # the message is refused and logged, the session goes on.
                log.exception(
                    "control message handler failed",
                    extra={
                        "fields": {"user": session.user_id, "type": type(verdict.message).__name__}
                    },
                )
                self.metrics.control_errors.labels(control.ERROR_INTERNAL).inc()
                session.send(
                    control.Error(code=control.ERROR_INTERNAL, text="internal error: try again")
                )
        # A clean close by the client ends the loop without an exception: stop the writer
        # too, or the TaskGroup would wait on the outbound queue forever and never log out.
        if not session.closing_reason:
            session.close("connection closed by the client")

    async def logout(self, session: Session) -> None:
        if not self.sessions.remove(session):
            return
        if self._gc is not None:
            self._gc.session_ended()
        if self.cluster is not None:
            await self.cluster.user_offline(session.user_id)
        self.dispatchers.discard(session)
        await self.leave_channels(session)
        await calls.session_closed(self, session)
        self.metrics.sessions.set(len(self.sessions))
        if session.presence_flush is not None:
            session.presence_flush.cancel()  # the offline write below carries the newest
            session.presence_flush = None
        if not self._stopping:
            with contextlib.suppress(StoreError):
                await presence.set_presence(self, session, online=False)
        log.info(
            "logout", extra={"fields": {"user": session.user_id, "reason": session.closing_reason}}
        )

    async def leave_channels(self, session: Session) -> None:
        """Take ``session`` off every channel it listens on (it ended or was replaced)."""
        now = self._loop_clock()
        for channel_id in list(session.affiliated):
            channel = self.channels.get(channel_id)
            if channel is not None:
                channel.remove_listener(session, now)
        self.metrics.channels.set(sum(1 for c in self.channels.values() if c.listeners))

    # --- control messages ------------------------------------------------------------------

    async def _dispatch(self, session: Session, message: control.Message, now: float) -> None:
        handler = HANDLERS.get(type(message))
        if handler is None:
            raise Refused(
                control.ERROR_BAD_MESSAGE, f"{control.tag_of(message)} is not for the server"
            )
        await handler(self, session, message, now)
