"""Fixtures for the console's tests: an offline client, and a real server with real officers.

``offline_client`` is a :class:`RadioClient` with a real root-issued dispatcher
credential that is never started: the app under test gets its events through
the same :class:`tui.app.ClientEvent` path the client task uses, so the screen
can be fed a fixed, deterministic story (``tests/tui/story.py``).

``field`` is a running server with an organisation made by ``ptt_server.admin``
(``tests/tui/org.py``).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ptt_client.client import RadioClient
from tests.tui.org import Field, make_bundle, open_field

# Times on screen are local time: pin the zone so snapshots are the same everywhere.
os.environ["TZ"] = "UTC"
time.tzset()


@pytest.fixture
def offline_client() -> RadioClient:
    bundle = make_bundle("disp", "Dispatch One")
    return RadioClient(bundle, bundle.open_keys(None))


@pytest.fixture
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    # A live test runs the relay, the console and the radios on one loop, playing audio in
    # real time; a full garbage collection of the whole test process's heap (hundreds of
    # thousands of objects by the end of the suite: 200-350 ms measured with a third of it)
    # stalls all of them, and a player then drops the frames it got too late. So: collect
    # what earlier tests left, set the survivors aside for this test, and give them back.
    gc.collect()
    gc.freeze()
    try:
        async with open_field(tmp_path) as running:
            yield running
    finally:
        gc.unfreeze()
