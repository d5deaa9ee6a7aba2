"""A real cluster for tests: ``nats-server`` with JetStream, a shared store, three nodes.

:class:`Cluster` runs three :class:`~ptt_server.server.RelayServer` nodes in this test's
event loop, joined by a real ``nats-server`` (:mod:`tests.natsfixture`), all with the same
TLS pair (one pin in every bundle) and each with its own control and media ports. Radios
built by :meth:`Cluster.radio` carry every node's URL, preferred node first.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server import tls
from ptt_server.server import RelayServer
from tests.credentials import bundle_for
from tests.natsfixture import NatsServer
from tests.orgfixture import Org, server_config

NODES = 3


@dataclass
class Cluster:
    org: Org
    nats: NatsServer
    tls_dir: Path
    nodes: list[RelayServer] = field(default_factory=list)
    radios: list[RadioClient] = field(default_factory=list)

    def node_config(self, index: int, **overrides: Any) -> dict[str, Any]:
        # Beside the org's directory (unique per test), not in it: copytree copies it whole.
        data_dir = self.org.data_dir.with_name(f"{self.org.data_dir.name}-node{index}")
        if not data_dir.exists():
            shutil.copytree(self.org.data_dir, data_dir)
        settings: dict[str, Any] = {
            "data_dir": str(data_dir),
            "tls_cert": str(self.tls_dir / "cert.pem"),
            "tls_key": str(self.tls_dir / "key.pem"),
            "cluster": self.nats.url,
            "node_name": f"node{index}",
        }
        settings.update(overrides)
        return settings

    async def start_node(self, index: int, **overrides: Any) -> RelayServer:
        config = server_config(self.org, **self.node_config(index, **overrides))
        node = await RelayServer.open(config)
        await node.start()
        while len(self.nodes) <= index:
            self.nodes.append(node)
        self.nodes[index] = node
        return node

    async def radio(self, user: str, node: int, *, affiliate: bool = True) -> RadioClient:
        """``user``'s real radio logged in on node ``node``, holding epoch 1, affiliated."""
        account = self.org.accounts[user]
        bundle = bundle_for(
            self.org.root,
            (account.keys, account.credential),
            server_url=f"wss://127.0.0.1:{self.nodes[node].control_port}",
            tls_fingerprint=tls.fingerprint(self.tls_dir / "cert.pem"),  # one pin: the cluster's
        )
        client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys))
        self.radios.append(client)
        await client.start()
        await client.wait_connected()
        await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
        if affiliate:
            await client.affiliate(self.org.channel_id)
            await client.wait_for(control.Affiliated)
        return client

    async def close(self) -> None:
        for client in self.radios:
            await client.stop()
        for node in self.nodes:
            await node.stop()


@pytest.fixture
async def cluster(org: Org, tmp_path: Path) -> AsyncIterator[Cluster]:
    nats = NatsServer(tmp_path / "nats")
    nats.start()
    tls_dir = tmp_path / "cluster-tls"
    tls.ensure_self_signed(tls_dir / "cert.pem", tls_dir / "key.pem", ["127.0.0.1"])
    cluster = Cluster(org, nats, tls_dir)
    try:
        for index in range(NODES):
            await cluster.start_node(index)
        yield cluster
    finally:
        await cluster.close()
        nats.close()
