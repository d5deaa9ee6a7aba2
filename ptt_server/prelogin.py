"""Connections that have not logged in yet: how many the server holds, and for how long.

A connection is *pending* from the moment its TCP connection is accepted until its login is
verified. Pending connections cost memory (about 300 KB each once TLS has started) and give
nothing back, so:

- at most ``max_pending_logins`` are held. A connection past the cap is closed right after
  ``accept``, before any TLS: the refusal costs no handshake and no buffers. To keep one
  source from locking everybody out by holding the cap with idle connections, a newcomer
  from a source holding fewer pending connections than the heaviest source (by at least
  two) is admitted in place of that source's oldest one (max-min fairness; a source is an
  IPv4 address or an IPv6 /64); when every source holds one place (many sources), a
  newcomer from a source holding none takes the oldest place
  (:meth:`PendingLogins._to_displace`);
- each gets ``login_timeout`` seconds from ``accept`` for everything before the login is
  verified: the TLS handshake, the WebSocket opening handshake, Hello and Login. Then it
  is closed, whatever step it is at.

To see a connection from ``accept`` on (``loop.create_server(ssl=...)`` hides it until its
handshake is done, and drops it silently when the handshake fails), the server listens on
plain TCP and :class:`GatedConnection` starts TLS itself with ``loop.start_tls`` once the
connection is admitted, then hands the TLS transport to websockets. Closed connections also
feed :class:`~ptt_server.heap.HeapTrimmer`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, ClassVar, Final, Generic, TypeVar, cast

from websockets.asyncio.server import ServerConnection

from ptt_server.heap import HeapTrimmer
from ptt_server.metrics import ServerMetrics

K = TypeVar("K", bound=Hashable)

TLS_SHUTDOWN_TIMEOUT: Final = 10.0
"""Seconds a closing TLS connection may take (websockets' own default close timeout)."""
IPV6_SOURCE_PREFIX: Final = 64
"""IPv6 sources are counted by /64: one subscriber usually holds a whole /64."""


def source_of(peername: Any) -> str:
    """The source a connection is counted against: its IPv4 address or its IPv6 /64."""
    try:
        address = ipaddress.ip_address(peername[0])
    except (TypeError, ValueError, IndexError):
        return "?"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_SOURCE_PREFIX), strict=False))
    return str(address)


