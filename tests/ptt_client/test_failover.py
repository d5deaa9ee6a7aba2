"""A radio whose server dies goes on on another node of the bundle's cluster (issue 12).

Two real single-node relays on 127.0.0.1 stand for a cluster: one TLS pair (written once,
both configs point at it, so the bundle's one pin covers both) and the same organisation
enrolled in each one's data directory (the second a copy of the first, made before either
starts). The radios are real :class:`RadioClient` objects with bundles naming both nodes.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from crypto.bundle import CredentialBundle
from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server.server import RelayServer
from ptt_server.tls import ensure_self_signed, fingerprint
from tests.credentials import bundle_for
from tests.orgfixture import Account, Org, start_server

GUARD_S = 20.0
"""Only keeps a broken test from hanging; no verdict depends on time."""


@dataclass
class Cluster:
    """Two relays sharing a TLS pair, each with its own copy of the organisation."""

    org: Org
    data_dirs: list[Path]
    tls: tuple[Path, Path]
    nodes: list[RelayServer]
    radios: list[RadioClient]

    @property
    def urls(self) -> list[str]:
        return [f"wss://127.0.0.1:{node.control_port}" for node in self.nodes]

    async def start_node(self, index: int, **overrides: object) -> RelayServer:
        cert, key = self.tls
        node = await start_server(
            self.org,
            data_dir=str(self.data_dirs[index]),
            tls_cert=str(cert),
            tls_key=str(key),
            **overrides,
        )
        if index < len(self.nodes):
            self.nodes[index] = node
        else:
            self.nodes.append(node)
        return node

    def bundle(self, account: Account, urls: Sequence[str]) -> CredentialBundle:
        """The bundle ``ptt-admin enroll --server-url URL...`` writes for ``account``."""
        bundle = bundle_for(
            self.org.root,
            (account.keys, account.credential),
            server_url=urls[0],
            tls_fingerprint=fingerprint(self.tls[0]),
        )
        return msgspec.structs.replace(bundle, alternate_urls=tuple(urls[1:]))

    async def radio(
        self, user: str | Account, urls: Sequence[str], *, join: bool = True
    ) -> RadioClient:
        """``user``'s radio with a bundle naming ``urls``, started; with ``join``, logged in
        and listening on patrol."""
        account = user if isinstance(user, Account) else self.org.accounts[user]
        bundle = self.bundle(account, urls)
        client = RadioClient(bundle, bundle.open_keys(None))
        self.radios.append(client)
        await client.start()
        if join:
            await client.wait_connected(GUARD_S)
            await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 1, GUARD_S)
            await client.affiliate(self.org.channel_id)
            await client.wait_for(control.Affiliated, timeout=GUARD_S)
        return client


@pytest.fixture
async def cluster(org: Org, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    # Apart from the data directories: a relay refuses to start beside private keys it
    # does not own, and the pair is the operator's, given to every node.
    shared = tmp_path_factory.mktemp("cluster-tls")
    tls = (shared / "cert.pem", shared / "key.pem")
    ensure_self_signed(*tls, ["127.0.0.1"])
    second = tmp_path_factory.mktemp("node2")
    shutil.copytree(org.data_dir, second, dirs_exist_ok=True)
    cluster = Cluster(org, [org.data_dir, second], tls, [], [])
    try:
        await cluster.start_node(0)
        await cluster.start_node(1)
        yield cluster
    finally:
        for radio in cluster.radios:
            await radio.stop()
        for node in cluster.nodes:
            await node.stop()


def free_port() -> int:
    """A port nothing listens on (the kernel just handed it out and it was closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def link_events(radio: RadioClient, until: type[object]) -> list[object]:
    """The link events (and Goodbyes) of ``radio`` up to the first ``until``, in order."""
    seen: list[object] = []
    async with asyncio.timeout(GUARD_S):
        while True:
            event = await radio.next_event(GUARD_S)
            link = (events.Connected, events.Disconnected, events.LoginRefused, control.Goodbye)
            if isinstance(event, link):
                seen.append(event)
            if isinstance(event, until):
                return seen


async def test_a_radio_whose_server_stops_goes_on_on_the_other_and_hears_its_talkers(
    cluster: Cluster,
) -> None:
    url1, url2 = cluster.urls
    alice = await cluster.radio("alice", [url1, url2])
    assert alice.server_url == url1
    bob = await cluster.radio("bob", [url2])  # the talker, on the second node
    await cluster.nodes[0].stop()
    connected = await alice.wait_for(events.Connected, timeout=GUARD_S)
    assert connected.server_url == url2 and connected.reconnect
    assert alice.server_url == url2 and alice.reconnects == 1
    # Re-affiliated by the client itself (the test only affiliated once, on node 1).
    await alice.wait_for(control.Affiliated, lambda m: m.channel_id == cluster.org.channel_id)
    assert cluster.nodes[1].sessions.by_user["alice"] is not None
    await bob.press()
    await bob.wait_for(control.FloorGranted, timeout=GUARD_S)
    await alice.wait_for(control.FloorTaken, lambda m: m.user_id == "bob", GUARD_S)
    sent = [bytes([i]) * 40 for i in range(5)]
    for payload in sent:
        assert await bob.send_voice(payload)
    heard = [await alice.wait_for(events.VoiceFrame, timeout=GUARD_S) for _ in sent]
    assert [f.opus for f in heard] == sent and {f.talker for f in heard} == {"bob"}
    await bob.release()
    assert (await alice.wait_for(events.TalkerVerified, timeout=GUARD_S)).talker == "bob"


async def test_failover_is_at_once_not_after_a_backoff(cluster: Cluster) -> None:
    """The server's Goodbye, the link lost, and the next event is the login on the other
    node: no wait came between them (a wait comes only after every server failed)."""
    url1, url2 = cluster.urls
    alice = await cluster.radio("alice", [url1, url2])
    alice.drain_events()
    await cluster.nodes[0].stop()
    seen = await link_events(alice, events.Connected)
    assert [type(e) for e in seen] == [control.Goodbye, events.Disconnected, events.Connected]
    lost, back = seen[1], seen[2]
    assert isinstance(lost, events.Disconnected) and isinstance(back, events.Connected)
    assert lost.server_url == url1 and lost.retry_in == 0.0
    assert back.server_url == url2
    assert alice.servers.backoffs == 0  # one try, on node 2


@pytest.mark.parametrize("dead", ["nothing listening", "no TLS"])
async def test_a_dead_first_server_at_start_leads_to_the_second(
    cluster: Cluster, dead: str
) -> None:
    async def not_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # a web server, not a relay
        await writer.drain()
        writer.close()

    listener = None
    if dead == "no TLS":
        listener = await asyncio.start_server(not_tls, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
    else:
        port = free_port()
    try:
        url2 = cluster.urls[1]
        alice = await cluster.radio("alice", [f"wss://127.0.0.1:{port}", url2], join=False)
        seen = await link_events(alice, events.Connected)
        assert [type(e) for e in seen] == [events.Disconnected, events.Connected], seen
        assert isinstance(seen[0], events.Disconnected) and seen[0].retry_in == 0.0
        assert seen[0].reason == (
            "Connection refused" if dead == "nothing listening" else
            "TLS failed (WRONG_VERSION_NUMBER): is that address a Fieldradio relay?"
        )  # fmt: skip
        assert isinstance(seen[1], events.Connected) and seen[1].server_url == url2
        assert alice.servers.backoffs == 0
    finally:
        if listener is not None:
            listener.close()
            await listener.wait_closed()


async def test_a_refusal_on_the_other_node_stops_the_radio_it_does_not_go_round(
    cluster: Cluster,
) -> None:
    """Every node of a cluster shares one store: a node that says "not enrolled" (or
    revoked, or logged in elsewhere) speaks for all of them. The radio stops and says so,
    as with one server, instead of circling the nodes (and back to a stale one)."""
    url1, url2 = cluster.urls
    dave = cluster.org.issue("dave")
    await cluster.org.enroll(dave)  # on node 1 only: node 2's copy was made before
    radio = await cluster.radio(dave, [url1, url2], join=False)
    await radio.wait_connected(GUARD_S)
    assert radio.server_url == url1
    radio.drain_events()
    await cluster.nodes[0].stop()
    seen = await link_events(radio, events.LoginRefused)
    refused = seen[-1]
    assert isinstance(refused, events.LoginRefused) and refused.code == control.ERROR_AUTH_FAILED
    assert "not enrolled" in refused.text and radio.server_url == url2
    # The loop is over: nothing will try node 1 (or node 2) again.
    task = radio._task
    assert task is not None
    async with asyncio.timeout(GUARD_S):
        await asyncio.wait({task})
    assert not radio.core.may_retry and not radio.connected.is_set()
    assert [type(e) for e in seen] == [
        control.Goodbye,
        events.Disconnected,
        events.LoginRefused,
    ], seen


async def test_texts_queued_while_every_node_is_down_go_out_through_the_one_back(
    cluster: Cluster,
) -> None:
    """Both nodes down: the radio backs off between rounds; node 2 comes back first, and
    the radio logs in there, re-joins patrol and sends the text it queued."""
    org = cluster.org
    url1, url2 = cluster.urls
    alice = await cluster.radio("alice", [url1, url2])
    port2, media2 = cluster.nodes[1].control_port, cluster.nodes[1].media_port
    await cluster.nodes[1].stop()
    await cluster.nodes[0].stop()
    lost = await alice.wait_for(events.Disconnected, lambda e: e.retry_in > 0, GUARD_S)
    assert alice.servers.backoffs >= 1, lost  # a whole round failed: it waits now
    message_id = await alice.send_text("suspect heading north", to_channel=org.channel_id)
    await cluster.start_node(1, listen_port=port2, media_port=media2)
    bob = await cluster.radio("bob", [url2])
    back = await alice.wait_for(events.Connected, timeout=GUARD_S)
    assert back.server_url == url2 and back.reconnect
    await alice.wait_for(control.Affiliated, lambda m: m.channel_id == org.channel_id, GUARD_S)
    stored = await alice.wait_for(
        control.TextReceipt,
        lambda r: r.kind == control.RECEIPT_STORED and r.message_id == message_id,
        GUARD_S,
    )
    assert stored.message_id == message_id
    text = await bob.wait_for(events.TextReceived, lambda t: t.message_id == message_id, GUARD_S)
    assert text.text == "suspect heading north" and text.from_user == "alice"
