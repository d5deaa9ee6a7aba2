"""``RadioClient``: the async client every Fieldradio program uses (radio, console, simulator, tests).

It logs in over a TLS WebSocket whose certificate is pinned by fingerprint,
keeps the media path (UDP, or the WebSocket tunnel when UDP is blocked),
reconnects on its own with backoff, re-affiliates and re-sends what was queued
while offline, and reports everything as one stream of events.

Voice goes through :class:`ptt_client.e2e.Keyring`: sealed end to end before it
leaves, opened and checked when it arrives; the server only ever sees
ciphertext.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect

from crypto.bundle import CredentialBundle
from crypto.errors import CryptoError
from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.e2e import Keyring
from ptt_client.loss import LossMeter
from ptt_protocol import control, media
from ptt_protocol.errors import ProtocolError
from ptt_protocol.login import login_statement

log = logging.getLogger(__name__)

T = TypeVar("T")

UDP_PROBE_TIMEOUT = 1.0
"""Seconds to wait for the server's keepalive answer before falling back to the tunnel."""
KEEPALIVE_INTERVAL = 10.0
"""UDP keepalives hold NAT mappings open (most expire after 30 s or more)."""
SIGNATURE_SEQUENCE_BASE = 1 << 31
"""Voice frames are numbered below this, burst signatures from it on."""
SEEN_TEXTS_LIMIT = 10_000
"""Message ids remembered for deduplication (the server stops re-sending once receipted)."""
EVENT_QUEUE_LIMIT = 4096
"""Events kept for :meth:`wait_for` readers; older ones are dropped when nobody reads."""
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 2.0
"""Radios must be back within seconds of the server: never wait longer than this."""
BURST_CHECK_INTERVAL = 0.5
"""Seconds between checks that every frame played is covered by its talker's statement."""


class ClientError(Exception):
    """The client cannot do what was asked; the message says why."""


class PinnedCertificateError(ClientError):
    """The server's TLS certificate is not the one in the credential bundle."""


@dataclass
class FloorView:
    """What this client knows about one channel's floor."""

    state: str = "idle"
    """idle, requested, granted, queued, taken, denied, revoked"""
    talker: str | None = None
    talker_name: str = ""
    burst_id: int = 0
    priority: int = 0
    queue_position: int = 0
    cause: str = ""


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, client: RadioClient) -> None:
        self._client = client

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self._client._on_datagram(data) == media.PROBE:
            self._client._answer_probe_udp()

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable while the server restarts: the control connection notices


