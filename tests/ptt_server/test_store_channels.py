"""Channels, rosters and key envelopes in the store (ptt_server.store.channels), on both engines."""

from __future__ import annotations

import pytest

from ptt_server.store import ConflictError, NotFoundError, StaleVersionError, Store, StoreError
from tests.ptt_server.test_store_fixtures import (
    RawDatabase,
    raw_db_fixture,  # noqa: F401 (fixture)
    store_fixture,  # noqa: F401 (fixture)
    store_location_fixture,  # noqa: F401 (fixture)
)


async def test_channels(store: Store) -> None:
    a = await store.create_channel("alpha", 10.0)
    b = await store.create_channel("bravo", 11.0)
    assert a != b and 1 <= a <= 2**32 - 1
    ch = await store.get_channel(b)
    assert ch is not None and (ch.channel_id, ch.name, ch.created_at) == (b, "bravo", 11.0)
    assert await store.channel_by_name("alpha") == await store.get_channel(a)
    assert await store.channel_by_name("charlie") is None
    assert await store.get_channel(999) is None
    assert [c.name for c in await store.list_channels()] == ["alpha", "bravo"]
    with pytest.raises(ConflictError, match="'alpha' is taken"):
        await store.create_channel("alpha", 12.0)
    with pytest.raises(StoreError, match="non-empty"):
        await store.create_channel("", 12.0)
    assert len(await store.list_channels()) == 2


async def test_channel_ids_run_out_with_a_clear_error(store: Store, raw_db: RawDatabase) -> None:
    await store.create_channel("first", 1.0)
    if raw_db.engine == "sqlite":  # AUTOINCREMENT's counter
        raw_db.execute("UPDATE sqlite_sequence SET seq = 4294967294 WHERE name = 'channels'")
    else:  # the identity column's sequence
        raw_db.execute("ALTER TABLE channels ALTER COLUMN channel_id RESTART WITH 4294967295")
    assert await store.create_channel("last", 2.0) == 2**32 - 1
    with pytest.raises(StoreError, match="no channel ids left"):
        await store.create_channel("one too many", 3.0)
    assert [c.name for c in await store.list_channels()] == ["first", "last"]


async def test_roster_version_rule_and_memberships(store: Store) -> None:
    a = await store.create_channel("alpha", 1.0)
    b = await store.create_channel("bravo", 1.0)
    assert await store.get_roster(a) is None
    await store.put_roster(a, 1, b"roster-a1", ["alice", "bob"])
    await store.put_roster(b, 5, b"roster-b5", ["alice"])
    assert await store.channels_of("alice") == [a, b]
    assert await store.channels_of("bob") == [a]
    for stale in (1, 0):
        with pytest.raises(StaleVersionError, match="not newer than the stored version 1"):
            await store.put_roster(a, stale, b"evil", ["mallory"])
    roster = await store.get_roster(a)
    assert roster is not None
    assert (roster.version, roster.signed, roster.members) == (
        1,
        b"roster-a1",
        frozenset({"alice", "bob"}),
    )
    await store.put_roster(a, 2, b"roster-a2", ["bob", "carol"])
    assert await store.channels_of("alice") == [b]
    assert await store.channels_of("carol") == [a]
    with pytest.raises(NotFoundError, match="channel 77 does not exist"):
        await store.put_roster(77, 1, b"x", ["alice"])


async def test_newest_envelope_per_member(store: Store) -> None:
    a = await store.create_channel("alpha", 1.0)
    b = await store.create_channel("bravo", 1.0)
    await store.put_roster(a, 1, b"r", ["alice", "bob"])
    assert await store.put_envelopes(a, 1, {"alice": b"a1", "bob": b"b1"}, 10.0) == 2
    assert await store.put_envelopes(b, 4, {"alice": b"a-bravo-4"}, 11.0) == 1
    assert await store.put_envelopes(a, 2, {"alice": b"a2"}, 12.0) == 1
    # An envelope of an older epoch arriving late does not replace the newer one.
    assert await store.put_envelopes(a, 1, {"alice": b"a1-late", "bob": b"b1-again"}, 13.0) == 1
    got = {
        (e.channel_id, e.epoch, e.envelope, e.stored_at) for e in await store.envelopes_for("alice")
    }
    assert got == {(a, 2, b"a2", 12.0), (b, 4, b"a-bravo-4", 11.0)}
    assert [(e.epoch, e.envelope) for e in await store.envelopes_for("bob")] == [(1, b"b1-again")]
    with pytest.raises(NotFoundError):
        await store.put_envelopes(99, 1, {"alice": b"x"}, 14.0)


