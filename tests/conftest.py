"""Fixtures shared by every test package: a real organisation on disk, a running server, and
a PostgreSQL server (``tests/pgfixture.py``: one per session, a fresh database per test)."""

import gc

import pytest

from tests.orgfixture import org, server
from tests.pgfixture import pg_server, pg_url

__all__ = ["org", "pg_server", "pg_url", "server"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection built (every module, Textual's and ours, and the test items):
    a full garbage collection no longer walks it. A live test runs the relay, the console
    and the radios on one event loop, and full collections of this heap took 200-350 ms on
    this machine, long enough to make a player drop the end of a burst (gc.freeze: the
    objects are moved to a permanent generation that collections ignore)."""
    gc.collect()
    gc.freeze()
