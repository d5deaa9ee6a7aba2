"""Joining a cluster: settings refused with the key's name, a bus that cannot serve refused
at start with what to do, before any radio is let in."""

from __future__ import annotations

import msgspec
import pytest

from ptt_server.config import ConfigError, ServerConfig, validate
from ptt_server.server import RelayServer
from ptt_server.startup import StartupError
from tests.natsfixture import NatsServer, free_port
from tests.orgfixture import Org, server_config


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"cluster": "http://127.0.0.1:4222", "store": "postgresql://x@h/db"}, "not a NATS URL"),
        ({"cluster": "nats://127.0.0.1:4222"}, "store is not"),
        ({"store": "mysql://x@h/db"}, "not a PostgreSQL URL"),
    ],
)
def test_bad_cluster_settings_are_refused_with_the_key(
    settings: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(msgspec.structs.replace(ServerConfig(), **settings))


def test_several_bus_urls_and_a_store_are_accepted() -> None:
    config = ServerConfig(
        cluster="nats://10.0.0.1:4222, nats://10.0.0.2:4222", store="postgresql://u@h:5432/db"
    )
    validate(config)


async def test_a_node_whose_bus_is_unreachable_does_not_start(org: Org, pg_url: str) -> None:
    config = server_config(org, cluster=f"nats://127.0.0.1:{free_port()}", store=pg_url)
    server = await RelayServer.open(config)
    try:
        with pytest.raises(StartupError, match="cannot reach the cluster's NATS bus"):
            await server.start()
    finally:
        await server.stop("server could not start")


async def test_a_bus_without_jetstream_is_refused_at_start(org: Org, pg_url: str) -> None:
    nats = NatsServer(jetstream=False)
    nats.start()
    try:
        config = server_config(org, cluster=nats.url, store=pg_url)
        server = await RelayServer.open(config)
        try:
            with pytest.raises(StartupError, match="JetStream"):
                await server.start()
        finally:
            await server.stop("server could not start")
    finally:
        nats.close()
