"""BatchSender: real UDP sockets on loopback get every datagram, byte for byte, in order;
errors are reported per datagram and a full socket buffer falls back to the transport's queue.

Named test_server_* so that it runs on both event loops (tests/ptt_server/conftest.py): on
uvloop's datagram transport, which the relay uses, and on asyncio's.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from ptt_server import batch_send
from ptt_server.batch_send import Address, BatchSender, PlainSender, batch_sender, libc_sendmmsg


def test_this_c_library_has_sendmmsg() -> None:
    """Debian's glibc has it; without it the relay falls back to one sendto per datagram and
    every batch test below would measure the fallback, so say so instead of skipping."""
    assert libc_sendmmsg() is not None, "no sendmmsg(2) in this C library"


@dataclass
class Receiver(asyncio.DatagramProtocol):
    """One listener socket: what it received, in order."""

    got: list[bytes] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.got.append(data)
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.got) < count:
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Rig:
    """A sending endpoint and listener endpoints on one loopback address family."""

    sender: asyncio.DatagramTransport
    receivers: list[Receiver]
    addresses: list[Address]
    errors: list[OSError]

    def batch(self, sendmmsg: Callable[[int, int, int, int], int] | None = None) -> BatchSender:
        sock = self.sender.get_extra_info("socket")
        function = sendmmsg or libc_sendmmsg()
        assert function is not None
        return BatchSender(
            self.sender,  # type: ignore[arg-type]
            sock.fileno(),
            sock.family,
            function,
            self.errors.append,
        )


async def open_rig(host: str, listeners: int) -> tuple[Rig, list[asyncio.BaseTransport]]:
    loop = asyncio.get_running_loop()
    opened: list[asyncio.BaseTransport] = []
    sender, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(host, 0))
    opened.append(sender)
    receivers, addresses = [], []
    for _ in range(listeners):
        transport, receiver = await loop.create_datagram_endpoint(Receiver, local_addr=(host, 0))
        opened.append(transport)
        receivers.append(receiver)
        addresses.append(tuple(transport.get_extra_info("sockname")))
    return Rig(sender, receivers, addresses, []), opened


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made, opened = await open_rig("127.0.0.1", 8)
    yield made
    for transport in opened:
        transport.close()


def fan_out(rig: Rig, rounds: int, size: int | None = None) -> list[list[bytes]]:
    """Datagrams for every listener per round (each unique); returns what each should get."""
    expected: list[list[bytes]] = [[] for _ in rig.receivers]
    for n in range(rounds):
        for i in range(len(rig.receivers)):
            length = size if size is not None else 20 + (n * 7 + i * 13) % 900
            datagram = f"{n}:{i}:".encode() + os.urandom(length)
            expected[i].append(datagram)
    return expected


def flatten(rig: Rig, expected: list[list[bytes]]) -> tuple[list[bytes], list[Address]]:
    datagrams, addresses = [], []
    for n in range(len(expected[0])):
        for i, address in enumerate(rig.addresses):
            datagrams.append(expected[i][n])
            addresses.append(address)
    return datagrams, addresses


async def received_all(rig: Rig, expected: list[list[bytes]]) -> None:
    for receiver, wanted in zip(rig.receivers, expected, strict=True):
        await receiver.wait_for(len(wanted))
        assert receiver.got == wanted  # byte for byte, and in the order sent


async def test_one_frame_to_every_listener_arrives_byte_for_byte(rig: Rig) -> None:
    sender = rig.batch()
    expected = fan_out(rig, rounds=1, size=109)  # a fan-out: one size for everyone
    sender.send_all(*flatten(rig, expected))
    await received_all(rig, expected)
    assert rig.errors == []


async def test_mixed_sizes_and_more_than_one_call_of_messages(rig: Rig) -> None:
    sender = rig.batch()
    # 8 listeners x 70 rounds: more than CAPACITY messages, so several system calls
    rounds = batch_send.CAPACITY // len(rig.receivers) + 6
    expected = fan_out(rig, rounds=rounds)
    sender.send_all(*flatten(rig, expected))
    await received_all(rig, expected)
    assert rig.errors == []


async def test_ipv6_addresses() -> None:
    # The machines this runs on have ::1 (the radios' ICE tests see IPv6 too): an IPv6
    # sockaddr is a different struct in the sendmmsg binding, so it must be sent for real.
    made, opened = await open_rig("::1", 3)
    try:
        expected = fan_out(made, rounds=3, size=64)
        made.batch().send_all(*flatten(made, expected))
        await received_all(made, expected)
    finally:
        for transport in opened:
            transport.close()


async def test_an_error_loses_that_datagram_only_and_is_reported_once(rig: Rig) -> None:
    # The kernel refuses a broadcast without SO_BROADCAST (EACCES), mid-batch: sendmmsg stops
    # there, and the rest must still go out.
    sender = rig.batch()
    expected = fan_out(rig, rounds=2, size=50)
    datagrams, addresses = flatten(rig, expected)
    datagrams.insert(5, b"to nobody")
    addresses.insert(5, ("255.255.255.255", 9))
    sender.send_all(datagrams, addresses)
    await received_all(rig, expected)
    assert [e.errno for e in rig.errors] == [errno.EACCES]


async def test_a_full_socket_buffer_hands_the_rest_to_the_transport_in_order(rig: Rig) -> None:
    # EAGAIN cannot be made on demand on loopback (its datagrams leave the send buffer at
    # once), so the real sendmmsg is wrapped: it sends 3 messages, then says "try again".
    real = libc_sendmmsg()
    assert real is not None
    calls: list[int] = []

    def full_after_three(fd: int, messages: int, count: int, flags: int) -> int:
        calls.append(count)
        if len(calls) == 1:
            return real(fd, messages, min(count, 3), flags)
        ctypes.set_errno(errno.EAGAIN)
        return -1

    sender = rig.batch(full_after_three)
    expected = fan_out(rig, rounds=2, size=80)
    sender.send_all(*flatten(rig, expected))
    await received_all(rig, expected)
    assert calls == [16, 13] and rig.errors == []


async def test_a_short_count_is_sent_again_from_the_first_unsent(rig: Rig) -> None:
    real = libc_sendmmsg()
    assert real is not None
    calls: list[int] = []

    def two_at_a_time(fd: int, messages: int, count: int, flags: int) -> int:
        calls.append(count)
        return real(fd, messages, min(count, 2), flags)

    sender = rig.batch(two_at_a_time)
    expected = fan_out(rig, rounds=1, size=30)
    sender.send_all(*flatten(rig, expected))
    await received_all(rig, expected)
    assert calls == [8, 6, 4, 2]


async def test_mismatched_lists_are_refused(rig: Rig) -> None:
    with pytest.raises(ValueError, match="2 datagrams for 1 addresses"):
        rig.batch().send_all([b"a", b"b"], rig.addresses[:1])


async def test_batch_sender_picks_sendmmsg_for_a_udp_socket(rig: Rig) -> None:
    assert isinstance(batch_sender(rig.sender, rig.errors.append), BatchSender)


async def test_plain_sender_sends_the_same(rig: Rig) -> None:
    expected = fan_out(rig, rounds=2)
    PlainSender(rig.sender).send_all(*flatten(rig, expected))  # type: ignore[arg-type]
    await received_all(rig, expected)
