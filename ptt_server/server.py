"""The relay server: TLS WebSocket control plane, UDP media relay, and what joins them.

One task per connection (a reader and a writer in a TaskGroup); everything
else is event-driven: floor timers are armed per channel, presence is pushed
to subscribers on change, the store is polled for what ``ptt-admin`` wrote.
Nothing here ever holds a channel key: rosters are verified, envelopes and
sealed texts are stored and forwarded as opaque bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import websockets
from websockets.asyncio.server import Server, ServerConnection, serve

from crypto.epoch import read_envelope_header
from crypto.errors import CredentialError, CryptoError
from crypto.identity import Credential, TrustAnchor
from crypto.roster import RosterState
from ptt_protocol import control, floor, media
from ptt_protocol.errors import ProtocolError
from ptt_protocol.login import login_statement
from ptt_server import heap, prelogin, tls
from ptt_server.channels import Channel
from ptt_server.config import DATABASE_NAME, ServerConfig, org_root_path
from ptt_server.metrics import ServerMetrics
from ptt_server.relay import MediaRelay
from ptt_server.sessions import OUTBOUND_QUEUE_LIMIT, Session, SessionTable, TokenBucket
from ptt_server.store import KeyEnvelope as StoredEnvelope
from ptt_server.store import Presence, Store, StoreError

log = logging.getLogger("ptt_server")

RECALL_CHUNK = 40
"""Recorded frames per RecallFrames message: well under the 64 KiB frame limit."""
SEND_PIECE = 8192
"""Largest single TLS write (see _writer): measured 156 -> 80 KB per idle session."""
PRUNE_INTERVAL = 3600.0
"""Seconds between sweeps of expired recordings and messages."""
CREDENTIALS_CHUNK = 30
"""Credentials (about 1.4 KB each) per Credentials message."""


class StartupError(Exception):
    """The server cannot start; the message says what to do."""


class _Refused(Exception):
    """A control message is refused: send ``Error(code, text)`` and carry on."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


_CREDENTIAL_ERROR_CODES = {
    "expired": control.ERROR_CREDENTIAL_EXPIRED,
    "not_yet_valid": control.ERROR_CREDENTIAL_EXPIRED,
    "revoked": control.ERROR_CREDENTIAL_REVOKED,
    "foreign_root": control.ERROR_UNKNOWN_ROOT,
}


def _credential_error_code(exc: CredentialError) -> str:
    return _CREDENTIAL_ERROR_CODES.get(exc.reason, control.ERROR_AUTH_FAILED)


def _roster_message(channel: Channel) -> control.RosterUpdate:
    assert channel.signed_roster is not None
    return control.RosterUpdate(
        channel_id=channel.channel_id,
        version=channel.roster_version,
        signed_roster=channel.signed_roster,
    )


def _envelope_message(envelope: StoredEnvelope) -> control.KeyEnvelope:
    return control.KeyEnvelope(
        channel_id=envelope.channel_id,
        epoch=envelope.epoch,
        recipient=envelope.recipient,
        envelope=envelope.envelope,
    )


