"""A seeded UDP impairment proxy: a bad cellular link between radios and the relay, on loopback.

Radios send their media to :attr:`ImpairmentProxy.address` instead of the relay's UDP port
(``RadioClient(media_address=proxy.address)``); the proxy forwards each datagram to the relay
and the relay's answers back, delaying, jittering and dropping them on the way, like
``tc qdisc ... netem`` does but in user space, per direction and reproducibly.

- :class:`Impairment` - what one direction does to datagrams: a fixed ``delay_ms``, a random
  extra delay of up to ``jitter_ms`` (``"uniform"`` over ``[0, jitter_ms]``, or ``"normal"``:
  half-normal with sigma ``jitter_ms / 2``, so about 95 % stay within ``jitter_ms``), a
  ``loss_pct`` share of them dropped, in runs of ``loss_burst`` datagrams on average (1: each
  one on its own; more: bursts, as when a radio fades, see :class:`Impairment`), and whether
  datagrams may overtake each other (``reorder``: each datagram is delayed on its own, so a
  short delay drawn after a long one reorders them, as on a real multi-path network;
  ``False`` keeps the order, like a single queue).
- :class:`ImpairedLink` - the sans-I/O decision for one direction: ``decide(now, size=...)``
  returns the delivery time of a datagram that arrived at ``now``, or ``None`` if it is lost.
  Loss and delay draw from two ``random.Random`` streams seeded from the link's seed, one draw
  each per datagram, so the same seed drops exactly the same datagrams (the n-th one's fate
  does not depend on the jitter setting, nor its delay on the loss model).
- :class:`ImpairmentProxy` - the asyncio proxy. Each radio (client address) gets its own
  upstream socket, so the relay sees one address per radio, as through a NAT, and its own
  pair of links seeded ``"{seed}:{flow}:up"`` / ``"{seed}:{flow}:down"`` (flows numbered in
  order of first datagram): one proxy per radio is exactly reproducible.

Errors: :class:`ImpairmentError` (``ValueError``) for settings outside their domain. Nothing a
peer sends can break the proxy: it only copies bytes, and caps the flows it keeps.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal, TypeGuard

Distribution = Literal["uniform", "normal"]
Address = tuple[str, int]

MAX_FLOWS: Final = 64
"""Client addresses one proxy serves; datagrams from further ones are dropped and counted."""
_MAX_DELAY_MS: Final = 10_000.0


class ImpairmentError(ValueError):
    """An impairment setting is outside its domain; nothing was changed."""


def _finite(value: object) -> TypeGuard[float]:
    """A finite int or float; not a bool, which would pass for 0 or 1 by accident."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _check_ms(name: str, value: object) -> float:
    if not _finite(value):
        raise ImpairmentError(f"{name}={value!r} must be a number of milliseconds")
    if not 0 <= value <= _MAX_DELAY_MS:
        raise ImpairmentError(f"{name}={value} ms must be between 0 and {_MAX_DELAY_MS:.0f}")
    return float(value)


def _gilbert_elliott(loss_pct: float, loss_burst: float) -> tuple[float, float]:
    """``(P(good->bad), P(bad->good))`` of the chain with that stationary loss and mean run."""
    leave = 1.0 / loss_burst
    loss = loss_pct / 100.0
    if loss >= 1.0:
        return math.inf, leave  # no chain loses everything and still ends its runs
    return leave * loss / (1.0 - loss), leave