async def test_removed_member_loses_channel_envelope(store: Store) -> None:
    a = await store.create_channel("alpha", 1.0)
    await store.put_roster(a, 1, b"r1", ["alice", "bob"])
    await store.put_envelopes(a, 1, {"alice": b"a1", "bob": b"b1"}, 10.0)
    await store.put_roster(a, 2, b"r2", ["alice"])
    assert await store.envelopes_for("bob") == []
    assert [e.envelope for e in await store.envelopes_for("alice")] == [b"a1"]


async def test_a_deleted_channel_frees_its_name_not_its_id_and_keeps_its_recordings(
    store: Store,
) -> None:
    a = await store.create_channel("alpha", 1.0)
    await store.put_roster(a, 1, b"roster", ["alice"])
    await store.put_envelopes(a, 1, {"alice": b"env"}, 1.0)
    burst = await store.start_burst(a, 7, "alice", 1, 2.0)
    await store.record_frames(burst, [(0, 0, b"sealed")])
    await store.delete_channel(a, 3.0)
    assert await store.get_channel(a) is None and await store.list_channels() == []
    assert await store.get_roster(a) is None
    assert await store.envelopes_for("alice") == [] and await store.channels_of("alice") == []
    assert [f.frame for f in await store.burst_frames(burst)] == [b"sealed"]
    with pytest.raises(NotFoundError, match="deleted already"):
        await store.delete_channel(a, 4.0)
    with pytest.raises(NotFoundError):  # nothing new is logged on it
        await store.start_burst(a, 8, "alice", 1, 5.0)
    again = await store.create_channel("alpha", 6.0)
    assert again > a


async def test_a_channel_with_an_active_emergency_is_not_deleted(store: Store) -> None:
    a = await store.create_channel("alpha", 1.0)
    await store.raise_emergency(b"a" * 16, "alice", a, None, 2.0)
    with pytest.raises(ConflictError, match="emergency is active"):
        await store.delete_channel(a, 3.0)
    assert await store.get_channel(a) is not None
    await store.cancel_emergency(b"a" * 16, "alice", 4.0)
    await store.delete_channel(a, 5.0)
    assert await store.get_channel(a) is None


async def test_a_channel_is_linked_in_one_patch_at_a_time(store: Store) -> None:
    a, b, c, p, q = [await store.create_channel(n, 1.0) for n in ("a", "b", "c", "p", "q")]
    await store.put_patch(p, [a, b], b"order-1", "disp", 2.0)
    for linked, patch in (([a, c], q), ([c, p], q), ([c, q], a)):
        with pytest.raises(ConflictError, match="end that patch first"):
            await store.put_patch(patch, linked, b"order", "disp", 3.0)
    with pytest.raises(NotFoundError):
        await store.put_patch(q, [c, 999], b"order", "disp", 3.0)
    # Renewing keeps the links and takes the newer order; other links for p are refused.
    await store.put_patch(p, [b, a], b"order-2", "disp2", 3.0)
    with pytest.raises(ConflictError, match="a patch of other channels"):
        await store.put_patch(p, [a, c], b"order-3", "disp", 3.0)
    with pytest.raises(ConflictError, match="end the patch first"):
        await store.delete_channel(a, 3.0)
    [links] = await store.list_patches()
    assert (links.patch_id, links.linked, links.created_by) == (p, (a, b), "disp")
    assert links.signed_order == b"order-2"
    assert await store.end_patch(p) == (a, b)
    assert await store.end_patch(p) == () and await store.list_patches() == []
    await store.delete_channel(a, 4.0)
