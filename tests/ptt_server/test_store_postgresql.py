"""What only the PostgreSQL store does (ptt_server.store.postgresql, pg_schema).

Its schema, opened by several nodes at once and refusing other databases; PostgreSQL
restarting or gone under a running store; a COMMIT cut off with the connection;
two nodes racing the same write. On the session's PostgreSQL server
(``tests/pgfixture.py``), a fresh database per test. The table families' behaviour on
PostgreSQL is tested by the ``test_store_*`` modules, which run on both engines.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from ptt_server.config import DATABASE_NAME
from ptt_server.store import (
    ForeignDatabaseError,
    Presence,
    SchemaTooNewError,
    Store,
    StoreError,
)
from ptt_server.store.pg_schema import SCHEMA_LOCK
from ptt_server.store.postgresql import to_pg
from ptt_server.store.schema import LATEST_VERSION
from tests.orgfixture import Org, start_server
from tests.pgfixture import PostgresServer
from tests.ptt_server.rawclient import connect
from tests.ptt_server.test_store_fixtures import make_user, mid

_T = TypeVar("_T")
_Admin = psycopg.Connection[tuple[Any, ...]]


def admin(url: str) -> _Admin:
    return psycopg.connect(url, autocommit=True)


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def until(value: Callable[[], _T | None], what: str) -> _T:
    """``value()`` once it is truthy: the tests wait for a state of PostgreSQL's (a lock
    waited on, a session waiting in COMMIT) or the store's, never for a time. Polled, with
    a deadline: PostgreSQL's catalogue has no event to wait on."""
    try:
        async with asyncio.timeout(20):
            while True:
                got = value()
                if got:
                    return got
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for {what}") from None


def catalogue(conn: _Admin) -> list[tuple[Any, ...]]:
    """Every table, column and index of the current schema, and the schema version."""
    rows = conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY 1, 2"
    ).fetchall()
    rows += conn.execute(
        "SELECT tablename, indexname, '' FROM pg_indexes "
        "WHERE schemaname = current_schema() ORDER BY 1, 2"
    ).fetchall()
    if conn.execute("SELECT to_regclass('fieldradio_schema')").fetchone() != (None,):
        rows += conn.execute(
            "SELECT 'version', version::text, '' FROM fieldradio_schema"
        ).fetchall()
    return rows


# --- one set of SQL --------------------------------------------------------------------------


def test_placeholders_become_psycopgs_and_percent_signs_are_escaped() -> None:
    assert to_pg("SELECT a FROM t WHERE b = ? AND c IN (?, ?)") == (
        "SELECT a FROM t WHERE b = %s AND c IN (%s, %s)"
    )
    assert to_pg("SELECT '?' || ? WHERE x LIKE '50%'") == "SELECT '?' || %s WHERE x LIKE '50%%'"
    assert to_pg("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


async def test_the_schema_is_the_sqlite_schemas_latest_version(pg_url: str, tmp_path: Path) -> None:
    """Same tables, columns, types, nullability and indexes: a new SQLite migration without its
    PostgreSQL step (pg_schema.UPGRADES) fails here."""
    await (await Store.open(tmp_path / "s.db")).close()
    await (await Store.open(pg_url)).close()
    types = {"INTEGER": "bigint", "REAL": "double precision", "BLOB": "bytea", "TEXT": "text"}
    lite = sqlite3.connect(tmp_path / "s.db")
    expected: dict[str, set[tuple[str, str, bool]]] = {}
    indexes: set[str] = set()
    for (table,) in lite.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name <> 'sqlite_sequence'"
    ):
        columns = lite.execute(f"PRAGMA table_info({table})").fetchall()
        # SQLite lets a non-integer PRIMARY KEY hold NULL; PostgreSQL does not: compare the
        # nullability of the other columns.
        expected[table] = {(c[1], types[c[2]], bool(c[3]) or bool(c[5])) for c in columns}
        indexes |= {
            r[1]
            for r in lite.execute(f"PRAGMA index_list({table})")
            if not r[1].startswith("sqlite_autoindex")
        }
    lite.close()
    with admin(pg_url) as pg:
        got: dict[str, set[tuple[str, str, bool]]] = {}
        for table, column, data_type, nullable in pg.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM "
            "information_schema.columns WHERE table_schema = current_schema()"
        ):
            if (table, column) in (("messages", "rowid"), ("emergencies", "rowid")):
                continue  # SQLite's implicit rowid, made explicit (see pg_schema)
            got.setdefault(table, set()).add((column, data_type, nullable == "NO"))
        pg_indexes = {
            r[0]
            for r in pg.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
            if not r[0].endswith(("_pkey", "_key"))  # constraints' own, as sqlite_autoindex
        }
        version = pg.execute("SELECT version FROM fieldradio_schema").fetchone()
    assert got.pop("fieldradio_schema")
    assert got == expected
    assert pg_indexes == indexes
    assert version == (LATEST_VERSION,)


