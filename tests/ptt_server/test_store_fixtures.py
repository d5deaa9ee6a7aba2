"""Fixtures and helpers shared by the ``test_store_*`` modules (it holds no tests itself).

A test module imports the fixtures by their function names (``store_fixture`` with
``store_location_fixture``, as ``store`` needs ``store_location``; ``db_path_fixture``)
marked ``# noqa: F401 (fixture)``: pytest finds them in the module's namespace under their
fixture names.

``store_location`` is parametrized over both engines: a test that takes ``store`` (or
``store_location``, to open and reopen stores itself) runs once on an SQLite file and once
on a fresh PostgreSQL database (``tests/pgfixture.py``). ``db_path`` is an SQLite file's
path, for the tests about SQLite files. ``raw_db`` reaches the store's database beside
the store, for what its API cannot show (what the schema itself refuses, query plans).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ptt_server.store import Store, User
from ptt_server.store.postgresql import to_pg

ENGINES = ("sqlite", "postgresql")

DAY = 24 * 3600.0


@pytest.fixture(name="db_path")
def db_path_fixture(tmp_path: Path) -> Path:
    return tmp_path / "data" / "fieldradio.db"


@pytest.fixture(name="store_location", params=ENGINES)
def store_location_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a store opens: an SQLite file's path, or a fresh PostgreSQL database's URL."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return tmp_path / "data" / "fieldradio.db"


@pytest.fixture(name="store")
async def store_fixture(store_location: Path | str) -> AsyncIterator[Store]:
    s = await Store.open(store_location)
    try:
        yield s
    finally:
        await s.close()


class RawDatabase:
    """The store's database through a connection of its own (autocommit), opened on first use.

    ``execute`` takes the store's SQL (``?`` placeholders) on either engine and returns the
    rows; ``integrity_error`` is the engine's exception for a refused constraint.
    """

    def __init__(self, location: Path | str) -> None:
        self.engine = "postgresql" if isinstance(location, str) else "sqlite"
        self.integrity_error: type[Exception] = (
            psycopg.IntegrityError if self.engine == "postgresql" else sqlite3.IntegrityError
        )
        self._location = location
        self._sqlite: sqlite3.Connection | None = None
        self._pg: psycopg.Connection[tuple[Any, ...]] | None = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if isinstance(self._location, str):
            if self._pg is None:
                self._pg = psycopg.connect(self._location, autocommit=True)
            cur = self._pg.execute(to_pg(sql), tuple(params))
            return cur.fetchall() if cur.description is not None else []
        if self._sqlite is None:
            self._sqlite = sqlite3.connect(self._location, isolation_level=None)
        rows: list[tuple[Any, ...]] = self._sqlite.execute(sql, params).fetchall()
        return rows

    def close(self) -> None:
        for conn in (self._sqlite, self._pg):
            if conn is not None:
                conn.close()


@pytest.fixture(name="raw_db")
def raw_db_fixture(store_location: Path | str) -> Iterator[RawDatabase]:
    raw = RawDatabase(store_location)
    try:
        yield raw
    finally:
        raw.close()


def make_user(user_id: str, serial: int = 1, fp: bytes | None = None) -> User:
    return User(
        user_id=user_id,
        display_name=user_id.title(),
        role="officer",
        device_id=f"{user_id}-phone",
        credential=b"cred:" + user_id.encode(),
        fingerprint=fp if fp is not None else hashlib.sha256(user_id.encode()).digest(),
        serial=serial,
        enrolled_at=1000.0 + serial,
    )


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def read_file(path: Path) -> bytes:
    return path.read_bytes()
