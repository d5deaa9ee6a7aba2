"""A small, deliberately low-level client for driving the relay server in tests.

It speaks the wire protocol directly (no ``ptt_client``): a TLS WebSocket whose
certificate is checked against a pinned SHA-256 fingerprint rather than a CA,
the challenge-response login, and a real UDP socket with a client-side hop
session. Everything it receives is kept, so a test can wait for an event
(:meth:`RawClient.wait_for`, :meth:`RawClient.wait_datagram`) and afterwards
inspect the whole history for things that must not have arrived.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import itertools
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from crypto.keyring import make_kid
from crypto.sframe import decode_header, encode_header
from ptt_protocol import control, media
from ptt_protocol.errors import ProtocolError
from ptt_protocol.login import login_statement
from ptt_server.server import RelayServer
from tests.orgfixture import Account, Org

TIMEOUT = 5.0
"""Longest wait for any one expected event (generous: two shared cores)."""

M = TypeVar("M", bound=control.Message)


class LoginRefused(Exception):
    """The server answered the login with an Error."""

    def __init__(self, error: control.Error) -> None:
        super().__init__(f"{error.code}: {error.text}")
        self.error = error


class PinMismatch(Exception):
    """The server's certificate is not the pinned one."""


def pinned_fingerprint(server: RelayServer) -> bytes:
    """SHA-256 of the server's certificate (DER), computed here from the PEM file on disk
    (its own ``tls_cert`` if it has one, as a cluster's nodes do, else the self-signed one)."""
    configured = server.config.tls_cert
    cert = Path(configured or Path(server.config.resolved_data_dir()) / "tls" / "cert.pem")
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return hashlib.sha256(der).digest()


def _client_tls() -> ssl.SSLContext:
    # Self-signed server certificate: no CA to verify against; the pin is checked instead.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def open_control(
    server: RelayServer, *, receive_buffer: int | None = None, source: str | None = None
) -> tuple[ClientConnection, bytes]:
    """Open the TLS WebSocket and check the pin; returns the connection and the fingerprint.

    ``receive_buffer`` shrinks the TCP receive buffer (set before connecting, so the
    window is small from the start): for playing a client on a slow link. ``source``
    binds the client to another loopback address (e.g. ``127.0.0.2``): another host, as
    far as the server can tell.
    """
    sock = None
    if receive_buffer is not None or source is not None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        if source is not None:
            sock.bind((source, 0))
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.control_port))
        except BaseException:
            sock.close()
            raise
    ws = await ws_connect(
        f"wss://127.0.0.1:{server.control_port}",
        sock=sock,
        ssl=_client_tls(),
        compression=None,
        max_size=control.MAX_MESSAGE_SIZE,
        open_timeout=TIMEOUT,
        ping_interval=None,
    )
    ssl_object = ws.transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True)
    fingerprint = hashlib.sha256(der).digest()
    if fingerprint != pinned_fingerprint(server):
        await ws.close()
        raise PinMismatch("server certificate does not match the pinned fingerprint")
    return ws, fingerprint


async def recv_message(ws: ClientConnection, timeout: float = TIMEOUT) -> control.Message:
    async with asyncio.timeout(timeout):
        raw = await ws.recv(decode=False)
    return control.decode(raw)


async def wait_closed(ws: ClientConnection, timeout: float = TIMEOUT) -> list[control.Message]:
    """Read until the server closes the connection; returns what arrived meanwhile."""
    rest: list[control.Message] = []
    async with asyncio.timeout(timeout):
        try:
            while True:
                rest.append(control.decode(await ws.recv(decode=False)))
        except websockets.ConnectionClosed:
            return rest


def login_message(
    account: Account, server_nonce: bytes, fingerprint: bytes, *, credential: bytes | None = None
) -> control.Login:
    client_nonce = secrets.token_bytes(control.NONCE_SIZE)
    statement = login_statement(server_nonce, client_nonce, fingerprint)
    return control.Login(
        credential=account.credential.to_bytes() if credential is None else credential,
        signature=account.keys.sign(statement),
        client_nonce=client_nonce,
        client_software="rawclient/test",
    )


