"""``kill -9`` of the node that owns the floor, mid-burst (real processes, real radios).

Node 0 runs in its own process and owns patrol's floor (alice, on it, is talking); nodes 1
and 2 run here. When node 0 dies: listeners on the surviving nodes see the floor idle
within the lease, radios that were on node 0 reconnect to another node of their bundle,
re-affiliate and hear the channel again, and the floor is taken over by a surviving node.
"""

from __future__ import annotations

import pytest

from ptt_client import events
from ptt_protocol import control
from ptt_server.cluster.floors import LEASE_S
from tests.clusterfixture import ProcessCluster


async def test_the_owner_node_killed_mid_burst_the_floor_idles_and_radios_move_on(
    process_cluster: ProcessCluster,
) -> None:
    cluster = process_cluster
    cid = cluster.org.channel_id
    assert cluster.process is not None
    dead_url = cluster.process.url
    alice = await cluster.radio("alice", 0)  # on the node that dies
    carol = await cluster.radio("carol", 0)  # a listener on it
    bob = await cluster.radio("bob", 1)
    await alice.press()
    granted = await alice.wait_for(control.FloorGranted)
    await bob.wait_for(control.FloorTaken, lambda e: e.burst_id == granted.burst_id)
    assert await alice.send_voice(b"mid-burst")
    assert (await bob.wait_for(events.VoiceFrame)).opus == b"mid-burst"
    carol.drain_events()
    await cluster.process.kill()
    # Bob's node stops hearing the owner's heartbeat: the burst ends for its listeners.
    await bob.wait_for(control.FloorIdle, timeout=LEASE_S + 2)
    # Carol was on the dead node: her radio moves to a surviving one and re-affiliates.
    connected = await carol.wait_for(events.Connected, timeout=10)
    assert connected.server_url != dead_url
    await carol.wait_for(control.Affiliated)
    # A surviving node takes the floor over: bob talks, carol hears him.
    await bob.press(cid)
    bob_granted = await bob.wait_for(control.FloorGranted, timeout=LEASE_S + 3)
    assert bob_granted.burst_id > granted.burst_id  # numbering goes on across owners
    assert await bob.send_voice(b"back on the air")
    frame = await carol.wait_for(events.VoiceFrame, lambda f: f.talker == "bob")
    assert frame.opus == b"back on the air"
    # Alice's radio moved as well and can talk again once bob lets go.
    await alice.wait_for(events.Connected, lambda e: e.server_url != dead_url)
    await bob.release(cid)
    await alice.wait_for(control.Affiliated)
    await alice.release(cid)  # her key was still down when her node died: she lets go first
    await alice.press(cid)
    await alice.wait_for(control.FloorGranted, timeout=5)
    assert await alice.send_voice(b"alice again")
    assert (await carol.wait_for(events.VoiceFrame, lambda f: f.talker == "alice")).opus == (
        b"alice again"
    )


@pytest.mark.cluster_settings(floor_t1_end_of_media=60.0)
@pytest.mark.parametrize("owner", [1, 2], ids=["owner-where-she-lands", "owner-elsewhere"])
async def test_a_talker_whose_node_died_loses_the_floor_when_it_logs_in_elsewhere(
    process_cluster: ProcessCluster, owner: int
) -> None:
    """The floor's owner survives; the talker's node dies. T1 is a minute here: the floor
    goes idle because the talker's radio logged in on another node, not because its media
    stopped, so the channel is free again within a failover, not a T1. Alice's radio goes
    to node 1 first: the owner is that node, or node 2 (which learns of it by login news)."""
    cluster = process_cluster
    cid = cluster.org.channel_id
    first = await cluster.radio("bob", owner)
    listener = await cluster.radio("carol", 3 - owner)
    await first.press()  # the owner node takes the floor's lease
    await first.wait_for(control.FloorGranted)
    await first.release(cid)
    await listener.wait_for(control.FloorIdle)
    alice = await cluster.radio("alice", 0)  # on the node that dies
    await alice.press()
    granted = await alice.wait_for(control.FloorGranted)
    await listener.wait_for(control.FloorTaken, lambda e: e.burst_id == granted.burst_id)
    assert await alice.send_voice(b"before")
    assert (await listener.wait_for(events.VoiceFrame)).opus == b"before"
    assert cluster.process is not None
    dead_url = cluster.process.url
    await cluster.process.kill()
    moved = await alice.wait_for(events.Connected, lambda e: e.server_url != dead_url, timeout=10)
    assert moved.server_url == cluster.urls()[1]  # node 1, the next in her bundle
    await listener.wait_for(control.FloorIdle, timeout=10)
    await listener.press(cid)
    listener_granted = await listener.wait_for(control.FloorGranted, timeout=5)
    assert listener_granted.burst_id > granted.burst_id
