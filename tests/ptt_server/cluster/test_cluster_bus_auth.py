"""A locked bus (deploy/nats/nats-server.conf): only the nodes, with their credentials, get in.

On the open bus a stranger can forge floor inputs, floor news, media and events
(test_cluster_bus_attacks.py). Here the same stranger cannot even log in, with no password
or a wrong one, so none of that reaches a node; a node given the right
``cluster_credentials_file`` joins and carries speech; a node with a wrong, missing or
world-readable one refuses to start and says what to fix, never showing the password.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from ptt_client import events
from ptt_protocol import control
from ptt_server.cluster import wire
from ptt_server.config import ConfigError, ServerConfig, validate
from ptt_server.server import RelayServer
from ptt_server.startup import StartupError
from tests.clusterfixture import Cluster, bus_credentials
from tests.natsfixture import NatsServer
from tests.orgfixture import Org, server_config
from tests.ptt_server.cluster.test_cluster_garbage import refused


async def stranger_login(url: str, **credentials: str) -> list[str]:
    """Try to join the bus as a stranger would; the errors the bus answered (none: got in)."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    try:
        bus = await nats.connect(
            url, allow_reconnect=False, connect_timeout=2, error_cb=on_error, **credentials
        )
    except Exception as exc:  # nats-py raises its own types, or the bare server error
        errors.append(str(exc))
        return errors
    # Got in: prove it by publishing what an attacker would (the test then fails on it).
    forged = wire.FloorOp(action="request", channel_id=1, user_id="alice", node="node1")
    await bus.publish(wire.floor_subject(1), wire.encode(forged))
    await bus.close()
    return errors


async def test_the_nodes_log_in_and_a_stranger_without_the_password_gets_nothing_in(
    locked_cluster: Cluster,
) -> None:
    cluster = locked_cluster
    before = [refused(node) for node in cluster.nodes]
    for credentials in ({}, {"user": "fieldradio", "password": "guessed"}, {"token": "guessed"}):
        errors = await stranger_login(cluster.nats.url, **credentials)
        assert any("authorization violation" in error.lower() for error in errors), errors
    # The nodes did get in: a talker on node 0 is heard on node 1, and no node saw anything
    # it had to refuse (the stranger's forged floor input never reached one).
    alice = await cluster.radio("alice", 0)
    bob = await cluster.radio("bob", 1)
    await alice.press()
    granted = await alice.wait_for(control.FloorGranted)
    assert (await bob.wait_for(control.FloorTaken)).burst_id == granted.burst_id
    assert await alice.send_voice(b"locked bus")
    assert (await bob.wait_for(events.VoiceFrame)).opus == b"locked bus"
    assert [refused(node) for node in cluster.nodes] == before


@pytest.fixture
def locked_bus(tmp_path: Path) -> Any:
    nats_server = NatsServer(tmp_path / "nats", password="the-right-one")
    nats_server.start()
    try:
        yield nats_server
    finally:
        nats_server.close()


async def start_refused(org: Org, pg_url: str, bus: NatsServer, **settings: str) -> str:
    config = server_config(org, cluster=bus.url, store=pg_url, **settings)
    server = await RelayServer.open(config)
    try:
        with pytest.raises(StartupError) as refused_start:
            await server.start()
    finally:
        await server.stop("server could not start")
    return str(refused_start.value)


async def test_a_node_with_a_wrong_missing_or_readable_credential_does_not_start(
    org: Org, pg_url: str, locked_bus: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = bus_credentials(tmp_path / "wrong", "not-the-right-one")
    message = await start_refused(org, pg_url, locked_bus, cluster_credentials_file=str(wrong))
    assert "refused this node's credentials" in message and "cluster_credentials_file" in message
    message = await start_refused(org, pg_url, locked_bus)  # none at all
    assert "refused this node's credentials" in message
    readable = bus_credentials(tmp_path / "readable", "the-right-one")
    readable.chmod(0o644)
    message = await start_refused(org, pg_url, locked_bus, cluster_credentials_file=str(readable))
    assert f"chmod 600 {readable}" in message
    missing = tmp_path / "nowhere"
    message = await start_refused(org, pg_url, locked_bus, cluster_credentials_file=str(missing))
    assert "cluster_credentials_file: cannot read" in message
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    message = await start_refused(org, pg_url, locked_bus, cluster_credentials_file=str(empty))
    assert "one line" in message
    # No password was ever written out: not in an error, not in a log line.
    assert "not-the-right-one" not in caplog.text and "the-right-one" not in caplog.text


async def test_a_node_with_the_credential_joins_the_locked_bus(
    org: Org, pg_url: str, locked_bus: NatsServer, tmp_path: Path
) -> None:
    credentials = bus_credentials(tmp_path / "right", "the-right-one")
    config = server_config(
        org, cluster=locked_bus.url, store=pg_url, cluster_credentials_file=str(credentials)
    )
    server = await RelayServer.open(config)
    try:
        await server.start()
        assert server.cluster is not None and server.cluster.connected
    finally:
        await server.stop("test over")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"cluster_credentials_file": "/etc/x"}, "cluster_credentials_file is set but cluster"),
        ({"cluster_ca_file": "/etc/ca.pem"}, "cluster_ca_file is set but cluster"),
        (
            {"cluster": "nats://fieldradio:secret@10.0.0.5:4222", "store": "postgresql://u@h/d"},
            "put them in cluster_credentials_file",
        ),
        (
            {
                "cluster": "nats://10.0.0.5:4222",
                "store": "postgresql://u@h/d",
                "cluster_ca_file": "/etc/ca.pem",
            },
            "must be tls://",
        ),
    ],
)
def test_bus_security_settings_are_checked_with_the_key(
    settings: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as refused_config:
        validate(msgspec.structs.replace(ServerConfig(), **settings))
    assert "secret" not in str(refused_config.value)