class PendingLogins(Generic[K]):
    """Which connections are pending, by source; the admission rule (module docstring).

    Pure bookkeeping, no I/O: ``admit`` says whether a newcomer gets in and which pending
    connection, if any, it displaces; the caller closes that one.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"pending login limit {limit} must be at least 1")
        self.limit = limit
        self._source: dict[K, str] = {}
        self._by_source: dict[str, dict[K, None]] = {}  # insertion order: oldest first

    def __len__(self) -> int:
        return len(self._source)

    def __contains__(self, key: object) -> bool:
        return key in self._source

    def held_by(self, source: str) -> int:
        return len(self._by_source.get(source, ()))

    def admit(self, key: K, source: str) -> tuple[bool, K | None]:
        """``(admitted, displaced)``: whether ``key`` is now pending, and who made room."""
        if key in self._source:
            raise ValueError("connection is already pending")
        displaced: K | None = None
        if len(self._source) >= self.limit:
            displaced = self._to_displace(self.held_by(source))
            if displaced is None:
                return False, None
            self.remove(displaced)
        self._source[key] = source
        self._by_source.setdefault(source, {})[key] = None
        return True, displaced

    def _to_displace(self, held: int) -> K | None:
        """Who makes room for a newcomer whose source holds ``held``, or None (refused).

        A source holding two or more than the newcomer's gives up its oldest: the shares get
        fairer. Failing that, a newcomer whose source holds nothing takes the oldest place
        of the sources holding one (the shares stay as fair). Without that second rule, as
        many sources as the cap holding one place each (a botnet, or one host with an IPv6
        /48) locked every radio out for as long as they kept it up; now an attacker has to
        open a connection from a source with nothing pending for each place it takes, and
        takes the oldest place first, which is an attacker's connection sitting out its
        timeout sooner than a radio's, whose login takes a few round trips.
        """
        heaviest = max(self._by_source.values(), key=len)
        if len(heaviest) >= held + 2:
            return next(iter(heaviest))
        if held > 0:
            return None  # admitting would not make the shares any fairer
        # Every source holds one: the oldest pending connection (dicts keep insertion order).
        return next(iter(self._source))

    def remove(self, key: K) -> bool:
        """Forget ``key`` (logged in, or closed); False if it was not pending."""
        source = self._source.pop(key, None)
        if source is None:
            return False
        held = self._by_source[source]
        del held[key]
        if not held:
            del self._by_source[source]
        return True

    def keys(self) -> list[K]:
        return list(self._source)


class LoginGate:
    """The pre-login limits of one server; ``connection_class()`` goes to ``serve()``."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        limit: int,
        timeout: float,
        metrics: ServerMetrics,
        heap: HeapTrimmer,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        """``on_closed`` is called for every connection that closed before its login (the
        heap freezer counts them: :meth:`ptt_server.gc_freeze.GcFreezer.connection_ended`)."""
        if not timeout > 0:
            raise ValueError(f"login timeout {timeout} must be greater than 0")
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.pending: PendingLogins[GatedConnection] = PendingLogins(limit)
        self.heap = heap
        self.on_closed = on_closed
        self._metrics = metrics
        self._closing = False

    def connection_class(self) -> type[ServerConnection]:
        """A :class:`GatedConnection` subclass bound to this gate (``serve(create_connection=)``)."""
        return type("BoundGatedConnection", (GatedConnection,), {"gate": self})

    def admit(self, connection: GatedConnection, peername: Any) -> bool:
        if self._closing:
            return False
        admitted, displaced = self.pending.admit(connection, source_of(peername))
        if displaced is not None:
            displaced.expire("displaced")
        if not admitted:
            self._metrics.prelogin_closed.labels("refused").inc()
        self._update()
        return admitted

    def leave(self, connection: GatedConnection) -> None:
        if self.pending.remove(connection):
            self._update()

    def count(self, reason: str) -> None:
        self._metrics.prelogin_closed.labels(reason).inc()

    def _update(self) -> None:
        self._metrics.prelogin_pending.set(len(self.pending))

    def close(self) -> None:
        """Refuse new connections and close every pending one (server shutdown)."""
        self._closing = True
        for connection in self.pending.keys():
            connection.expire("shutdown")
        self.heap.close()


def logged_in(connection: ServerConnection) -> None:
    """The login on ``connection`` is verified: it is no longer pending (no timeout, no cap)."""
    if isinstance(connection, GatedConnection):
        connection.logged_in()


