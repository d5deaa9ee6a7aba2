"""Presence in the store (ptt_server.store.presence), on SQLite and PostgreSQL."""

from __future__ import annotations

from ptt_server.store import Presence, Store
from tests.ptt_server.test_store_fixtures import (
    store_fixture,  # noqa: F401 (fixture)
    store_location_fixture,  # noqa: F401 (fixture)
)


async def test_presence(store: Store) -> None:
    assert await store.get_presence("alice") is None
    await store.put_presence(Presence("bob", "on scene", True, 10.0, b"loc"))
    await store.put_presence(Presence("alice", "available", True, 11.0))
    await store.put_presence(Presence("bob", "off duty", False, 12.0))
    assert await store.get_presence("bob") == Presence("bob", "off duty", False, 12.0, None)
    assert await store.all_presence() == [
        Presence("alice", "available", True, 11.0, None),
        Presence("bob", "off duty", False, 12.0, None),
    ]


async def test_the_node_a_user_is_online_on_is_stored(store: Store) -> None:
    await store.put_presence(Presence("alice", "available", True, 11.0, node="node1"))
    assert await store.get_presence("alice") == Presence(
        "alice", "available", True, 11.0, None, "node1"
    )
    await store.put_presence(Presence("alice", "available", True, 12.0))  # one node: no name
    stored = await store.get_presence("alice")
    assert stored is not None and stored.node is None


async def test_a_dead_nodes_users_are_marked_offline_and_no_one_else(store: Store) -> None:
    await store.put_presence(Presence("alice", "on scene", True, 10.0, b"loc", "node0"))
    await store.put_presence(Presence("bob", "available", True, 10.0, None, "node0"))
    await store.put_presence(Presence("carol", "available", True, 10.0, None, "node2"))  # moved
    await store.put_presence(Presence("dave", "offline", False, 5.0, None, "node0"))  # logged out
    await store.put_presence(Presence("erin", "available", True, 10.0))  # one node's row
    assert await store.mark_node_offline("node0", 20.0) == ["alice", "bob"]
    assert await store.all_presence() == [
        Presence("alice", "offline", False, 20.0, b"loc", "node0"),  # the location is kept
        Presence("bob", "offline", False, 20.0, None, "node0"),
        Presence("carol", "available", True, 10.0, None, "node2"),
        Presence("dave", "offline", False, 5.0, None, "node0"),  # not seen again at 20
        Presence("erin", "available", True, 10.0, None, None),
    ]
    assert await store.mark_node_offline("node0", 30.0) == []  # done once