class RelayServer:
    """The whole server; ``open`` it, ``start`` it, ``stop`` it."""

    def __init__(
        self, config: ServerConfig, store: Store, trust: TrustAnchor, cert: Path, key: Path
    ) -> None:
        self.config = config
        self.store = store
        self.trust = trust
        self.metrics = ServerMetrics()
        self.sessions = SessionTable()
        self.channels: dict[int, Channel] = {}
        self.rosters: dict[int, RosterState] = {}
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
        self._ws_server: Server | None = None
        self._gate: prelogin.LoginGate | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self.relay: MediaRelay | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._stopping = False
        self._metrics_server: Any = None

    # --- lifecycle -------------------------------------------------------------------------

    @classmethod
    async def open(cls, config: ServerConfig) -> RelayServer:
        """Open the store and load the organisation; raises :class:`StartupError`."""
        data_dir = config.resolved_data_dir()
        root_file = org_root_path(data_dir)
        if not root_file.exists():
            raise StartupError(
                f"no organisation in {data_dir}: run `ptt-admin --data-dir {data_dir} init` first"
            )
        try:
            trust = TrustAnchor(root_file.read_bytes())
        except (OSError, CryptoError) as exc:
            raise StartupError(f"cannot read the org root key {root_file}: {exc}") from None
        if config.tls_cert:
            cert, key = Path(config.tls_cert), Path(config.tls_key)
        else:
            cert, key = data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem"
            if tls.ensure_self_signed(cert, key, [config.client_host()]):
                log.info(
                    "made a self-signed TLS certificate", extra={"fields": {"path": str(cert)}}
                )
        try:
            store = await Store.open(data_dir / DATABASE_NAME)
        except StoreError as exc:
            raise StartupError(str(exc)) from None
        server = cls(config, store, trust, cert, key)
        await server._load()
        return server

    async def _load(self) -> None:
        revocations = await self.store.get_revocations()
        if revocations is not None:
            try:
                self.trust.verify_revocations(revocations.signed)
            except CryptoError as exc:
                raise StartupError(f"stored revocation list refused: {exc}") from None
        for channel in await self.store.list_channels():
            await self._sync_channel(channel.channel_id, channel.name)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop_clock = loop.time
        media_host = self.config.media_host or self.config.listen_host
        self.relay = MediaRelay(self.sessions, self.channels, self.metrics.relay, loop.time)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self.relay,  # type: ignore[arg-type,return-value]
            local_addr=(media_host, self.config.media_port),
        )
        self._udp = transport

        def count_trim(seconds: float) -> None:
            self.metrics.heap_trims.inc()
            self.metrics.heap_trim_seconds.inc(seconds)

        # TLS is started by the gate, per admitted connection (ptt_server.prelogin), so the
        # listening socket is plain TCP: a connection past the cap never costs a handshake.
        self._gate = prelogin.LoginGate(
            tls.server_context(self._cert, self._key),
            limit=self.config.max_pending_logins,
            timeout=self.config.login_timeout,
            metrics=self.metrics,
            heap=heap.HeapTrimmer(loop, heap.glibc_malloc_trim(), on_trim=count_trim),
        )
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
        self._poller = asyncio.create_task(self._poll_admin_changes())
        if self.config.metrics_port:
            from prometheus_client import start_http_server

            self._metrics_server = start_http_server(
                self.config.metrics_port, addr="127.0.0.1", registry=self.metrics.registry
            )
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
        if self._udp is not None:
            self._udp.close()
        for channel in self.channels.values():
            channel.close()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._metrics_server is not None:
            self._metrics_server[0].shutdown()
        await self.store.close()
        log.info("stopped", extra={"fields": {"reason": reason}})

    def _spawn(self, future: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(future)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- channels and rosters --------------------------------------------------------------

    async def _sync_channel(self, channel_id: int, name: str) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None:
            channel = Channel(
                channel_id,
                name,
                self._floor_config,
                self.sessions,
                self.store,
                self.metrics,
                self._spawn,
            )
            self.channels[channel_id] = channel
            self.rosters[channel_id] = RosterState(channel_id)
        roster = await self.store.get_roster(channel_id)
        if roster is not None and roster.version > channel.roster_version:
            self._install_roster(channel, roster.version, roster.signed, roster.members)
            await self._push_envelopes(channel)
        return channel

    def _install_roster(
        self, channel: Channel, version: int, signed: bytes, members: frozenset[str]
    ) -> None:
        state = self.rosters[channel.channel_id]
        try:
            state.accept(signed, self.trust, time.time())
        except CryptoError as exc:
            log.warning(
                "stored roster refused",
                extra={"fields": {"channel": channel.channel_id, "error": str(exc)}},
            )
            return
        removed = channel.members - members
        channel.members = members
        channel.roster_version = version
        channel.signed_roster = signed
        update = control.encode(_roster_message(channel))
        now = self._loop_clock()
        for user in members | removed:
            session = self.sessions.by_user.get(user)
            if session is None:
                continue
            session.send(self._channel_list(user))
            session.send_encoded(update)
            if user in removed and channel.channel_id in session.affiliated:
                channel.remove_listener(session, now)
                session.send(
                    control.Deaffiliated(
                        channel_id=channel.channel_id, reason="removed from the channel roster"
                    )
                )

    async def _push_envelopes(self, channel: Channel) -> None:
        for user in channel.members:
            session = self.sessions.by_user.get(user)
            if session is None:
                continue
            for envelope in await self.store.envelopes_for(user):
                if envelope.channel_id == channel.channel_id:
                    session.send(_envelope_message(envelope))

    async def _poll_admin_changes(self) -> None:
        """Pick up what ``ptt-admin`` wrote (channels, rosters, revocations); prune old records."""
        next_prune = 0.0
        while True:
            await asyncio.sleep(self.config.admin_poll_interval)
            try:
                await self._check_revocations()
                for channel in await self.store.list_channels():
                    await self._sync_channel(channel.channel_id, channel.name)
                now = time.time()
                if now >= next_prune:
                    next_prune = now + PRUNE_INTERVAL
                    await self.prune(now)
            except StoreError as exc:
                log.warning("admin poll failed", extra={"fields": {"error": str(exc)}})

    async def prune(self, now: float) -> tuple[int, int]:
        """Drop recordings and direct messages past their retention; returns (frames, messages)."""
        frames = await self.store.prune_recordings(now - self.config.recording_retention_s)
        messages = await self.store.prune_messages(now, self.config.message_retention_s)
        if frames or messages:
            log.info("pruned", extra={"fields": {"frames": frames, "messages": messages}})
        return frames, messages

    async def _check_revocations(self) -> None:
        stored = await self.store.get_revocations()
        current = self.trust.revocations
        if stored is None or (current is not None and stored.version <= current.version):
            return
        try:
            revocations = self.trust.verify_revocations(stored.signed)
        except CryptoError as exc:
            log.warning("revocation list refused", extra={"fields": {"error": str(exc)}})
            return
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
        session = await self._login(ws)
        if session is None:
            return
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._writer(ws, session))
                group.create_task(self._reader(ws, session))
        except* (websockets.ConnectionClosed, OSError):
            pass
        finally:
            await self._logout(session)

    async def _send_error(self, ws: ServerConnection, code: str, text: str) -> None:
        self.metrics.control_errors.labels(code).inc()
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(control.encode(control.Error(code=code, text=text)))

    async def _login(self, ws: ServerConnection) -> Session | None:
        nonce = secrets.token_bytes(control.NONCE_SIZE)
        try:
            await ws.send(
                control.encode(control.Hello(server_nonce=nonce, server_time=time.time()))
            )
            # The gate closes the connection login_timeout after accept; this bounds the wait
            # on its own as well (a connection the gate does not know, e.g. in a test).
            async with asyncio.timeout(self.config.login_timeout):
                raw = await ws.recv(decode=False)
            message = control.decode(raw)
        except (TimeoutError, websockets.ConnectionClosed):
            return None
        except ProtocolError as exc:
            await self._send_error(ws, control.ERROR_BAD_MESSAGE, str(exc))
            return None
        if not isinstance(message, control.Login):
            await self._send_error(ws, control.ERROR_BAD_MESSAGE, "log in first")
            return None
        now = time.time()
        try:
            credential = self.trust.verify_credential(message.credential, now)
            credential.verify_signature(
                login_statement(nonce, message.client_nonce, self._tls_fingerprint_bytes),
                message.signature,
            )
        except CredentialError as exc:
            self.metrics.logins.labels("refused").inc()
            await self._send_error(ws, _credential_error_code(exc), str(exc))
            return None
        except CryptoError as exc:
            self.metrics.logins.labels("refused").inc()
            await self._send_error(ws, control.ERROR_AUTH_FAILED, f"login refused: {exc}")
            return None
        try:
            enrolled = await self.store.get_user(credential.user_id)
        except StoreError as exc:
            log.error("login aborted: store error", extra={"fields": {"error": str(exc)}})
            await self._send_error(ws, control.ERROR_INTERNAL, "server storage error: try again")
            return None
        if enrolled is None or enrolled.fingerprint != credential.fingerprint():
            self.metrics.logins.labels("refused").inc()
            await self._send_error(
                ws,
                control.ERROR_AUTH_FAILED,
                f"{credential.user_id!r} is not enrolled on this server with this device:"
                f" ask an operator to run `ptt-admin enroll {credential.user_id}`",
            )
            return None
        prelogin.logged_in(ws)  # a verified, enrolled device: no longer held to the pre-login cap
        session, hop_key = self._new_session(ws, credential)
        previous = self.sessions.add(session)
        if previous is not None:
            previous.close("logged in from another connection")
            self.dispatchers.discard(previous)  # its _logout finds it replaced and returns early
            await self._leave_channels(previous)
        self.metrics.logins.labels("ok").inc()
        self.metrics.sessions.set(len(self.sessions))
        if credential.is_key_manager():
            self.dispatchers.add(session)
        session.send(
            control.LoginOk(
                user_id=credential.user_id,
                session_index=session.session_index,
                hop_key=hop_key,
                media_port=self.media_port,
                media_host=self.config.public_host,
                server_time=time.time(),
                heartbeat_interval=self.config.heartbeat_interval,
            )
        )
        try:
            await self._send_initial_state(session)
            await self._set_presence(session, online=True)
        except StoreError as exc:
            log.error("login aborted: store error", extra={"fields": {"error": str(exc)}})
            session.closing_reason = "server storage error"
            await self._logout(session)
            await self._send_error(ws, control.ERROR_INTERNAL, "server storage error: try again")
            return None
        log.info(
            "login", extra={"fields": {"user": credential.user_id, "device": credential.device_id}}
        )
        return session

    def _new_session(self, ws: ServerConnection, credential: Credential) -> tuple[Session, bytes]:
        """A session and its hop secret (sent once in LoginOk, never kept elsewhere)."""
        now = self._loop_clock()
        hop_key = secrets.token_bytes(media.HOP_KEY_SIZE)
        index = self.sessions.new_index()
        outbound: asyncio.Queue[bytes | None] = asyncio.Queue(OUTBOUND_QUEUE_LIMIT)
        config = self.config

        def close(reason: str) -> None:
            session.closing_reason = reason
            try:
                # The writer sees None and closes the connection after what is queued.
                outbound.put_nowait(None)
            except asyncio.QueueFull:
                # Only a client that stopped reading fills the queue: the writer is stuck in
                # a send and would never see the None, so drop the connection now.
                ws.transport.abort()

        session = Session(
            credential=credential,
            hop=media.HopSession(index, hop_key, "server"),
            outbound=outbound,
            floor_limit=TokenBucket(config.rate_floor_per_s, config.rate_floor_per_s * 2, now),
            message_limit=TokenBucket(
                config.rate_messages_per_s, config.rate_messages_per_s * 3, now
            ),
            byte_limit=TokenBucket(
                config.rate_control_bytes_per_s, config.rate_control_bytes_per_s * 2, now
            ),
            close=close,
        )
        return session, hop_key

    def _channel_list(self, user: str) -> control.ChannelList:
        return control.ChannelList(
            channels=tuple(
                control.ChannelInfo(channel_id=c.channel_id, name=c.name)
                for c in self.channels.values()
                if user in c.members
            )
        )

    async def _send_initial_state(self, session: Session) -> None:
        user = session.user_id
        if self.trust.revocations is not None:
            session.send(control.RevocationUpdate(signed_list=self.trust.revocations.to_bytes()))
        mine = [c for c in self.channels.values() if user in c.members]
        session.send(self._channel_list(user))
        for channel in mine:
            if channel.signed_roster is not None:
                session.send(_roster_message(channel))
        for envelope in await self.store.envelopes_for(user):
            session.send(_envelope_message(envelope))
        for message in await self.store.pending_for(user):
            session.send(
                control.TextDeliver(
                    message_id=message.message_id,
                    from_user=message.from_user,
                    to_user=message.to_user,
                    to_channel=message.to_channel,
                    sealed=message.sealed,
                    sent_at=message.sent_at,
                )
            )
        channel_ids = {c.channel_id for c in mine}
        for alert in await self.store.active_emergencies():
            if alert.user_id == user:
                # The alert outlives a reconnect or a restart, and so must the officer's
                # emergency floor priority and status (else a priority-4 request is capped).
                session.emergency_alert = alert.alert_id
                session.status = control.STATUS_EMERGENCY
            if session in self.dispatchers or alert.channel_id in channel_ids:
                self._send_alert(
                    session,
                    alert.alert_id,
                    alert.user_id,
                    alert.channel_id,
                    alert.sealed_location,
                    alert.raised_at,
                    alert.acked_by,
                )

    def _send_alert(
        self,
        session: Session,
        alert_id: bytes,
        user_id: str,
        channel_id: int | None,
        sealed_location: bytes | None,
        raised_at: float,
        acked_by: str | None,
    ) -> None:
        session.send(
            control.EmergencyAlert(
                alert_id=alert_id,
                user_id=user_id,
                channel_id=channel_id or 0,
                sealed_location=sealed_location,
                raised_at=raised_at,
            )
        )
        if acked_by is not None:
            session.send(control.EmergencyAck(alert_id=alert_id, by_user=acked_by))

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
        async for raw in ws:
            if isinstance(raw, str):
                session.send(
                    control.Error(code=control.ERROR_BAD_MESSAGE, text="binary frames only")
                )
                continue
            now = self._loop_clock()
            if not session.byte_limit.take(now, len(raw)):
                self.metrics.control_errors.labels(control.ERROR_RATE_LIMITED).inc()
                session.send(
                    control.Error(code=control.ERROR_RATE_LIMITED, text="too many bytes: slow down")
                )
                continue
            try:
                message = control.decode(raw)
            except ProtocolError as exc:
                self.metrics.control_errors.labels(control.ERROR_BAD_MESSAGE).inc()
                session.send(control.Error(code=control.ERROR_BAD_MESSAGE, text=str(exc)))
                continue
            try:
                await self._dispatch(session, message, now)
            except _Refused as refused:
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
        # A clean close by the client ends the loop without an exception: stop the writer
        # too, or the TaskGroup would wait on the outbound queue forever and never log out.
        if not session.closing_reason:
            session.close("connection closed by the client")

    async def _logout(self, session: Session) -> None:
        if not self.sessions.remove(session):
            return
        self.dispatchers.discard(session)
        await self._leave_channels(session)
        self.metrics.sessions.set(len(self.sessions))
        if not self._stopping:
            with contextlib.suppress(StoreError):
                await self._set_presence(session, online=False)
        log.info(
            "logout", extra={"fields": {"user": session.user_id, "reason": session.closing_reason}}
        )

    async def _leave_channels(self, session: Session) -> None:
        now = self._loop_clock()
        for channel_id in list(session.affiliated):
            channel = self.channels.get(channel_id)
            if channel is not None:
                channel.remove_listener(session, now)
        self.metrics.channels.set(sum(1 for c in self.channels.values() if c.listeners))

    # --- control messages ------------------------------------------------------------------

    async def _dispatch(self, session: Session, message: control.Message, now: float) -> None:
        handler = self._handlers.get(type(message))
        if handler is None:
            raise _Refused(
                control.ERROR_BAD_MESSAGE, f"{control.tag_of(message)} is not for the server"
            )
        await handler(self, session, message, now)

    def _channel_for(
        self, session: Session, channel_id: int, *, affiliated: bool = False
    ) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise _Refused(control.ERROR_NOT_FOUND, f"no channel {channel_id}")
        if session.user_id not in channel.members:
            raise _Refused(
                control.ERROR_NOT_MEMBER,
                f"you are not on the roster of {channel.name!r}: ask a dispatcher",
            )
        if affiliated and channel_id not in session.affiliated:
            raise _Refused(control.ERROR_FORBIDDEN, f"affiliate to {channel.name!r} first")
        return channel

    async def _on_affiliate(self, session: Session, msg: control.Affiliate, now: float) -> None:
        channel = self._channel_for(session, msg.channel_id)
        session.send_encoded(channel.affiliated_message())
        channel.add_listener(session)
        if session.selected_channel is None:
            session.selected_channel = channel.channel_id
        self.metrics.channels.set(sum(1 for c in self.channels.values() if c.listeners))
        await self._set_presence(session, online=True)

    async def _on_deaffiliate(self, session: Session, msg: control.Deaffiliate, now: float) -> None:
        channel = self.channels.get(msg.channel_id)
        if channel is not None and msg.channel_id in session.affiliated:
            channel.remove_listener(session, now)
        session.send(control.Deaffiliated(channel_id=msg.channel_id, reason="at your request"))

    async def _on_select(self, session: Session, msg: control.SelectChannel, now: float) -> None:
        self._channel_for(session, msg.channel_id, affiliated=True)
        session.selected_channel = msg.channel_id
        await self._set_presence(session, online=True)

    def _effective_priority(self, session: Session, requested: int) -> floor.Priority:
        """The priority a request gets: the role's, raised only where the user may raise it."""
        if requested >= floor.Priority.EMERGENCY and session.emergency_alert is not None:
            return floor.Priority.EMERGENCY
        if requested >= floor.Priority.IMMINENT_PERIL:
            return floor.Priority.IMMINENT_PERIL
        if session.credential.is_key_manager():
            return floor.Priority.DISPATCHER
        return floor.Priority.OFFICER

    async def _on_floor_request(
        self, session: Session, msg: control.FloorRequest, now: float
    ) -> None:
        channel = self._channel_for(session, msg.channel_id, affiliated=True)
        if not session.floor_limit.take(now):
            raise _Refused(control.ERROR_RATE_LIMITED, "too many floor requests: slow down")
        channel.request_floor(session, self._effective_priority(session, msg.priority), now)

    async def _on_floor_release(
        self, session: Session, msg: control.FloorRelease, now: float
    ) -> None:
        channel = self.channels.get(msg.channel_id)
        if channel is not None:
            channel.release_floor(session, now)

    async def _on_media_tunnel(
        self, session: Session, msg: control.MediaTunnel, now: float
    ) -> None:
        if self.relay is not None:
            self.relay.receive_tunnelled(session, msg.datagram)

    async def _on_ping(self, session: Session, msg: control.Ping, now: float) -> None:
        session.send(control.Pong(nonce=msg.nonce))

    # presence

    async def _set_presence(
        self, session: Session, *, online: bool, location: bytes | None = None
    ) -> None:
        previous = await self.store.get_presence(session.user_id)
        sealed = (
            location if location is not None else (previous.sealed_location if previous else None)
        )
        status = session.status if online else control.STATUS_OFFLINE
        presence = Presence(
            user_id=session.user_id,
            status=status,
            online=online,
            last_seen=time.time(),
            sealed_location=sealed,
        )
        await self.store.put_presence(presence)
        self._push_presence(session, presence)

    def _push_presence(self, session: Session, presence: Presence) -> None:
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
        for subscriber in self.dispatchers:
            if subscriber.presence_subscriber and subscriber is not session:
                subscriber.send_encoded(update)

    async def _on_presence_subscribe(
        self, session: Session, msg: control.PresenceSubscribe, now: float
    ) -> None:
        if not session.credential.is_key_manager():
            raise _Refused(control.ERROR_FORBIDDEN, "only dispatchers watch presence")
        session.presence_subscriber = True
        wanted = set(msg.user_ids) if msg.user_ids is not None else None
        names = {u.user_id: u.display_name for u in await self.store.list_users()}
        for presence in await self.store.all_presence():
            if wanted is not None and presence.user_id not in wanted:
                continue
            live = self.sessions.by_user.get(presence.user_id)
            session.send(
                control.PresenceUpdate(
                    user_id=presence.user_id,
                    display_name=names.get(presence.user_id, ""),
                    online=live is not None,
                    status=presence.status if live is not None else control.STATUS_OFFLINE,  # type: ignore[arg-type]
                    channel_id=live.selected_channel if live is not None else None,
                    last_seen=presence.last_seen,
                    sealed_location=presence.sealed_location,
                )
            )

    async def _on_set_status(self, session: Session, msg: control.SetStatus, now: float) -> None:
        if msg.status == control.STATUS_OFFLINE:
            raise _Refused(control.ERROR_BAD_MESSAGE, "log out to go offline")
        session.status = msg.status
        await self._set_presence(session, online=True)

    async def _on_location(self, session: Session, msg: control.LocationReport, now: float) -> None:
        await self._set_presence(session, online=True, location=msg.sealed_location)

    # messages

    async def _on_text_send(self, session: Session, msg: control.TextSend, now: float) -> None:
        if not session.message_limit.take(now):
            raise _Refused(control.ERROR_RATE_LIMITED, "too many messages: slow down")
        if msg.to_channel is not None:
            channel = self._channel_for(session, msg.to_channel)
            recipients = sorted(channel.members - {session.user_id})
        else:
            assert msg.to_user is not None
            if await self.store.get_user(msg.to_user) is None:
                raise _Refused(control.ERROR_NOT_FOUND, f"no user {msg.to_user!r}")
            recipients = [msg.to_user]
        sent_at = time.time()
        new = await self.store.store_message(
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
        self.metrics.messages.inc()
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
        for user in recipients:
            recipient = self.sessions.by_user.get(user)
            if recipient is not None:
                recipient.send_encoded(deliver)

    async def _on_text_receipt(
        self, session: Session, msg: control.TextReceipt, now: float
    ) -> None:
        if msg.kind == control.RECEIPT_READ:
            changed = await self.store.mark_read(msg.message_id, session.user_id, time.time())
        elif msg.kind == control.RECEIPT_DELIVERED:
            changed = await self.store.mark_delivered(msg.message_id, session.user_id, time.time())
        else:
            raise _Refused(control.ERROR_BAD_MESSAGE, "clients send delivered or read receipts")
        stored = await self.store.get_message(msg.message_id)
        if changed and stored is not None:
            sender = self.sessions.by_user.get(stored.from_user)
            if sender is not None:
                sender.send(
                    control.TextReceipt(
                        message_id=msg.message_id, kind=msg.kind, by_user=session.user_id
                    )
                )

    # keys

    async def _on_credential_request(
        self, session: Session, msg: control.CredentialRequest, now: float
    ) -> None:
        found = []
        for user_id in msg.user_ids:
            user = await self.store.get_user(user_id)
            if user is not None:
                found.append(user.credential)
        for start in range(0, max(len(found), 1), CREDENTIALS_CHUNK):
            session.send(
                control.Credentials(credentials=tuple(found[start : start + CREDENTIALS_CHUNK]))
            )

    async def _on_roster_update(
        self, session: Session, msg: control.RosterUpdate, now: float
    ) -> None:
        if not session.credential.is_key_manager():
            raise _Refused(control.ERROR_FORBIDDEN, "only a dispatcher or admin changes a roster")
        channel = self.channels.get(msg.channel_id)
        if channel is None:
            raise _Refused(control.ERROR_NOT_FOUND, f"no channel {msg.channel_id}")
        probe = RosterState(msg.channel_id)
        try:
            roster = probe.accept(msg.signed_roster, self.trust, time.time())
        except CryptoError as exc:
            raise _Refused(control.ERROR_FORBIDDEN, f"roster refused: {exc}") from None
        if roster.version <= channel.roster_version:
            raise _Refused(
                control.ERROR_FORBIDDEN,
                f"roster version {roster.version} is not newer than {channel.roster_version}",
            )
        members = frozenset(m.user_id for m in roster.members)
        await self.store.put_roster(msg.channel_id, roster.version, msg.signed_roster, members)
        self._install_roster(channel, roster.version, msg.signed_roster, members)

    async def _on_key_envelope(
        self, session: Session, msg: control.KeyEnvelope, now: float
    ) -> None:
        if not session.credential.is_key_manager():
            raise _Refused(
                control.ERROR_FORBIDDEN, "only a dispatcher or admin hands out channel keys"
            )
        try:
            header = read_envelope_header(msg.envelope)
        except CryptoError:
            raise _Refused(control.ERROR_BAD_MESSAGE, "that is not a key envelope") from None
        if (header.channel_id, header.epoch, header.recipient) != (
            msg.channel_id,
            msg.epoch,
            msg.recipient,
        ):
            raise _Refused(
                control.ERROR_BAD_MESSAGE,
                "the envelope is addressed otherwise than the message says",
            )
        channel = self.channels.get(msg.channel_id)
        if channel is None or msg.recipient not in channel.members:
            raise _Refused(
                control.ERROR_NOT_MEMBER,
                f"{msg.recipient!r} is not on the roster of channel {msg.channel_id}",
            )
        await self.store.put_envelopes(
            msg.channel_id, msg.epoch, {msg.recipient: msg.envelope}, time.time()
        )
        recipient = self.sessions.by_user.get(msg.recipient)
        if recipient is not None:
            recipient.send(
                control.KeyEnvelope(
                    channel_id=msg.channel_id,
                    epoch=msg.epoch,
                    recipient=msg.recipient,
                    sender=session.user_id,
                    envelope=msg.envelope,
                )
            )

    # emergencies

    def _emergency_audience(
        self, channel_id: int | None, raiser: str | None = None
    ) -> set[Session]:
        """Every dispatcher, the channel's listeners and (for acks and cancels) the raiser."""
        audience = set(self.dispatchers)
        channel = self.channels.get(channel_id) if channel_id is not None else None
        if channel is not None:
            audience.update(channel.listeners.values())
        raiser_session = self.sessions.by_user.get(raiser) if raiser is not None else None
        if raiser_session is not None:
            audience.add(raiser_session)
        return audience

    async def _on_emergency_alert(
        self, session: Session, msg: control.EmergencyAlert, now: float
    ) -> None:
        if msg.user_id != session.user_id:
            raise _Refused(control.ERROR_FORBIDDEN, "raise emergencies for yourself only")
        # An emergency is never refused: a channel the officer is not on is replaced by
        # the selected one, and every dispatcher gets the alert whatever the channel.
        channel_id: int | None = msg.channel_id
        channel = self.channels.get(msg.channel_id)
        if channel is None or session.user_id not in channel.members:
            channel_id = session.selected_channel
        raised_at = time.time()
        existing = await self.store.get_emergency(msg.alert_id)
        if existing is not None and existing.user_id != session.user_id:
            raise _Refused(control.ERROR_FORBIDDEN, "that alert id belongs to someone else")
        # A retry of the same alert (the radio saw no ack) is sent out again on purpose:
        # consoles deduplicate by alert id, and an emergency must not be lost.
        await self.store.raise_emergency(
            msg.alert_id, session.user_id, channel_id, msg.sealed_location, raised_at
        )
        session.emergency_alert = msg.alert_id
        session.status = control.STATUS_EMERGENCY
        self.metrics.emergencies.inc()
        log.warning("emergency", extra={"fields": {"user": session.user_id, "channel": channel_id}})
        for target in self._emergency_audience(channel_id):
            self._send_alert(
                target,
                msg.alert_id,
                session.user_id,
                channel_id,
                msg.sealed_location,
                raised_at,
                None,
            )
        await self._set_presence(session, online=True, location=msg.sealed_location)

    async def _on_emergency_ack(
        self, session: Session, msg: control.EmergencyAck, now: float
    ) -> None:
        if not session.credential.is_key_manager():
            raise _Refused(control.ERROR_FORBIDDEN, "only a dispatcher acknowledges an emergency")
        alert = await self.store.get_emergency(msg.alert_id)
        if alert is None:
            raise _Refused(control.ERROR_NOT_FOUND, "no such emergency")
        await self.store.ack_emergency(msg.alert_id, session.user_id, time.time())
        ack = control.encode(control.EmergencyAck(alert_id=msg.alert_id, by_user=session.user_id))
        for target in self._emergency_audience(alert.channel_id, alert.user_id):
            target.send_encoded(ack)

    async def _on_emergency_cancel(
        self, session: Session, msg: control.EmergencyCancel, now: float
    ) -> None:
        alert = await self.store.get_emergency(msg.alert_id)
        if alert is None:
            raise _Refused(control.ERROR_NOT_FOUND, "no such emergency")
        if alert.user_id != session.user_id and not session.credential.is_key_manager():
            raise _Refused(
                control.ERROR_FORBIDDEN, "only the officer or a dispatcher cancels an emergency"
            )
        await self.store.cancel_emergency(msg.alert_id, session.user_id, time.time())
        cancel = control.encode(
            control.EmergencyCancel(alert_id=msg.alert_id, by_user=session.user_id)
        )
        audience = self._emergency_audience(alert.channel_id, alert.user_id)
        raiser = self.sessions.by_user.get(alert.user_id)
        if raiser is not None:
            if raiser.emergency_alert == msg.alert_id:
                raiser.emergency_alert = None
                raiser.status = control.STATUS_AVAILABLE
                await self._set_presence(raiser, online=True)
        for target in audience:
            target.send_encoded(cancel)

    # channel management (dispatchers) and instant recall

    async def _on_channel_create(
        self, session: Session, msg: control.ChannelCreate, now: float
    ) -> None:
        if not session.credential.is_key_manager():
            raise _Refused(control.ERROR_FORBIDDEN, "only a dispatcher or admin creates channels")
        if await self.store.channel_by_name(msg.name) is not None:
            raise _Refused(control.ERROR_FORBIDDEN, f"a channel named {msg.name!r} exists already")
        channel_id = await self.store.create_channel(msg.name, time.time())
        await self._sync_channel(channel_id, msg.name)
        session.send(control.ChannelCreated(channel_id=channel_id, name=msg.name))

    async def _on_regroup(self, session: Session, msg: control.Regroup, now: float) -> None:
        if not session.credential.is_key_manager():
            raise _Refused(control.ERROR_FORBIDDEN, "only a dispatcher regroups officers")
        channel = self.channels.get(msg.channel_id)
        if channel is None:
            raise _Refused(control.ERROR_NOT_FOUND, f"no channel {msg.channel_id}")
        outside = [u for u in msg.user_ids if u not in channel.members]
        if outside:
            raise _Refused(
                control.ERROR_NOT_MEMBER, f"publish a roster with {outside[0]!r} on it first"
            )
        for user in msg.user_ids:
            target = self.sessions.by_user.get(user)
            if target is not None:
                target.send(
                    control.Regroup(channel_id=msg.channel_id, user_ids=(user,), until=msg.until)
                )

    async def _on_ungroup(self, session: Session, msg: control.Ungroup, now: float) -> None:
        if not session.credential.is_key_manager():
            raise _Refused(control.ERROR_FORBIDDEN, "only a dispatcher ends a regroup")
        channel = self.channels.get(msg.channel_id)
        if channel is None:
            raise _Refused(control.ERROR_NOT_FOUND, f"no channel {msg.channel_id}")
        for user in channel.members:
            target = self.sessions.by_user.get(user)
            if target is not None:
                target.send(control.Ungroup(channel_id=msg.channel_id))

    async def _on_recall_list(self, session: Session, msg: control.RecallList, now: float) -> None:
        self._channel_for(session, msg.channel_id)
        bursts = await self.store.recent_bursts(msg.channel_id, msg.limit)
        session.send(
            control.RecallList(
                channel_id=msg.channel_id,
                limit=msg.limit,
                bursts=tuple(
                    control.BurstInfo(
                        burst_key=b.burst_key,
                        burst_id=b.burst_id,
                        talker=b.talker,
                        priority=b.priority,
                        started_at=b.started_at,
                        duration=b.duration or 0.0,
                        frame_count=b.frame_count,
                    )
                    for b in bursts
                ),
            )
        )

    async def _on_recall_frames(
        self, session: Session, msg: control.RecallFrames, now: float
    ) -> None:
        self._channel_for(session, msg.channel_id)
        burst = next(
            (
                b
                for b in await self.store.recent_bursts(msg.channel_id, 100)
                if b.burst_key == msg.burst_key
            ),
            None,
        )
        if burst is None:
            raise _Refused(control.ERROR_NOT_FOUND, "no such recording on this channel")
        frames = await self.store.burst_frames(msg.burst_key)
        chunk = RECALL_CHUNK
        for start in range(0, max(len(frames), 1), chunk):
            part = frames[start : start + chunk]
            session.send(
                control.RecallFrames(
                    channel_id=msg.channel_id,
                    burst_key=msg.burst_key,
                    frames=tuple(
                        control.RecalledFrame(sequence=f.seq, flags=f.flags, frame=f.frame)
                        for f in part
                    ),
                    last=start + chunk >= len(frames),
                )
            )

    _handlers: ClassVar[dict[type[Any], Callable[[Any, Session, Any, float], Awaitable[None]]]] = {
        control.Affiliate: _on_affiliate,
        control.Deaffiliate: _on_deaffiliate,
        control.SelectChannel: _on_select,
        control.FloorRequest: _on_floor_request,
        control.FloorRelease: _on_floor_release,
        control.MediaTunnel: _on_media_tunnel,
        control.Ping: _on_ping,
        control.PresenceSubscribe: _on_presence_subscribe,
        control.SetStatus: _on_set_status,
        control.LocationReport: _on_location,
        control.TextSend: _on_text_send,
        control.TextReceipt: _on_text_receipt,
        control.CredentialRequest: _on_credential_request,
        control.RosterUpdate: _on_roster_update,
        control.KeyEnvelope: _on_key_envelope,
        control.EmergencyAlert: _on_emergency_alert,
        control.EmergencyAck: _on_emergency_ack,
        control.EmergencyCancel: _on_emergency_cancel,
        control.ChannelCreate: _on_channel_create,
        control.Regroup: _on_regroup,
        control.Ungroup: _on_ungroup,
        control.RecallList: _on_recall_list,
        control.RecallFrames: _on_recall_frames,
    }
