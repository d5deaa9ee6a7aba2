"""The impairment proxy with real UDP on loopback: loss, delay and jitter do what they say.

What runs in ``make test`` checks what no load on this shared machine can break: seeded loss
and fates, counts, delay as an order of events (a reply never beats a timer armed for the
delay: load can hold both back but not swap them), reordering (decided by seeded delays, not
by how fast the sender runs). How little the proxy adds of its own is a
performance bound: that test is marked ``bench`` and runs in ``make bench`` only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import random
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


async def replies_before(target: Address, delay_s: float, count: int = 15) -> list[bool]:
    """Per round trip through ``target``: did the reply come before a timer armed for
    ``delay_s`` at its send fired? An order of two events on one loop, not a time: a proxy
    holding each datagram at least ``delay_s`` arms its own timer no earlier than the test's,
    so load can delay both but never put the reply first."""
    loop = asyncio.get_running_loop()
    client = await endpoint(remote=target)
    assert client.transport is not None
    early = []
    for i in range(count):
        passed = asyncio.Event()
        timer = loop.call_later(delay_s, passed.set)
        client.transport.sendto(i.to_bytes(4, "big"))
        await client.wait_received(i + 1)
        early.append(not passed.is_set())
        timer.cancel()
    client.transport.close()
    return early


async def test_delay_adds_at_least_the_delay_to_a_real_udp_echo(echo_server: Endpoint) -> None:
    async with delaying(echo_server.address) as proxy:
        early = await replies_before(proxy.address, 0.050)
        stats = proxy.stats()
    # Nothing comes back before both delays (30 ms up, 20 ms down) have passed.
    assert early == [False] * 15, early
    assert stats["up"].forwarded == stats["down"].forwarded == 15


async def test_without_the_delay_replies_beat_the_timer(echo_server: Endpoint) -> None:
    # The check above can fail: a proxy without delay answers before a timer of 50 ms.
    async with ImpairmentProxy(echo_server.address) as proxy:
        early = await replies_before(proxy.address, 0.050)
    assert all(early), early


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
                # A loop turn after each ten, so the proxy reads them (loopback queues a
                # datagram on the receiving socket during sendto) and no socket buffer fills.
                await asyncio.sleep(0)
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
        {"loss_burst": 0.5},
        {"loss_burst": 0},
        {"loss_burst": -3},
        {"loss_burst": float("inf")},
        {"loss_burst": float("nan")},
        {"loss_burst": True},
        {"loss_burst": "3"},
        {"loss_pct": 80, "loss_burst": 3},
        {"loss_pct": 100, "loss_burst": 2},
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


def loss_runs(fates: list[bool]) -> int:
    """Maximal runs of ``True`` (lost) in ``fates``."""
    return sum(1 for lost, group in itertools.groupby(fates) if lost)


def test_bursty_loss_loses_the_stated_share_in_runs_of_the_stated_length() -> None:
    count = 100_000
    link = ImpairedLink(Impairment(loss_pct=5, loss_burst=3), seed=2024)
    fates = [link.decide(float(i)) is None for i in range(count)]
    stats = link.stats
    assert stats.received == count and stats.dropped == sum(fates)
    assert stats.loss_runs == loss_runs(fates)
    assert abs(stats.dropped / count * 100 - 5) < 0.5, stats
    assert abs(stats.dropped / stats.loss_runs - 3.0) < 0.3, stats
    # Against the independent link at the same rate, whose runs are 1 / 0.95 long on average.
    independent = ImpairedLink(Impairment(loss_pct=5), seed=2024)
    for i in range(count):
        independent.decide(float(i))
    assert independent.stats.dropped / independent.stats.loss_runs < 1.1, independent.stats


@pytest.mark.parametrize("seed", [0, 7, "radio-3:0:up"])
@pytest.mark.parametrize("loss_burst", [None, 1, 1.0])
def test_a_burst_of_one_drops_exactly_what_independent_loss_always_dropped(
    seed: int | str, loss_burst: float | None
) -> None:
    # The draw the link made before bursts existed: one uniform per datagram from its own stream.
    reference = random.Random(f"{seed}:loss")
    expected = [reference.random() * 100.0 < 20 for _ in range(5000)]
    impairment = Impairment(loss_pct=20, jitter_ms=10)  # None: the default, not passed at all
    if loss_burst is not None:
        impairment = dataclasses.replace(impairment, loss_burst=loss_burst)
    link = ImpairedLink(impairment, seed=seed)
    assert [link.decide(float(i)) is None for i in range(5000)] == expected
    assert link.stats.loss_runs == loss_runs(expected)


def test_the_loss_model_does_not_shift_the_delays() -> None:
    bursty = ImpairedLink(Impairment(jitter_ms=50, loss_pct=30, loss_burst=4), seed="d")
    lossless = ImpairedLink(Impairment(jitter_ms=50), seed="d")
    pairs = [(bursty.decide(float(i)), lossless.decide(float(i))) for i in range(2000)]
    delivered = [(a, b) for a, b in pairs if a is not None]
    assert 1000 < len(delivered) < 1800
    assert all(a == b for a, b in delivered)


def test_bursts_at_the_edges_of_their_domain() -> None:
    # 75 % in runs of 3 is the limit: P(good->bad) = 1, each good datagram is followed by a loss.
    edge = ImpairedLink(Impairment(loss_pct=75, loss_burst=3), seed=1)
    fates = [edge.decide(0.0) is None for _ in range(20_000)]
    assert all(a or b for a, b in itertools.pairwise(fates))
    assert abs(sum(fates) / len(fates) - 0.75) < 0.02
    never = ImpairedLink(Impairment(loss_burst=5), seed=1)
    assert all(never.decide(0.0) is not None for _ in range(1000))
    assert never.stats.dropped == never.stats.loss_runs == 0
    assert Impairment(loss_pct=5, loss_burst=3).describe()["loss_burst"] == 3
    assert Impairment().describe()["loss_burst"] == 1.0


def test_an_impossible_burst_says_what_to_change_and_changes_nothing() -> None:
    with pytest.raises(ImpairmentError, match=r"at most 75 or raise loss_burst to at least 4"):
        Impairment(loss_pct=80, loss_burst=3)
    with pytest.raises(ImpairmentError, match="use loss_burst=1"):
        Impairment(loss_pct=100, loss_burst=2)
    with pytest.raises(ImpairmentError, match="at least 1 datagram"):
        Impairment(loss_burst=0.5)
    good = Impairment(loss_pct=5, loss_burst=3)
    proxy = ImpairmentProxy(("127.0.0.1", 9), uplink=good)
    with pytest.raises(ImpairmentError):
        proxy.set_impairment(uplink=dataclasses.replace(good, loss_pct=90))
    assert proxy.uplink is good
    # A refused decision neither counts nor draws: the link goes on as if it never happened.
    link, fresh = ImpairedLink(good, seed=4), ImpairedLink(good, seed=4)
    for bad_size in (-1, True, 1.5):
        with pytest.raises(ImpairmentError, match="number of bytes"):
            link.decide(0.0, size=bad_size)  # type: ignore[arg-type]
    assert link.stats == fresh.stats
    assert [link.decide(0.0, size=9) for _ in range(500)] == [
        fresh.decide(0.0, size=9) for _ in range(500)
    ]
    assert link.stats == fresh.stats and link.stats.bytes_received == 4500


async def test_the_proxy_counts_bytes_and_loss_runs_both_ways(echo_server: Endpoint) -> None:
    seed, count = 11, 400
    uplink = Impairment(loss_pct=20, loss_burst=4)
    downlink = Impairment(loss_pct=10, loss_burst=2)
    sizes = [1 + i * 37 % 300 for i in range(count)]
    async with ImpairmentProxy(
        echo_server.address, uplink=uplink, downlink=downlink, seed=seed
    ) as proxy:
        radio = await endpoint(remote=proxy.address)
        assert radio.transport is not None
        for start in range(0, count, 100):
            for size in sizes[start : start + 100]:
                radio.transport.sendto(bytes(size))

            # Paced (socket buffers) until every datagram sent so far has been up and back.
            def settled(sent: int = start + 100) -> bool:
                up, down = proxy.stats()["up"], proxy.stats()["down"]
                return (
                    up.received == sent
                    and up.forwarded == sent - up.dropped
                    and down.received == up.forwarded
                    and down.forwarded == down.received - down.dropped
                )

            await proxy.wait_until(settled)
            await radio.wait_until(lambda: len(radio.received) == proxy.stats()["down"].forwarded)
        stats = proxy.stats()
        radio.transport.close()
    # The one flow's links, replayed without sockets from the seeds the proxy gives them.
    up_ref = ImpairedLink(uplink, f"{seed}:0:up")
    passed = [size for size in sizes if up_ref.decide(0.0, size=size) is not None]
    down_ref = ImpairedLink(downlink, f"{seed}:0:down")
    for size in passed:  # which size meets which fate depends on arrival order; counts do not
        down_ref.decide(0.0, size=size)
    up, down = stats["up"], stats["down"]
    assert (up.received, up.bytes_received) == (count, sum(sizes))
    assert (up.dropped, up.loss_runs) == (up_ref.stats.dropped, up_ref.stats.loss_runs)
    assert up.loss_runs < up.dropped  # bursts, not single losses
    assert down.bytes_received == sum(passed) == sum(len(d) for d, _ in echo_server.received)
    assert (down.dropped, down.loss_runs) == (down_ref.stats.dropped, down_ref.stats.loss_runs)
    assert down.received == len(passed) and down.loss_runs > 0
