"""PostgreSQL restarts under a live cluster: the nodes retry, nothing acknowledged is lost."""

from __future__ import annotations

import asyncio

from ptt_client import events
from ptt_protocol import control
from tests.clusterfixture import Cluster
from tests.pgfixture import PostgresServer


async def test_texts_stored_before_and_during_a_postgresql_restart_arrive_once(
    cluster: Cluster, pg_server: PostgresServer
) -> None:
    alice = await cluster.radio("alice", 0)
    first = await alice.send_text("before the restart", to_user="bob")
    await alice.wait_for(
        control.TextReceipt, lambda r: r.kind == control.RECEIPT_STORED and r.message_id == first
    )
    await asyncio.to_thread(pg_server.stop, "immediate")  # as if its machine crashed
    try:
        # Sent while PostgreSQL is down: the node's store retries until it is back.
        second = await alice.send_text("during the restart", to_user="bob")
    finally:
        await asyncio.to_thread(pg_server.start)
    await alice.wait_for(
        control.TextReceipt,
        lambda r: r.kind == control.RECEIPT_STORED and r.message_id == second,
        timeout=20,
    )
    # Bob logs in on another node: both texts, each once.
    bob = await cluster.radio("bob", 2, affiliate=False)
    texts = [await bob.wait_for(events.TextReceived) for _ in range(2)]
    assert sorted(t.text for t in texts) == ["before the restart", "during the restart"]
    assert {t.message_id for t in texts} == {first, second}
    await bob.ping_server()
    assert not any(isinstance(e, events.TextReceived) for e in bob.drain_events())
    # And the cluster still carries the floor (the nodes' store calls work again).
    await bob.affiliate(cluster.org.channel_id)
    await bob.wait_for(control.Affiliated)
    await alice.press()
    await alice.wait_for(control.FloorGranted)
    assert await alice.send_voice(b"after the outage")
    assert (await bob.wait_for(events.VoiceFrame)).opus == b"after the outage"
