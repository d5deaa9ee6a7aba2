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


async def test_without_the_bus_a_node_still_carries_its_own_radios_then_rejoins(
    cluster: Cluster,
) -> None:
    """nats-server dies: radios on one node still talk to each other (that node decides
    their floor alone), and once the bus is back the channel is one channel again."""
    cid = cluster.org.channel_id
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 0)
    carol = await cluster.radio("carol", 1)
    nodes = [node.cluster for node in cluster.nodes if node.cluster is not None]
    node0 = nodes[0]
    for node in nodes:
        node.reconnected.clear()
    node0.disconnected.clear()
    cluster.nats.kill()
    async with asyncio.timeout(10):
        await node0.disconnected.wait()  # nats-py notices the closed socket at once
    await alice.press()
    granted = await alice.wait_for(control.FloorGranted, timeout=5)
    taken = await bob.wait_for(control.FloorTaken, lambda e: e.burst_id == granted.burst_id)
    assert taken.user_id == "alice"
    assert await alice.send_voice(b"no bus")
    assert (await bob.wait_for(events.VoiceFrame)).opus == b"no bus"
    await alice.release()
    await bob.wait_for(events.TalkerVerified)
    cluster.nats.start()
    # Every node, not only node 0: each reconnects on its own schedule, and a node still
    # without the bus would decide carol's press alone, as an island of its own.
    async with asyncio.timeout(20):
        for node in nodes:
            await node.reconnected.wait()
    # Back to one channel: carol on node 1 is granted, and heard on node 0.
    await carol.press(cid)
    carol_granted = await carol.wait_for(control.FloorGranted, timeout=10)
    assert carol_granted.burst_id != granted.burst_id
    assert await carol.send_voice(b"bus back")
    frame = await bob.wait_for(events.VoiceFrame, lambda f: f.opus == b"bus back")
    assert frame.talker == "carol"


async def test_with_the_lease_bucket_away_a_press_is_still_granted_on_its_node(
    cluster: Cluster,
) -> None:
    """JetStream away, the bus itself up (in a NATS cluster: its leader died; here: the
    server restarted without JetStream): no lease can be taken, yet a press is granted among
    the radios of its node, at once; with JetStream back, leases decide again."""
    cid = cluster.org.channel_id
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 0)
    carol = await cluster.radio("carol", 1)
    nodes = [node.cluster for node in cluster.nodes if node.cluster is not None]
    for node in nodes:
        node.reconnected.clear()
    cluster.nats.jetstream = False
    cluster.nats.restart()
    async with asyncio.timeout(20):
        for node in nodes:
            await node.reconnected.wait()
    await alice.press()
    granted = await alice.wait_for(control.FloorGranted, timeout=5)
    await bob.wait_for(control.FloorTaken, lambda e: e.burst_id == granted.burst_id)
    assert await alice.send_voice(b"no leases")
    assert (await bob.wait_for(events.VoiceFrame)).opus == b"no leases"
    await alice.release()
    await bob.wait_for(events.TalkerVerified)
    assert not nodes[0].floors.leases_ok
    for node in nodes:
        node.reconnected.clear()
    cluster.nats.jetstream = True
    cluster.nats.restart()
    async with asyncio.timeout(20):
        for node in nodes:
            await node.reconnected.wait()
    # Leases again: carol on node 1 is granted and heard on node 0 (node 0's island went
    # back once its probe found the bucket).
    await carol.press(cid)
    carol_granted = await carol.wait_for(control.FloorGranted, timeout=10)
    assert carol_granted.burst_id != granted.burst_id
    assert await carol.send_voice(b"leases back")
    frame = await bob.wait_for(events.VoiceFrame, lambda f: f.opus == b"leases back")
    assert frame.talker == "carol"