def _drop_frames(exc: BaseException) -> None:
    """Cut ``exc`` (and what it chains) loose from the frames it was raised through.

    The handshake's exception is also held by the future start_tls waited on, and its
    traceback holds that coroutine's frame, which holds the future: a reference cycle. The
    server freezes its heap every second (:mod:`ptt_server.gc_freeze`), and a cycle that
    reaches anything frozen (this connection, made before the last freeze) is never
    collected until the next full reclaim, up to an hour later, with the connection's TLS
    state (OpenSSL's buffers) inside: ``bench.waves`` grew about 1 MB a wave, 53 -> 119 MB
    over 60 waves, and still rising. Nothing reads these tracebacks.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


class GatedConnection(ServerConnection):
    """A websockets server connection admitted by a :class:`LoginGate`, which starts its TLS.

    Phases: ``refused`` (closed at accept), ``tls`` (handshake running), ``open`` (handed to
    websockets), ``lost`` (closed before the hand-over).

    ``loop.start_tls`` is driven by hand (:meth:`_step`) rather than in a task: its first part
    (put the TLS protocol on the transport) must run inside
    ``connection_made``, because uvloop starts reading as soon as ``connection_made`` returns
    and a ClientHello read before that would come here and be lost. After the handshake, the
    TLS layer may deliver data before ``start_tls`` has returned (CPython's SSLProtocol reads
    at once), so it is held and replayed after websockets' ``connection_made``.
    """

    gate: ClassVar[LoginGate]
    _phase = "new"
    _done = False
    """Closed, and accounted for."""
    _ended = False
    """Closed by the gate (timeout, displaced, shutdown)."""
    _logged_in = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        plain = cast(asyncio.Transport, transport)
        self._plain = plain
        self._early: list[bytes | None] = []
        self._deadline: asyncio.TimerHandle | None = None
        if not self.gate.admit(self, plain.get_extra_info("peername")):
            self._phase = "refused"
            plain.abort()
            return
        self._phase = "tls"
        self._deadline = self.loop.call_later(self.gate.timeout, self.expire, "timeout")
        self._handshake: Coroutine[Any, Any, asyncio.Transport | None] = self.loop.start_tls(
            plain,
            self,
            self.gate.ssl_context,
            server_side=True,
            ssl_handshake_timeout=self.gate.timeout,
            ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT,
        )
        self._step(None)

    def _step(self, _: object) -> None:
        """Run ``start_tls`` up to its next wait (a future), and on from there when it is done."""
        try:
            waiting = self._handshake.send(None)
        except StopIteration as finished:
            self._secured(finished.value)
            return
        except (Exception, asyncio.CancelledError) as exc:
            # Handshake failed or timed out, the peer left, or expire() closed the socket.
            _drop_frames(exc)
            self._plain.abort()
            self._finish()
            return
        if asyncio.isfuture(waiting):
            waiting.add_done_callback(self._step)
        else:  # a bare yield (asyncio.sleep(0)): go on at the next loop turn
            self.loop.call_soon(self._step, None)

    def _secured(self, secured: asyncio.Transport | None) -> None:
        if secured is None or secured.is_closing() or self._phase != "tls":
            self._plain.abort()
            self._finish()
            return
        self._phase = "open"
        super().connection_made(secured)
        early, self._early = self._early, []
        for data in early:
            if data is None:
                super().eof_received()
            else:
                super().data_received(data)

    def data_received(self, data: bytes) -> None:
        if self._phase == "tls":
            self._early.append(data)
        elif self._phase == "open":
            super().data_received(data)

    def eof_received(self) -> None:
        if self._phase == "tls":
            self._early.append(None)
        elif self._phase == "open":
            super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._phase == "open":
            super().connection_lost(exc)
            if not self._logged_in:
                # websockets keeps why its opening handshake failed (an EOF before the
                # request, a bad request) with the parser's frames, which hold the protocol
                # that holds it: the same kind of cycle as a failed TLS handshake's. Nothing
                # reads it after the connection is lost.
                for failure in (self.protocol.handshake_exc, exc):
                    if failure is not None:
                        _drop_frames(failure)
        elif self._phase == "tls":
            self._phase = "lost"
        self._finish()

    def expire(self, reason: str) -> None:
        """Close this connection because it is still not logged in (``timeout``, ``displaced``)."""
        if self._done or self._ended or self._logged_in:
            return
        self._ended = True
        self.gate.leave(self)  # at once (a displaced one has left already)
        self.gate.count(reason)
        if self._phase == "tls":
            # start_tls ends on a closed socket: with an error, or (uvloop, on our own abort)
            # with a dead transport that _secured must not hand over. Either way _step then
            # finishes this connection.
            self._phase = "lost"
            self._plain.abort()
        elif self._phase == "open":
            self.transport.abort()

    def logged_in(self) -> None:
        self._logged_in = True
        if self._deadline is not None:
            self._deadline.cancel()
        self.gate.leave(self)

    def _finish(self) -> None:
        if self._done or self._phase == "refused":
            return
        self._done = True
        if self._deadline is not None:
            self._deadline.cancel()
        if not (self._ended or self._logged_in):
            self.gate.count("closed")  # the peer left, or its TLS handshake failed
        self.gate.leave(self)
        self.gate.heap.connection_closed()
        if not self._logged_in and self.gate.on_closed is not None:
            self.gate.on_closed()