@dataclass(frozen=True)
class Impairment:
    """What one direction of a link does to datagrams (see the module docstring).

    Loss: with ``loss_burst == 1`` each datagram is lost on its own, with probability
    ``loss_pct / 100``. With ``loss_burst > 1`` the link is a two-state Gilbert-Elliott chain,
    stepped once per datagram: every datagram in the *bad* state is lost, none in the *good*
    one; P(bad->good) = r = 1 / loss_burst, so runs of losses last ``loss_burst`` datagrams on
    average (geometric), and P(good->bad) = p = r * L / (1 - L) with L = loss_pct / 100, so
    that the stationary share of bad datagrams, p / (p + r), is L. A probability cannot exceed
    1, so ``loss_pct`` may be at most ``100 * loss_burst / (loss_burst + 1)`` (75 % for
    bursts of 3). The first datagram starts in the stationary state (bad with probability L).
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    distribution: Distribution = "uniform"
    loss_pct: float = 0.0
    reorder: bool = True
    loss_burst: float = 1.0
    """Mean length, in datagrams, of a run of consecutive losses (1: independent losses)."""

    def __post_init__(self) -> None:
        _check_ms("delay_ms", self.delay_ms)
        _check_ms("jitter_ms", self.jitter_ms)
        if self.distribution not in ("uniform", "normal"):
            raise ImpairmentError(f"distribution={self.distribution!r}: use 'uniform' or 'normal'")
        loss = self.loss_pct
        if not _finite(loss) or not 0 <= loss <= 100:
            raise ImpairmentError(f"loss_pct={loss!r} must be a percentage between 0 and 100")
        if not isinstance(self.reorder, bool):
            raise ImpairmentError(f"reorder={self.reorder!r} must be True or False")
        burst = self.loss_burst
        if not _finite(burst) or burst < 1:
            raise ImpairmentError(
                f"loss_burst={burst!r} must be a mean run length of at least 1 datagram"
                " (1 for independent losses)"
            )
        # A tolerance, so that the exact boundary (75 % with bursts of 3) survives rounding.
        if burst > 1 and _gilbert_elliott(loss, burst)[0] > 1 + 1e-9:
            fix = (
                f"lower loss_pct to at most {100 * burst / (burst + 1):.6g} or raise loss_burst"
                f" to at least {loss / (100 - loss):.6g}"
                if loss < 100
                else "use loss_burst=1 (losing everything is one endless run)"
            )
            raise ImpairmentError(
                f"loss_pct={loss} with loss_burst={burst} is impossible (P(good->bad) > 1): {fix}"
            )

    @property
    def clean(self) -> bool:
        """True when datagrams pass untouched."""
        return self.delay_ms == 0 and self.jitter_ms == 0 and self.loss_pct == 0

    def describe(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (for benchmark reports)."""
        return asdict(self)


CLEAN: Final = Impairment()


@dataclass
class LinkStats:
    """Counters of one direction (summed over flows by the proxy)."""

    received: int = 0
    """Datagrams that entered the link."""
    dropped: int = 0
    """Datagrams lost on purpose (``loss_pct``)."""
    loss_runs: int = 0
    """Maximal runs of consecutive dropped datagrams: ``dropped / loss_runs`` is the mean burst."""
    forwarded: int = 0
    """Datagrams handed to the socket on the far side."""
    reordered: int = 0
    """Datagrams delivered before one that entered the link earlier."""
    bytes_received: int = 0
    """Payload bytes of every datagram that entered the link, lost or not."""

    def add(self, other: LinkStats) -> None:
        self.received += other.received
        self.bytes_received += other.bytes_received
        self.dropped += other.dropped
        self.loss_runs += other.loss_runs
        self.forwarded += other.forwarded
        self.reordered += other.reordered


