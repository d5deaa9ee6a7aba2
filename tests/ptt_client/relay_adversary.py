"""Radios and the relay as an adversary, for the tests of docs/security.md's promises.

Real crypto, a real server (``org`` and ``server`` from tests/orgfixture.py) and real
:class:`RadioClient` radios. A malicious relay is the real server with the test acting
through it: :func:`relay_says` queues any control message on a radio's connection and
:func:`relay_forwards` seals any inner frame with the radio's hop key and sends it, exactly
what whoever controls the relay process can do. Listening radios use the WebSocket media
tunnel, so media and control reach them in order and a Ping round trip
(:meth:`RadioClient.ping_server`) proves that everything injected before it was handled.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.orgfixture import Org


class Clock:
    """Wall-clock time plus an offset the test moves (the keyring's timers are inputs)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def radio(
    org: Org,
    server: RelayServer,
    user: str,
    *,
    clock: Callable[[], float] = time.time,
    join: bool = True,
) -> RadioClient:
    """A logged-in radio on the media tunnel; with ``join``, holding epoch 1, affiliated to the
    channel and holding every member's credential (needed to check burst signatures)."""
    bundle = org.bundle(user, server)
    client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys), use_udp=False, clock=clock)
    await client.start()
    await client.wait_connected()
    if join:
        # The roster comes first; on it the radio asks for its members' credentials.
        await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
        await client.affiliate(org.channel_id)
        await client.wait_for(control.Affiliated)
        await client.ping_server()
        assert set(org.accounts) <= set(client.keyring.credentials)
    return client


@contextlib.asynccontextmanager
async def radios(
    org: Org, server: RelayServer, *users: str, **options: Any
) -> AsyncIterator[dict[str, RadioClient]]:
    clients: dict[str, RadioClient] = {}
    try:
        for user in users:
            clients[user] = await radio(org, server, user, **options)
        yield clients
    finally:
        for client in clients.values():
            await client.stop()


def relay_says(server: RelayServer, user: str, message: control.Message) -> None:
    """The relay sends ``message`` to ``user``'s radio on its control connection."""
    server.sessions.by_user[user].send(message)


def relay_forwards(server: RelayServer, user: str, inner: bytes) -> bytes:
    """The relay seals ``inner`` with ``user``'s hop key and sends it; returns the datagram."""
    session = server.sessions.by_user[user]
    datagram = session.hop.seal(inner)
    relay_resends(server, user, datagram)
    return datagram


def relay_resends(server: RelayServer, user: str, datagram: bytes) -> None:
    """The relay sends an already sealed datagram to ``user`` again."""
    assert server.relay is not None
    server.relay.send(server.sessions.by_user[user], datagram)


async def handled(client: RadioClient) -> list[object]:
    """Everything the radio reported since the last call, once all injected input is handled."""
    await client.ping_server()
    return client.drain_events()


def of(kind: type[Any], reported: list[object]) -> list[Any]:
    return [e for e in reported if isinstance(e, kind)]


async def take_floor(talker: RadioClient, *listeners: RadioClient) -> int:
    """``talker`` holds the floor and every listener knows it; returns the burst id."""
    await talker.press()
    granted = await talker.wait_for(control.FloorGranted)
    for listener in listeners:
        await listener.wait_for(control.FloorTaken, lambda m: m.burst_id == granted.burst_id)
    return granted.burst_id
