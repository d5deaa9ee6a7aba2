"""The shipped coturn config (deploy/coturn/turnserver.conf) runs, and is not an open relay.

Debian's coturn package, as installed, grants a TURN allocation to anyone who asks. The config
Fieldradio ships must refuse that and accept exactly the TURN REST credentials ptt-server
hands out. A real coturn runs it here, on 127.0.0.1, with only the host-specific settings
overridden.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

import pytest

from bench.turn import Coturn
from ptt_client.calls import CallMedia, IceServer, IceSettings
from tests.calls_fixture import loopback_ice  # noqa: F401 - autouse: calls offer 127.0.0.1 only

CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "coturn" / "turnserver.conf"
_MAGIC = b"\x21\x12\xa4\x42"


class ShippedCoturn(Coturn):
    """coturn on the shipped config; only the addresses, secret and files are this test's."""

    def argv(self) -> list[str]:
        return [
            *super().argv()[:1],
            "-c", str(CONFIG),
            "--listening-ip", "127.0.0.1",
            "--listening-port", str(self.port),
            "--relay-ip", "127.0.0.1",
            "--static-auth-secret", self.secret,
            "--log-file", "stdout",
            "--pidfile", str(self.dir / "turnserver.pid"),
            "--db", str(self.dir / "turndb"),
        ]  # fmt: skip


def unauthenticated_allocate(port: int) -> bytes:
    transport = b"\x00\x19\x00\x04" + bytes([17, 0, 0, 0])  # REQUESTED-TRANSPORT: UDP
    request = b"\x00\x03" + len(transport).to_bytes(2, "big") + _MAGIC
    request += secrets.token_bytes(12) + transport
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(5)
        probe.sendto(request, ("127.0.0.1", port))
        return probe.recv(2048)


def test_the_shipped_config_refuses_an_allocation_without_credentials() -> None:
    with ShippedCoturn() as turn:
        answer = unauthenticated_allocate(turn.port)
    assert answer[:2] == b"\x01\x13", answer[:2].hex()  # Allocate error (401), not success


async def test_the_shipped_config_relays_with_the_credentials_ptt_server_makes() -> None:
    with ShippedCoturn() as turn:
        username, password = turn.credentials("alice")
        good = IceSettings(servers=(IceServer((turn.url,), username, password),), relay_only=True)
        media = CallMedia(good, None, None)
        try:
            offer = await media.offer()
        finally:
            await media.close()
        assert " typ relay" in offer
        wrong = IceSettings(servers=(IceServer((turn.url,), username, "wrong"),), relay_only=True)
        refused = CallMedia(wrong, None, None)
        try:
            with pytest.raises(Exception, match="no network address"):
                await refused.offer()
        finally:
            await refused.close()


def test_the_shipped_config_keeps_relays_off_private_networks() -> None:
    text = CONFIG.read_text()
    for rng in ("10.0.0.0-", "127.0.0.0-", "172.16.0.0-", "192.168.0.0-", "169.254.0.0-"):
        assert f"denied-peer-ip={rng}" in text
    assert "allow-loopback-peers" not in text and "use-auth-secret" in text
