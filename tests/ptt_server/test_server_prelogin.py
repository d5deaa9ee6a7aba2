"""Connections that never log in: capped, closed after login_timeout, and no lock-out.

Every "held" connection here proves it is held before the test goes on (it got Hello, or its
TLS handshake finished), so nothing depends on how fast the server accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ssl
from collections.abc import AsyncIterator

import pytest
import websockets
from websockets.server import ServerProtocol

from ptt_protocol import control
from ptt_server.prelogin import GatedConnection
from ptt_server.server import RelayServer
from tests.orgfixture import Org, start_server
from tests.ptt_server.rawclient import (
    TIMEOUT,
    connect,
    open_control,
    recv_message,
    wait_closed,
)

CAP = 8
ATTACKER = "127.0.0.2"
"""Another loopback address: another source, as far as the server can tell."""


def pending(server: RelayServer) -> float | None:
    return server.metrics.registry.get_sample_value("fieldradio_prelogin_pending")


def closed(server: RelayServer, reason: str) -> float:
    value = server.metrics.registry.get_sample_value(
        "fieldradio_prelogin_closed_total", {"reason": reason}
    )
    return value or 0.0


def client_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def held_at_hello(
    server: RelayServer, source: str | None = None
) -> websockets.ClientConnection:
    """TLS and WebSocket open, Hello received, and never a Login: a pending connection."""
    ws, _ = await open_control(server, source=source)
    assert isinstance(await recv_message(ws), control.Hello)
    return ws


async def tcp(
    server: RelayServer, source: str = "127.0.0.1", tls: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1",
        server.control_port,
        local_addr=(source, 0),
        ssl=client_tls() if tls else None,
        ssl_handshake_timeout=TIMEOUT if tls else None,
    )


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends before it closes (a reset counts as a close)."""
    got = b""
    async with asyncio.timeout(TIMEOUT):
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(4096):
                got += chunk
    return got


@pytest.fixture
async def capped(org: Org) -> AsyncIterator[RelayServer]:
    """A server holding at most CAP connections before login, with a long login timeout."""
    server = await start_server(org, max_pending_logins=CAP, login_timeout=60.0)
    try:
        yield server
    finally:
        await server.stop()


async def test_connections_past_the_cap_are_closed_before_tls(
    org: Org, capped: RelayServer
) -> None:
    server = capped
    held = [await held_at_hello(server) for _ in range(CAP)]
    try:
        assert pending(server) == CAP
        # One more from the same source: closed at once, not one TLS byte sent (a server
        # doing TLS would wait for our ClientHello and send nothing before the timeout).
        reader, writer = await tcp(server)
        assert await read_until_closed(reader) == b""
        writer.close()
        assert closed(server, "refused") == 1
        # A TLS client past the cap sees its handshake cut off.
        with pytest.raises((ConnectionError, ssl.SSLError, TimeoutError)):
            await tcp(server, tls=True)
        assert closed(server, "refused") == 2
        assert pending(server) == CAP
        # The held ones are untouched: they can still log in.
        assert all(ws.state is websockets.State.OPEN for ws in held)
    finally:
        for ws in held:
            await ws.close()


async def test_radio_gets_in_while_another_source_holds_the_cap(
    org: Org, capped: RelayServer
) -> None:
    server = capped
    held = [await held_at_hello(server, source=ATTACKER) for _ in range(CAP)]
    try:
        # The attacker's next one is refused: it already holds every place...
        reader, writer = await tcp(server, source=ATTACKER)
        assert await read_until_closed(reader) == b""
        writer.close()
        # ...but a radio from anywhere else displaces the attacker's oldest and logs in.
        alice = await connect(server, org.accounts["alice"])
        try:
            assert alice.login_ok.user_id == "alice"
            assert await wait_closed(held[0]) == []
            assert closed(server, "displaced") == 1
            assert pending(server) == CAP - 1  # alice is logged in, so no longer pending
            assert all(ws.state is websockets.State.OPEN for ws in held[1:])
        finally:
            await alice.close()
    finally:
        for ws in held:
            await ws.close()


