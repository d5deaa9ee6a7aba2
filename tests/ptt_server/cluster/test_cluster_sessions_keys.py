"""Two cluster-wide rules that no single node can keep alone: a key manager's new epoch
starts every node's KID-check grace, and late login news never ends a newer session."""

from __future__ import annotations

import asyncio

import msgspec
import nats
import pytest

from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.roster import Member, Roster, sign_roster
from ptt_client import events
from ptt_protocol import control
from ptt_server.cluster import news, wire
from ptt_server.cluster.node import ClusterNode
from ptt_server.handlers import presence
from tests.clusterfixture import Cluster
from tests.ptt_server.rawclient import connect


def watch_event(node: ClusterNode, kind: str) -> asyncio.Event:
    """Set once ``node`` has handled an event of ``kind`` (wraps its handler)."""
    handled = asyncio.Event()
    original = node._handlers[kind]

    async def wrapped(body: bytes) -> None:
        await original(body)
        handled.set()

    node.on_event(kind, wrapped)
    return handled


async def test_a_new_epochs_envelope_starts_the_old_kids_grace_on_every_node(
    cluster: Cluster,
) -> None:
    org = cluster.org
    cid = org.channel_id
    disp = await cluster.radio("disp", 0)
    carol = await cluster.radio("carol", 2)
    members = tuple(Member.from_credential(a.credential) for a in org.accounts.values())
    roster = Roster(cid, 2, members)
    dispatcher = org.accounts["disp"]
    signed = sign_roster(roster, dispatcher.keys, dispatcher.credential)
    await disp.send_message(control.RosterUpdate(channel_id=cid, version=2, signed_roster=signed))
    await carol.wait_for(control.RosterUpdate, lambda u: u.version == 2)
    for node in cluster.nodes:  # before: epoch 1's KIDs are accepted with no end in sight
        assert node.channels[cid].sender_indexes.next_expiry() is None
    handled = [watch_event(n.cluster, news.KEY_DELIVERED) for n in cluster.nodes[1:] if n.cluster]
    key = new_epoch_key(cid, 2, 2)
    envelopes = wrap_epoch(
        key,
        roster,
        {u: a.credential for u, a in org.accounts.items()},
        dispatcher.keys,
        dispatcher.credential,
    )
    await disp.send_message(
        control.KeyEnvelope(channel_id=cid, epoch=2, recipient="carol", envelope=envelopes["carol"])
    )
    await carol.wait_for(events.KeysUpdated, lambda e: e.epoch == 2)
    async with asyncio.timeout(10):
        for event in handled:
            await event.wait()
    # Node 0 sent the envelope; nodes 1 and 2 keep epoch 1's KIDs only for the grace too.
    for node in cluster.nodes:
        assert node.channels[cid].sender_indexes.next_expiry() is not None, node.config.node_name


async def test_late_login_news_does_not_end_a_newer_session(cluster: Cluster) -> None:
    org = cluster.org
    bob = await connect(cluster.nodes[1], org.accounts["bob"])
    session = cluster.nodes[1].sessions.by_user["bob"]
    handled = watch_event(cluster.nodes[1].cluster, news.LOGIN)  # type: ignore[arg-type]
    other_device = org.issue("bob").credential.fingerprint()
    stale = news.LoginNews(
        user_id="bob", fingerprint=other_device, node="node0", at=session.logged_in_at - 5
    )
    fresh = news.LoginNews(
        user_id="bob",
        fingerprint=session.credential.fingerprint(),
        node="node2",
        at=session.logged_in_at + 5,
    )
    raw = await nats.connect(cluster.nats.url)
    try:
        for body in (stale, fresh):
            event = wire.ClusterEvent(
                kind=news.LOGIN, origin=body.node, body=msgspec.msgpack.encode(body)
            )
            await raw.publish(wire.EVENTS_SUBJECT, wire.encode(event))
            await raw.flush()
            async with asyncio.timeout(10):
                await handled.wait()
            handled.clear()
            if body is stale:  # the news of an older login elsewhere changed nothing here
                assert cluster.nodes[1].sessions.by_user.get("bob") is session
        # The fresh news (the same device, logged in later on node 2) moved it quietly.
        await bob.wait_closed()
        assert bob.received(control.Error) == []
    finally:
        await raw.close()


async def test_a_device_replaced_on_one_node_is_cut_off_on_another(cluster: Cluster) -> None:
    org = cluster.org
    old = await connect(cluster.nodes[1], org.accounts["bob"])
    admin = await connect(cluster.nodes[0], org.admin)
    try:
        replacement = org.issue("bob")
        await admin.send(control.Enroll(credential=replacement.credential.to_bytes()))
        enrolled = await admin.wait_for(control.Enrolled)
        assert enrolled.user_id == "bob" and enrolled.replaced_device
        refused = await old.wait_for(control.Error)
        assert refused.code == control.ERROR_AUTH_FAILED and "replaced" in refused.text
        await old.wait_closed()
    finally:
        await admin.close()


@pytest.mark.parametrize("reason", [news.MOVED, news.REPLACED_ELSEWHERE])
async def test_a_session_ended_by_a_login_elsewhere_does_not_store_its_user_offline(
    cluster: Cluster, reason: str
) -> None:
    """The other node stored the user online at its login; the old node's logout, whenever it
    comes, must not write offline over it (same device moved, or another device)."""
    bob = await connect(cluster.nodes[0], cluster.org.accounts["bob"])
    try:
        session = cluster.nodes[0].sessions.by_user["bob"]
        stored = await cluster.nodes[0].store.get_presence("bob")
        assert stored is not None and stored.online
        session.closing_reason = reason
        await presence.set_presence(cluster.nodes[0], session, online=False)
        after = await cluster.nodes[1].store.get_presence("bob")
        assert after is not None and after.online
    finally:
        await bob.ws.close()