class ImpairedLink:
    """One direction's decisions, without I/O: time is passed in (seconds, any monotonic clock)."""

    def __init__(self, impairment: Impairment, seed: int | str) -> None:
        self.impairment = impairment
        # Two streams: whether the n-th datagram is lost depends only on the seed, not on
        # how many draws the jitter distribution used before it.
        self._loss_rng = random.Random(f"{seed}:loss")
        self._delay_rng = random.Random(f"{seed}:delay")
        self._latest = -math.inf
        # The last fate (None before the first): the Gilbert-Elliott state, and where loss runs
        # start. Kept for independent loss too, so set_impairment() can switch model midway.
        self._last_lost: bool | None = None
        self.stats = LinkStats()

    def _lost(self) -> bool:
        draw = self._loss_rng.random()  # exactly one draw per datagram, whatever the model
        impairment = self.impairment
        if impairment.loss_burst == 1 or self._last_lost is None:
            # Independent loss, or the chain's first step from its stationary distribution.
            return draw * 100.0 < impairment.loss_pct
        enter, leave = _gilbert_elliott(impairment.loss_pct, impairment.loss_burst)
        if self._last_lost:
            return draw >= leave
        return draw < enter

    def _extra_ms(self) -> float:
        jitter = self.impairment.jitter_ms
        if self.impairment.distribution == "uniform":
            return self._delay_rng.uniform(0.0, jitter)
        return abs(self._delay_rng.normalvariate(0.0, jitter / 2.0))

    def decide(self, now: float, *, size: int = 0) -> float | None:
        """Delivery time of a datagram of ``size`` bytes that entered the link at ``now``.

        ``None`` if it is lost. ``size`` only counts into :attr:`LinkStats.bytes_received`.
        """
        if not _finite(now):
            raise ImpairmentError(f"now={now!r} must be a finite time in seconds")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ImpairmentError(f"size={size!r} must be a number of bytes, 0 or more")
        self.stats.received += 1
        self.stats.bytes_received += size
        lost = self._lost()
        extra_ms = self._extra_ms()  # drawn for lost datagrams too: the streams stay in step
        if lost and not self._last_lost:
            self.stats.loss_runs += 1
        self._last_lost = lost
        if lost:
            self.stats.dropped += 1
            return None
        at = now + (self.impairment.delay_ms + extra_ms) / 1000.0
        if not self.impairment.reorder:
            # Strictly later than the one before: the event loop runs timers due at the same
            # instant in no guaranteed order.
            at = max(at, self._latest + 1e-6)
        elif at < self._latest:
            self.stats.reordered += 1
        self._latest = max(self._latest, at)
        return at


