"""Fixtures for call media tests: loopback-only ICE host candidates, and a real coturn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.turn import Coturn
from tests.calls_fixture import loopback_ice

__all__ = ["coturn", "loopback_ice"]


@pytest.fixture
def coturn() -> Iterator[Coturn]:
    """A running coturn on 127.0.0.1 with TURN REST auth (``coturn.credentials(user)``)."""
    with Coturn() as turn:
        yield turn
