"""Messages and deliveries in the store (ptt_server.store.messages), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from ptt_server.store import DEFAULT_MESSAGE_RETENTION_S, Store, StoreError
from tests.ptt_server.test_store_fixtures import (
    DAY,
    mid,
    store_fixture,  # noqa: F401 (fixture)
    store_location_fixture,  # noqa: F401 (fixture)
)


async def test_messages_dedup_order_delivery_and_read(store: Store) -> None:
    ch = await store.create_channel("alpha", 1.0)
    # Inserted out of send order: pending_for must still return them by sent_at.
    assert await store.store_message(mid(2), "bob", "alice", None, b"s2", 200.0, ["alice"])
    assert await store.store_message(mid(1), "carol", None, ch, b"s1", 100.0, ["alice", "bob"])
    assert await store.store_message(mid(3), "bob", "alice", None, b"s3", 300.0, ["alice"])
    # Same id again (a client retry, even with other content): a no-op.
    assert not await store.store_message(mid(2), "bob", "dave", None, b"other", 999.0, ["dave"])
    assert await store.pending_for("dave") == []
    pending = await store.pending_for("alice")
    assert [(m.message_id, m.sealed, m.sent_at) for m in pending] == [
        (mid(1), b"s1", 100.0),
        (mid(2), b"s2", 200.0),
        (mid(3), b"s3", 300.0),
    ]
    assert (pending[0].to_channel, pending[0].to_user) == (ch, None)
    assert (pending[1].to_channel, pending[1].to_user) == (None, "alice")
    assert [m.message_id for m in await store.pending_for("alice", limit=2)] == [mid(1), mid(2)]

    assert await store.mark_delivered(mid(2), "alice", 400.0)
    assert not await store.mark_delivered(mid(2), "alice", 401.0)  # already delivered
    assert not await store.mark_delivered(mid(9), "alice", 401.0)  # unknown
    assert await store.mark_read(mid(3), "alice", 402.0)  # read implies delivered
    assert not await store.mark_read(mid(3), "alice", 403.0)
    assert [m.message_id for m in await store.pending_for("alice")] == [mid(1)]
    assert [m.message_id for m in await store.pending_for("bob")] == [mid(1)]
    d2 = await store.deliveries(mid(2))
    d3 = await store.deliveries(mid(3))
    assert [(d.recipient, d.delivered_at, d.read_at) for d in d2] == [("alice", 400.0, None)]
    assert [(d.recipient, d.delivered_at, d.read_at) for d in d3] == [("alice", 402.0, 402.0)]
    stored = await store.get_message(mid(2))
    assert stored is not None and stored.sealed == b"s2"


async def test_bad_messages_are_refused_without_change(store: Store) -> None:
    with pytest.raises(StoreError, match="16 bytes"):
        await store.store_message(b"short", "bob", "alice", None, b"s", 1.0, ["alice"])
    with pytest.raises(StoreError, match="exactly one"):
        await store.store_message(mid(1), "bob", "a", 1, b"s", 1.0, ["alice"])
    with pytest.raises(StoreError, match="exactly one"):
        await store.store_message(mid(1), "bob", None, None, b"s", 1.0, ["a"])
    with pytest.raises(StoreError, match="collection"):
        await store.store_message(mid(1), "bob", "alice", None, b"s", 1.0, "alice")
    assert await store.get_message(mid(1)) is None


async def test_prune_removes_old_direct_messages_only(store: Store) -> None:
    ch = await store.create_channel("alpha", 1.0)
    now = 100 * DAY
    old = now - DEFAULT_MESSAGE_RETENTION_S - 1
    await store.store_message(mid(1), "bob", "alice", None, b"old-direct", old, ["alice"])
    await store.store_message(mid(2), "bob", None, ch, b"old-channel", old, ["alice"])
    await store.store_message(mid(3), "bob", "alice", None, b"new-direct", now - DAY, ["alice"])
    assert await store.prune_messages(now) == 1
    assert await store.get_message(mid(1)) is None
    # Cascaded to the deliveries: this only happens with foreign_keys=ON.
    assert await store.deliveries(mid(1)) == []
    assert [m.message_id for m in await store.pending_for("alice")] == [mid(2), mid(3)]
    assert await store.prune_messages(now, include_channel_messages=True) == 1
    assert [m.message_id for m in await store.pending_for("alice")] == [mid(3)]


async def test_prune_messages_in_many_chunks(store: Store) -> None:
    for i in range(1200):
        await store.store_message(mid(i), "bob", "alice", None, b"s", float(i), ["alice"])
    assert await store.prune_messages(now=1100.0, retention_s=0.0) == 1100
    assert len(await store.pending_for("alice")) == 100
