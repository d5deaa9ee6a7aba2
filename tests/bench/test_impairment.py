"""The impairment proxy with real UDP on loopback: loss, delay and jitter do what they say.

What runs in ``make test`` checks what no load on this shared machine can break: seeded loss
and fates, counts, lower bounds on delay (load only adds to a delay), reordering (decided by
seeded delays, not by how fast the sender runs). How little the proxy adds of its own is a
performance bound: that test is marked ``bench`` and runs in ``make bench`` only.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest

from bench.impairment import (
    ImpairedLink,
    Impairment,
    ImpairmentError,
    ImpairmentProxy,
)

Address = tuple[str, int]


class Endpoint(asyncio.DatagramProtocol):
    """A UDP socket that records what arrives (and echoes it back when ``echo``)."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.received: list[tuple[bytes, float]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self._changed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((data, time.monotonic()))
        if self.echo:
            assert self.transport is not None
            self.transport.sendto(data, addr)
        self._changed.set()

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def wait_received(self, count: int, timeout: float = 5.0) -> None:
        """Until ``count`` datagrams have arrived in all."""
        await self.wait_until(lambda: len(self.received) >= count, timeout)

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port


async def endpoint(echo: bool = False, remote: Address | None = None) -> Endpoint:
    loop = asyncio.get_running_loop()
    if remote is None:
        _, protocol = await loop.create_datagram_endpoint(
            lambda: Endpoint(echo), local_addr=("127.0.0.1", 0)
        )
    else:
        _, protocol = await loop.create_datagram_endpoint(
            lambda: Endpoint(echo), remote_addr=remote
        )
    return protocol


@pytest.fixture
async def echo_server() -> AsyncIterator[Endpoint]:
    server = await endpoint(echo=True)
    yield server
    assert server.transport is not None
    server.transport.close()


async def lost_indices(seed: int, loss_pct: float, count: int = 2000) -> set[int]:
    """Send ``count`` numbered datagrams through a lossy uplink; return the numbers lost."""
    sink = await endpoint()
    async with ImpairmentProxy(
        sink.address, uplink=Impairment(loss_pct=loss_pct), seed=seed
    ) as proxy:
        sender = await endpoint(remote=proxy.address)
        assert sender.transport is not None
        sent = 0
        for batch_start in range(0, count, 100):
            for i in range(batch_start, min(count, batch_start + 100)):
                sender.transport.sendto(i.to_bytes(4, "big"))
                sent += 1

            # Pace by what arrived (a burst of 2000 would overflow the socket buffers).
            def all_in(sent: int = sent) -> bool:  # bound now, not when called (B023)
                return proxy.stats()["up"].received == sent

            await proxy.wait_until(all_in)
            await sink.wait_until(lambda: len(sink.received) == proxy.stats()["up"].forwarded)
        stats = proxy.stats()["up"]
        sender.transport.close()
    assert sink.transport is not None
    sink.transport.close()
    got = {int.from_bytes(data, "big") for data, _ in sink.received}
    assert len(got) == len(sink.received)  # nothing duplicated
    lost = set(range(count)) - got
    assert stats.received == count and stats.dropped == len(lost)
    return lost


@pytest.mark.parametrize("loss_pct", [5.0, 10.0])
async def test_loss_drops_about_n_percent_and_the_same_seed_drops_the_same(
    loss_pct: float,
) -> None:
    count = 2000
    lost = await lost_indices(7, loss_pct, count)
    expected = count * loss_pct / 100
    sigma = math.sqrt(count * loss_pct / 100 * (1 - loss_pct / 100))
    assert abs(len(lost) - expected) < 4 * sigma, len(lost)
    assert await lost_indices(7, loss_pct, count) == lost
    other = await lost_indices(8, loss_pct, count)
    assert other != lost
    assert abs(len(other) - expected) < 4 * sigma, len(other)


async def round_trips(target: Address, count: int = 15) -> list[float]:
    client = await endpoint(remote=target)
    assert client.transport is not None
    times = []
    for i in range(count):
        start = time.monotonic()
        client.transport.sendto(i.to_bytes(4, "big"))
        await client.wait_received(i + 1)
        times.append(client.received[-1][1] - start)
    client.transport.close()
    return times


def delaying(target: Address) -> ImpairmentProxy:
    """A proxy that holds each datagram 30 ms on the way up and 20 ms on the way down."""
    return ImpairmentProxy(target, uplink=Impairment(delay_ms=30), downlink=Impairment(delay_ms=20))


async def test_delay_adds_at_least_the_delay_to_a_real_udp_echo(echo_server: Endpoint) -> None:
    async with delaying(echo_server.address) as proxy:
        delayed = await round_trips(proxy.address)
        stats = proxy.stats()
    # Correctness: nothing comes back before both delays have passed (load only adds to it).
    assert min(delayed) >= 0.050, delayed
    assert stats["up"].forwarded == stats["down"].forwarded == len(delayed)


async def test_a_clean_proxy_forwards_both_ways_and_drops_nothing(echo_server: Endpoint) -> None:
    async with ImpairmentProxy(echo_server.address) as proxy:
        times = await round_trips(proxy.address)
        stats = proxy.stats()
    assert len(times) == 15
    assert stats["up"].forwarded == stats["down"].forwarded == len(times)
    assert stats["up"].dropped == stats["down"].dropped == 0


@pytest.mark.bench
async def test_the_proxy_adds_the_delay_and_little_of_its_own(echo_server: Endpoint) -> None:
    # Performance, not correctness (how fast this machine runs the proxy): `make bench` only.
    direct = await round_trips(echo_server.address)
    async with ImpairmentProxy(echo_server.address) as proxy:
        clean = await round_trips(proxy.address)
    async with delaying(echo_server.address) as proxy:
        delayed = await round_trips(proxy.address)
    assert statistics.median(clean) < 0.010, clean
    assert statistics.median(delayed) < 0.050 + statistics.median(direct) + 0.030, (
        delayed,
        direct,
    )