class _ClientSide(asyncio.DatagramProtocol):
    def __init__(self, proxy: ImpairmentProxy) -> None:
        self._proxy = proxy

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._proxy._from_client(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        self._proxy.errors += 1  # ICMP unreachable from a radio that went away


class _ServerSide(asyncio.DatagramProtocol):
    def __init__(self, proxy: ImpairmentProxy, flow: _Flow) -> None:
        self._proxy = proxy
        self._flow = flow

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._proxy._from_server(self._flow, data)

    def error_received(self, exc: Exception) -> None:
        self._proxy.errors += 1  # the relay is not listening (yet, or any more)


@dataclass
class _Flow:
    client: Address
    up: ImpairedLink
    down: ImpairedLink
    transport: asyncio.DatagramTransport | None = None
    pending: list[tuple[float, bytes]] = field(default_factory=list)
    """Uplink datagrams (delivery time, bytes) waiting for the upstream socket to open."""


class ImpairmentProxy:
    """UDP proxy from radios (to :attr:`address`) to ``upstream``, impairing both directions.

    Use ``async with ImpairmentProxy(...) as proxy`` or :meth:`start` / :meth:`close`.
    :meth:`set_impairment` changes the links of existing and future flows (for instance: log
    in on a clean link, so the radio's UDP probe gets through, then degrade it).
    """

    def __init__(
        self,
        upstream: Address,
        *,
        uplink: Impairment = CLEAN,
        downlink: Impairment = CLEAN,
        seed: int | str = 0,
        host: str = "127.0.0.1",
        max_flows: int = MAX_FLOWS,
    ) -> None:
        if max_flows < 1:
            raise ImpairmentError(f"max_flows={max_flows} must be at least 1")
        self.upstream = upstream
        self.uplink = uplink
        self.downlink = downlink
        self.seed = seed
        self.host = host
        self.max_flows = max_flows
        self.errors = 0
        self.refused = 0
        """Datagrams dropped because :attr:`max_flows` client addresses are already served."""
        self._flows: dict[Address, _Flow] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._activity = asyncio.Event()

    async def __aenter__(self) -> ImpairmentProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> Address:
        """Bind the client side on ``host`` (a free port) and return :attr:`address`."""
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _ClientSide(self), local_addr=(self.host, 0)
        )
        return self.address

    @property
    def address(self) -> Address:
        """Where radios send their media."""
        if self._transport is None:
            raise ImpairmentError("the proxy is not started: call start() first")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def set_impairment(
        self, *, uplink: Impairment | None = None, downlink: Impairment | None = None
    ) -> None:
        """Change the radio->server (``uplink``) and/or server->radio (``downlink``) impairment."""
        if uplink is not None:
            self.uplink = uplink
        if downlink is not None:
            self.downlink = downlink
        for flow in self._flows.values():
            flow.up.impairment = self.uplink
            flow.down.impairment = self.downlink

    def stats(self) -> dict[str, LinkStats]:
        """``{"up": ..., "down": ...}`` summed over every flow so far."""
        up, down = LinkStats(), LinkStats()
        for flow in self._flows.values():
            up.add(flow.up.stats)
            down.add(flow.down.stats)
        return {"up": up, "down": down}

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``condition()`` holds, checking after every datagram the proxy handles.

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while not condition():
                self._activity.clear()
                await self._activity.wait()

    async def close(self) -> None:
        """Stop forwarding: datagrams still in flight are dropped, sockets closed."""
        self._closed = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, OSError):
                pass
        for flow in self._flows.values():
            if flow.transport is not None:
                flow.transport.close()
        if self._transport is not None:
            self._transport.close()

    # --- forwarding --------------------------------------------------------------------------

    def _from_client(self, data: bytes, client: Address) -> None:
        if self._closed:
            return
        self._activity.set()
        flow = self._flows.get(client)
        if flow is None:
            if len(self._flows) >= self.max_flows:
                self.refused += 1
                return
            flow = self._open_flow(client)
        loop = asyncio.get_running_loop()
        at = flow.up.decide(loop.time(), size=len(data))
        if at is None:
            return
        if flow.transport is None:
            flow.pending.append((at, data))
            return
        self._deliver(at, flow.transport, data, None, flow.up.stats)

    def _from_server(self, flow: _Flow, data: bytes) -> None:
        if self._closed or self._transport is None:
            return
        self._activity.set()
        at = flow.down.decide(asyncio.get_running_loop().time(), size=len(data))
        if at is not None:
            self._deliver(at, self._transport, data, flow.client, flow.down.stats)

    def _open_flow(self, client: Address) -> _Flow:
        number = len(self._flows)
        flow = _Flow(
            client,
            ImpairedLink(self.uplink, f"{self.seed}:{number}:up"),
            ImpairedLink(self.downlink, f"{self.seed}:{number}:down"),
        )
        self._flows[client] = flow
        task = asyncio.get_running_loop().create_task(self._connect(flow))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return flow

    async def _connect(self, flow: _Flow) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _ServerSide(self, flow), remote_addr=self.upstream
        )
        if self._closed:
            transport.close()
            return
        flow.transport = transport
        pending, flow.pending = flow.pending, []
        for at, data in pending:
            self._deliver(at, transport, data, None, flow.up.stats)

    def _deliver(
        self,
        at: float,
        transport: asyncio.DatagramTransport,
        data: bytes,
        to: Address | None,
        stats: LinkStats,
    ) -> None:
        loop = asyncio.get_running_loop()
        if at <= loop.time() and not self._timers:
            # Nothing in flight that this one could overtake: no timer round trip.
            self._send(transport, data, to, stats)
            return
        timer: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(timer)
            self._send(transport, data, to, stats)

        timer = loop.call_at(at, fire)
        self._timers.add(timer)

    def _send(
        self,
        transport: asyncio.DatagramTransport,
        data: bytes,
        to: Address | None,
        stats: LinkStats,
    ) -> None:
        if transport.is_closing():
            return
        if to is None:
            transport.sendto(data)
        else:
            transport.sendto(data, to)
        stats.forwarded += 1
        self._activity.set()
