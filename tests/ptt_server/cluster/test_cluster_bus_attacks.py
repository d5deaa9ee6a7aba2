"""A stranger on an OPEN bus (nats-server without authorization, the fixture's default).

Anything that reaches such a bus can publish on the nodes' subjects. These tests are that
stranger: a raw ``nats.connect`` client that forges what only nodes should send. They
show the two halves of docs/security.md, section 2b:

- what holds whatever the bus does, because radios check it end to end: a frame injected
  or replayed on the bus is never played as a member's voice (SFrame tag and replay
  window at the radio);
- what the nodes now refuse because no honest node sends it (a floor input for a user
  logged in on the owner itself, news from a node without the floor's lease, bus media of
  a talker logged in here);
- and what only an honest bus gives: a forgery the nodes cannot tell from a node's own
  message (a floor input for a user elsewhere, news under the owner's own name, a login
  event) is obeyed. The tests pin that, so the day it changes they say so; the cure is the
  locked bus (test_cluster_bus_auth.py), where this stranger cannot log in at all.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from crypto.sframe import encode_header
from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control, media
from ptt_server.cluster import news, wire
from ptt_server.server import RelayServer
from tests.clusterfixture import Cluster
from tests.logwatch import LogWatch, watching
from tests.ptt_server.cluster.test_cluster_garbage import refused
from tests.ptt_server.rawclient import kid_of


@pytest.fixture
async def stranger(cluster: Cluster) -> AsyncIterator[NATS]:
    bus = await nats.connect(cluster.nats.url, name="stranger")
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
async def logs() -> AsyncIterator[LogWatch]:
    """The nodes' log lines: a refused bus message and a session's end are logged as they
    happen, which is what these tests wait on."""
    async with watching() as watch:
        yield watch


def collected(radio: RadioClient) -> list[object]:
    seen: list[object] = []
    radio.add_listener(seen.append)
    return seen


def dropped(node: RelayServer, reason: str) -> int:
    return node.metrics.relay.drops[reason]


async def test_injected_or_replayed_bus_media_is_never_played_as_a_member(
    cluster: Cluster, stranger: NATS
) -> None:
    cid = cluster.org.channel_id
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 1)
    heard = collected(bob)
    captured: asyncio.Queue[Msg] = asyncio.Queue()
    await stranger.subscribe(wire.media_subject(cid), cb=captured.put)  # open bus: it may
    await stranger.flush()
    await alice.press()
    burst = (await alice.wait_for(control.FloorGranted)).burst_id
    await bob.wait_for(control.FloorTaken)
    assert await alice.send_voice(b"first")
    await bob.wait_for(events.VoiceFrame, lambda f: f.opus == b"first")
    frame = await captured.get()  # alice's frame, sealed end to end, as node 0 published it
    node1 = cluster.nodes[1]
    received = node1.metrics.relay.bus_received_packets
    for _ in range(3):  # replayed
        await stranger.publish(frame.subject, frame.data)
    # Injected: alice's talker id, burst and KID (what the relay checks), but not sealed
    # with the epoch key, which only members hold.
    sequence = 500
    sealed = encode_header(kid_of(cluster.org, "alice"), sequence) + os.urandom(40)
    inner = media.pack_inner(cid, burst, sequence, 0, sealed)
    await stranger.publish(frame.subject, wire.pack_media("alice", inner))
    # Bob's own frames, from the bus: he is logged in on node 1, so they are not his node's.
    local = dropped(node1, "bus_local_talker")
    await stranger.publish(frame.subject, wire.pack_media("bob", inner))
    await stranger.flush()  # the bus has all five before alice's next frame
    # Bob's radio refused the forgery ...
    rejected = await bob.wait_for(events.VoiceRejected)
    assert "frame refused" in rejected.reason
    # ... and played the replayed frame only once. Alice's second frame is also the marker:
    # node 1 handles its media subscription's messages one by one in the order the bus
    # delivers them, and the bus had the stranger's five (flushed) before it, so with it
    # played node 1 has handled all of them.
    assert await alice.send_voice(b"second")
    await bob.wait_for(events.VoiceFrame, lambda f: f.opus == b"second")
    played = [e.opus for e in heard if isinstance(e, events.VoiceFrame)]
    assert played == [b"first", b"second"]
    # The open bus carried all of it to node 1, which forwarded the replays and the forgery
    # (they pass every check a relay can make without keys), then alice's second frame, and
    # refused bob's own.
    assert node1.metrics.relay.bus_received_packets == received + 4 + 1
    assert dropped(node1, "bus_local_talker") == local + 1


async def test_forged_floor_inputs_for_the_owners_users_are_refused_for_others_obeyed(
    cluster: Cluster, stranger: NATS
) -> None:
    cid = cluster.org.channel_id
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 1)
    carol = await cluster.radio("carol", 2)
    carol_seen = collected(carol)
    await alice.press()  # node 0 takes the floor's lease
    await alice.wait_for(control.FloorGranted)
    await alice.release()
    await bob.wait_for(control.FloorIdle)
    owner = cluster.nodes[0]
    before = refused(owner)["floor"]
    as_alice = wire.FloorOp(action="request", channel_id=cid, user_id="alice", node="node1")
    reply = await stranger.request(wire.floor_subject(cid), wire.encode(as_alice), timeout=5)
    assert reply.data == b"ok"  # answered (an honest racing node must not retry) ...
    assert refused(owner)["floor"] == before + 1  # ... but refused: alice is on node 0
    assert owner.channels[cid].floor.holder is None
    # Carol is on node 2: a floor input "from node 2" is all the owner can go by. Only an
    # honest bus makes it hers; on this one the stranger grabs the floor in her name.
    as_carol = wire.FloorOp(action="request", channel_id=cid, user_id="carol", node="node2")
    await stranger.request(wire.floor_subject(cid), wire.encode(as_carol), timeout=5)
    assert owner.channels[cid].floor.holder == "carol"
    await bob.wait_for(control.FloorTaken, lambda e: e.user_id == "carol")  # shown her talking
    # Her radio had not asked: it does not take the grant for a press of its own.
    assert not any(isinstance(e, control.FloorGranted) for e in carol_seen)


async def test_forged_floor_news_from_a_non_owner_is_refused_under_the_owners_name_obeyed(
    cluster: Cluster, stranger: NATS, logs: LogWatch
) -> None:
    cid = cluster.org.channel_id
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 1)
    await alice.press()
    await alice.wait_for(control.FloorGranted)
    await alice.release()
    await bob.wait_for(control.FloorIdle)
    channel = cluster.nodes[1].channels[cid]
    assert channel.mirror is not None
    before = refused(cluster.nodes[1])["news"]
    forged = wire.FloorNews(channel_id=cid, owner="intruder", sequence=1, holder="bob", burst_id=99)
    await stranger.publish(wire.news_subject(cid), wire.encode(forged))
    await logs.until(lambda: refused(cluster.nodes[1])["news"] == before + 1, "news refused")
    assert channel.mirror.holder is None  # the lease bucket names node 0, not "intruder"
    # Under the owner's own name, news cannot be told from the owner's: only an honest bus
    # keeps it out. Here node 1 takes bob as the talker (and would forward his media).
    as_owner = wire.FloorNews(
        channel_id=cid, owner="node0", sequence=10**9, holder="bob", burst_id=99
    )
    await stranger.publish(wire.news_subject(cid), wire.encode(as_owner))
    # Then a marker node 1 refuses (and logs) as it reads it: it handles its news
    # subscription's messages one by one, in order, so by then it has handled the news.
    await stranger.publish(wire.news_subject(cid), b"marker: not floor news")
    await logs.until(lambda: refused(cluster.nodes[1])["news"] == before + 2, "marker refused")
    assert channel.mirror is not None and channel.mirror.holder == "bob"


async def test_a_forged_login_event_ends_a_session_on_an_open_bus(
    cluster: Cluster, stranger: NATS, logs: LogWatch
) -> None:
    bob = await cluster.radio("bob", 1)
    login = news.LoginNews(
        user_id="bob", fingerprint=bytes(32), node="intruder", at=time.time() + 60
    )
    event = wire.ClusterEvent(
        kind=news.LOGIN, origin="intruder", body=msgspec.msgpack.encode(login)
    )
    await stranger.publish(wire.EVENTS_SUBJECT, wire.encode(event))
    error = await bob.wait_for(control.Error)
    assert error.code == control.ERROR_LOGGED_IN_ELSEWHERE  # only an honest bus prevents it
    await logs.until(lambda: "bob" not in cluster.nodes[1].sessions.by_user, "session ended")