async def arrival_order(impairment: Impairment, count: int = 200, seed: int = 3) -> list[int]:
    sink = await endpoint()
    async with ImpairmentProxy(sink.address, uplink=impairment, seed=seed) as proxy:
        sender = await endpoint(remote=proxy.address)
        assert sender.transport is not None
        for i in range(count):
            sender.transport.sendto(i.to_bytes(4, "big"))
            if i % 10 == 9:
                # 10 datagrams per ms: far closer together than the jitter spread.
                await asyncio.sleep(0.001)
        await sink.wait_until(lambda: len(sink.received) == count)
        sender.transport.close()
    assert sink.transport is not None
    sink.transport.close()
    return [int.from_bytes(data, "big") for data, _ in sink.received]


async def test_jitter_reorders_some_datagrams_and_loses_none() -> None:
    # Not a timing bound: even if each batch of ten were sent long after the last, the seeded
    # 0-30 ms delays reorder a random ten about 4.5 times (90 over 20 batches, against 20).
    order = await arrival_order(Impairment(delay_ms=5, jitter_ms=30))
    assert sorted(order) == list(range(200))
    overtaken = sum(1 for a, b in itertools.pairwise(order) if b < a)
    assert overtaken > 20, order


async def test_jitter_without_reordering_keeps_the_order() -> None:
    order = await arrival_order(Impairment(delay_ms=5, jitter_ms=30, reorder=False))
    assert order == list(range(200))


async def test_one_proxy_keeps_each_radio_apart(echo_server: Endpoint) -> None:
    async with ImpairmentProxy(echo_server.address) as proxy:
        radios = [await endpoint(remote=proxy.address) for _ in range(3)]
        for n, radio in enumerate(radios):
            assert radio.transport is not None
            radio.transport.sendto(f"radio {n}".encode())
        for n, radio in enumerate(radios):
            await radio.wait_received(1)
            assert radio.received[0][0] == f"radio {n}".encode()
            assert radio.transport is not None
            radio.transport.close()
    # The echo server saw three different source addresses: one upstream socket per radio.
    assert len(echo_server.received) == 3


def test_a_link_spreads_delays_over_the_jitter_range() -> None:
    uniform = ImpairedLink(Impairment(delay_ms=20, jitter_ms=40), seed=1)
    delays_ms = [(uniform.decide(100.0) or 0) * 1000 - 100_000 for _ in range(5000)]
    assert 20 <= min(delays_ms) < 21 and 59 < max(delays_ms) <= 60
    assert abs(statistics.mean(delays_ms) - 40) < 1
    normal = ImpairedLink(Impairment(delay_ms=20, jitter_ms=40, distribution="normal"), seed=1)
    extra = [(normal.decide(100.0) or 0) * 1000 - 100_020 for _ in range(5000)]
    within = sum(1 for x in extra if 0 <= x <= 40) / len(extra)
    assert 0.93 < within < 0.97, within  # half-normal, sigma = jitter / 2


def test_the_same_seed_gives_the_same_fates_whatever_the_jitter() -> None:
    a = ImpairedLink(Impairment(loss_pct=20), seed="s")
    b = ImpairedLink(Impairment(loss_pct=20, jitter_ms=50, distribution="normal"), seed="s")
    fates_a = [a.decide(float(i)) is None for i in range(1000)]
    fates_b = [b.decide(float(i)) is None for i in range(1000)]
    assert fates_a == fates_b
    c = ImpairedLink(Impairment(delay_ms=1, jitter_ms=50), seed=5)
    d = ImpairedLink(Impairment(delay_ms=1, jitter_ms=50), seed=5)
    assert [c.decide(1.0) for _ in range(100)] == [d.decide(1.0) for _ in range(100)]


@pytest.mark.parametrize(
    "settings",
    [
        {"loss_pct": 101},
        {"loss_pct": -1},
        {"loss_pct": float("nan")},
        {"delay_ms": -5},
        {"jitter_ms": float("inf")},
        {"distribution": "pareto"},
        {"delay_ms": "10"},
        {"reorder": 1},
    ],
)
def test_settings_outside_their_domain_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ImpairmentError):
        Impairment(**settings)  # type: ignore[arg-type]


async def test_the_proxy_survives_garbage_and_a_relay_that_goes_away_and_returns() -> None:
    relay = await endpoint()
    address = relay.address
    async with ImpairmentProxy(address) as proxy:
        radio = await endpoint(remote=proxy.address)
        assert radio.transport is not None
        sizes = (1, 13, 1400, 65_000)  # asyncio never sends an empty datagram
        for size in sizes:
            radio.transport.sendto(b"\xff" * size)
        await relay.wait_until(lambda: len(relay.received) == len(sizes))
        assert [len(data) for data, _ in relay.received] == list(sizes)
        assert relay.transport is not None
        relay.transport.close()
        # The relay is gone: the proxy's sends now bounce (ICMP port unreachable).
        for _ in range(3):
            radio.transport.sendto(b"into the void")
        await proxy.wait_until(lambda: proxy.stats()["up"].received == len(sizes) + 3)
        loop = asyncio.get_running_loop()
        relay_again = Endpoint()
        await loop.create_datagram_endpoint(lambda: relay_again, local_addr=address)
        radio.transport.sendto(b"still here")
        await relay_again.wait_until(lambda: b"still here" in [d for d, _ in relay_again.received])
        radio.transport.close()
        assert relay_again.transport is not None
        relay_again.transport.close()
