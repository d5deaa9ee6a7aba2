"""One system call for a whole fan-out: ``sendmmsg(2)`` on Linux, through ctypes.

Why: forwarding one frame to 50 listeners was 50 ``sendto`` calls, and the relay spent 62 % of
its loop in them (py-spy at 120,000 forwarded packets/s). Most of that is the kernel's UDP and
IP path, which is paid per datagram whatever the call; what one ``sendmmsg`` saves is the 49
other system-call entries and uvloop's per-call work (argument parsing, the address turned
into a ``sockaddr`` each time): about 0.4 us of 6 per datagram in a loopback probe. Python's
``socket`` module has no ``sendmmsg``, hence the small binding here.

Layout: fixed ctypes arrays for up to :data:`CAPACITY` messages. Slot ``i``'s ``msghdr``
points at ``iovec[i]`` and at name slot ``i`` for good, so a batch only copies three blocks:
the datagrams (joined), their ``sockaddr``s (joined; cached per address, one size per socket
family) and, when the datagrams are all one size (a fan-out: one inner frame re-sealed per
listener), a cached ``iovec`` table for that size.

Errors keep the transport's semantics (uvloop's ``UDPTransport.sendto``, like asyncio's): a
full socket buffer (``EAGAIN``) hands the datagrams not yet sent to ``transport.sendto``,
which queues them and sends them when the socket drains; any other error (``ENOBUFS``,
``ENETUNREACH``, ...) is reported once through ``on_error``, as the transport reports it to
``error_received``, and that one datagram is dropped. While the transport holds a queue,
every datagram goes through it, so none overtakes the queue. ``sendmmsg`` returns early on
an error after the first message and loses the error (``man 2 sendmmsg``): the rest is sent
again from the first unsent one, which then reports its own error.

Where there is no ``sendmmsg`` (macOS, Windows) or the transport has no socket,
:func:`batch_sender` returns a :class:`PlainSender`: the same interface over ``sendto``.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Final, Protocol

Address = tuple[object, ...]
"""A UDP address as the transport reports it: ``(host, port)`` or ``(host, port, flow, scope)``."""

CAPACITY: Final = 512
"""Messages per system call; a larger batch goes out in several."""
SLOT_BYTES: Final = 1500
"""Data buffer per message slot (an Ethernet MTU; the relay's datagrams stay under 1200)."""
_ADDRESS_CACHE_LIMIT: Final = 65_536
"""Cached ``sockaddr``s before the cache starts over (radios roam; memory stays bounded)."""
_IOV_CACHE_LIMIT: Final = 64
"""Cached ``iovec`` tables (one per datagram size) before that cache starts over."""
_RETRY: Final = frozenset({errno.EAGAIN, errno.EWOULDBLOCK})


class Transport(Protocol):
    """What the sender needs of an asyncio datagram transport (uvloop's or asyncio's)."""

    def sendto(self, data: bytes, addr: Address) -> None: ...
    def get_write_buffer_size(self) -> int: ...
    def is_closing(self) -> bool: ...


class Sender(Protocol):
    """Sends datagrams, each to its address."""

    def send_all(self, datagrams: Sequence[bytes], addresses: Sequence[Address]) -> None:
        """Send ``datagrams[i]`` to ``addresses[i]`` for every ``i``."""


class PlainSender:
    """:class:`Sender` over ``transport.sendto``, one call per datagram (no ``sendmmsg``)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def send_all(self, datagrams: Sequence[bytes], addresses: Sequence[Address]) -> None:
        """Send ``datagrams[i]`` to ``addresses[i]`` for every ``i``."""
        sendto = self._transport.sendto
        for datagram, address in zip(datagrams, addresses, strict=True):
            sendto(datagram, address)


class _IOVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),  # socklen_t
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint))


_SENDMMSG: Final = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, use_errno=True
)
_SOCKADDR_IN: Final = struct.Struct("=H2s4s8x")
"""sockaddr_in: family (host order), port and address (network order), zero padding."""
_SOCKADDR_IN6: Final = struct.Struct("=H2sI16sI")
"""sockaddr_in6: family, port, flow info, address, scope id."""
_PORT: Final = struct.Struct("!H")
_IOVEC: Final = struct.Struct("PN")
"""struct iovec: base pointer, length (native layout, as ``_IOVec``)."""
assert _IOVEC.size == ctypes.sizeof(_IOVec)


def libc_sendmmsg() -> Callable[[int, int, int, int], int] | None:
    """``sendmmsg`` from the C library, or None when it has none (macOS, Windows)."""
    try:
        function = _SENDMMSG(("sendmmsg", ctypes.CDLL(None, use_errno=True)))
    except (OSError, AttributeError):
        return None
    sendmmsg: Callable[[int, int, int, int], int] = function
    return sendmmsg


def pack_sockaddr(family: int, address: Address) -> bytes:
    """The C ``sockaddr`` of ``address`` for a socket of ``family`` (AF_INET or AF_INET6).

    Raises ``ValueError`` for an address it cannot pack (a name, not a numeric address).
    """
    try:
        if family == socket.AF_INET:
            host, port = address
            return _SOCKADDR_IN.pack(
                socket.AF_INET, _PORT.pack(port), socket.inet_pton(socket.AF_INET, str(host))
            )
        host, port, flow, scope = address
        numeric = str(host).partition("%")[0]  # "fe80::1%eth0": the scope is the 4th field
        return _SOCKADDR_IN6.pack(
            socket.AF_INET6,
            _PORT.pack(port),
            socket.htonl(int(flow)),  # type: ignore[call-overload]
            socket.inet_pton(socket.AF_INET6, numeric),
            int(scope),  # type: ignore[call-overload]
        )
    except (OSError, TypeError, ValueError, struct.error) as exc:
        raise ValueError(f"cannot send to {address!r}: {exc}") from None


class BatchSender:
    """:class:`Sender` with one ``sendmmsg`` per :data:`CAPACITY` datagrams (module docstring)."""

    def __init__(
        self,
        transport: Transport,
        fd: int,
        family: int,
        sendmmsg: Callable[[int, int, int, int], int],
        on_error: Callable[[OSError], None],
    ) -> None:
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError(f"socket family {family} is not IPv4 or IPv6")
        self._transport = transport
        self._fd = fd
        self._family = family
        self._sendmmsg = sendmmsg
        self._on_error = on_error
        name_size = _SOCKADDR_IN.size if family == socket.AF_INET else _SOCKADDR_IN6.size
        self._name_size = name_size
        self._messages = (_MMsgHdr * CAPACITY)()
        self._iovecs = (_IOVec * CAPACITY)()
        self._names = (ctypes.c_char * (name_size * CAPACITY))()
        self._data = (ctypes.c_char * (SLOT_BYTES * CAPACITY))()
        data_at = ctypes.addressof(self._data)
        iovecs_at = ctypes.addressof(self._iovecs)
        names_at = ctypes.addressof(self._names)
        for i, message in enumerate(self._messages):
            header = message.msg_hdr
            header.msg_name = names_at + i * name_size
            header.msg_namelen = name_size
            header.msg_iov = iovecs_at + i * ctypes.sizeof(_IOVec)
            header.msg_iovlen = 1
        self._messages_at = ctypes.addressof(self._messages)
        self._data_at = data_at
        self._iovecs_at = iovecs_at
        self._names_at = names_at
        self._sockaddrs: dict[Address, bytes] = {}
        self._iov_tables: dict[int, bytes] = {}

    def send_all(self, datagrams: Sequence[bytes], addresses: Sequence[Address]) -> None:
        """Send ``datagrams[i]`` to ``addresses[i]`` for every ``i``."""
        count = len(datagrams)
        if count != len(addresses):
            raise ValueError(f"{count} datagrams for {len(addresses)} addresses")
        transport = self._transport
        if transport.get_write_buffer_size() or transport.is_closing():
            # The transport holds a queue (or is closing): it keeps the order and the rules.
            PlainSender(transport).send_all(datagrams, addresses)
            return
        for start in range(0, count, CAPACITY):
            blocked = self._send_batch(datagrams, addresses, start, min(count, start + CAPACITY))
            if blocked is not None:
                # The socket buffer is full: the transport queues what is left, in order.
                PlainSender(transport).send_all(datagrams[blocked:], addresses[blocked:])
                return

    def _send_batch(
        self, datagrams: Sequence[bytes], addresses: Sequence[Address], start: int, end: int
    ) -> int | None:
        """Send ``datagrams[start:end]``; the index of the first one ``EAGAIN`` left unsent,
        or None when none was."""
        chunk = datagrams[start:end]
        targets = addresses[start:end]
        count = end - start
        data = b"".join(chunk)
        size = len(chunk[0])
        if len(data) == size * count and size <= SLOT_BYTES:
            iov = self._iov_tables.get(size) or self._iov_table(size)
        elif len(data) <= SLOT_BYTES * CAPACITY:
            iov = self._iov_for(chunk)
        else:
            PlainSender(self._transport).send_all(chunk, targets)
            return None
        try:
            names = b"".join([self._sockaddr(a) for a in targets])
        except ValueError:
            # Not a numeric address: the transport resolves it or raises, as it always did.
            PlainSender(self._transport).send_all(chunk, targets)
            return None
        ctypes.memmove(self._iovecs_at, iov, count * ctypes.sizeof(_IOVec))
        ctypes.memmove(self._data_at, data, len(data))
        ctypes.memmove(self._names_at, names, len(names))
        sent = 0
        message_size = ctypes.sizeof(_MMsgHdr)
        while sent < count:
            done = self._sendmmsg(
                self._fd, self._messages_at + sent * message_size, count - sent, 0
            )
            if done >= 0:
                sent += done
                continue
            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            if code in _RETRY:
                return start + sent
            self._on_error(OSError(code, os.strerror(code)))
            sent += 1  # that datagram is lost, as a failed sendto's is
        return None

    def _sockaddr(self, address: Address) -> bytes:
        packed = self._sockaddrs.get(address)
        if packed is None:
            packed = pack_sockaddr(self._family, address)
            if len(self._sockaddrs) >= _ADDRESS_CACHE_LIMIT:
                self._sockaddrs.clear()
            self._sockaddrs[address] = packed
        return packed

    def _iov_table(self, size: int) -> bytes:
        """``iovec``s of every slot for datagrams of ``size`` bytes laid end to end."""
        at = self._data_at
        packed = b"".join([_IOVEC.pack(at + i * size, size) for i in range(CAPACITY)])
        if len(self._iov_tables) >= _IOV_CACHE_LIMIT:
            self._iov_tables.clear()
        self._iov_tables[size] = packed
        return packed

    def _iov_for(self, chunk: Sequence[bytes]) -> bytes:
        """``iovec``s for datagrams of different sizes laid end to end."""
        entries = []
        at = self._data_at
        for datagram in chunk:
            entries.append(_IOVEC.pack(at, len(datagram)))
            at += len(datagram)
        return b"".join(entries)


def batch_sender(transport: asyncio.BaseTransport, on_error: Callable[[OSError], None]) -> Sender:
    """A :class:`BatchSender` on ``transport``'s socket, or a :class:`PlainSender` where
    ``sendmmsg`` or the socket is not available."""
    sendto_transport: Transport = transport  # type: ignore[assignment]
    sendmmsg = libc_sendmmsg()
    sock = transport.get_extra_info("socket")
    if sendmmsg is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return PlainSender(sendto_transport)
    return BatchSender(sendto_transport, sock.fileno(), sock.family, sendmmsg, on_error)
