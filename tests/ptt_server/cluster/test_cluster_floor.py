"""Floors and media across a real three-node cluster (real nats-server, real radios).

A channel's floor is decided by one owner node; radios on the other nodes are granted,
queued and pre-empted by it, and hear the talker through the media their node gets once
per frame from the talker's node.
"""

from __future__ import annotations

from ptt_client import events
from ptt_protocol import control, floor
from tests.clusterfixture import Cluster


async def test_a_talker_on_one_node_is_heard_on_the_two_others(cluster: Cluster) -> None:
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 1)
    carol = await cluster.radio("carol", 2)
    await alice.press()
    granted = await alice.wait_for(control.FloorGranted)
    for listener in (bob, carol):
        taken = await listener.wait_for(control.FloorTaken)
        assert (taken.user_id, taken.burst_id) == ("alice", granted.burst_id)
        assert taken.display_name == "Alice Adams"
    sent = [bytes([i]) * 40 for i in range(5)]
    for payload in sent:
        assert await alice.send_voice(payload)
    for listener in (bob, carol):
        got = [await listener.wait_for(events.VoiceFrame) for _ in sent]
        assert [f.opus for f in got] == sent
        assert all(f.talker == "alice" and f.burst_id == granted.burst_id for f in got)
    await alice.release()
    for listener in (bob, carol):
        # Its statement (media) and the FloorIdle (floor news) may come in either order.
        assert (await listener.wait_for(events.TalkerVerified)).talker == "alice"
    # Alice's node owns the floor: it took the lease at her press.
    assert cluster.nodes[0].cluster is not None
    assert cluster.nodes[0].cluster.floors.owns(cluster.org.channel_id)
    for node in cluster.nodes[1:]:
        assert node.cluster is not None and not node.cluster.floors.owns(cluster.org.channel_id)


async def test_the_floor_is_contended_queued_and_pre_empted_across_nodes(
    cluster: Cluster,
) -> None:
    cid = cluster.org.channel_id
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 1)
    disp = await cluster.radio("disp", 2)
    await alice.press()
    await alice.wait_for(control.FloorGranted)
    await bob.wait_for(control.FloorTaken, lambda e: e.user_id == "alice")
    # Bob, on another node, waits in the owner's queue.
    await bob.press()
    position = await bob.wait_for(control.FloorQueuePosition)
    assert position.position == 1
    # The dispatcher, on a third node, pre-empts alice (a higher priority).
    await disp.wait_for(control.FloorTaken, lambda e: e.user_id == "alice")
    await disp.press(cid, int(floor.Priority.DISPATCHER))
    revoke = await alice.wait_for(control.FloorRevoke)
    assert revoke.cause == floor.RevokeCause.MEDIA_BURST_PRE_EMPTED.phrase
    granted = await disp.wait_for(control.FloorGranted)
    taken = await bob.wait_for(control.FloorTaken, lambda e: e.user_id == "disp")
    assert taken.burst_id == granted.burst_id
    assert await disp.send_voice(b"dispatch speaking")
    for listener in (alice, bob):
        frame = await listener.wait_for(events.VoiceFrame, lambda f: f.talker == "disp")
        assert frame.opus == b"dispatch speaking"
    # When the dispatcher lets go, the queue moves on to bob, on his own node.
    await disp.release(cid)
    bob_granted = await bob.wait_for(control.FloorGranted)
    assert bob_granted.burst_id > granted.burst_id
    assert await bob.send_voice(b"bob at last")
    frame = await alice.wait_for(events.VoiceFrame, lambda f: f.talker == "bob")
    assert frame.opus == b"bob at last"


async def test_a_late_entrant_on_another_node_learns_the_talker(cluster: Cluster) -> None:
    alice = await cluster.radio("alice", 0)
    await alice.press()
    granted = await alice.wait_for(control.FloorGranted)
    carol = await cluster.radio("carol", 2)  # affiliates while alice talks
    taken = await carol.wait_for(control.FloorTaken)
    assert (taken.user_id, taken.burst_id) == ("alice", granted.burst_id)
    assert await alice.send_voice(b"for carol")
    frame = await carol.wait_for(events.VoiceFrame)
    assert frame.opus == b"for carol"


async def test_a_frame_is_published_once_per_frame_and_reaches_only_nodes_with_listeners(
    cluster: Cluster,
) -> None:
    """Media crosses nodes once per node: node 2 has nobody on the channel and gets none."""
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 1)
    await alice.press()
    await alice.wait_for(control.FloorGranted)
    await bob.wait_for(control.FloorTaken)
    for i in range(10):
        assert await alice.send_voice(bytes([i]) * 30)
    for _ in range(10):
        await bob.wait_for(events.VoiceFrame)
    received = [node.metrics.relay.bus_received_packets for node in cluster.nodes]
    assert received == [0, 10, 0]