@dataclass
class Datagram:
    """One datagram the client received, opened with its hop session when possible."""

    raw: bytes
    via: str
    """``"udp:<local port>"`` or ``"tunnel"``."""
    kind: int | None
    inner: bytes | None
    solicited: bool = False
    """A keepalive that arrived while one of ours on the same path awaited its answer."""

    @property
    def payload(self) -> bytes:
        """The frame bytes a :class:`RawClient` sent, without the SFrame header it put first."""
        assert self.inner is not None
        frame = media.unpack_inner(self.inner)
        if frame.flags & media.SIGNATURE:
            return frame.frame
        return frame.frame[decode_header(frame.frame).size :]


def kid_of(org: Org, user: str, epoch: int = 1) -> int:
    """``user``'s SFrame KID in the patrol channel's roster (epoch == roster version)."""
    return make_kid(org.roster.sender_index(user), epoch)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, str], None]) -> None:
        self._on_datagram = on_datagram
        self.via = ""

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._on_datagram(data, self.via)


class RawClient:
    """A logged-in test client; build it with :func:`connect`."""

    def __init__(self, ws: ClientConnection, account: Account, login_ok: control.LoginOk) -> None:
        self.ws = ws
        self.account = account
        self.user_id = account.user_id
        self.login_ok = login_ok
        self.hop = media.HopSession(login_ok.session_index, login_ok.hop_key, "client")
        self.media_addr = (login_ok.media_host or "127.0.0.1", login_ok.media_port)
        self.history: list[control.Message] = []
        self._pending: list[control.Message] = []
        self.datagrams: list[Datagram] = []
        self._unclaimed: list[Datagram] = []
        self._signal = asyncio.Event()
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.decode_error = ""
        self.udp: asyncio.DatagramTransport | None = None
        self.sockets: list[asyncio.DatagramTransport] = []
        self.tunnel = False
        """Send media as MediaTunnel over the WebSocket instead of UDP."""
        self.kid: int | None = None
        """The SFrame KID put in front of voice frames (the relay forwards only the talker's
        own); ``None`` sends frame bytes exactly as given."""
        self.answer_probes = True
        """Answer the relay's roaming probes with a keepalive on the current path, as radios do."""
        self._answers: set[asyncio.Future[None]] = set()
        self.probe_replies: list[Datagram] = []
        self._awaiting_answer: collections.Counter[str] = collections.Counter()
        """The relay's answers to the keepalives that answered its probes."""
        self._nonces = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    # --- receiving ---------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                assert isinstance(raw, bytes), "the server sent a text frame"
                message = control.decode(raw)
                if isinstance(message, control.MediaTunnel):
                    self._on_datagram(message.datagram, "tunnel")
                    continue
                self.history.append(message)
                self._pending.append(message)
                self._signal.set()
        except websockets.ConnectionClosed:
            pass
        except ProtocolError as exc:
            # The server sent a frame its own protocol refuses: a server bug, say so.
            self.decode_error = f"undecodable frame from the server: {exc}"
        finally:
            self.closed = True
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            self._signal.set()

    def _on_datagram(self, data: bytes, via: str) -> None:
        try:
            kind, inner = self.hop.open(data, via)
        except ProtocolError:
            kind, inner = None, None
        solicited = kind == media.KEEPALIVE and self._awaiting_answer[via] > 0
        if solicited:
            self._awaiting_answer[via] -= 1
        datagram = Datagram(data, via, kind, inner, solicited)
        self.datagrams.append(datagram)
        self._unclaimed.append(datagram)
        self._signal.set()
        if kind == media.PROBE and self.answer_probes and not self.closed:
            answer = asyncio.ensure_future(self._answer_probe())
            self._answers.add(answer)
            answer.add_done_callback(self._answers.discard)

    async def _answer_probe(self) -> None:
        # The relay's answer to our keepalive is claimed here, so that a test waiting for
        # some other keepalive (wait_moved) does not take it for that.
        self.probe_replies.append(await self.keepalive())
        self._signal.set()

    async def _wait(self, find: Callable[[], Any], timeout: float, what: str) -> Any:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = find()
                    if found is not None:
                        return found
                    if self.closed:
                        raise ConnectionError(
                            f"{self.user_id}: connection closed ({self.close_code}"
                            f" {self.close_reason!r}) while waiting for {what}"
                            f" {self.decode_error}"
                        )
                    self._signal.clear()
                    await self._signal.wait()
        except TimeoutError:
            seen = [control.tag_of(m) for m in self._pending]
            raise AssertionError(
                f"{self.user_id}: no {what} within {timeout}s (unclaimed messages: {seen})"
            ) from None

    async def wait_for(
        self,
        kind: type[M],
        predicate: Callable[[M], bool] | None = None,
        timeout: float = TIMEOUT,
    ) -> M:
        """The first unclaimed message of ``kind`` matching ``predicate``; claims it."""

        def find() -> M | None:
            for i, message in enumerate(self._pending):
                if isinstance(message, kind) and (predicate is None or predicate(message)):
                    del self._pending[i]
                    return message
            return None

        found: M = await self._wait(find, timeout, kind.__name__)
        return found

    async def wait_datagram(
        self,
        predicate: Callable[[Datagram], bool] | None = None,
        *,
        kind: int = media.DATA,
        timeout: float = TIMEOUT,
    ) -> Datagram:
        """The first unclaimed authenticated datagram of ``kind`` matching ``predicate``."""

        def find() -> Datagram | None:
            for i, datagram in enumerate(self._unclaimed):
                if datagram.kind == kind and (predicate is None or predicate(datagram)):
                    del self._unclaimed[i]
                    return datagram
            return None

        found: Datagram = await self._wait(find, timeout, f"datagram of type {kind}")
        return found

    def received(self, kind: type[M]) -> list[M]:
        """Every message of ``kind`` received so far (claimed or not)."""
        return [m for m in self.history if isinstance(m, kind)]

    def media_received(self) -> list[Datagram]:
        """Every authenticated DATA datagram received so far."""
        return [d for d in self.datagrams if d.kind == media.DATA]

    async def wait_closed(self, timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._reader)

    # --- sending -----------------------------------------------------------------------------

    async def send(self, message: control.Message) -> None:
        await self.ws.send(control.encode(message))

    async def ping(self) -> None:
        """A Ping/Pong round trip: everything sent before it has been handled by the server."""
        nonce = next(self._nonces)
        await self.send(control.Ping(nonce=nonce))
        await self.wait_for(control.Pong, lambda p: p.nonce == nonce)

    async def open_udp(self) -> asyncio.DatagramTransport:
        """A new local UDP socket; it becomes the one media is sent from."""
        loop = asyncio.get_running_loop()
        protocol = _UdpProtocol(self._on_datagram)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: protocol, local_addr=("127.0.0.1", 0)
        )
        protocol.via = f"udp:{transport.get_extra_info('sockname')[1]}"
        self.udp = transport
        self.sockets.append(transport)
        return transport

    @property
    def via(self) -> str:
        """How the client currently receives media (the ``via`` of its datagrams)."""
        if self.tunnel or self.udp is None:
            return "tunnel"
        return f"udp:{self.udp.get_extra_info('sockname')[1]}"

    async def send_datagram(self, datagram: bytes) -> None:
        if self.tunnel:
            await self.send(control.MediaTunnel(datagram=datagram))
        else:
            assert self.udp is not None, "open_udp() first"
            self.udp.sendto(datagram, self.media_addr)

    async def keepalive(self) -> Datagram:
        """Send a KEEPALIVE and wait for the server's answer (proves the path both ways)."""
        via = self.via
        self._awaiting_answer[via] += 1
        await self.send_datagram(self.hop.seal(b"", media.KEEPALIVE))
        return await self.wait_datagram(
            lambda d: d.via == via and d.solicited, kind=media.KEEPALIVE
        )

    def inner(
        self, channel_id: int, burst_id: int, sequence: int, frame: bytes, flags: int = 0
    ) -> bytes:
        """The inner frame :meth:`send_media` sends: an SFrame header (:attr:`kid`, CTR =
        ``sequence``) then ``frame``, unless it is a statement or there is no KID."""
        if self.kid is not None and not flags & media.SIGNATURE:
            frame = encode_header(self.kid, sequence) + frame
        return media.pack_inner(channel_id, burst_id, sequence, flags, frame)

    def seal_media(
        self, channel_id: int, burst_id: int, sequence: int, frame: bytes, flags: int = 0
    ) -> bytes:
        return self.hop.seal(self.inner(channel_id, burst_id, sequence, frame, flags))

    async def send_media(
        self, channel_id: int, burst_id: int, sequence: int, frame: bytes, flags: int = 0
    ) -> bytes:
        """Seal and send one media datagram; returns the datagram (to replay it)."""
        datagram = self.seal_media(channel_id, burst_id, sequence, frame, flags)
        await self.send_datagram(datagram)
        return datagram

    # --- high-level steps --------------------------------------------------------------------

    async def affiliate(self, channel_id: int) -> control.Affiliated:
        await self.send(control.Affiliate(channel_id=channel_id))
        return await self.wait_for(control.Affiliated, lambda m: m.channel_id == channel_id)

    async def request_floor(self, channel_id: int, priority: int = 1) -> None:
        await self.send(control.FloorRequest(channel_id=channel_id, priority=priority))

    async def take_floor(self, channel_id: int, priority: int = 1) -> control.FloorGranted:
        await self.request_floor(channel_id, priority)
        return await self.wait_for(control.FloorGranted, lambda m: m.channel_id == channel_id)

    async def wait_probe_answered(self, count: int = 1) -> None:
        """Until ``count`` probes were answered and the relay acknowledged each answer."""
        await self._wait(
            lambda: True if len(self.probe_replies) >= count else None, TIMEOUT, "probe answers"
        )

    async def wait_moved(self) -> Datagram:
        """The keepalive the relay sends to the current path once it moved the session here.

        An unsolicited keepalive: if it overtook the answer to one of ours, it was taken for
        that answer and the answer, arriving after it, is the one returned (still after the
        move), so this never returns before the move.
        """
        via = self.via
        return await self.wait_datagram(
            lambda d: d.via == via and not d.solicited, kind=media.KEEPALIVE
        )

    async def close(self) -> None:
        for transport in self.sockets:
            transport.close()
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, *self._answers, return_exceptions=True)


