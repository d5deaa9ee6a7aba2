"""The relay's call log across a restart: calls it was carrying when it stopped are closed."""

from __future__ import annotations

from ptt_protocol import control
from ptt_server.store.calls import RELAY_RESTARTED
from tests.orgfixture import Org, start_server


async def test_a_call_open_when_the_relay_stopped_is_closed_at_its_next_start(org: Org) -> None:
    server = await start_server(org)
    open_call = control.CallRecord(
        call_id=b"k" * 16,
        caller="alice",
        callee="bob",
        mode=control.CALL_FULL_DUPLEX,
        emergency=False,
        offered_at=1_000.0,
    )
    await server.store.log_call(open_call)  # as if the relay died with the call up
    await server.stop()
    server = await start_server(org)
    try:
        (row,) = await server.store.call_log(None, 5)
        assert row.outcome == RELAY_RESTARTED and row.ended_at is not None
        assert row.ended_at >= row.offered_at
    finally:
        await server.stop()
