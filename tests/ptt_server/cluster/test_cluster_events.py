"""What travels between nodes besides floors and media (issue 12), on a real cluster.

Three real nodes, a real nats-server and one shared PostgreSQL store; real radios log in on
chosen nodes. Each test has the change made on one node and its effect seen by a radio on
another: texts and receipts, emergencies and their acks, rosters, revocations, presence,
and one session per user across the cluster.
"""

from __future__ import annotations

import asyncio
import logging

from crypto.roster import Member, Roster, sign_roster
from ptt_client import events
from ptt_protocol import control
from tests.clusterfixture import Cluster
from tests.orgfixture import user_record
from tests.ptt_server.rawclient import connect


class LogWatch(logging.Handler):
    """Sets :attr:`seen` when the server logs ``message`` (a step that has no other sign)."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message:
            self.seen.set()


async def test_a_text_reaches_a_user_on_another_node_and_the_receipt_comes_back(
    cluster: Cluster,
) -> None:
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 1)
    message_id = await alice.send_text("meet at the bridge", to_user="bob")
    got = await bob.wait_for(events.TextReceived)
    assert (got.message_id, got.from_user, got.text) == (message_id, "alice", "meet at the bridge")
    # Bob's radio says delivered to node 1; the shared store records it; alice hears it on 0.
    delivered = await alice.wait_for(
        control.TextReceipt, lambda r: r.kind == control.RECEIPT_DELIVERED
    )
    assert (delivered.message_id, delivered.by_user) == (message_id, "bob")
    await bob.mark_read(message_id)
    read = await alice.wait_for(control.TextReceipt, lambda r: r.kind == control.RECEIPT_READ)
    assert (read.message_id, read.by_user) == (message_id, "bob")


async def test_a_channel_text_reaches_members_on_every_node(cluster: Cluster) -> None:
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 1)
    carol = await cluster.radio("carol", 2)
    message_id = await alice.send_text("all units", to_channel=cluster.org.channel_id)
    for radio in (bob, carol):
        got = await radio.wait_for(events.TextReceived)
        assert (got.message_id, got.to_channel, got.text) == (
            message_id,
            cluster.org.channel_id,
            "all units",
        )


async def test_an_offline_text_is_delivered_once_at_a_login_on_another_node(
    cluster: Cluster,
) -> None:
    alice = await cluster.radio("alice", 0)
    message_id = await alice.send_text("call me", to_user="bob")
    await alice.wait_for(control.TextReceipt, lambda r: r.kind == control.RECEIPT_STORED)
    bob_account = cluster.org.accounts["bob"]
    bob = await connect(cluster.nodes[2], bob_account)
    deliver = await bob.wait_for(control.TextDeliver)
    assert (deliver.message_id, deliver.from_user) == (message_id, "alice")
    await bob.send(
        control.TextReceipt(message_id=message_id, kind=control.RECEIPT_DELIVERED, by_user="bob")
    )
    delivered = await alice.wait_for(
        control.TextReceipt, lambda r: r.kind == control.RECEIPT_DELIVERED
    )
    assert delivered.by_user == "bob"
    await bob.ping()
    assert len(bob.received(control.TextDeliver)) == 1
    await bob.ws.close()
    await bob.wait_closed()
    # Delivered once: a login on yet another node finds nothing pending.
    again = await connect(cluster.nodes[1], bob_account)
    try:
        await again.ping()
        assert again.received(control.TextDeliver) == []
    finally:
        await again.ws.close()


async def test_an_emergency_raised_on_one_node_reaches_dispatchers_and_listeners_everywhere(
    cluster: Cluster,
) -> None:
    disp = await cluster.radio("disp", 0)
    bob = await cluster.radio("bob", 1)
    alice = await cluster.radio("alice", 2)
    alert_id = await alice.raise_emergency()
    for radio in (disp, bob):
        alert = await radio.wait_for(control.EmergencyAlert)
        assert (alert.alert_id, alert.user_id) == (alert_id, "alice")
    await disp.acknowledge_emergency(alert_id)
    for radio in (alice, bob):
        ack = await radio.wait_for(control.EmergencyAck)
        assert (ack.alert_id, ack.by_user) == (alert_id, "disp")
    # The dispatcher cancels it on node 0: alice's node takes her out of the emergency.
    await disp.send_message(control.EmergencyCancel(alert_id=alert_id, by_user="disp"))
    for radio in (alice, bob):
        cancel = await radio.wait_for(control.EmergencyCancel)
        assert (cancel.alert_id, cancel.by_user) == (alert_id, "disp")
    session = cluster.nodes[2].sessions.by_user["alice"]
    assert session.emergency_alert is None and session.status == control.STATUS_AVAILABLE


async def test_a_roster_published_on_one_node_reaches_members_on_another(
    cluster: Cluster,
) -> None:
    disp = await cluster.radio("disp", 0)
    carol = await cluster.radio("carol", 1)
    bob = await cluster.radio("bob", 2)
    org = cluster.org
    accounts = [org.accounts[u] for u in ("disp", "alice", "carol")]  # bob is taken off
    roster = Roster(
        org.channel_id, 2, tuple(Member.from_credential(a.credential) for a in accounts)
    )
    signed = sign_roster(roster, org.accounts["disp"].keys, org.accounts["disp"].credential)
    await disp.send_message(
        control.RosterUpdate(channel_id=org.channel_id, version=2, signed_roster=signed)
    )
    update = await carol.wait_for(control.RosterUpdate, lambda u: u.version == 2)
    assert update.signed_roster == signed
    gone = await bob.wait_for(control.Deaffiliated)
    assert gone.channel_id == org.channel_id
    for node in cluster.nodes:  # every node's relay holds the new roster (its KID check too)
        assert node.channels[org.channel_id].roster_version == 2
        assert "bob" not in node.channels[org.channel_id].members


async def test_a_revocation_published_on_one_node_ends_the_session_on_another(
    cluster: Cluster,
) -> None:
    carol = await cluster.radio("carol", 2)
    bob = await cluster.radio("bob", 1)
    await cluster.org.revoke(cluster.nodes[0], 1, cluster.org.accounts["carol"])
    refused = await carol.wait_for(
        control.Error, lambda e: e.code == control.ERROR_CREDENTIAL_REVOKED
    )
    assert "carol" in refused.text
    revocation = await bob.wait_for(control.RevocationUpdate)
    assert revocation.signed_list == cluster.nodes[0].trust.revocations.to_bytes()  # type: ignore[union-attr]
    for node in cluster.nodes:
        assert node.trust.revocations is not None and node.trust.revocations.version == 1


async def test_a_login_on_one_node_shows_online_at_a_console_on_another(
    cluster: Cluster,
) -> None:
    disp = await cluster.radio("disp", 0)
    await disp.subscribe_presence()
    await disp.wait_for(control.EnrolledUsers, lambda p: p.last)
    await cluster.radio("bob", 1, affiliate=False)
    update = await disp.wait_for(control.PresenceUpdate, lambda u: u.user_id == "bob")
    assert update.online and update.display_name == "Bob Brown"


async def test_the_same_device_logging_in_on_another_node_ends_the_old_session_quietly(
    cluster: Cluster,
) -> None:
    account = cluster.org.accounts["bob"]
    first = await connect(cluster.nodes[0], account)
    logged_out = LogWatch("logout")
    logger = logging.getLogger("ptt_server")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(logged_out)
    second = await connect(cluster.nodes[1], account)
    try:
        await first.wait_closed()
        # Node 0's logout is over (its last step logs): what it stores is in the store.
        async with asyncio.timeout(10):
            await logged_out.seen.wait()
        assert first.received(control.Error) == []  # the radio moved: nothing to report
        await second.ping()
        assert "bob" not in cluster.nodes[0].sessions.by_user
        assert "bob" in cluster.nodes[1].sessions.by_user
        # The old node's logout did not store bob offline over the new node's online.
        stored = await cluster.nodes[2].store.get_presence("bob")
        assert stored is not None and stored.online
    finally:
        logger.removeHandler(logged_out)
        logger.setLevel(level)
        await second.ws.close()


async def test_another_device_logging_in_on_another_node_ends_the_old_session(
    cluster: Cluster,
) -> None:
    org = cluster.org
    old = await connect(cluster.nodes[0], org.accounts["bob"])
    replacement = org.issue("bob")
    await cluster.nodes[1].store.put_user(user_record(replacement))
    new = await connect(cluster.nodes[2], replacement)
    try:
        refused = await old.wait_for(control.Error)
        assert refused.code == control.ERROR_LOGGED_IN_ELSEWHERE
        assert "node2" in refused.text
        await old.wait_closed()
        await new.ping()
        assert cluster.nodes[2].sessions.by_user["bob"].credential == replacement.credential
    finally:
        await new.ws.close()


async def test_a_channel_deleted_on_one_node_is_gone_on_every_node(cluster: Cluster) -> None:
    cid = cluster.org.channel_id
    disp = await cluster.radio("disp", 0)
    bob = await cluster.radio("bob", 1)
    carol = await cluster.radio("carol", 2)
    await disp.send_message(control.ChannelDelete(channel_id=cid))
    for radio in (bob, carol):
        left = await radio.wait_for(control.Deaffiliated)
        assert left.channel_id == cid
        deleted = await radio.wait_for(control.ChannelDeleted)
        assert (deleted.channel_id, deleted.by_user) == (cid, "disp")
    for node in cluster.nodes:
        assert cid not in node.channels
