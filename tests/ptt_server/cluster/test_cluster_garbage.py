"""Garbage on the bus: every subject family a node reads, fed what no node would send.

A raw ``nats.connect`` client (not a node) publishes random bytes, msgpack of the wrong
shape, messages on the wrong subject, a control message the protocol does not know inside
a ToUser, an event of an unknown kind, a forged roster in an event, and media too short to
hold a header. Each node that reads the subject must refuse and count each one, and the
cluster must still carry a talker from one node to another afterwards.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import msgspec
import nats
import pytest

from crypto.identity import OrgRoot, Role
from crypto.roster import Member, Roster, sign_roster
from ptt_client import events
from ptt_protocol import control
from ptt_server.cluster import news, wire
from ptt_server.server import RelayServer
from tests.clusterfixture import Cluster
from tests.credentials import issue

FAMILIES = ("events", "user", "news", "media", "floor", "handler-error")


def refused(node: RelayServer) -> dict[str, int]:
    """The node's refusal count per subject family."""
    counts = {}
    for family in FAMILIES:
        value = node.metrics.registry.get_sample_value(
            "fieldradio_bus_refused_total", {"subject": family}
        )
        counts[family] = int(value or 0)
    return counts


def watch_refusals(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """An event set at each refusal by any node (its real ``refused`` still does the work)."""
    changed = asyncio.Event()
    for node in cluster.nodes:
        assert node.cluster is not None
        real = node.cluster.refused

        def spy(subject: str, reason: str, real: Callable[[str, str], None] = real) -> None:
            real(subject, reason)
            changed.set()

        monkeypatch.setattr(node.cluster, "refused", spy)
    return changed


async def wait_counts(
    cluster: Cluster, changed: asyncio.Event, expected: list[dict[str, int]]
) -> None:
    """Until every node counted what it should (the bus delivers asynchronously)."""
    async with asyncio.timeout(10):
        while [refused(node) for node in cluster.nodes] != expected:
            changed.clear()
            await changed.wait()


def forged_roster(channel_id: int) -> bytes:
    """A roster signed by a key manager of another organisation's root."""
    keys, credential = issue(OrgRoot.generate(), "mallory", Role.DISPATCHER, serial=7)
    roster = Roster(channel_id, 99, (Member.from_credential(credential),))
    return sign_roster(roster, keys, credential)


def event(kind: str, body: bytes) -> bytes:
    return wire.encode(wire.ClusterEvent(kind=kind, origin="intruder", body=body))


async def test_garbage_on_every_subject_is_refused_counted_and_harmless(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = cluster.org.channel_id
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 1)
    await cluster.radio("carol", 2)
    # Alice's press makes node 0 the floor's owner: it reads the channel's floor subject.
    await alice.press()
    await alice.wait_for(control.FloorGranted)
    await alice.release()
    await bob.wait_for(control.FloorIdle)
    assert cluster.nodes[0].cluster is not None and cluster.nodes[0].cluster.floors.owns(cid)
    before = [refused(node) for node in cluster.nodes]
    changed = watch_refusals(cluster, monkeypatch)
    noise = random.Random(12).randbytes(64)
    wrong_shape = msgspec.msgpack.encode({"type": "floor-op", "action": 7})
    channel_event = news.ChannelNews(
        channel_id=cid, name="patrol", signed_roster=forged_roster(cid)
    )
    for_bob = wire.user_subject("bob")
    bus = await nats.connect(cluster.nats.url)
    try:
        for data in (
            noise,
            wrong_shape,
            msgspec.msgpack.encode([1, 2, 3]),
            event("no-such-kind", b""),
            event(news.EMERGENCY, noise),
            event(news.CHANNEL, msgspec.msgpack.encode(channel_event)),
            wire.encode(wire.ToUser(user_id="bob", message=control.encode(control.Ping(nonce=1)))),
        ):
            await bus.publish(wire.EVENTS_SUBJECT, data)
        for data in (
            noise,
            wire.encode(wire.ToUser(user_id="bob", message=b"\x92\x01\x02not a message")),
            wire.encode(
                wire.ToUser(user_id="alice", message=control.encode(control.Ping(nonce=2)))
            ),
        ):
            await bus.publish(for_bob, data)
        for data in (
            noise,
            wire.encode(wire.FloorNews(channel_id=cid + 100, owner="intruder", sequence=1)),
        ):
            await bus.publish(wire.news_subject(cid), data)
        for data in (b"\x01", b"\x09" + bytes(12)):
            await bus.publish(wire.media_subject(cid), data)
        await bus.publish(wire.floor_subject(cid), noise)
        await bus.flush()
    finally:
        await bus.close()
    added = [
        {"events": 7, "user": 0, "news": 2, "media": 2, "floor": 1},  # node 0 owns the floor
        {"events": 7, "user": 3, "news": 2, "media": 2, "floor": 0},  # bob's node
        {"events": 7, "user": 0, "news": 2, "media": 2, "floor": 0},
    ]
    expected = [
        {family: counts[family] + more.get(family, 0) for family in FAMILIES}
        for counts, more in zip(before, added, strict=True)
    ]
    await wait_counts(cluster, changed, expected)
    # Nothing changed: the forged roster was not installed, bob got nothing from the bus.
    for node in cluster.nodes:
        assert node.channels[cid].roster_version == 1
    # And the cluster still works: a talker on node 0 is heard on node 1.
    await alice.press()
    granted = await alice.wait_for(control.FloorGranted)
    taken = await bob.wait_for(control.FloorTaken)
    assert taken.burst_id == granted.burst_id
    assert await alice.send_voice(b"still here")
    frame = await bob.wait_for(events.VoiceFrame)
    assert frame.opus == b"still here"
    assert [refused(node) for node in cluster.nodes] == expected
