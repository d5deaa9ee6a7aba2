"""Users and revocation lists in the store (ptt_server.store.users), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest

from ptt_server.store import ConflictError, StaleVersionError, Store
from tests.ptt_server.test_store_fixtures import (
    make_user,
    store_fixture,  # noqa: F401 (fixture)
    store_location_fixture,  # noqa: F401 (fixture)
)


async def test_users(store: Store) -> None:
    assert await store.get_user("alice") is None
    await store.put_user(make_user("bob"))
    await store.put_user(make_user("alice"))
    alice = await store.get_user("alice")
    assert alice == make_user("alice")
    assert [u.user_id for u in await store.list_users()] == ["alice", "bob"]
    assert await store.get_user_by_fingerprint(make_user("bob").fingerprint) == make_user("bob")
    assert await store.get_user_by_fingerprint(b"\x00" * 32) is None
    # Re-enrollment replaces the credential.
    new_fp = hashlib.sha256(b"alice-2").digest()
    await store.put_user(make_user("alice", serial=2, fp=new_fp))
    assert (await store.get_user("alice")) == make_user("alice", serial=2, fp=new_fp)
    assert await store.get_user_by_fingerprint(make_user("alice").fingerprint) is None


async def test_user_with_someone_elses_fingerprint_is_refused(store: Store) -> None:
    await store.put_user(make_user("alice"))
    with pytest.raises(ConflictError, match="already belongs to user 'alice'"):
        await store.put_user(make_user("mallory", fp=make_user("alice").fingerprint))
    assert await store.get_user("mallory") is None


async def test_revocations_keep_only_the_newest(store: Store) -> None:
    assert await store.get_revocations() is None
    assert not await store.is_revoked("alice", 7)
    await store.put_revocations(3, b"signed-v3", ["alice"], [7, 9])
    rl = await store.get_revocations()
    assert rl is not None
    assert (rl.version, rl.signed, rl.user_ids, rl.serials) == (
        3,
        b"signed-v3",
        frozenset({"alice"}),
        frozenset({7, 9}),
    )
    assert await store.is_revoked("alice", 1)
    assert await store.is_revoked("bob", 9)
    assert not await store.is_revoked("bob", 8)
    for stale in (3, 2):
        with pytest.raises(StaleVersionError, match="not newer than the stored version 3"):
            await store.put_revocations(stale, b"old", [], [])
    assert (await store.get_revocations()) == rl
    await store.put_revocations(4, b"signed-v4", ["carol"], [])
    assert not await store.is_revoked("alice", 7)  # the new list is complete, not a delta
    assert await store.is_revoked("carol", 0)
