"""A real cluster for tests: ``nats-server`` with JetStream, a shared store, three nodes.

:class:`Cluster` runs three :class:`~ptt_server.server.RelayServer` nodes in this test's
event loop, joined by a real ``nats-server`` (:mod:`tests.natsfixture`), sharing one real
PostgreSQL database (:mod:`tests.pgfixture`) that holds the test organisation, all with the
same TLS pair (one pin in every bundle) and each with its own control and media ports.
Radios built by :meth:`Cluster.radio` carry every node's URL, the chosen node first.
:class:`ProcessCluster` runs node 0 in its own process instead (``kill -9`` tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server import tls
from ptt_server.server import RelayServer
from ptt_server.store import Store
from tests.clusternode import NodeProcess
from tests.credentials import bundle_for
from tests.natsfixture import BUS_USER, NatsServer
from tests.orgfixture import Org, fill_store, server_config

NODES = 3
STOP_REPORT_S = 60.0


@dataclass
class Cluster:
    org: Org
    nats: NatsServer
    tls_dir: Path
    nodes: list[RelayServer] = field(default_factory=list)
    radios: list[RadioClient] = field(default_factory=list)

    store_url: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    """Server settings for every node (``@pytest.mark.cluster_settings(...)``)."""

    def urls(self) -> list[str]:
        return [f"wss://127.0.0.1:{node.control_port}" for node in self.nodes]

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
            "store": self.store_url,
            **self.settings,
        }
        settings.update(overrides)
        return settings

    async def start_node(self, index: int, **overrides: Any) -> RelayServer:
        config = server_config(self.org, **self.node_config(index, **overrides))
        node = await RelayServer.open(config)
        await node.start()
        self.nodes.append(node)
        return node

    async def start_all(self) -> None:
        for index in range(NODES):
            await self.start_node(index)

    async def radio(self, user: str, node: int, *, affiliate: bool = True) -> RadioClient:
        """``user``'s real radio logged in on node ``node``, holding epoch 1, affiliated."""
        account = self.org.accounts[user]
        urls = self.urls()
        preferred = urls.pop(node)
        bundle = bundle_for(
            self.org.root,
            (account.keys, account.credential),
            server_url=preferred,
            tls_fingerprint=tls.fingerprint(self.tls_dir / "cert.pem"),  # one pin: the cluster's
        )
        bundle = msgspec.structs.replace(bundle, alternate_urls=tuple(urls))
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
        # Once, under a doubled load, this teardown outlived the test timeout and nothing
        # said where it waited: past STOP_REPORT_S, every task's stack goes to the report.
        report = asyncio.get_running_loop().call_later(STOP_REPORT_S, _report_tasks)
        try:
            for client in self.radios:
                await client.stop()
            for node in self.nodes:
                await node.stop()
        finally:
            report.cancel()


@dataclass
class ProcessCluster(Cluster):
    """Node 0 in its own process (:attr:`process`), nodes 1 and 2 in this one (in
    :attr:`nodes`, first and second); radios are placed by node number 0-2 all the same."""

    process: NodeProcess | None = None

    def urls(self) -> list[str]:
        assert self.process is not None
        return [self.process.url, *super().urls()]

    async def start_process_node(self) -> NodeProcess:
        settings = self.node_config(0, listen_host="127.0.0.1", listen_port=0, media_port=0)
        lines = ["[server]"] + [f"{k} = {_toml(v)}" for k, v in settings.items()]
        config_file = self.org.data_dir.with_name(f"{self.org.data_dir.name}-node0.toml")
        config_file.write_text("\n".join(lines) + "\n")
        self.process = NodeProcess(config_file)
        await self.process.start()
        return self.process

    async def start_all(self) -> None:
        await self.start_process_node()
        for index in range(1, NODES):
            await self.start_node(index)

    async def close(self) -> None:
        await super().close()
        if self.process is not None:
            await self.process.stop()


def _report_tasks() -> None:
    print(f"cluster teardown still waiting after {STOP_REPORT_S:g} s; its tasks:", file=sys.stderr)
    for task in asyncio.all_tasks():
        print(f"--- {task!r:.300}", file=sys.stderr)
        task.print_stack(file=sys.stderr)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _shared_store(org: Org, url: str) -> None:
    """The org in the cluster's PostgreSQL database, as in the org's own SQLite one."""
    async with await Store.open(url) as store:
        await fill_store(store, org.accounts, time.time(), org.epoch_key)


def _cluster_tls(tmp_path: Path) -> Path:
    tls_dir = tmp_path / "cluster-tls"
    tls.ensure_self_signed(tls_dir / "cert.pem", tls_dir / "key.pem", ["127.0.0.1"])
    return tls_dir


C = TypeVar("C", bound=Cluster)


def _settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("cluster_settings")
    return dict(marker.kwargs) if marker is not None else {}


@contextlib.asynccontextmanager
async def _running(
    kind: type[C], org: Org, tmp_path: Path, pg_url: str, nats: NatsServer, **fields: Any
) -> AsyncIterator[C]:
    """A ``kind`` of cluster on ``nats`` (started here) and the shared store, all three
    nodes up; stopped in the end, also after a failure."""
    nats.start()
    await _shared_store(org, pg_url)
    cluster = kind(org, nats, _cluster_tls(tmp_path), store_url=pg_url, **fields)
    try:
        await cluster.start_all()
        yield cluster
    finally:
        await cluster.close()
        nats.close()


@pytest.fixture
async def cluster(
    org: Org, tmp_path: Path, pg_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[Cluster]:
    nats = NatsServer(tmp_path / "nats")
    async with _running(Cluster, org, tmp_path, pg_url, nats, settings=_settings(request)) as c:
        yield c


def bus_credentials(tmp_path: Path, password: str) -> Path:
    """The nodes' ``cluster_credentials_file`` for the sample bus configuration (mode 0600)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "bus-credentials"
    path.write_text(f"{BUS_USER}:{password}\n")
    path.chmod(0o600)
    return path


@pytest.fixture
async def locked_cluster(org: Org, tmp_path: Path, pg_url: str) -> AsyncIterator[Cluster]:
    """Three nodes on a bus that admits only them (deploy/nats/nats-server.conf)."""
    password = secrets.token_hex(24)
    # Beside the test's directory: the org's, which each node's data dir is copied from.
    bus_dir = tmp_path.with_name(f"{tmp_path.name}-bus")
    nats = NatsServer(bus_dir / "nats", password=password)
    credentials = str(bus_credentials(bus_dir, password))
    settings = {"cluster_credentials_file": credentials}
    async with _running(Cluster, org, tmp_path, pg_url, nats, settings=settings) as c:
        yield c


@pytest.fixture
async def process_cluster(
    org: Org, tmp_path: Path, pg_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[ProcessCluster]:
    nats = NatsServer(tmp_path / "nats")
    settings = _settings(request)
    async with _running(ProcessCluster, org, tmp_path, pg_url, nats, settings=settings) as c:
        yield c