# --- opening ---------------------------------------------------------------------------------


async def test_two_nodes_opening_an_empty_database_together_create_the_schema_once(
    pg_url: str,
) -> None:
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with admin(pg_url) as pg:
        # Hold the schema lock, so both opens are at the lock together when it is let go.
        pg.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        opening = [asyncio.create_task(Store.open(pg_url)) for _ in range(2)]
        await until(lambda: pg.execute(waiting).fetchone() == (2,), "both opens at the lock")
        pg.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
        first, second = await asyncio.gather(*opening)
        try:
            ch = await first.create_channel("alpha", 1.0)
            assert await second.get_channel(ch) is not None
        finally:
            await first.close()
            await second.close()
        assert pg.execute("SELECT version FROM fieldradio_schema").fetchall() == [(LATEST_VERSION,)]


async def test_a_store_at_version_6_is_upgraded_to_the_latest(pg_url: str) -> None:
    """A store created before presence knew its node (V7) gets the column, rows kept."""
    await (await Store.open(pg_url)).close()
    with admin(pg_url) as pg:
        pg.execute("ALTER TABLE presence DROP COLUMN node")  # as version 6 created it
        pg.execute("UPDATE fieldradio_schema SET version = 6")
        pg.execute(
            "INSERT INTO presence (user_id, status, online, last_seen) "
            "VALUES ('alice', 'available', 1, 1.0)"
        )
    async with await Store.open(pg_url) as store:
        assert await store.get_presence("alice") == Presence("alice", "available", True, 1.0)
        assert await store.mark_node_offline("node0", 2.0) == []  # no node named: untouched
    with admin(pg_url) as pg:
        assert pg.execute("SELECT version FROM fieldradio_schema").fetchall() == [(LATEST_VERSION,)]


async def test_a_newer_schema_is_refused_and_changes_nothing(pg_url: str) -> None:
    async with await Store.open(pg_url) as store:
        await store.create_channel("alpha", 1.0)
    with admin(pg_url) as pg:
        pg.execute("UPDATE fieldradio_schema SET version = %s", (LATEST_VERSION + 3,))
        before = catalogue(pg)
        with pytest.raises(SchemaTooNewError) as info:
            await Store.open(pg_url)
        assert catalogue(pg) == before
        assert pg.execute("SELECT name FROM channels").fetchall() == [("alpha",)]
    message = str(info.value)
    assert f"schema version {LATEST_VERSION + 3}" in message
    assert f"knows up to {LATEST_VERSION}" in message and "upgrade ptt-server" in message
    assert dbname(pg_url) in message


async def test_another_programs_database_is_refused_and_changes_nothing(pg_url: str) -> None:
    with admin(pg_url) as pg:
        pg.execute("CREATE TABLE invoices (id BIGINT PRIMARY KEY, total DOUBLE PRECISION)")
        before = catalogue(pg)
        with pytest.raises(ForeignDatabaseError, match="another program's tables") as info:
            await Store.open(pg_url)
        assert catalogue(pg) == before
    assert "invoices" in str(info.value) and "database (or schema) of its own" in str(info.value)


async def test_operator_mistakes_fail_at_once_saying_what_to_fix(
    pg_server: PostgresServer,
) -> None:
    with pytest.raises(StoreError, match=r"does not exist.*createdb"):
        await Store.open(pg_server.url("no_such_database"))
    url = f"postgresql://nobody:s3cret@{pg_server.host}:{pg_server.port}/postgres"
    with pytest.raises(StoreError, match=r"refused the connection.*pg_hba\.conf") as info:
        await Store.open(url)
    assert "s3cret" not in str(info.value)  # the password never reaches a log
    for bad in ("postgresql://host:notaport/db", "postgresql://host/db?no_such_option=1"):
        with pytest.raises(StoreError, match="not a valid PostgreSQL URL"):
            await Store.open(bad)


