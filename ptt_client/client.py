"""``RadioClient``: the async client every Fieldradio program uses (radio, console, simulator, tests).

It logs in over a TLS WebSocket whose certificate is pinned by fingerprint,
keeps the media path (UDP, or the WebSocket tunnel when UDP is blocked),
reconnects on its own with backoff, re-affiliates and re-sends what was queued
while offline, and reports everything as one stream of events.

It is the I/O loop around pure parts: :class:`ptt_client.session_core.ClientSessionCore`
decides what each control message means and what the officer's actions send (with one
TS 24.380 floor participant per channel), :class:`ptt_client.media_path.MediaPath` moves
datagrams, :class:`ptt_client.texts.Texts` handles texts and receipts.

Voice goes through :class:`ptt_client.e2e.Keyring`: sealed end to end before it
leaves, opened and checked when it arrives; the server only ever sees
ciphertext.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Final

import websockets
from websockets.asyncio.client import ClientConnection, connect

from crypto.bundle import CredentialBundle
from crypto.errors import CryptoError
from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.broadcast_calls import BroadcastCalls
from ptt_client.calls.manager import PrivateCalls
from ptt_client.e2e import Keyring
from ptt_client.errors import ClientError, PinnedCertificateError, connection_failure
from ptt_client.event_stream import EventStream
from ptt_client.floor_view import FloorView
from ptt_client.media_path import KEEPALIVE_INTERVAL, MediaPath
from ptt_client.officer_reports import OfficerReports
from ptt_client.patch_orders import check_patch, renewals, stale_patches
from ptt_client.protection import ProtectionState
from ptt_client.reception import Reception
from ptt_client.server_list import ServerList
from ptt_client.session_core import (
    BurstEnded,
    BurstStarted,
    CallMessage,
    ClientSessionCore,
    Dropped,
    Effect,
    Emit,
    HeardBurstOver,
    KeyMaterial,
    LoggedIn,
    MediaArrived,
    PatchArrived,
    PongArrived,
    Send,
    TalkerNamed,
    TextArrived,
    TextStored,
)
from ptt_client.session_view import SessionView
from ptt_client.talk_frames import TalkFrames
from ptt_client.texts import Texts
from ptt_client.tls_pin import check_pin, client_ssl_context, tls_failure
from ptt_protocol import control
from ptt_protocol.errors import ProtocolError

__all__ = ["ClientError", "FloorView", "PinnedCertificateError", "RadioClient"]

log = logging.getLogger(__name__)

LOGIN_STEP_TIMEOUT: Final = 5.0
"""Seconds for each step of the login handshake (the Hello, the answer to the Login)."""
BURST_CHECK_INTERVAL: Final = 0.5
"""Seconds between checks that every frame played is covered by its talker's statement."""


