"""The private-call log in the store (ptt_server.store.calls), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptt_protocol import control
from ptt_server.store import Store, StoreError
from ptt_server.store.calls import RELAY_RESTARTED
from tests.ptt_server.test_store_fixtures import (
    RawDatabase,
    raw_db_fixture,  # noqa: F401 (fixture)
    store_fixture,  # noqa: F401 (fixture)
    store_location_fixture,  # noqa: F401 (fixture)
)


def record(
    n: int, caller: str = "alice", callee: str = "bob", at: float = 100.0
) -> control.CallRecord:
    return control.CallRecord(
        call_id=bytes([n]) * 16,
        caller=caller,
        callee=callee,
        mode=control.CALL_FULL_DUPLEX,
        emergency=n % 2 == 1,
        offered_at=at,
    )


async def test_a_call_is_logged_from_offer_to_end_and_survives_reopen(
    store_location: Path | str,
) -> None:
    store = await Store.open(store_location)
    await store.log_call(record(1))
    await store.call_answered(b"\x01" * 16, 101.0)
    await store.call_answered(b"\x01" * 16, 109.0)  # a second answer changes nothing
    await store.call_ended(b"\x01" * 16, 130.0, control.END_HANGUP, "bob")
    await store.call_ended(b"\x01" * 16, 140.0, control.END_PEER_GONE, "")  # nor a second end
    await store.log_call(record(1, callee="carol"))  # a repeat of a logged id changes nothing
    await store.close()
    store = await Store.open(store_location)
    try:
        (got,) = await store.call_log(None, 10)
        assert (got.callee, got.answered_at, got.ended_at, got.outcome, got.ended_by) == (
            "bob",
            101.0,
            130.0,
            control.END_HANGUP,
            "bob",
        )
        assert got.emergency and await store.call_logged(b"\x01" * 16)
        assert not await store.call_logged(b"\x09" * 16)
    finally:
        await store.close()


async def test_a_users_log_has_its_own_calls_newest_first_and_a_dispatchers_all(
    store: Store,
) -> None:
    await store.log_call(record(1, "alice", "bob", at=1.0))
    await store.log_call(record(2, "carol", "alice", at=2.0))
    await store.log_call(record(3, "bob", "carol", at=3.0))
    alices = await store.call_log("alice", 10)
    assert [r.call_id[0] for r in alices] == [2, 1]
    assert [r.call_id[0] for r in await store.call_log(None, 10)] == [3, 2, 1]
    assert [r.call_id[0] for r in await store.call_log(None, 2)] == [3, 2]


async def test_calls_a_stopped_relay_left_open_are_closed_at_the_next_start(
    store: Store,
) -> None:
    await store.log_call(record(1, at=10.0))
    await store.log_call(record(2, "carol", "dan", at=20.0))
    await store.call_ended(b"\x02" * 16, 25.0, control.END_HANGUP, "carol")
    assert await store.close_calls_left_open(50.0) == 1
    by_id = {r.call_id[0]: r for r in await store.call_log(None, 10)}
    assert (by_id[1].ended_at, by_id[1].outcome) == (50.0, RELAY_RESTARTED)
    assert (by_id[2].ended_at, by_id[2].outcome) == (25.0, control.END_HANGUP)
    assert await store.close_calls_left_open(60.0) == 0


async def test_bad_rows_are_refused_and_change_nothing(store: Store, raw_db: RawDatabase) -> None:
    with pytest.raises(StoreError):
        await store.log_call(record(1, caller=""))
    with pytest.raises(StoreError):
        await store.call_ended(b"\x01" * 16, 1.0, "", "bob")
    assert await store.call_log(None, 10) == []
    # The schema refuses what the checks above let through by mistake.
    with pytest.raises(raw_db.integrity_error):
        raw_db.execute(
            "INSERT INTO calls (call_id, caller, callee, mode, emergency, offered_at)"
            " VALUES (?, 'a', 'b', 'simplex', 0, 1.0)",
            (b"\x05" * 16,),
        )
