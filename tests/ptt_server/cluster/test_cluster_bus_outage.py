"""The bus goes away and comes back: nodes reconnect, re-subscribe and carry the floor again."""

from __future__ import annotations

import asyncio

from ptt_client import events
from ptt_protocol import control
from tests.clusterfixture import Cluster


async def test_after_nats_restarts_a_talker_is_heard_across_nodes_again(cluster: Cluster) -> None:
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 1)
    await alice.press()
    await alice.wait_for(control.FloorGranted)
    assert await alice.send_voice(b"before")
    assert (await bob.wait_for(events.VoiceFrame)).opus == b"before"
    await alice.release()
    await bob.wait_for(events.TalkerVerified)
    nodes = [node.cluster for node in cluster.nodes]
    assert all(node is not None for node in nodes)
    for node in nodes:
        assert node is not None
        node.reconnected.clear()
    cluster.nats.restart()  # same port, same JetStream store
    async with asyncio.timeout(20):
        for node in nodes:
            assert node is not None
            await node.reconnected.wait()
    assert all(node is not None and node.reconnects == 1 for node in nodes)
    # The radios never noticed: their nodes stayed up. The floor works across nodes again.
    await alice.press()
    granted = await alice.wait_for(control.FloorGranted, timeout=10)
    taken = await bob.wait_for(control.FloorTaken, lambda e: e.burst_id == granted.burst_id)
    assert taken.user_id == "alice"
    assert await alice.send_voice(b"after")
    frame = await bob.wait_for(events.VoiceFrame, lambda f: f.opus == b"after")
    assert frame.burst_id == granted.burst_id
