"""Fixtures for call media tests: loopback-only ICE host candidates, and a real coturn."""

from __future__ import annotations

from collections.abc import Iterator

import aioice.ice
import pytest

from bench.turn import Coturn


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves loopback out of host candidates (RFC 8445 5.1.1.1): offer only
    127.0.0.1, so no test packet leaves the machine."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture
def coturn() -> Iterator[Coturn]:
    """A running coturn on 127.0.0.1 with TURN REST auth (``coturn.credentials(user)``)."""
    with Coturn() as turn:
        yield turn
