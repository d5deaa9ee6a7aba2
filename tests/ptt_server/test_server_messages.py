"""Sealed text messages through the server: store-and-forward, de-duplication, receipts."""

from __future__ import annotations

import os
import time

from crypto.text import open_direct_text, seal_direct_text
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.orgfixture import Org
from tests.ptt_server.rawclient import connect, logged_in


async def test_offline_message_delivered_once_with_receipts(org: Org, server: RelayServer) -> None:
    sender, recipient = org.accounts["alice"], org.accounts["bob"]
    message_id = os.urandom(control.MESSAGE_ID_SIZE)
    sealed = seal_direct_text(
        recipient.credential,
        "meet at the north gate",
        sender.keys,
        sender.credential,
        time.time(),
        message_id=message_id,
    )
    send = control.TextSend(message_id=message_id, to_user="bob", sealed=sealed)
    async with logged_in(server, org, "alice", affiliate=False) as c:
        alice = c["alice"]
        await alice.send(send)
        stored = await alice.wait_for(control.TextReceipt)
        assert (stored.message_id, stored.kind) == (message_id, control.RECEIPT_STORED)
        # The radio did not see the receipt in time and sends again: stored once.
        await alice.send(send)
        await alice.wait_for(control.TextReceipt, lambda r: r.kind == control.RECEIPT_STORED)

        bob = await connect(server, recipient)
        try:
            deliver = await bob.wait_for(control.TextDeliver)
            assert deliver.message_id == message_id
            assert deliver.from_user == "alice"
            assert deliver.to_user == "bob"
            assert deliver.sealed == sealed
            opened = open_direct_text(
                deliver.sealed,
                recipient.keys,
                recipient.credential,
                sender.credential,
                org.trust,
                time.time(),
            )
            assert opened.text == "meet at the north gate"
            # A resend while bob is online is not delivered again either.
            await alice.send(send)
            await alice.wait_for(control.TextReceipt, lambda r: r.kind == control.RECEIPT_STORED)
            await alice.ping()
            await bob.ping()
            assert len(bob.received(control.TextDeliver)) == 1

            # bob's receipt names bob whatever he claims, and reaches alice.
            await bob.send(
                control.TextReceipt(
                    message_id=message_id, kind=control.RECEIPT_DELIVERED, by_user="carol"
                )
            )
            receipt = await alice.wait_for(
                control.TextReceipt, lambda r: r.kind == control.RECEIPT_DELIVERED
            )
            assert (receipt.message_id, receipt.by_user) == (message_id, "bob")
            # A repeated receipt changes nothing and is not forwarded twice.
            await bob.send(
                control.TextReceipt(
                    message_id=message_id, kind=control.RECEIPT_DELIVERED, by_user="bob"
                )
            )
            await bob.send(
                control.TextReceipt(message_id=message_id, kind=control.RECEIPT_READ, by_user="bob")
            )
            read = await alice.wait_for(
                control.TextReceipt, lambda r: r.kind == control.RECEIPT_READ
            )
            assert read.by_user == "bob"
            assert (
                len([r for r in alice.received(control.TextReceipt) if r.kind == "delivered"]) == 1
            )
        finally:
            await bob.close()

        # Delivered: the next login does not bring it again.
        bob = await connect(server, recipient)
        try:
            await bob.ping()
            assert bob.received(control.TextDeliver) == []
        finally:
            await bob.close()


async def test_undelivered_message_comes_again_until_receipt(org: Org, server: RelayServer) -> None:
    message_id = os.urandom(16)
    async with logged_in(server, org, "alice", affiliate=False) as c:
        await c["alice"].send(
            control.TextSend(message_id=message_id, to_user="bob", sealed=b"sealed bytes")
        )
        await c["alice"].wait_for(control.TextReceipt)
    for _ in range(2):
        bob = await connect(server, org.accounts["bob"])
        try:
            await bob.wait_for(control.TextDeliver, lambda m: m.message_id == message_id)
            await bob.ping()
            assert len(bob.received(control.TextDeliver)) == 1
        finally:
            await bob.close()


async def test_channel_text_live_and_stored(org: Org, server: RelayServer) -> None:
    message_id = os.urandom(16)
    async with logged_in(server, org, "alice", "bob", affiliate=False) as c:
        alice, bob = c["alice"], c["bob"]
        await alice.send(
            control.TextSend(message_id=message_id, to_channel=org.channel_id, sealed=b"x" * 40)
        )
        live = await bob.wait_for(control.TextDeliver)
        assert (live.to_channel, live.from_user) == (org.channel_id, "alice")
        await alice.wait_for(control.TextReceipt)
        await alice.ping()
        assert alice.received(control.TextDeliver) == []  # not echoed to the sender
        disp = await connect(server, org.accounts["disp"])
        try:
            stored = await disp.wait_for(control.TextDeliver)
            assert stored.message_id == message_id
        finally:
            await disp.close()


async def test_text_refusals(org: Org, server: RelayServer) -> None:
    async with logged_in(server, org, "alice", affiliate=False) as c:
        alice = c["alice"]
        await alice.send(control.TextSend(message_id=os.urandom(16), to_user="nobody", sealed=b"x"))
        assert (await alice.wait_for(control.Error)).code == control.ERROR_NOT_FOUND
        await alice.send(control.TextSend(message_id=os.urandom(16), to_channel=4242, sealed=b"x"))
        assert (await alice.wait_for(control.Error)).code == control.ERROR_NOT_FOUND
        # Clients may not forge a "stored" receipt.
        await alice.send(
            control.TextReceipt(message_id=os.urandom(16), kind="stored", by_user="alice")
        )
        assert (await alice.wait_for(control.Error)).code == control.ERROR_BAD_MESSAGE
        await alice.ping()
        assert alice.received(control.TextReceipt) == []


async def test_message_rate_limit(org: Org, server: RelayServer) -> None:
    async with logged_in(server, org, "alice", affiliate=False) as c:
        alice = c["alice"]
        for _ in range(60):
            await alice.send(
                control.TextSend(message_id=os.urandom(16), to_user="bob", sealed=b"spam")
            )
        await alice.ping()
        errors = alice.received(control.Error)
        stored = alice.received(control.TextReceipt)
        assert errors and all(e.code == control.ERROR_RATE_LIMITED for e in errors)
        assert len(stored) + len(errors) == 60
        assert len(stored) < 60
