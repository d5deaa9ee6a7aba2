"""More attacks on private calls, end to end: a hostile relay, a malicious member, a flaky
network. Real relay (TLS, SQLite), real radios, real aiortc media on 127.0.0.1.

A malicious member is a real radio whose own code is bent (its call ids, the messages it
sends through its own connection); a hostile relay is the real one with a handler wrapped
(``evil``) or a message pushed into a session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from ptt_client import events
from ptt_client.calls import manager as call_manager
from ptt_client.calls.media import CallMedia
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.orgfixture import Org, joined_radio
from tests.ptt_client.calls.test_call_attacks import Watch


@pytest.fixture
async def radios(org: Org, server: RelayServer) -> AsyncIterator[dict[str, RadioClient]]:
    started: dict[str, RadioClient] = {}
    try:
        for user in ("alice", "bob", "carol"):
            started[user] = await joined_radio(org, server, user)
        yield started
    finally:
        for radio in started.values():
            await radio.stop()


@pytest.fixture
def medias(monkeypatch: pytest.MonkeyPatch) -> list[CallMedia]:
    """Every CallMedia made in the test, to show none is left open."""
    made: list[CallMedia] = []
    real_init = CallMedia.__init__

    def init(self: CallMedia, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(CallMedia, "__init__", init)
    return made


async def ended(radio: RadioClient, reason: str | None = None) -> events.CallEnded:
    return await radio.wait_for(
        events.CallEnded, lambda e: reason is None or e.reason == reason, timeout=15
    )


async def all_closed(medias: list[CallMedia]) -> None:
    """Every peer connection made is closed (its shutdown ran to the end)."""
    for media in medias:
        assert media.ended_reason is not None, "a call's peer connection was left open"
        task = media._shutdown_task
        assert task is not None
        await task


# --- a malicious member --------------------------------------------------------------------


async def test_an_ended_calls_id_cannot_be_reused_to_hide_a_call_or_rewrite_the_log(
    radios: dict[str, RadioClient], server: RelayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice's radio picks the id of a call bob refused for her next call, to carol: the
    relay must refuse it, or carol's call goes unlogged and bob's row shows it answered."""
    alice, bob, carol = radios["alice"], radios["bob"], radios["carol"]
    bob.calls.auto_answer = False
    first = await alice.calls.dial("bob", commencement=control.COMMENCEMENT_MANUAL)
    await bob.wait_for(events.CallAlerting, lambda e: not e.outgoing)
    await bob.calls.refuse()
    await ended(alice)
    # Only this radio's call ids are bent (websockets draws its masks from ``secrets`` too).
    monkeypatch.setattr(
        call_manager, "secrets", SimpleNamespace(token_bytes=lambda n: first.call_id)
    )
    watch_carol = Watch(carol)
    await alice.calls.dial("carol")
    end = await alice.wait_for(
        object, lambda e: isinstance(e, events.CallEnded | events.CallConnected), timeout=15
    )
    if isinstance(end, events.CallConnected):  # the hole: show what the log then says
        await alice.calls.hangup()
        await ended(carol)
        rows = await server.store.call_log(None, 10)
        pytest.fail(f"a reused call id went through; the call log says {rows}")
    assert end.reason == control.END_FAILED and "call id is in use" in end.text, end
    await carol.ping_server()
    assert not any(isinstance(e, events.CallAlerting) for e in watch_carol.seen)
    (row,) = await server.store.call_log("bob", 10)
    assert (row.callee, row.answered_at, row.outcome) == ("bob", None, control.END_REFUSED)
    assert await server.store.call_log("carol", 10) == []