async def test_every_pre_login_phase_is_closed_after_login_timeout(org: Org) -> None:
    login_timeout = 1.0
    server = await start_server(org, max_pending_logins=CAP, login_timeout=login_timeout)
    loop = asyncio.get_running_loop()
    try:
        alice = await connect(server, org.accounts["alice"])  # logged in: no timeout for her
        # A timer for most of the timeout, armed before the connections below open: the
        # server arms each one's timeout after this, for longer, on the same loop, so one
        # closed before this fired was not closed by its timeout (an order of two events,
        # not a clock reading: load can delay both but not swap them).
        timed_out = asyncio.Event()
        loop.call_later(login_timeout * 0.9, timed_out.set)
        # Writers kept: a dropped StreamWriter closes its connection.
        silent_tcp, tcp_writer = await tcp(server)  # never sends a ClientHello
        silent_tls, tls_writer = await tcp(server, tls=True)  # TLS done, no WebSocket handshake
        slow_reader, slow_writer = await tcp(server, tls=True)
        slow_writer.write(b"GET / HTTP/1.1\r\nHost: relay\r\n")  # a handshake that never ends

        async def dribble() -> None:
            while True:
                slow_writer.write(b"X-Slow: 1\r\n")
                await asyncio.sleep(login_timeout / 5)

        dribbler = asyncio.create_task(dribble())
        at_hello = await held_at_hello(server)  # WebSocket open, no Login

        async def closed_late(reader: asyncio.StreamReader) -> bool:
            assert await read_until_closed(reader) == b""
            return timed_out.is_set()

        async def ws_closed_late() -> bool:
            assert await wait_closed(at_hello) == []
            return timed_out.is_set()

        try:
            late = await asyncio.gather(
                *(closed_late(reader) for reader in (silent_tcp, silent_tls, slow_reader)),
                ws_closed_late(),
            )
            # Every one was closed by the timeout, not sooner.
            assert late == [True] * 4, late
        finally:
            dribbler.cancel()
            for writer in (tcp_writer, tls_writer, slow_writer):
                writer.close()
        assert closed(server, "timeout") == 4
        assert pending(server) == 0
        await alice.ping()  # the logged-in radio, connected longer than that, is still here
        bob = await connect(server, org.accounts["bob"])  # and a new radio gets in
        await bob.close()
        await alice.close()
    finally:
        await server.stop()


async def test_stop_closes_pending_connections(org: Org) -> None:
    server = await start_server(org, max_pending_logins=CAP, login_timeout=60.0)
    try:
        silent, writer = await tcp(server)
        at_hello = await held_at_hello(server)
        assert pending(server) == 2
    finally:
        await server.stop()
    assert await read_until_closed(silent) == b""
    assert await wait_closed(at_hello) == []
    assert closed(server, "shutdown") == 2
    writer.close()


async def test_radio_gets_in_while_many_sources_hold_one_place_each(
    org: Org, capped: RelayServer
) -> None:
    """A botnet (or one host with many addresses: an IPv6 /48 holds 65,536 /64s) holding one
    pending connection per source fills the cap with every share equal, so share fairness
    alone displaces nobody. The oldest pending connection gives way instead: a radio's login
    takes a few round trips, an attacker's connection waits for the timeout."""
    server = capped
    held = [await held_at_hello(server, source=f"127.0.0.{2 + i}") for i in range(CAP)]
    try:
        assert pending(server) == CAP
        alice = await connect(server, org.accounts["alice"], source="127.0.0.100")
        try:
            assert alice.login_ok.user_id == "alice"
            assert await wait_closed(held[0]) == []  # the oldest made room
            assert closed(server, "displaced") == 1
            assert all(ws.state is websockets.State.OPEN for ws in held[1:])
        finally:
            await alice.close()
    finally:
        for ws in held:
            await ws.close()


async def test_a_connection_whose_handshake_fails_leaves_no_reference_cycle(
    org: Org, capped: RelayServer
) -> None:
    """The server freezes its heap every second (ptt_server/gc_freeze.py), so anything a
    closed connection leaves in a reference cycle stays until the next full reclaim, up to an
    hour: bench.waves grew about 1 MB a wave (53 -> 119 MB over 60 waves) with the failed
    handshakes' TLS state inside. What a pre-login connection leaves must go by reference
    counting: the collector, off while the connections come and go, finds none of it."""
    server = capped
    kinds = (GatedConnection, ServerProtocol)
    gc.unfreeze()  # the server froze what earlier tests left alive, too
    gc.collect()
    # type(), not isinstance: a dead weak proxy among the objects raises on __class__.
    before = {id(o) for o in gc.get_objects() if issubclass(type(o), kinds)}
    gc.disable()
    try:
        for _ in range(4):
            reader, writer = await tcp(server)
            writer.write(b"\x16\x03\x01\x00\x08not a ClientHello")  # the handshake fails
            assert await read_until_closed(reader) == b""
            writer.close()
            # TLS done, then gone before any HTTP request: websockets' handshake fails.
            reader, writer = await tcp(server, tls=True)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
        # A round trip through the server's loop after the closes: their connection_lost
        # callbacks and websockets' handler tasks, scheduled before, have run.
        probe = await held_at_hello(server)
        assert closed(server, "closed") == 8
        gc.unfreeze()  # what the freezer froze is collectable again (refrozen at its next tick)
        gc.set_debug(gc.DEBUG_SAVEALL)  # keep what a collection finds, to look at it
        gc.collect()
        cyclic = [
            type(o).__name__
            for o in gc.garbage
            if issubclass(type(o), kinds) and id(o) not in before
        ]
        assert cyclic == []
        await probe.close()
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
