"""Server tests run on both event loops (see the hook below); fixtures live in tests/orgfixture.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every server test on the stdlib loop and on uvloop, which ``ptt-server`` uses.

    The two differ where it matters here (transport classes, exceptions raised from
    protocol callbacks), so a bug can hide on one of them.
    """
    if not item.path.name.startswith("test_server_"):
        return {"asyncio": asyncio.new_event_loop}  # other modules here keep the default loop
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