class RadioClient:
    """One device's connection to the relay. Start it, then call its methods; read :meth:`events`."""

    def __init__(
        self,
        bundle: CredentialBundle,
        keys: DeviceKeys,
        *,
        server_url: str | None = None,
        use_udp: bool = True,
        media_address: tuple[str, int] | None = None,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``media_address`` replaces the UDP host and port the server announces at login (for a
        test network in between, such as ``bench.impairment``); ``None`` uses the announced one.
        ``keepalive_interval``: seconds between UDP keepalives (shorter for NATs that forget
        sooner; it also bounds how long a roamed listener waits for its downlink)."""
        if not keepalive_interval > 0:
            raise ValueError(f"keepalive_interval {keepalive_interval} must be greater than 0")
        self.bundle = bundle
        self.keys = keys
        self.keyring = Keyring(bundle, keys, clock)
        self.credential = self.keyring.credential
        self.user_id = self.credential.user_id
        self.server_url = server_url or bundle.server_url
        self.use_udp = use_udp
        self.media_address = media_address
        self.keepalive_interval = keepalive_interval
        self._clock = clock
        self._events: asyncio.Queue[object] = asyncio.Queue(EVENT_QUEUE_LIMIT)
        self._listeners: list[Callable[[object], None]] = []
        self._ws: ClientConnection | None = None
        """The connection once logged in."""
        self._socket: ClientConnection | None = None
        """The connection from the TLS handshake on (to close it at stop, whatever its state)."""
        self._hop: media.HopSession | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._media_path = "tunnel"
        self._udp_confirmed: asyncio.Event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.connected = asyncio.Event()
        self.session_index = 0
        self.channels: dict[int, str] = {}
        self.affiliated: set[int] = set()
        self.selected: int | None = None
        self.floors: dict[int, FloorView] = {}
        self.status = control.STATUS_AVAILABLE
        self.emergency_alert: bytes | None = None
        self._pending_texts: dict[bytes, control.TextSend] = {}
        self._seen_texts: OrderedDict[bytes, None] = OrderedDict()
        """Ids of texts already shown (or refused), oldest first, bounded."""
        self._opening_texts: set[bytes] = set()
        self.loss = LossMeter()
        """Loss measured on the server-to-radio hop (link quality, Opus loss hint)."""
        self._sequence = 0
        self._signature_sequence = SIGNATURE_SEQUENCE_BASE
        self.last_voice_sequence: int | None = None
        """Sequence number of the last voice frame :meth:`send_voice` sent (for measurements)."""
        self._burst: tuple[int, int] | None = None
        """(channel_id, burst_id) while this client holds a floor."""
        self._before_regroup: dict[int, int | None] = {}
        self._pongs: dict[int, asyncio.Future[None]] = {}
        self._text_tasks: set[asyncio.Future[None]] = set()
        """Work started from the read loop that must not block it (texts, final signatures)."""
        self.refused: events.LoginRefused | None = None
        self.reconnects = 0

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
        if self._socket is not None:
            # The socket, not only a logged-in session: a refused login is still closing.
            await self._socket.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._close_udp()

    def add_listener(self, callback: Callable[[object], None]) -> None:
        """Call ``callback(event)`` for every event as well (used by the audio pipeline)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[object], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _emit(self, event: object) -> None:
        if self._events.full():
            # Nobody reads the queue (a program that only uses listeners): keep the newest.
            self._events.get_nowait()
        self._events.put_nowait(event)
        for callback in list(self._listeners):
            callback(event)

    async def next_event(self, timeout: float = 5.0) -> object:
        async with asyncio.timeout(timeout):
            return await self._events.get()

    async def wait_for(
        self, kind: type[T], predicate: Callable[[T], bool] = lambda _: True, timeout: float = 5.0
    ) -> T:
        """The next event of ``kind`` that satisfies ``predicate``; earlier ones are consumed."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._events.get()
                if isinstance(event, kind) and predicate(event):
                    return event

    def drain_events(self) -> list[object]:
        """Every event queued so far (for tests and tools that poll)."""
        drained = []
        while not self._events.empty():
            drained.append(self._events.get_nowait())
        return drained

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
        delay = BACKOFF_INITIAL
        first = True
        while not self._stopped:
            try:
                await self._session(reconnect=not first)
                delay = BACKOFF_INITIAL
            except PinnedCertificateError as exc:
                self._emit(events.LoginRefused(code="certificate", text=str(exc)))
                return
            except (OSError, websockets.WebSocketException, TimeoutError, ProtocolError) as exc:
                self._emit(events.Disconnected(reason=str(exc) or type(exc).__name__))
            else:
                if self.refused is None and not self._stopped:
                    self._emit(events.Disconnected(reason="the server closed the connection"))
            if self.refused is not None:
                return
            first = False
            self.connected.clear()
            self._close_udp()
            if self._stopped:
                return
            await asyncio.sleep(delay * (0.5 + secrets.randbelow(1000) / 1000))
            delay = min(delay * 2, BACKOFF_MAX)

    def _ssl_context(self) -> ssl.SSLContext:
        # The certificate is pinned by fingerprint (from the bundle), not by a CA.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        return context

    def _check_pin(self, ws: ClientConnection) -> bytes:
        ssl_object = ws.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der is None:
            raise PinnedCertificateError("the server presented no TLS certificate")
        fingerprint = hashlib.sha256(der).digest()
        if fingerprint.hex() != self.bundle.tls_fingerprint.lower():
            raise PinnedCertificateError(
                f"the server's certificate {fingerprint.hex()[:16]}... is not the pinned"
                f" {self.bundle.tls_fingerprint[:16]}...: wrong server, or it was re-installed"
                " (get a new credential bundle)"
            )
        return fingerprint

    async def _session(self, *, reconnect: bool) -> None:
        async with connect(
            self.server_url,
            ssl=self._ssl_context(),
            max_size=control.MAX_MESSAGE_SIZE + 1,
            compression=None,
            open_timeout=5,
            ping_interval=10,
            ping_timeout=10,
        ) as ws:
            self._socket = ws
            fingerprint = self._check_pin(ws)
            hello = control.decode(await asyncio.wait_for(ws.recv(decode=False), 5))
            if not isinstance(hello, control.Hello):
                raise ProtocolError("server did not say hello")
            client_nonce = secrets.token_bytes(control.NONCE_SIZE)
            statement = login_statement(hello.server_nonce, client_nonce, fingerprint)
            await ws.send(
                control.encode(
                    control.Login(
                        credential=self.credential.to_bytes(),
                        signature=self.keys.sign(statement),
                        client_nonce=client_nonce,
                        client_software="fieldradio",
                    )
                )
            )
            reply = control.decode(await asyncio.wait_for(ws.recv(decode=False), 5))
            if isinstance(reply, control.Error):
                self.refused = events.LoginRefused(code=reply.code, text=reply.text)
                self._emit(self.refused)
                return
            if not isinstance(reply, control.LoginOk):
                raise ProtocolError("server did not answer the login")
            self._ws = ws
            self.session_index = reply.session_index
            self._hop = media.HopSession(reply.session_index, reply.hop_key, "client")
            # A new session: burst ids may restart (the server did), so what was heard is over.
            for event in self.keyring.new_session():
                self._emit(event)
            await self._open_media(reply)
            if reconnect:
                self.reconnects += 1
            after_login = asyncio.create_task(self._after_login(reply, reconnect))
            keepalive = asyncio.create_task(self._keepalive()) if self._udp is not None else None
            checks = asyncio.create_task(self._check_bursts())
            try:
                await self._read(ws)
            finally:
                self._ws = None
                self.connected.clear()
                for task in (after_login, keepalive, checks):
                    if task is not None:
                        task.cancel()

    async def _after_login(self, reply: control.LoginOk, reconnect: bool) -> None:
        for channel_id in sorted(self.affiliated):
            await self._send(control.Affiliate(channel_id=channel_id))
        if self.selected is not None:
            await self._send(control.SelectChannel(channel_id=self.selected))
        if self.status != control.STATUS_AVAILABLE:
            await self._send(control.SetStatus(status=self.status))  # type: ignore[arg-type]
        for pending in list(self._pending_texts.values()):
            await self._send(pending)
        self.connected.set()
        self._emit(events.Connected(self.user_id, reply.session_index, reconnect))

    async def _open_media(self, reply: control.LoginOk) -> None:
        self._media_path = "tunnel"
        self._udp_confirmed = asyncio.Event()
        if not self.use_udp:
            await self._send_datagram(self._seal_keepalive())
            self._emit(events.MediaPath("tunnel"))
            return
        host = reply.media_host or urlsplit(self.server_url).hostname or "127.0.0.1"
        address = self.media_address or (host, reply.media_port)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), remote_addr=address
            )
        except OSError:
            self._emit(events.MediaPath("tunnel"))
            return
        self._udp = transport
        transport.sendto(self._seal_keepalive())
        try:
            await asyncio.wait_for(self._udp_confirmed.wait(), UDP_PROBE_TIMEOUT)
            self._media_path = "udp"
        except TimeoutError:
            # UDP blocked: media goes over the WebSocket, the same sealed datagrams.
            self._close_udp()
            await self._send_datagram(self._seal_keepalive())
        self._emit(events.MediaPath(self._media_path))

    def _seal_keepalive(self) -> bytes:
        assert self._hop is not None
        return self._hop.seal(b"", media.KEEPALIVE)

    async def _check_bursts(self) -> None:
        # Frames that no statement covers are found by time, also when no frame follows.
        while True:
            await asyncio.sleep(BURST_CHECK_INTERVAL)
            for event in self.keyring.tick(self._clock()):
                self._emit(event)

    async def _keepalive(self) -> None:
        while self._udp is not None:
            await asyncio.sleep(self.keepalive_interval)
            if self._udp is not None:
                self._udp.sendto(self._seal_keepalive())

    def _close_udp(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        self._media_path = "tunnel"

    @property
    def media_path(self) -> str:
        return self._media_path

    # --- sending ---------------------------------------------------------------------------

    async def _send(self, message: control.Message) -> None:
        if self._ws is None:
            raise ClientError("not connected: the message will not be sent")
        await self._ws.send(control.encode(message))

    async def _send_datagram(self, datagram: bytes) -> None:
        if self._media_path == "udp" and self._udp is not None:
            self._udp.sendto(datagram)
        elif self._ws is not None:
            await self._ws.send(control.encode(control.MediaTunnel(datagram=datagram)))

    async def affiliate(self, channel_id: int, *, select: bool | None = None) -> None:
        """Join a channel's audio (several at once are fine); the first one is selected for transmit."""
        self.affiliated.add(channel_id)
        await self._send(control.Affiliate(channel_id=channel_id))
        if select or (select is None and self.selected is None):
            await self.select(channel_id)

    async def deaffiliate(self, channel_id: int) -> None:
        self.affiliated.discard(channel_id)
        if self.selected == channel_id:
            self.selected = None
        await self._send(control.Deaffiliate(channel_id=channel_id))

    async def select(self, channel_id: int) -> None:
        self.selected = channel_id
        await self._send(control.SelectChannel(channel_id=channel_id))

    def _transmit_channel(self, channel_id: int | None) -> int:
        target = channel_id if channel_id is not None else self.selected
        if target is None:
            raise ClientError("no channel selected: affiliate to a channel first")
        return target

    async def press(self, channel_id: int | None = None, priority: int | None = None) -> None:
        """PTT pressed: request the floor at the role's priority (or emergency during an alert)."""
        target = self._transmit_channel(channel_id)
        if priority is None:
            priority = (
                4
                if self.emergency_alert is not None
                else (2 if self.credential.is_key_manager() else 1)
            )
        self.floors.setdefault(target, FloorView()).state = "requested"
        await self._send(control.FloorRequest(channel_id=target, priority=priority))

    async def release(self, channel_id: int | None = None) -> None:
        """PTT released: send the end of the burst (signed), then release the floor."""
        target = self._transmit_channel(channel_id)
        if self._burst is not None and self._burst[0] == target:
            await self._send_signature(target, self._burst[1], end=True)
            self._burst = None
        view = self.floors.setdefault(target, FloorView())
        view.state = "idle"
        await self._send(control.FloorRelease(channel_id=target))

    async def send_voice(self, opus: bytes, channel_id: int | None = None) -> bool:
        """Seal one Opus frame end to end and send it; False if this client does not hold the floor."""
        target = self._transmit_channel(channel_id)
        if self._burst is None or self._burst[0] != target or self._hop is None:
            return False
        burst_id = self._burst[1]
        sequence = self._next_sequence()
        inner = self.keyring.seal_voice(target, burst_id, sequence, 0, opus, self._clock())
        await self._send_datagram(self._hop.seal(inner))
        self.last_voice_sequence = sequence
        if self.keyring.signature_due(target, self._clock()):
            await self._send_signature(target, burst_id, end=False)
        return True

    def _next_sequence(self) -> int:
        sequence = self._sequence
        self._sequence = (sequence + 1) % SIGNATURE_SEQUENCE_BASE
        return sequence

    async def _send_signature(self, channel_id: int, burst_id: int, *, end: bool) -> None:
        if self._hop is None:
            return
        # Signatures are numbered apart from voice (from 2^31): a gap in the voice numbers
        # would make every listener's jitter buffer play a lost frame that never existed.
        sequence = self._signature_sequence
        self._signature_sequence = (
            SIGNATURE_SEQUENCE_BASE + (sequence + 1) % SIGNATURE_SEQUENCE_BASE
        )
        inner = self.keyring.seal_signature(channel_id, burst_id, sequence, end, self._clock())
        if inner is not None:
            await self._send_datagram(self._hop.seal(inner))

    async def send_text(
        self, text: str, *, to_user: str | None = None, to_channel: int | None = None
    ) -> bytes:
        """Seal and send a text; queued and re-sent after a reconnect until the server stores it."""
        message_id = secrets.token_bytes(control.MESSAGE_ID_SIZE)
        if to_channel is not None:
            sealed = self.keyring.seal_channel_text(to_channel, text, message_id)
        elif to_user is not None:
            recipient = await self.credential_of(to_user)
            sealed = self.keyring.seal_direct_text(recipient, text, message_id)
        else:
            raise ClientError("a text needs to_user or to_channel")
        message = control.TextSend(
            message_id=message_id, to_user=to_user, to_channel=to_channel, sealed=sealed
        )
        self._pending_texts[message_id] = message
        if self._ws is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._send(message)
        return message_id

    async def set_status(self, status: str) -> None:
        self.status = status
        await self._send(control.SetStatus(status=status))  # type: ignore[arg-type]

    async def send_location(self, lat: float, lon: float) -> None:
        """Report a position, sealed for dispatchers (the server stores only ciphertext)."""
        sealed = self.keyring.seal_location(self.selected, lat, lon)
        if sealed is not None:
            await self._send(control.LocationReport(sealed_location=sealed))

    async def raise_emergency(self, lat: float | None = None, lon: float | None = None) -> bytes:
        """Raise an emergency alert on the selected channel; floor requests now get emergency priority."""
        alert_id = secrets.token_bytes(control.MESSAGE_ID_SIZE)
        sealed = (
            self.keyring.seal_location(self.selected, lat, lon)
            if lat is not None and lon is not None
            else None
        )
        self.emergency_alert = alert_id
        await self._send(
            control.EmergencyAlert(
                alert_id=alert_id,
                user_id=self.user_id,
                channel_id=self.selected or 0,
                sealed_location=sealed,
                raised_at=time.time(),
            )
        )
        return alert_id

    async def cancel_emergency(self, alert_id: bytes | None = None) -> None:
        target = alert_id or self.emergency_alert
        if target is None:
            return
        if target == self.emergency_alert:
            self.emergency_alert = None
        await self._send(control.EmergencyCancel(alert_id=target, by_user=self.user_id))

    async def acknowledge_emergency(self, alert_id: bytes) -> None:
        await self._send(control.EmergencyAck(alert_id=alert_id, by_user=self.user_id))

    async def subscribe_presence(self) -> None:
        await self._send(control.PresenceSubscribe())

    async def credential_of(self, user_id: str) -> Any:
        """The verified credential of ``user_id`` (asked from the server once, then cached)."""
        known = self.keyring.credentials.get(user_id)
        if known is not None:
            return known
        await self._send(control.CredentialRequest(user_ids=(user_id,)))
        async with asyncio.timeout(5):
            while user_id not in self.keyring.credentials:
                await self.keyring.credentials_changed.wait()
                self.keyring.credentials_changed.clear()
        return self.keyring.credentials[user_id]

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
                await self._handle(message)
            except (websockets.ConnectionClosed, asyncio.CancelledError):
                raise
            except Exception:
                # Whatever the server sends, the radio stays up: a message that trips a
                # bug is dropped and logged, the connection and its reconnects go on.
                log.exception("control message %s dropped", control.tag_of(message))

    async def _handle(self, message: control.Message) -> None:
        now = self._clock()
        if isinstance(message, control.MediaTunnel):
            if self._on_datagram(message.datagram) == media.PROBE:
                # The relay checks we are still on this path before moving us: answer on
                # the path media takes now.
                await self._send_datagram(self._seal_keepalive())
            return
        if isinstance(message, control.Pong):
            pong = self._pongs.get(message.nonce)
            if pong is not None and not pong.done():
                pong.set_result(None)
        if isinstance(message, control.ChannelList):
            for info in message.channels:
                self.channels[info.channel_id] = info.name
        elif isinstance(message, control.Affiliated):
            self.channels[message.channel_id] = message.name
        elif isinstance(message, control.ChannelCreated):
            self.channels[message.channel_id] = message.name
        elif isinstance(message, control.Regroup):
            # Dynamic regroup / patch: join the incident channel and talk on it.
            self._before_regroup.setdefault(message.channel_id, self.selected)
            if self._ws is not None:
                await self.affiliate(message.channel_id, select=True)
        elif isinstance(message, control.Ungroup):
            previous = self._before_regroup.pop(message.channel_id, None)
            if self._ws is not None and message.channel_id in self.affiliated:
                await self.deaffiliate(message.channel_id)
                if previous is not None and previous in self.affiliated:
                    await self.select(previous)
        elif isinstance(message, control.Deaffiliated):
            if message.reason != "at your request":
                self.affiliated.discard(message.channel_id)
        elif isinstance(message, control.RosterUpdate):
            self._emit_all(
                self.keyring.accept_roster(message.channel_id, message.signed_roster, now)
            )
            unknown = self.keyring.unknown_members(message.channel_id)
            if unknown:
                # Needed to verify talker signatures and texts, and (dispatchers) to rekey.
                await self._send(control.CredentialRequest(user_ids=tuple(unknown)))
        elif isinstance(message, control.KeyEnvelope):
            self._emit_all(self.keyring.accept_envelope(message.channel_id, message.envelope, now))
        elif isinstance(message, control.RevocationUpdate):
            self.keyring.accept_revocations(message.signed_list)
        elif isinstance(message, control.Credentials):
            self.keyring.add_credentials(message.credentials, now)
        elif isinstance(message, control.TextReceipt):
            if message.kind == control.RECEIPT_STORED:
                self._pending_texts.pop(message.message_id, None)
        elif isinstance(message, control.TextDeliver):
            # Opening may need the sender's credential from the server: not on the read loop.
            task = asyncio.create_task(self._on_text(message))
            self._text_tasks.add(task)
            task.add_done_callback(self._text_tasks.discard)
        elif (
            isinstance(message, control.Error) and message.code == control.ERROR_LOGGED_IN_ELSEWHERE
        ):
            # Another device (or a copy of this bundle) took over the credential: retrying
            # would take the session back from it, and the two would flap forever.
            self.refused = events.LoginRefused(code=message.code, text=message.text)
            self._emit(self.refused)
        elif isinstance(message, control.Goodbye):
            self._emit(message)
            return
        else:
            self._update_floor(message)
        self._emit(message)

    def _emit_all(self, found: list[object]) -> None:
        for event in found:
            self._emit(event)

    def _update_floor(self, message: control.Message) -> None:
        if isinstance(message, control.FloorGranted):
            view = self.floors.setdefault(message.channel_id, FloorView())
            view.state, view.burst_id, view.talker = "granted", message.burst_id, self.user_id
            self._burst = (message.channel_id, message.burst_id)
            self.keyring.start_burst(message.channel_id, message.burst_id, self._clock())
        elif isinstance(message, control.FloorTaken):
            view = self.floors.setdefault(message.channel_id, FloorView())
            view.state, view.talker, view.talker_name = (
                "taken",
                message.user_id,
                message.display_name,
            )
            view.burst_id, view.priority = message.burst_id, message.priority
            for early in self.keyring.expect_talker(
                message.channel_id,
                message.user_id,
                message.burst_id,
                self._clock(),
                message.priority,
            ):
                self._emit(early)
        elif isinstance(message, control.FloorIdle):
            view = self.floors.setdefault(message.channel_id, FloorView())
            if view.state != "queued":
                view.state = "idle"
            view.talker = None
            # The talker released: its burst is over here too (after its last frames' grace).
            for event in self.keyring.end_heard_burst(
                message.channel_id, self._clock(), released=True
            ):
                self._emit(event)
        elif isinstance(message, control.FloorDeny):
            view = self.floors.setdefault(message.channel_id, FloorView())
            view.state, view.cause = "denied", message.cause
        elif isinstance(message, control.FloorRevoke):
            view = self.floors.setdefault(message.channel_id, FloorView())
            view.state, view.cause = "revoked", message.cause
            for event in self.keyring.end_heard_burst(
                message.channel_id, self._clock(), released=False
            ):
                self._emit(event)
            if self._burst is not None and self._burst[0] == message.channel_id:
                # Sign what was sent before the revoke: the relay forwards a released
                # burst's last frames briefly, so listeners can still verify its tail.
                burst = self._burst
                self._burst = None
                task = asyncio.ensure_future(self._send_signature(burst[0], burst[1], end=True))
                self._text_tasks.add(task)
                task.add_done_callback(self._text_tasks.discard)
        elif isinstance(message, control.FloorQueuePosition):
            view = self.floors.setdefault(message.channel_id, FloorView())
            view.state, view.queue_position = "queued", message.position
        elif (
            isinstance(message, control.EmergencyCancel)
            and message.alert_id == self.emergency_alert
        ):
            self.emergency_alert = None
        elif isinstance(message, control.EmergencyAlert) and message.user_id == self.user_id:
            # The server keeps one alert per user: a press is recorded under the active alert's
            # id, which is the one to cancel (also after a restart of this radio).
            self.emergency_alert = message.alert_id

    async def _on_text(self, message: control.TextDeliver) -> None:
        message_id = message.message_id
        if message_id in self._seen_texts or message_id in self._opening_texts:
            await self._receipt(message_id)  # at-least-once on the wire, exactly once shown
            return
        self._opening_texts.add(message_id)
        try:
            sender = await self.credential_of(message.from_user)
            text = self.keyring.open_text(message, sender)
        except (TimeoutError, ClientError):
            return  # transient: no receipt, so the server delivers it again next login
        except CryptoError as exc:
            self._remember_text(message_id)  # refused for good: do not ask for it again
            await self._receipt(message_id)
            self._emit(
                events.VoiceRejected(
                    channel_id=message.to_channel or 0, reason=f"text refused: {exc}"
                )
            )
            return
        finally:
            self._opening_texts.discard(message_id)
        self._remember_text(message_id)
        await self._receipt(message_id)
        self._emit(
            events.TextReceived(
                message_id=message_id,
                from_user=message.from_user,
                to_channel=message.to_channel,
                text=text,
                sent_at=message.sent_at,
            )
        )

    def _remember_text(self, message_id: bytes) -> None:
        self._seen_texts[message_id] = None
        if len(self._seen_texts) > SEEN_TEXTS_LIMIT:
            self._seen_texts.popitem(last=False)

    async def mark_read(self, message_id: bytes) -> None:
        """The user has seen the text ``message_id``: send its sender a read receipt."""
        await self._send(
            control.TextReceipt(
                message_id=message_id, kind=control.RECEIPT_READ, by_user=self.user_id
            )
        )

    async def _receipt(self, message_id: bytes) -> None:
        if self._ws is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._send(
                    control.TextReceipt(
                        message_id=message_id, kind=control.RECEIPT_DELIVERED, by_user=self.user_id
                    )
                )

    def _on_datagram(self, data: bytes) -> int | None:
        """Open and handle one datagram from the relay; its type, or None if refused."""
        hop = self._hop
        if hop is None:
            return None
        try:
            kind, inner = hop.open(data, "server")
        except ProtocolError:
            return None
        self.loss.record(media.peek_counter(data))
        if kind == media.KEEPALIVE:
            self._udp_confirmed.set()
            return kind
        if kind == media.PROBE:
            return kind  # answered by the caller, on the current path
        now = self._clock()
        for event in self.keyring.open_media(inner, now, self.floors):
            self._emit(event)
        return kind

    def _answer_probe_udp(self) -> None:
        """A probe came over UDP: answer with a keepalive on the current path."""
        if self._media_path == "udp" and self._udp is not None:
            self._udp.sendto(self._seal_keepalive())