async def test_text_with_a_nul_character_is_refused_and_changes_nothing(pg_url: str) -> None:
    """SQLite stores it; PostgreSQL's text cannot hold it: a clear error, nothing written."""
    async with await Store.open(pg_url) as store:
        with pytest.raises(StoreError, match="NUL character"):
            await store.put_user(make_user("al\x00ice"))
        with pytest.raises(StoreError, match="NUL character"):
            await store.store_message(mid(1), "bob", "al\x00ice", None, b"s", 1.0, ["alice"])
        assert await store.list_users() == [] and await store.get_message(mid(1)) is None


# --- PostgreSQL restarting ---------------------------------------------------------------------


async def test_a_write_acknowledged_before_a_restart_is_kept_and_one_issued_during_it_lands(
    pg_server: PostgresServer, pg_url: str
) -> None:
    store = await Store.open(pg_url)
    try:
        await store.create_channel("before", 1.0)
        # Like a crash (no shutdown checkpoint): recovery replays the log at the next start.
        await asyncio.to_thread(pg_server.stop, "immediate")
        during = asyncio.create_task(store.create_channel("during", 2.0))
        # Polled: the store counts a failed connect on its own thread and logs nothing per
        # attempt (its retry loop must stay quiet while PostgreSQL is down for minutes).
        await until(lambda: store.failed_connects > 0, "the store retrying to connect")
        assert not during.done()
        await asyncio.to_thread(pg_server.start)
        assert await during > 0
        assert [c.name for c in await store.list_channels()] == ["before", "during"]
    finally:
        await store.close()
    async with await Store.open(pg_url) as other:  # another node sees both
        assert [c.name for c in await other.list_channels()] == ["before", "during"]


async def test_postgresql_gone_past_the_bound_is_a_clear_error_and_the_store_recovers(
    pg_server: PostgresServer, pg_url: str
) -> None:
    store = await Store.open(pg_url, reconnect_timeout_s=0.3)
    try:
        await store.create_channel("alpha", 1.0)
        await asyncio.to_thread(pg_server.stop, "fast")
        with pytest.raises(StoreError) as info:
            await store.create_channel("bravo", 2.0)
        message = str(info.value)
        assert f"PostgreSQL at 127.0.0.1:{pg_server.port}" in message
        assert "unreachable" in message and "within 0.3 s" in message
        assert "Check that PostgreSQL is running" in message
        # A call queued after the window closed fails without waiting it out again.
        with pytest.raises(StoreError, match="unreachable"):
            await store.list_channels()
        await asyncio.to_thread(pg_server.start)
        assert [c.name for c in await store.list_channels()] == ["alpha"]
    finally:
        await store.close()


async def cut_off_commit(pg_server: PostgresServer, url: str, call: Awaitable[_T]) -> _T:
    """Run ``call`` with its COMMIT cut off: the connection is killed while COMMIT waits.

    A synchronous standby that does not exist makes each COMMIT wait after it committed
    locally (wait event SyncRep); the session is then terminated, so the client loses the
    connection without an answer to a COMMIT that did land.
    """
    with admin(pg_server.url()) as pg:
        pg.execute("SET synchronous_commit = local")  # this session's commits do not wait
        pg.execute("ALTER SYSTEM SET synchronous_standby_names = 'fieldradio_absent_standby'")
        try:
            pg.execute("SELECT pg_reload_conf()")
            show = "SHOW synchronous_standby_names"
            await until(lambda: pg.execute(show).fetchone() != ("",), "the reload")
            task = asyncio.ensure_future(call)
            query = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event = 'SyncRep'"
            (pid,) = await until(lambda: pg.execute(query, (dbname(url),)).fetchone(), "SyncRep")
            # Waits until the session is gone, before the reset below could release it.
            assert pg.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone() == (
                True,
            )
        finally:
            pg.execute("ALTER SYSTEM RESET synchronous_standby_names")
            pg.execute("SELECT pg_reload_conf()")
    return await task


async def test_a_write_whose_commit_was_cut_off_is_not_run_twice(
    pg_server: PostgresServer, pg_url: str
) -> None:
    """Neither is idempotent: run again, the list would be refused as not newer than itself
    and the burst logged twice. The database has synchronous_commit off, under which an
    acknowledged commit can be lost in a crash: the store's session turns it back on (else
    its COMMIT would not wait for the standby, and cut_off_commit would find no COMMIT)."""
    with admin(pg_url) as pg:
        pg.execute(f'ALTER DATABASE "{dbname(pg_url)}" SET synchronous_commit = off')
    async with await Store.open(pg_url) as store:
        ch = await store.create_channel("alpha", 1.0)
        await cut_off_commit(pg_server, pg_url, store.put_revocations(1, b"v1", ["mallory"], [7]))
        revocations = await store.get_revocations()
        assert revocations is not None and (revocations.version, revocations.signed) == (1, b"v1")
        key = await cut_off_commit(pg_server, pg_url, store.start_burst(ch, 5, "alice", 1, 2.0))
        assert [b.burst_key for b in await store.recent_bursts(ch)] == [key]


