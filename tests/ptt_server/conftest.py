"""Server tests run on both event loops (see the hook below); fixtures live in tests/orgfixture.py,
except the crashed data directory the real-process start-up tests share."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Mapping

import pytest
import uvloop

from tests.orgfixture import Org


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


@pytest.fixture
async def crashed(org: Org) -> AsyncIterator[Org]:
    """``org`` after a real ``ptt-server`` stored TEXTS acknowledged texts and was killed
    (SIGKILL): the start-up and disk-damage tests begin from it."""
    from tests.ptt_server.test_cli_startup import TEXTS, send_texts, start, stop

    server = await start(org.data_dir)
    try:
        await send_texts(server, org, TEXTS)
    finally:
        await stop(server, signal.SIGKILL)
    assert server.process.returncode == -signal.SIGKILL
    yield org
