"""Roaming end to end: real radios (RadioClient), a real relay, and a tampered UDP path.

Bob's media goes through a :class:`~tests.ptt_server.tap.PathTap`, which plays both an on-path
attacker (withhold a datagram, release it from elsewhere) and a NAT that rebinds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control, media
from ptt_server.server import RelayServer
from tests.orgfixture import Org, joined_radio
from tests.ptt_server.tap import PathTap

TIMEOUT = 5.0
KEEPALIVE_INTERVAL = 1.0
"""Bob's keepalives: often enough to capture one quickly, rarely enough that none lands in
the few milliseconds between the attacker's release and alice's voice."""


@pytest.fixture(name="tapped")
async def tapped_fixture(
    org: Org, server: RelayServer
) -> AsyncIterator[tuple[RadioClient, RadioClient, PathTap]]:
    """alice (talking, holding the floor) and bob, whose UDP path goes through a tap."""
    tap = await PathTap.open(("127.0.0.1", server.media_port))
    alice = await joined_radio(org, server, "alice")
    bob = await joined_radio(
        org, server, "bob", media_address=tap.address, keepalive_interval=KEEPALIVE_INTERVAL
    )
    try:
        assert bob.media_path == "udp"
        await alice.press()
        await alice.wait_for(control.FloorGranted)
        await bob.wait_for(control.FloorTaken, lambda m: m.user_id == "alice")
        yield alice, bob, tap
    finally:
        for client in (alice, bob):
            await client.stop()
        tap.close()


async def test_withheld_keepalive_released_from_elsewhere_does_not_redirect_the_downlink(
    server: RelayServer, tapped: tuple[RadioClient, RadioClient, PathTap]
) -> None:
    alice, bob, tap = tapped
    session = server.sessions.by_user["bob"]
    home = ("127.0.0.1", tap.upstream_port)
    assert session.hop.address == home
    async with asyncio.timeout(TIMEOUT):
        withheld = await tap.withhold(media.KEEPALIVE)  # bob's next keepalive, never delivered
    # Released at once from the attacker's address: newer than anything the relay has seen
    # from bob, the strongest form of the attack. The relay answers the keepalive itself (to
    # where it came from), so once that answer is at the attacker, the release was handled.
    tap.inject(withheld)
    await tap.wait(lambda: bool(tap.attacker_got))
    sent = [b"still bob's %d" % i for i in range(5)]
    for payload in sent:
        assert await alice.send_voice(payload)
    got = [await bob.wait_for(events.VoiceFrame, timeout=TIMEOUT) for _ in sent]
    assert [f.opus for f in got] == sent
    assert session.hop.address == home
    # The relay asked bob's real address, bob answered from there, nothing moved.
    await tap.wait(lambda: any(a.kind == media.PROBE for a in tap.downlink[0]))
    await tap.wait(lambda: session.hop.candidate is None)
    assert server.metrics.relay.roam_moves == 0
    assert session.hop.address == home
    # The attacker got the answer to its keepalive and none of bob's voice.
    assert [a.kind for a in tap.attacker_got] == [media.KEEPALIVE]


async def test_a_copy_that_overtakes_the_original_from_elsewhere_does_not_redirect_either(
    server: RelayServer, tapped: tuple[RadioClient, RadioClient, PathTap]
) -> None:
    """The tap's other move: copy bob's newest datagram and get the copy in first from its
    own address, then let the original through. The copy is the newest the relay has seen
    (the move's first condition holds) and the original is now a replay, so only the probe
    keeps bob's downlink home."""
    alice, bob, tap = tapped
    session = server.sessions.by_user["bob"]
    home = ("127.0.0.1", tap.upstream_port)
    async with asyncio.timeout(TIMEOUT):
        copied = await tap.withhold(media.KEEPALIVE)
    tap.inject(copied)
    await tap.wait(lambda: bool(tap.attacker_got))  # the relay took the copy
    tap.deliver(copied)  # the original, late by a few microseconds
    await tap.wait(lambda: any(a.kind == media.PROBE for a in tap.downlink[0]))
    await tap.wait(lambda: session.hop.candidate is None)
    sent = [b"after the race %d" % i for i in range(5)]
    for payload in sent:
        assert await alice.send_voice(payload)
    got = [await bob.wait_for(events.VoiceFrame, timeout=TIMEOUT) for _ in sent]
    assert [f.opus for f in got][-len(sent) :] == sent
    assert server.metrics.relay.roam_moves == 0 and session.hop.address == home
    assert [a.kind for a in tap.attacker_got] == [media.KEEPALIVE]


@contextlib.asynccontextmanager
async def alice_talking(alice: RadioClient) -> AsyncIterator[None]:
    """Alice sends a voice frame every 20 ms until the block ends."""
    talking = asyncio.Event()

    async def talk() -> None:
        sequence = 0
        while True:
            await alice.send_voice(b"voice %d" % sequence)
            sequence += 1
            talking.set()
            await asyncio.sleep(0.02)  # a 20 ms voice frame's pace (not a wait for anything)

    talker = asyncio.create_task(talk())
    try:
        await talking.wait()
        yield
    finally:
        talker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await talker


async def rebind(bob: RadioClient, tap: PathTap) -> float:
    """Bob's NAT rebinds while he hears alice: the seconds from his first datagram on the new
    port to the relay's first voice datagram there (both as the tap saw them)."""
    await bob.wait_for(events.VoiceFrame, timeout=TIMEOUT)
    await tap.rebind()  # the NAT forgot bob's mapping: a new port, the old one is dead
    await tap.wait(lambda: any(a.kind == media.DATA for a in tap.downlink[1]))
    first_seen = tap.uplink_at[1][0]  # bob's first datagram from the new port
    back = next(a.at for a in tap.downlink[1] if a.kind == media.DATA)
    return back - first_seen


async def test_radio_whose_nat_rebinds_gets_its_downlink_back_after_the_probe(
    server: RelayServer, tapped: tuple[RadioClient, RadioClient, PathTap]
) -> None:
    alice, bob, tap = tapped
    async with alice_talking(alice):
        back_after = await rebind(bob, tap)
        # The relay probed the old port (no answer: it is gone) and moved only after the
        # window. A lower bound no load can break: the tap saw bob's datagram before the relay
        # did. ("Within about a second" is a bench: tests/bench/test_timing_goals.py.)
        assert back_after >= media.ROAM_PROBE_TIMEOUT * 0.9
        assert server.metrics.relay.roam_probes == 1
        assert server.metrics.relay.roam_moves == 1
        assert server.sessions.by_user["bob"].hop.address == ("127.0.0.1", tap.upstream_port)
        # And bob, the real radio, hears alice again (through the new port).
        bob.drain_events()
        heard = await bob.wait_for(events.VoiceFrame, timeout=TIMEOUT)
        assert heard.talker == "alice"