async def connect(
    server: RelayServer,
    account: Account,
    *,
    udp: bool = True,
    receive_buffer: int | None = None,
    kid: int | None = None,
    source: str | None = None,
) -> RawClient:
    """Log ``account`` in; with ``udp`` open a UDP socket and prove the media path with a
    keepalive, else send media over the WebSocket tunnel. ``kid`` is the SFrame KID its
    voice frames carry (:attr:`RawClient.kid`); ``source`` the local address to connect
    from. Raises :class:`LoginRefused`."""
    ws, fingerprint = await open_control(server, receive_buffer=receive_buffer, source=source)
    try:
        hello = await recv_message(ws)
        assert isinstance(hello, control.Hello), hello
        await ws.send(control.encode(login_message(account, hello.server_nonce, fingerprint)))
        reply = await recv_message(ws)
    except BaseException:
        await ws.close()
        raise
    if isinstance(reply, control.Error):
        await ws.close()
        raise LoginRefused(reply)
    assert isinstance(reply, control.LoginOk), reply
    assert reply.user_id == account.user_id
    client = RawClient(ws, account, reply)
    client.kid = kid
    if udp:
        await client.open_udp()
    else:
        client.tunnel = True
    await client.keepalive()
    return client


@contextlib.asynccontextmanager
async def logged_in(
    server: RelayServer,
    org: Org,
    *users: str,
    affiliate: bool = True,
    tunnel: tuple[str, ...] = (),
) -> AsyncIterator[dict[str, RawClient]]:
    """Log ``users`` in (``tunnel`` ones without UDP), affiliated to the patrol channel, each
    sending voice frames under its own SFrame KID (:func:`kid_of`)."""
    clients: dict[str, RawClient] = {}
    try:
        for user in users:
            clients[user] = await connect(
                server, org.accounts[user], udp=user not in tunnel, kid=kid_of(org, user)
            )
            if affiliate:
                await clients[user].affiliate(org.channel_id)
        yield clients
    finally:
        for client in clients.values():
            await client.close()
