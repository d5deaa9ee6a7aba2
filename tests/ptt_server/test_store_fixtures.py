"""Fixtures and helpers shared by the ``test_store_*`` modules (it holds no tests itself).

A test module imports the fixtures by their function names (``db_path_fixture``, and
``store_fixture`` with it, as ``store`` needs ``db_path``) marked ``# noqa: F401 (fixture)``:
pytest finds them in the module's namespace under their fixture names.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ptt_server.store import Store, User

DAY = 24 * 3600.0


@pytest.fixture(name="db_path")
def db_path_fixture(tmp_path: Path) -> Path:
    return tmp_path / "data" / "fieldradio.db"


@pytest.fixture(name="store")
async def store_fixture(db_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(db_path)
    try:
        yield s
    finally:
        await s.close()


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
