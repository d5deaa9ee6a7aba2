"""A UDP path between one radio and the relay that tests can tamper with, on loopback.

The radio sends its media to :attr:`PathTap.address` (``RadioClient(media_address=...)``).
The tap forwards each datagram to the relay from its *upstream* socket, so the relay sees
the upstream's port as the radio's address, as through a NAT, and forwards the relay's
answers back. A test can then:

- :meth:`withhold` the radio's next datagram of a type (an on-path attacker capturing it),
  and :meth:`inject` it later from the attacker's own socket;
- :meth:`rebind`: replace the upstream socket (the NAT forgot the mapping), so the relay
  sees the radio at a new port and the old port answers nothing.

Everything the relay sends to the upstream and to the attacker socket is recorded with its
arrival time (loop time), so a test can wait for it and check what must not have arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ptt_protocol import media

Address = tuple[str, int]


@dataclass
class Arrival:
    """One datagram the relay sent to a socket of the tap."""

    data: bytes
    at: float

    @property
    def kind(self) -> int:
        return self.data[1]


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self._on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's UDP transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._on_datagram(data, addr)


class PathTap:
    """The radio's UDP path to ``relay``; build with :meth:`open`, end with :meth:`close`."""

    def __init__(self, relay: Address) -> None:
        self.relay = relay
        self.radio: Address | None = None
        self.upstreams: list[_Socket] = []
        self.downlink: list[list[Arrival]] = []
        """What the relay sent to each upstream socket, by socket (the last is current)."""
        self.uplink_at: list[list[float]] = []
        """When the tap sent each of the radio's datagrams out of each upstream socket."""
        self.attacker_got: list[Arrival] = []
        self._front: _Socket | None = None
        self._attacker: _Socket | None = None
        self._withhold: dict[int, asyncio.Future[bytes]] = {}
        self._changed = asyncio.Event()

    @classmethod
    async def open(cls, relay: Address) -> PathTap:
        tap = cls(relay)
        tap._front = await tap._bind(tap._from_radio)
        tap._attacker = await tap._bind(tap._to_attacker)
        await tap.rebind()
        return tap

    async def _bind(self, on_datagram: Callable[[bytes, Address], None]) -> _Socket:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: _Socket(on_datagram), local_addr=("127.0.0.1", 0)
        )
        return protocol

    @property
    def address(self) -> Address:
        """Where the radio sends its media."""
        return self._port_of(self._front)

    @property
    def upstream_port(self) -> int:
        """The radio's port as the relay sees it now."""
        return self._port_of(self.upstreams[-1])[1]

    @property
    def attacker_port(self) -> int:
        return self._port_of(self._attacker)[1]

    @staticmethod
    def _port_of(sock: _Socket | None) -> Address:
        assert sock is not None and sock.transport is not None
        address: Address = sock.transport.get_extra_info("sockname")
        return address

    async def rebind(self) -> None:
        """A new upstream socket; the old one is closed (what reaches it now is lost)."""
        if self.upstreams and self.upstreams[-1].transport is not None:
            self.upstreams[-1].transport.close()
        number = len(self.upstreams)
        self.downlink.append([])
        self.uplink_at.append([])
        self.upstreams.append(await self._bind(lambda data, addr: self._from_relay(number, data)))

    def withhold(self, kind: int) -> asyncio.Future[bytes]:
        """The radio's next datagram of ``kind``, captured and not delivered."""
        captured: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._withhold[kind] = captured
        return captured

    def inject(self, datagram: bytes) -> None:
        """Send ``datagram`` to the relay from the attacker's socket."""
        assert self._attacker is not None and self._attacker.transport is not None
        self._attacker.transport.sendto(datagram, self.relay)

    def deliver(self, datagram: bytes) -> None:
        """Send ``datagram`` to the relay the radio's way (from the current upstream socket)."""
        upstream = self.upstreams[-1]
        assert upstream.transport is not None
        upstream.transport.sendto(datagram, self.relay)

    async def wait(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Until ``condition()`` holds; checked after every datagram the tap handles."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def _from_radio(self, data: bytes, addr: Address) -> None:
        self.radio = addr
        if len(data) >= media.MIN_DATAGRAM_SIZE:
            captured = self._withhold.pop(data[1], None)
            if captured is not None and not captured.done():
                captured.set_result(data)
                self._changed.set()
                return
        upstream = self.upstreams[-1]
        if upstream.transport is not None:
            upstream.transport.sendto(data, self.relay)
            self.uplink_at[-1].append(asyncio.get_running_loop().time())
        self._changed.set()

    def _from_relay(self, number: int, data: bytes) -> None:
        self.downlink[number].append(Arrival(data, asyncio.get_running_loop().time()))
        front = self._front
        if self.radio is not None and front is not None and front.transport is not None:
            front.transport.sendto(data, self.radio)
        self._changed.set()

    def _to_attacker(self, data: bytes, addr: Address) -> None:
        self.attacker_got.append(Arrival(data, asyncio.get_running_loop().time()))
        self._changed.set()

    def close(self) -> None:
        for sock in (self._front, self._attacker, *self.upstreams):
            if sock is not None and sock.transport is not None:
                sock.transport.close()
