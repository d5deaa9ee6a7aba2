"""The radio's media hop to the relay: UDP, or the WebSocket tunnel when UDP is blocked.

:class:`MediaPath` holds the hop-layer session of one login (``ptt_protocol.media``), the
UDP socket, and which way datagrams go. At login it sends a keepalive over UDP and waits
for the relay's answer; without one it falls back to the tunnel (the same sealed datagrams
inside ``MediaTunnel`` control messages). It keeps UDP mappings open with keepalives, answers
the relay's probes on the current path (the relay checks the old path before it moves a
roamed session), and measures loss on the downlink.

Media frames it opens go to ``on_media`` (the key ring's checks); what it sends is already
sealed end to end (``ptt_client.e2e``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlsplit

from ptt_client import events
from ptt_client.loss import LossMeter
from ptt_protocol import control, media
from ptt_protocol.errors import ProtocolError

__all__ = ["KEEPALIVE_INTERVAL", "UDP_PROBE_TIMEOUT", "MediaPath"]

UDP_PROBE_TIMEOUT: Final = 1.0
"""Seconds to wait for the server's keepalive answer before falling back to the tunnel."""
KEEPALIVE_INTERVAL: Final = 10.0
"""UDP keepalives hold NAT mappings open (most expire after 30 s or more)."""


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, path: MediaPath) -> None:
        self._path = path

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self._path.datagram_received(data) == media.PROBE:
            self._path.answer_probe_udp()

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable while the server restarts: the control connection notices


class MediaPath:
    """The media hop of one radio, re-opened at every login."""

    def __init__(
        self,
        *,
        use_udp: bool,
        media_address: tuple[str, int] | None,
        keepalive_interval: float,
        on_media: Callable[[bytes], None],
        send_tunnelled: Callable[[bytes], Awaitable[None]],
        emit: Callable[[object], None],
    ) -> None:
        self.use_udp = use_udp
        self.media_address = media_address
        self.keepalive_interval = keepalive_interval
        self._on_media = on_media
        self._send_tunnelled = send_tunnelled
        self._emit = emit
        self.hop: media.HopSession | None = None
        self.udp: asyncio.DatagramTransport | None = None
        self.path = "tunnel"
        """``udp`` or ``tunnel``: which way datagrams go now."""
        self.loss = LossMeter()
        """Loss measured on the server-to-radio hop (link quality, Opus loss hint)."""
        self._confirmed = asyncio.Event()

    async def open(self, reply: control.LoginOk, server_url: str) -> None:
        """A new login: its hop session, and UDP if the relay answers on it."""
        self.hop = media.HopSession(reply.session_index, reply.hop_key, "client")
        self.path = "tunnel"
        if self.use_udp:
            host = reply.media_host or urlsplit(server_url).hostname or "127.0.0.1"
            address = self.media_address or (host, reply.media_port)
            loop = asyncio.get_running_loop()
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self), remote_addr=address
                )
            except (OSError, ValueError):
                # ValueError: a host no resolver accepts ("a..b" is a UnicodeError, a NUL a
                # ValueError); the relay sent it, so it must not end the connection task.
                transport = None
            if transport is not None:
                self.udp = transport
                if await self.confirm_udp(UDP_PROBE_TIMEOUT):
                    self.path = "udp"
                else:
                    self.close()  # UDP blocked
        if self.path == "tunnel":
            # The relay learns the tunnel is this radio's path from a datagram on it.
            await self.send(self.seal_keepalive())
        self._emit(events.MediaPath(self.path))

    async def confirm_udp(self, timeout: float) -> bool:
        """A keepalive on the UDP socket and the relay's answer to it: every datagram the
        relay sent before answering has been handled (loopback keeps their order)."""
        if self.udp is None:
            return False
        self._confirmed.clear()
        self.udp.sendto(self.seal_keepalive())
        try:
            async with asyncio.timeout(timeout):
                await self._confirmed.wait()
        except TimeoutError:
            return False
        return True

    def seal(self, inner: bytes, kind: int = media.DATA) -> bytes:
        """``inner`` (already sealed end to end) in a hop-layer datagram of this session."""
        if self.hop is None:
            raise ProtocolError("no media session: not logged in yet")
        return self.hop.seal(inner, kind)

    def seal_keepalive(self) -> bytes:
        return self.seal(b"", media.KEEPALIVE)

    async def send(self, datagram: bytes) -> None:
        """Send on the current path (UDP, else the tunnel while the control session is up)."""
        if self.path == "udp" and self.udp is not None:
            self.udp.sendto(datagram)
        else:
            await self._send_tunnelled(datagram)

    async def keepalive(self) -> None:
        """Hold the UDP mapping open until the socket closes (a task per login)."""
        while self.udp is not None:
            await asyncio.sleep(self.keepalive_interval)
            if self.udp is not None:
                self.udp.sendto(self.seal_keepalive())

    def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
            self.udp = None
        self.path = "tunnel"

    # --- receiving -------------------------------------------------------------------------

    def datagram_received(self, data: bytes) -> int | None:
        """Open and handle one datagram from the relay; its type, or None if refused."""
        hop = self.hop
        if hop is None:
            return None
        try:
            kind, inner = hop.open(data, "server")
        except ProtocolError:
            return None
        self.loss.record(media.peek_counter(data))
        if kind == media.KEEPALIVE:
            self._confirmed.set()
        elif kind != media.PROBE:  # a probe is answered by the caller, on the current path
            self._on_media(inner)
        return kind

    async def tunnelled(self, datagram: bytes) -> None:
        """A datagram that came over the WebSocket tunnel."""
        if self.datagram_received(datagram) == media.PROBE:
            # The relay checks we are still on this path before moving us: answer on the
            # path media takes now.
            with contextlib.suppress(ProtocolError):
                await self.send(self.seal_keepalive())

    def answer_probe_udp(self) -> None:
        """A probe came over UDP: answer with a keepalive on the current path."""
        if self.path == "udp" and self.udp is not None:
            self.udp.sendto(self.seal_keepalive())