async def test_a_cut_off_commit_that_cannot_be_checked_is_reported_as_unknown(
    pg_server: PostgresServer, pg_url: str
) -> None:
    """PostgreSQL refuses the new connection that would ask: the error says the write may
    have landed (it did), not that nothing was written."""
    db = dbname(pg_url)
    async with await Store.open(pg_url, reconnect_timeout_s=0.3) as store:
        with admin(pg_server.url()) as pg:
            pg.execute(f'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS false')  # open ones stay
            try:
                with pytest.raises(StoreError, match="committed cannot be told") as info:
                    await cut_off_commit(pg_server, pg_url, store.put_revocations(1, b"v1", [], []))
            finally:
                pg.execute(f'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS true')
        assert "retry it only if it is missing" in str(info.value)
        revocations = await store.get_revocations()
        assert revocations is not None and revocations.version == 1


# --- nodes racing ------------------------------------------------------------------------------


async def race(pg: _Admin, table: str, calls: list[Awaitable[_T]]) -> list[_T]:
    """Run ``calls`` with their writes to ``table`` held until all of them wait to write, so
    each read before any of them wrote: the SERIALIZABLE conflict, every time."""
    waiting = (
        "SELECT count(*) FROM pg_locks AS l JOIN pg_class AS c ON c.oid = l.relation "
        "WHERE c.relname = %s AND NOT l.granted"
    )
    with pg.transaction():
        pg.execute(f"LOCK TABLE {table} IN SHARE MODE")  # reads pass, writes wait
        tasks = [asyncio.ensure_future(c) for c in calls]
        await until(
            lambda: pg.execute(waiting, (table,)).fetchone() == (len(calls),), "all waiting"
        )
    return list(await asyncio.gather(*tasks))


async def test_two_nodes_racing_the_same_write_get_one_result_and_no_error(pg_url: str) -> None:
    a, b = await Store.open(pg_url), await Store.open(pg_url)
    try:
        with admin(pg_url) as pg:
            # One officer, two nodes, two presses with fresh ids: one emergency.
            raised = await race(
                pg,
                "emergencies",
                [
                    a.raise_emergency(b"press-a", "alice", None, b"loc-a", 10.0),
                    b.raise_emergency(b"press-b", "alice", None, b"loc-b", 11.0),
                ],
            )
            assert sorted(r.outcome for r in raised) == ["created", "updated"]
            (alert,) = await a.active_emergencies()
            assert alert.presses == 2
            # One message id sent through two nodes (a client retry): stored once.
            stored = await race(
                pg,
                "messages",
                [
                    store.store_message(mid(1), "bob", "alice", None, b"s", 1.0, ["alice"])
                    for store in (a, b)
                ],
            )
            assert sorted(stored) == [False, True]
            assert [d.recipient for d in await b.deliveries(mid(1))] == ["alice"]
    finally:
        await a.close()
        await b.close()


# --- the server on PostgreSQL ------------------------------------------------------------------


async def test_two_servers_share_one_postgresql_store(org: Org, pg_url: str) -> None:
    """Two nodes on one data directory and one PostgreSQL store: no directory lock, one store;
    the SQLite file is not used."""
    async with await Store.open(org.db_path) as src, await Store.open(pg_url) as dst:
        for user in await src.list_users():
            await dst.put_user(user)
        assert await dst.create_channel("patrol", 1.0) == org.channel_id  # bound in the roster
        roster = await src.get_roster(org.channel_id)
        assert roster is not None
        await dst.put_roster(org.channel_id, roster.version, roster.signed, roster.members)
        for user in await src.list_users():
            for env in await src.envelopes_for(user.user_id):
                await dst.put_envelopes(
                    env.channel_id, env.epoch, {user.user_id: env.envelope}, 1.0
                )
    for path in org.data_dir.glob(DATABASE_NAME + "*"):
        path.unlink()
    first = await start_server(org, store=pg_url)
    try:
        second = await start_server(org, store=pg_url)
        try:
            for server, user_id in ((first, "alice"), (second, "bob")):
                radio = await connect(server, org.accounts[user_id])
                assert radio.login_ok.user_id == user_id
                await radio.close()
        finally:
            await second.stop()
    finally:
        await first.stop()
    assert not list(org.data_dir.glob(DATABASE_NAME + "*"))
