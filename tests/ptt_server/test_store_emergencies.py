"""Emergency alerts in the store (ptt_server.store.emergencies), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptt_server.store import NotFoundError, Store
from tests.ptt_server.test_store_fixtures import (
    RawDatabase,
    raw_db_fixture,  # noqa: F401 (fixture)
    store_fixture,  # noqa: F401 (fixture)
    store_location_fixture,  # noqa: F401 (fixture)
)


async def outcome(s: Store, alert_id: bytes, user: str, ch: int | None, at: float) -> str:
    return (await s.raise_emergency(alert_id, user, ch, None, at)).outcome


async def test_emergency_lifecycle_survives_reopen(store_location: Path | str) -> None:
    s = await Store.open(store_location)
    ch = await s.create_channel("alpha", 1.0)
    assert (await s.raise_emergency(b"alert-1", "alice", ch, b"sealed-loc", 50.0)).outcome == (
        "created"
    )
    assert await outcome(s, b"alert-2", "bob", None, 40.0) == "created"
    assert await outcome(s, b"alert-3", "carol", ch, 60.0) == "created"
    assert await s.ack_emergency(b"alert-2", "dispatch-1", 70.0)
    assert not await s.ack_emergency(b"alert-2", "dispatch-2", 71.0)  # first ack wins
    assert await s.cancel_emergency(b"alert-3", "carol", 72.0)
    assert not await s.cancel_emergency(b"alert-3", "carol", 73.0)
    assert not await s.ack_emergency(b"alert-3", "dispatch-1", 74.0)  # cancelled already
    with pytest.raises(NotFoundError):
        await s.ack_emergency(b"nope", "dispatch-1", 75.0)
    with pytest.raises(NotFoundError):
        await s.raise_emergency(b"alert-4", "dave", 999, None, 76.0)
    # Pressing again after a cancel makes a new alert; a late retry of the cancelled one does not.
    assert await outcome(s, b"alert-3", "carol", ch, 77.0) == "closed"
    assert await outcome(s, b"alert-5", "carol", ch, 78.0) == "created"
    assert await s.cancel_emergency(b"alert-5", "carol", 79.0)
    await s.close()

    s = await Store.open(store_location)
    active = await s.active_emergencies()
    # Unacknowledged first, so a dispatcher's console never buries a fresh alert.
    assert [(e.alert_id, e.acknowledged) for e in active] == [
        (b"alert-1", False),
        (b"alert-2", True),
    ]
    first = active[0]
    assert (first.user_id, first.channel_id, first.sealed_location, first.raised_at) == (
        "alice",
        ch,
        b"sealed-loc",
        50.0,
    )
    assert (active[1].acked_by, active[1].acked_at) == ("dispatch-1", 70.0)
    cancelled = await s.get_emergency(b"alert-3")
    assert cancelled is not None and not cancelled.active
    assert (cancelled.cancelled_by, cancelled.cancelled_at) == ("carol", 72.0)
    await s.close()


async def test_a_press_with_a_fresh_id_updates_the_users_active_emergency(
    store: Store, raw_db: RawDatabase
) -> None:
    ch = await store.create_channel("alpha", 1.0)
    other = await store.create_channel("bravo", 1.0)
    first = await store.raise_emergency(b"first", "alice", ch, b"loc-1", 10.0)
    assert first.outcome == "created"
    assert await store.ack_emergency(b"first", "disp", 11.0)
    for i in range(2, 301):  # issue 9: a radio sending alerts with fresh ids as fast as it can
        again = await store.raise_emergency(f"fresh-{i}".encode(), "alice", other, b"loc-2", 12.0)
        assert again.outcome == "updated"
    # Still one emergency, under its first id, on its first channel, with its ack; the newest
    # location and time; every press counted.
    assert [(e.alert_id, e.channel_id, e.acked_by) for e in await store.active_emergencies()] == [
        (b"first", ch, "disp")
    ]
    alert = again.alert
    assert (alert.sealed_location, alert.raised_at, alert.updated_at, alert.presses) == (
        b"loc-2",
        10.0,
        12.0,
        300,
    )
    assert await store.get_emergency(b"fresh-2") is None
    # A press without a location keeps the last one.
    assert (await store.raise_emergency(b"x", "alice", ch, None, 13.0)).alert.sealed_location == (
        b"loc-2"
    )
    # Somebody else's alert id changes nothing.
    foreign = await store.raise_emergency(b"first", "bob", ch, b"bob-loc", 14.0)
    assert (foreign.outcome, foreign.alert.user_id) == ("foreign", "alice")
    assert await store.active_emergencies() == [foreign.alert]
    # The database itself refuses a second active alert for a user (ptt-admin, old code).
    with pytest.raises(raw_db.integrity_error, match=r"(?i)unique"):
        raw_db.execute(
            "INSERT INTO emergencies (alert_id, user_id, raised_at) VALUES (?, 'alice', 1)",
            (b"\x01",),
        )
