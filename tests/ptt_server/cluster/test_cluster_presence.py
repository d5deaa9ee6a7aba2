"""A dead node's officers go offline at every console (issue 12; real processes, radios).

Node 0 runs in its own process and is ``kill -9``ed: alice's radio knows only node 0 (her
phone lost the network with it: nothing fails over), bob's knows node 0 and node 2 and
moves. The dispatcher on node 1 must see alice go offline within a few seconds, bob stay
online, and the store must agree; a node starting under a name clears that name's rows.
"""

from __future__ import annotations

import asyncio

import msgspec

from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server import tls
from ptt_server.cluster.liveness import DEAD_AFTER_S, HEARTBEAT_S
from ptt_server.store import Presence
from tests.clusterfixture import Cluster, ProcessCluster
from tests.credentials import bundle_for


async def radio_of(cluster: Cluster, user: str, urls: list[str]) -> RadioClient:
    """``user``'s real radio whose bundle lists only ``urls`` (the first is tried first)."""
    account = cluster.org.accounts[user]
    bundle = bundle_for(
        cluster.org.root,
        (account.keys, account.credential),
        server_url=urls[0],
        tls_fingerprint=tls.fingerprint(cluster.tls_dir / "cert.pem"),
    )
    bundle = msgspec.structs.replace(bundle, alternate_urls=tuple(urls[1:]))
    client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys))
    cluster.radios.append(client)  # stopped by the fixture
    await client.start()
    await client.wait_connected()
    return client


async def updates_until(
    console: RadioClient, wanted: dict[str, bool], timeout: float = 5.0
) -> dict[str, control.PresenceUpdate]:
    """The console's presence updates until each user of ``wanted`` was shown online (True)
    or offline (False): the last such update of each (they arrive in any order)."""
    seen: dict[str, control.PresenceUpdate] = {}
    while seen.keys() != wanted.keys():
        update = await console.wait_for(
            control.PresenceUpdate,
            lambda u: wanted.get(u.user_id) is u.online and u.user_id not in seen,
            timeout=timeout,
        )
        seen[update.user_id] = update
    return seen


async def test_a_killed_nodes_stranded_officer_goes_offline_at_a_console_on_another(
    process_cluster: ProcessCluster,
) -> None:
    cluster = process_cluster
    assert cluster.process is not None
    node0, _, node2 = cluster.urls()
    disp = await cluster.radio("disp", 1)
    await disp.subscribe_presence()
    await disp.wait_for(control.EnrolledUsers, lambda p: p.last)
    await radio_of(cluster, "alice", [node0])  # no other node to go to
    bob = await radio_of(cluster, "bob", [node0, node2])
    await updates_until(disp, {"alice": True, "bob": True})
    alice_row = await cluster.nodes[0].store.get_presence("alice")
    assert alice_row is not None and alice_row.online and alice_row.node == "node0"
    node1 = cluster.nodes[0].cluster  # nodes[0]: the first in-process node, node 1
    assert node1 is not None
    watch = node1.watch
    while "node0" not in watch.liveness.live():  # it heard node 0 alive: then it went silent
        watch.heard_new.clear()
        async with asyncio.timeout(5):
            await watch.heard_new.wait()
    disp.drain_events()
    await cluster.process.kill()
    # Node 1 (the lowest live name) hears node 0 fall silent and marks alice offline; bob's
    # radio moves to node 2, which stores him online under its name (node 0 is dead: no
    # one else says bob is online now).
    shown = await updates_until(
        disp, {"alice": False, "bob": True}, timeout=DEAD_AFTER_S + 3 * HEARTBEAT_S + 5
    )
    gone = shown["alice"]
    assert gone.status == control.STATUS_OFFLINE and gone.display_name == "Alice Adams"
    moved = await bob.wait_for(events.Connected, lambda e: e.server_url != node0, timeout=10)
    assert moved.server_url == node2
    store = cluster.nodes[1].store
    alice_row = await store.get_presence("alice")
    assert alice_row is not None and not alice_row.online and alice_row.node == "node0"
    # Past the sweep (alice is offline) and his login on node 2: his row is node 2's.
    bob_row = await store.get_presence("bob")
    assert bob_row is not None and bob_row.online and bob_row.node == "node2"
    # What a console gets when it asks now agrees with the store.
    disp.drain_events()
    await disp.subscribe_presence()
    snapshot: dict[str, control.PresenceUpdate] = {}
    while not {"alice", "bob"} <= snapshot.keys():
        update = await disp.wait_for(control.PresenceUpdate)
        snapshot[update.user_id] = update
    assert not snapshot["alice"].online
    assert snapshot["bob"].online


async def test_a_node_starting_under_a_name_clears_that_names_stale_rows(
    cluster: Cluster,
) -> None:
    """Node "node7" was stopped (or killed) with alice online on it and is started again:
    none of its sessions exist any more. No other node ever heard node7 (nobody sweeps it
    for having gone silent): only its own start can clear the row, and only its name's."""
    store = cluster.nodes[0].store
    disp = await cluster.radio("disp", 1)
    await disp.subscribe_presence()
    await disp.wait_for(control.EnrolledUsers, lambda p: p.last)
    await store.put_presence(Presence("alice", "on scene", True, 100.0, b"loc", "node7"))
    # A row of a live node (node 1): no start of another name touches it.
    await store.put_presence(Presence("bob", "available", True, 100.0, None, "node1"))
    disp.drain_events()
    await cluster.start_node(3, node_name="node7")
    alice = await store.get_presence("alice")
    assert alice is not None and not alice.online and alice.status == control.STATUS_OFFLINE
    assert alice.sealed_location == b"loc" and alice.last_seen > 100.0
    bob = await store.get_presence("bob")
    assert bob == Presence("bob", "available", True, 100.0, None, "node1")
    # Node 1's console heard it from node7, by the presence news path.
    update = await disp.wait_for(control.PresenceUpdate, lambda u: u.user_id == "alice")
    assert not update.online and update.sealed_location == b"loc"


async def test_a_node_that_died_before_anyone_heard_it_has_its_users_marked_offline(
    cluster: Cluster,
) -> None:
    """The store names node9 (it died while no node was up, or just after it started):
    the lowest live node marks its users offline once it has not heard it for a while."""
    store = cluster.nodes[0].store
    disp = await cluster.radio("disp", 2)
    await disp.subscribe_presence()
    await disp.wait_for(control.EnrolledUsers, lambda p: p.last)
    await store.put_presence(Presence("carol", "on scene", True, 100.0, None, "node9"))
    update = await disp.wait_for(
        control.PresenceUpdate,
        lambda u: u.user_id == "carol" and not u.online,
        timeout=DEAD_AFTER_S + 3 * HEARTBEAT_S + 5,
    )
    assert update.status == control.STATUS_OFFLINE
    carol = await store.get_presence("carol")
    assert carol is not None and not carol.online and carol.node == "node9"