class RadioClient(BroadcastCalls, OfficerReports, SessionView, EventStream):
    """One device's connection to the relay. Start it, then call its methods; read its events
    (:class:`ptt_client.event_stream.EventStream`)."""

    def __init__(
        self,
        bundle: CredentialBundle,
        keys: DeviceKeys,
        *,
        server_url: str | None = None,
        server_urls: Sequence[str] = (),
        use_udp: bool = True,
        media_address: tuple[str, int] | None = None,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``server_urls`` (or one ``server_url``) replace the bundle's servers, tried in turn
        (``ptt_client.server_list``). ``media_address`` replaces the UDP host and port the server
        announces at login (for a test network in between, such as ``bench.impairment``);
        ``None`` uses the announced one. ``keepalive_interval``: seconds between UDP keepalives
        (shorter for NATs that forget sooner; it also bounds how long a roamed listener waits
        for its downlink)."""
        if not keepalive_interval > 0:
            raise ValueError(f"keepalive_interval {keepalive_interval} must be greater than 0")
        super().__init__()
        self.bundle = bundle
        self.keys = keys
        self.keyring = Keyring(bundle, keys, clock)
        self.credential = self.keyring.credential
        self.user_id = self.credential.user_id
        urls = server_urls or ([server_url] if server_url else bundle.server_urls)
        self.servers = ServerList(urls)
        self.server_url = self.servers.current
        """The server tried or used now."""
        self.core = ClientSessionCore(self.credential, keys)
        """What this radio knows and decides (channels, floors, the login); no I/O."""
        self.media = MediaPath(
            use_udp=use_udp,
            media_address=media_address,
            keepalive_interval=keepalive_interval,
            on_media=self._on_media,
            send_tunnelled=self._send_tunnelled,
            emit=self._emit,
        )
        self.loss = self.media.loss
        """Loss measured on the server-to-radio hop (link quality, Opus loss hint)."""
        self.texts = Texts(
            self.keyring,
            self.user_id,
            send=self._send,
            connected=lambda: self._ws is not None,
            credential_of=self.credential_of,
            emit=self._emit,
        )
        self._clock = clock
        self._ws: ClientConnection | None = None
        """The connection once logged in."""
        self._socket: ClientConnection | None = None
        """The connection from the TLS handshake on (to close it at stop, whatever its state)."""
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.connected = asyncio.Event()
        self.frames = TalkFrames(self.keyring)
        self.protection = ProtectionState()
        """How this radio protects its voice per channel, from the relay's loss reports."""
        self.reception = Reception()
        """Repeats folded back into frames, and the downlink figures for receiver reports."""
        self._pongs: dict[int, asyncio.Future[None]] = {}
        self.reconnects = 0
        self.calls = PrivateCalls(
            credential=self.credential,
            keys=keys,
            trust=lambda: self.keyring.trust,
            send=self._send,
            emit=self._emit,
            clock=clock,
        )
        """Private calls to and from this radio (``ptt_client.calls``)."""
        self.calls.on_emergency_call = self._stop_talking

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background; await :attr:`connected` (or use :meth:`wait_connected`)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def wait_connected(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            await self.connected.wait()

    async def stop(self) -> None:
        """Log out and stop reconnecting."""
        self._stopped = True
        await self.calls.close()
        if self._socket is not None:
            # The socket, not only a logged-in session: a refused login is still closing.
            await self._socket.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.media.close()

    async def ping_server(self, timeout: float = 5.0) -> None:
        """A control round trip: everything the server sent before the Pong has arrived."""
        nonce = secrets.randbits(62)
        pong = asyncio.get_running_loop().create_future()
        self._pongs[nonce] = pong
        try:
            await self._send(control.Ping(nonce=nonce))
            async with asyncio.timeout(timeout):
                await pong
        finally:
            self._pongs.pop(nonce, None)

    async def _run(self) -> None:
        first = True
        while not self._stopped:
            self.server_url = self.servers.current
            reason: str | None = None
            try:
                await self._session(reconnect=not first)
            except PinnedCertificateError as exc:
                self._emit(events.LoginRefused(code="certificate", text=str(exc)))
                return
            except (OSError, websockets.WebSocketException, TimeoutError, ProtocolError) as exc:
                reason = tls_failure(exc) or connection_failure(exc)
            except Exception as exc:
                # A bug something the server sent tripped (outside the per-message guard in
                # _read): this session is over, the radio is not. Say so and reconnect.
                log.exception("control session to %s failed", self.server_url)
                reason = f"internal error ({type(exc).__name__}): reconnecting"
            else:
                if self.core.may_retry and not self._stopped:
                    reason = "the server closed the connection"
            # The next server at once, or a wait after a whole round failed (server_list).
            delay = self.servers.failed(self._clock(), secrets.randbelow(1000) / 1000)
            if reason is not None:
                self._emit(events.Disconnected(reason, self.server_url, retry_in=delay))
            if not self.core.may_retry or self._stopped:
                return  # (stop() closes the media path)
            first = False
            self.connected.clear()
            self.media.close()
            await asyncio.sleep(delay)

    async def _session(self, *, reconnect: bool) -> None:
        async with connect(
            self.server_url,
            ssl=client_ssl_context(),
            max_size=control.MAX_MESSAGE_SIZE + 1,
            compression=None,
            open_timeout=5,
            ping_interval=10,
            ping_timeout=10,
        ) as ws:
            self._socket = ws
            fingerprint = check_pin(
                ws.transport.get_extra_info("ssl_object"), self.bundle.tls_fingerprint
            )
            self.core.connection_opened()
            try:
                logged_in = await self._login(ws, fingerprint)
                if logged_in is not None:
                    await self._logged_in(ws, logged_in, reconnect)
            finally:
                self._ws = None
                self.connected.clear()
                # The server released our floors with the connection: nothing to send.
                self._lost(self.core.connection_lost())
                self.calls.connection_lost()

    async def _login(self, ws: ClientConnection, fingerprint: bytes) -> LoggedIn | None:
        """The handshake; None if the server refused this radio (it stops retrying)."""
        async with asyncio.timeout(LOGIN_STEP_TIMEOUT):
            hello = control.decode(await ws.recv(decode=False))
        client_nonce = secrets.token_bytes(control.NONCE_SIZE)
        await ws.send(control.encode(self.core.hello(hello, fingerprint, client_nonce)))
        async with asyncio.timeout(LOGIN_STEP_TIMEOUT):
            reply = control.decode(await ws.recv(decode=False))
        answer = self.core.login_answer(reply)
        if isinstance(answer, LoggedIn):
            return answer
        if answer.retry:
            raise ConnectionError(f"login refused for now ({answer.code}): {answer.text}")
        self._emit(answer.event)
        return None

    async def _logged_in(self, ws: ClientConnection, answer: LoggedIn, reconnect: bool) -> None:
        self._ws = ws
        self.servers.logged_in(self._clock())
        # A new session: burst ids may restart (the server did), so what was heard is over.
        self._emit_all(self.keyring.new_session())
        self.reception.new_session()
        await self.media.open(answer.reply, self.server_url)
        if reconnect:
            self.reconnects += 1
        after_login = asyncio.create_task(self._after_login(answer, reconnect))
        keepalive = asyncio.create_task(self.media.keepalive()) if self.media.udp else None
        checks = asyncio.create_task(self._check_bursts())
        try:
            await self._read(ws)
        finally:
            for task in (after_login, keepalive, checks):
                if task is not None:
                    task.cancel()

    async def _after_login(self, answer: LoggedIn, reconnect: bool) -> None:
        await self._run_effects(answer.effects)
        for message in self.texts.to_resend():
            await self._send(message)
            self.texts.resent(message)
        self.connected.set()
        index = answer.reply.session_index
        self._emit(events.Connected(self.user_id, index, reconnect, self.server_url))

    def _lost(self, effects: list[Effect]) -> None:
        # Our bursts ended with the connection: the server ended them too, and there is no
        # one to send a final statement to. Anything else is reported.
        for effect in effects:
            if isinstance(effect, Emit):
                self._emit(effect.event)

    async def _check_bursts(self) -> None:
        # Frames that no statement covers are found by time, also when no frame follows.
        # The same beat sends receiver reports while this radio hears a channel.
        while True:
            await asyncio.sleep(BURST_CHECK_INTERVAL)
            now = self._clock()
            self._emit_all(self.keyring.tick(now))
            await self._run_effects(self.core.expire_patches(now))
            if self._ws is not None:
                for message in renewals(self.core.patches_to_renew(now), self.keyring, now):
                    with contextlib.suppress(websockets.ConnectionClosed):
                        await self._send(message)
                for report in self.reception.reports_due(self.media.hop, now):
                    with contextlib.suppress(websockets.ConnectionClosed):
                        await self._send(report)

    def _link_report(self, report: control.LinkReport) -> None:
        changed = self.protection.report(report, self._clock())
        if changed is not None:
            self._emit(
                events.ProtectionChanged(report.channel_id, changed.distances, changed.loss_pct)
            )

    # --- running the core's effects --------------------------------------------------------

    async def _run_effects(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                await self._send(effect.message)
            elif isinstance(effect, Emit):
                self._emit(effect.event)
                if isinstance(effect.event, control.LinkReport):
                    self._link_report(effect.event)
            elif isinstance(effect, BurstStarted):
                self.keyring.start_burst(effect.channel_id, effect.burst_id, self._clock())
            elif isinstance(effect, BurstEnded):
                # Sign what was sent (also after a revoke: the relay forwards a released
                # burst's last frames briefly, so listeners can still verify its tail).
                await self._send_signature(effect.channel_id, effect.burst_id, end=True)
            elif isinstance(effect, TalkerNamed):
                taken = effect.message
                opened = self.keyring.expect_talker(
                    taken.channel_id, taken.user_id, taken.burst_id, self._clock(), taken.priority
                )
                self._emit_all(self.reception.early_frames_opened(opened, self._clock()))
            elif isinstance(effect, HeardBurstOver):
                self._emit_all(
                    self.keyring.end_heard_burst(
                        effect.channel_id, self._clock(), released=effect.released
                    )
                )
            elif isinstance(effect, KeyMaterial):
                await self._key_material(effect.message)
            elif isinstance(effect, PatchArrived):
                await self._patch_arrived(effect.message)
            elif isinstance(effect, MediaArrived):
                await self.media.tunnelled(effect.datagram)
            elif isinstance(effect, PongArrived):
                pong = self._pongs.get(effect.nonce)
                if pong is not None and not pong.done():
                    pong.set_result(None)
            elif isinstance(effect, CallMessage):
                self.calls.receive(effect.message)
            elif isinstance(effect, TextArrived):
                self.texts.arrived(effect.message)
            elif isinstance(effect, TextStored):
                self.texts.stored(effect.message_id)
            elif isinstance(effect, Dropped):
                log.info(
                    "%s from the server dropped: %s", control.tag_of(effect.message), effect.why
                )

    async def _key_material(
        self,
        message: control.RosterUpdate
        | control.KeyEnvelope
        | control.RevocationUpdate
        | control.Credentials,
    ) -> None:
        now = self._clock()
        if isinstance(message, control.RosterUpdate):
            self._emit_all(
                self.keyring.accept_roster(message.channel_id, message.signed_roster, now)
            )
            for patch, why in stale_patches(self.core.orders, self.keyring):
                await self._run_effects(self.core.hold_patch(patch, why))
            unknown = self.keyring.unknown_members(message.channel_id)
            if unknown:
                # Needed to verify talker signatures and texts, and (dispatchers) to rekey.
                await self._send(control.CredentialRequest(user_ids=tuple(unknown)))
        elif isinstance(message, control.KeyEnvelope):
            self._emit_all(self.keyring.accept_envelope(message.channel_id, message.envelope, now))
        elif isinstance(message, control.RevocationUpdate):
            self._emit_all(self.keyring.accept_revocations(message.signed_list))
        else:
            self._emit_all(self.keyring.add_credentials(message.credentials, now))

    async def _patch_arrived(self, message: control.Patch) -> None:
        try:
            order = check_patch(message, self.keyring, self._clock())
        except CryptoError as exc:
            self._emit(events.PatchRefused(message.channel_id, str(exc)))
            return
        await self._run_effects(self.core.follow_patch(order))
        if self.core.orders.get(order.patch_channel) == order:
            self._emit(message)  # followed (not a replay): the signed order says the same

    # --- sending ---------------------------------------------------------------------------

    async def _send(self, message: control.Message) -> None:
        if self._ws is None:
            raise ClientError("not connected: the message will not be sent")
        await self._ws.send(control.encode(message))

    async def _send_tunnelled(self, datagram: bytes) -> None:
        if self._ws is not None:
            await self._ws.send(control.encode(control.MediaTunnel(datagram=datagram)))

    async def affiliate(self, channel_id: int, *, select: bool | None = None) -> None:
        """Join a channel's audio (several at once are fine); the first one is selected for transmit."""
        await self._run_effects(self.core.affiliate(channel_id, select))

    async def deaffiliate(self, channel_id: int) -> None:
        await self._run_effects(self.core.deaffiliate(channel_id))

    async def select(self, channel_id: int) -> None:
        await self._run_effects(self.core.select(channel_id))

    def _transmit_channel(self, channel_id: int | None) -> int:
        target = self.core.transmit_channel(channel_id)
        if target is None:
            raise ClientError("no channel selected: affiliate to a channel first")
        return target

    async def press(self, channel_id: int | None = None, priority: int | None = None) -> None:
        """PTT pressed: request the floor at the role's priority (or emergency during an alert).

        Nothing is sent while the key is already down (TS 24.380 floor participant)."""
        target = self._transmit_channel(channel_id)
        if self._ws is None:
            raise ClientError("not connected: PTT does nothing until the radio is back")
        await self._run_effects(self.core.press(target, priority))

    async def release(self, channel_id: int | None = None) -> None:
        """PTT released: end the burst (signed) and release the floor, or cancel the request.

        After the floor was taken away (revoked, pre-empted) letting go sends nothing: above
        all, no new request (issue 10)."""
        await self._run_effects(self.core.release(self._transmit_channel(channel_id)))

    async def _stop_talking(self) -> None:
        # An emergency private call pre-empts this radio's group talk (TS 23.379): every
        # key held is let go, the bursts end signed, the floors go to the queues.
        for channel_id in self.keys_down():
            await self.release(channel_id)

    def ptt_down(self, channel_id: int | None = None) -> bool:
        """The PTT key is held on ``channel_id`` (default: the selected channel), whatever
        the floor did meanwhile."""
        target = self.core.transmit_channel(channel_id)
        return target is not None and self.core.ptt_down(target)

    def keys_down(self) -> list[int]:
        """Channels whose PTT key is held."""
        return self.core.keys_down()

    async def send_voice(self, opus: bytes, channel_id: int | None = None) -> bool:
        """Seal one Opus frame end to end and send it; during a broadcast (unless
        ``channel_id`` names another channel) to each of its channels still held. False if
        this client holds no floor to send it on."""
        broadcast = self.core.broadcasting
        on_air = broadcast and (channel_id is None or channel_id in broadcast)
        targets = broadcast if on_air else (self._transmit_channel(channel_id),)
        sent = False
        for target in targets:
            burst_id = self.core.talking_burst(target)
            if burst_id is None or self.media.hop is None:
                continue
            now = self._clock()
            inner = self.frames.voice(
                target, burst_id, opus, now, self.protection.for_channel(target, now)
            )
            await self.media.send(self.media.seal(inner))
            if self.frames.statement_due(target, self._clock()):
                await self._send_signature(target, burst_id, end=False)
            sent = True
        return sent

    @property
    def last_voice_sequence(self) -> int | None:
        """Sequence number of the last voice frame :meth:`send_voice` sent (for measurements)."""
        return self.frames.last_voice_sequence

    async def _send_signature(self, channel_id: int, burst_id: int, *, end: bool) -> None:
        if self.media.hop is None:
            return
        now = self._clock()
        inner = self.frames.statement(channel_id, burst_id, end=end, now=now)
        if inner is None:
            return
        await self.media.send(self.media.seal(inner))
        if self.protection.for_channel(channel_id, now).distances:
            # A lost statement leaves its frames unverified; on a lossy path it goes twice
            # (listeners keep the first copy, like any frame).
            await self.media.send(self.media.seal(inner))

    async def send_text(
        self, text: str, *, to_user: str | None = None, to_channel: int | None = None
    ) -> bytes:
        """Seal and send a text; queued and re-sent after a reconnect until the server stores it."""
        return await self.texts.send_text(text, to_user=to_user, to_channel=to_channel)

    async def mark_read(self, message_id: bytes) -> None:
        """The user has seen the text ``message_id``: send its sender a read receipt (after
        the next login if the radio is offline now)."""
        await self.texts.mark_read(message_id)

    async def send_message(self, message: control.Message) -> None:
        """Send any control message (the console's roster and key changes go this way)."""
        await self._send(message)

    # --- receiving -------------------------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            if isinstance(raw, str):
                continue
            try:
                message = control.decode(raw)
            except ProtocolError as exc:
                log.warning("undecodable control message from the server: %s", exc)
                continue
            try:
                await self._run_effects(self.core.receive(message))
            except (websockets.ConnectionClosed, asyncio.CancelledError):
                raise
            except Exception:
                # Whatever the server sends, the radio stays up: a message that trips a
                # bug is dropped and logged, the connection and its reconnects go on.
                log.exception("control message %s dropped", control.tag_of(message))

    def _on_media(self, inner: bytes) -> None:
        self._emit_all(self.reception.open(self.keyring, inner, self._clock(), self.floors))
