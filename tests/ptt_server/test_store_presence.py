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
