"""The store's schema on PostgreSQL: the latest version's tables, created on first open.

A new PostgreSQL store starts at the schema version the SQLite migrations have reached
(``schema.LATEST_VERSION``): the same tables, columns, constraints and indexes, in
PostgreSQL's types (BIGINT for integers, DOUBLE PRECISION for reals, BYTEA for blobs,
identity columns for SQLite's AUTOINCREMENT keys). ``fieldradio_schema`` holds the
version. ``tests/ptt_server/test_store_postgresql.py`` compares the two schemas, so a new
SQLite migration without its PostgreSQL change fails there: change ``TABLES`` to the new
version and append the step from the previous one to ``UPGRADES`` (for the stores created
before it; the version itself is ``LATEST_VERSION``).

Two differences, both so that the table families' SQL runs unchanged on both engines:
``messages`` and ``emergencies`` carry an explicit ``rowid`` column (SQLite's implicit
one, used to order and to prune by insertion order), and booleans stay integers 0/1 under
a CHECK, as in SQLite, so the records come back the same.

Opening (:func:`ensure_schema`) takes a transaction-scoped advisory lock first, so two
nodes starting together cannot both create the tables; the second one waits, then finds
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from ptt_server.store.errors import ForeignDatabaseError, SchemaTooNewError, StoreError
from ptt_server.store.schema import APPLICATION_ID, LATEST_VERSION

SCHEMA_TABLE = "fieldradio_schema"
SCHEMA_LOCK = APPLICATION_ID
"""The ``pg_advisory_xact_lock`` key that serialises schema creation across nodes."""

_CHANNEL_ID_MAX = 4294967295

TABLES: tuple[str, ...] = (
    f"""CREATE TABLE {SCHEMA_TABLE} (
        singleton SMALLINT PRIMARY KEY CHECK (singleton = 1),
        version INTEGER NOT NULL
    )""",
    # User ids are not foreign keys anywhere (see schema V1).
    """CREATE TABLE users (
        user_id TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        role TEXT NOT NULL,
        device_id TEXT NOT NULL,
        credential BYTEA NOT NULL,
        fingerprint BYTEA NOT NULL UNIQUE,
        serial BIGINT NOT NULL,
        enrolled_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE revocation_list (
        singleton BIGINT PRIMARY KEY CHECK (singleton = 1),
        version BIGINT NOT NULL,
        signed BYTEA NOT NULL
    )""",
    "CREATE TABLE revoked_users (user_id TEXT PRIMARY KEY)",
    "CREATE TABLE revoked_serials (serial BIGINT PRIMARY KEY)",
    # A sequence never hands out a value twice, even after a rollback (AUTOINCREMENT's
    # promise: a channel id is bound into E2E AAD and key envelopes).
    f"""CREATE TABLE channels (
        channel_id BIGINT GENERATED ALWAYS AS IDENTITY (MINVALUE 1 MAXVALUE {_CHANNEL_ID_MAX})
            PRIMARY KEY CHECK (channel_id BETWEEN 1 AND {_CHANNEL_ID_MAX}),
        name TEXT NOT NULL UNIQUE,
        created_at DOUBLE PRECISION NOT NULL,
        deleted_at DOUBLE PRECISION
    )""",
    """CREATE TABLE rosters (
        channel_id BIGINT PRIMARY KEY REFERENCES channels ON DELETE CASCADE,
        version BIGINT NOT NULL,
        signed BYTEA NOT NULL
    )""",
    """CREATE TABLE channel_members (
        user_id TEXT NOT NULL,
        channel_id BIGINT NOT NULL REFERENCES channels ON DELETE CASCADE,
        PRIMARY KEY (user_id, channel_id)
    )""",
    "CREATE INDEX channel_members_by_channel ON channel_members (channel_id)",
    """CREATE TABLE key_envelopes (
        channel_id BIGINT NOT NULL REFERENCES channels ON DELETE CASCADE,
        recipient TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        envelope BYTEA NOT NULL,
        stored_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (channel_id, recipient)
    )""",
    "CREATE INDEX key_envelopes_by_recipient ON key_envelopes (recipient)",
    """CREATE TABLE messages (
        message_id BYTEA PRIMARY KEY CHECK (length(message_id) = 16),
        rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        from_user TEXT NOT NULL,
        to_user TEXT,
        to_channel BIGINT,
        sealed BYTEA NOT NULL,
        sent_at DOUBLE PRECISION NOT NULL,
        CHECK ((to_user IS NULL) <> (to_channel IS NULL))
    )""",
    "CREATE INDEX messages_by_time ON messages (sent_at)",
    """CREATE TABLE deliveries (
        message_id BYTEA NOT NULL REFERENCES messages ON DELETE CASCADE,
        recipient TEXT NOT NULL,
        delivered_at DOUBLE PRECISION,
        read_at DOUBLE PRECISION,
        PRIMARY KEY (message_id, recipient)
    )""",
    "CREATE INDEX deliveries_pending ON deliveries (recipient) WHERE delivered_at IS NULL",
    """CREATE TABLE emergencies (
        alert_id BYTEA PRIMARY KEY,
        rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        user_id TEXT NOT NULL,
        channel_id BIGINT REFERENCES channels ON DELETE SET NULL,
        sealed_location BYTEA,
        raised_at DOUBLE PRECISION NOT NULL,
        acked_by TEXT,
        acked_at DOUBLE PRECISION,
        cancelled_by TEXT,
        cancelled_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION,
        presses BIGINT NOT NULL DEFAULT 1,
        kind TEXT NOT NULL DEFAULT 'emergency' CHECK (kind IN ('emergency', 'imminent_peril'))
    )""",
    "CREATE INDEX emergencies_active ON emergencies (raised_at) WHERE cancelled_at IS NULL",
    # One active alert per user, across every node (schema V2).
    """CREATE UNIQUE INDEX emergencies_one_active ON emergencies (user_id)
        WHERE cancelled_at IS NULL""",
    """CREATE TABLE presence (
        user_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        online BIGINT NOT NULL CHECK (online IN (0, 1)),
        last_seen DOUBLE PRECISION NOT NULL,
        sealed_location BYTEA,
        node TEXT
    )""",
    """CREATE TABLE bursts (
        burst_key BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        channel_id BIGINT NOT NULL REFERENCES channels ON DELETE CASCADE,
        burst_id BIGINT NOT NULL,
        talker TEXT NOT NULL,
        priority BIGINT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        duration DOUBLE PRECISION,
        outcome TEXT,
        recorded BIGINT NOT NULL DEFAULT 0 CHECK (recorded IN (0, 1)),
        broadcast BIGINT NOT NULL DEFAULT 0 CHECK (broadcast IN (0, 1))
    )""",
    "CREATE INDEX bursts_by_channel_time ON bursts (channel_id, started_at)",
    "CREATE INDEX bursts_recorded ON bursts (started_at) WHERE recorded = 1",
    "CREATE INDEX bursts_by_talker_time ON bursts (talker, started_at)",
    """CREATE TABLE burst_frames (
        burst_key BIGINT NOT NULL REFERENCES bursts ON DELETE CASCADE,
        seq BIGINT NOT NULL,
        flags BIGINT NOT NULL,
        frame BYTEA NOT NULL,
        PRIMARY KEY (burst_key, seq)
    )""",
    """CREATE TABLE patches (
        patch_id BIGINT PRIMARY KEY REFERENCES channels ON DELETE CASCADE,
        signed_order BYTEA NOT NULL,
        created_by TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE patch_links (
        channel_id BIGINT PRIMARY KEY REFERENCES channels ON DELETE CASCADE,
        patch_id BIGINT NOT NULL REFERENCES patches ON DELETE CASCADE
    )""",
    "CREATE INDEX patch_links_by_patch ON patch_links (patch_id)",
    """CREATE TABLE calls (
        call_id BYTEA PRIMARY KEY CHECK (length(call_id) = 16),
        caller TEXT NOT NULL,
        callee TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('full_duplex', 'half_duplex')),
        emergency BIGINT NOT NULL CHECK (emergency IN (0, 1)),
        offered_at DOUBLE PRECISION NOT NULL,
        answered_at DOUBLE PRECISION,
        ended_at DOUBLE PRECISION,
        outcome TEXT NOT NULL DEFAULT '',
        ended_by TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX calls_by_time ON calls (offered_at)",
    "CREATE INDEX calls_by_caller ON calls (caller, offered_at)",
    "CREATE INDEX calls_by_callee ON calls (callee, offered_at)",
)
"""The schema at ``LATEST_VERSION``, in creation order (a new store starts there)."""

FIRST_VERSION = 6
"""The SQLite schema's version when PostgreSQL came: the oldest PostgreSQL store."""

UPGRADES: Mapping[int, tuple[str, ...]] = {
    7: ("ALTER TABLE presence ADD COLUMN node TEXT",),  # the node a user is online on
}
"""Version N -> the statements that take a PostgreSQL store from N - 1 to N (N > 6)."""


def ensure_schema(conn: psycopg.Connection[Any], location: str) -> bool:
    """Create the schema in an empty database, upgrade an older one, refuse the others.

    Runs one READ COMMITTED transaction on ``conn`` (not in autocommit mode, idle) and
    returns True if it created the tables. The advisory lock is taken first and READ
    COMMITTED gives the statements after it a snapshot taken after the wait: a node that
    waited for another's creation sees the tables. Raises ``SchemaTooNewError`` or
    ``ForeignDatabaseError`` having changed nothing (the transaction is rolled back).
    """
    conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
    try:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        created = _ensure_locked(conn, location)
        conn.commit()
        return created
    except BaseException:
        conn.rollback()
        raise


def _ensure_locked(conn: psycopg.Connection[Any], location: str) -> bool:
    row = conn.execute("SELECT current_schema()").fetchone()
    schema = None if row is None else row[0]
    if schema is None:
        raise StoreError(
            f"PostgreSQL store {location} has no schema to create tables in (search_path "
            f"names none that exists): create one, or fix search_path for this user"
        )
    ours = conn.execute(
        "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = %s",
        (schema, SCHEMA_TABLE),
    ).fetchone()
    if ours is None:
        others = conn.execute(
            "SELECT c.relname FROM pg_catalog.pg_class AS c "
            "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "ORDER BY c.relname LIMIT 6",
            (schema,),
        ).fetchall()
        if others:
            names = ", ".join(r[0] for r in others[:5]) + (", ..." if len(others) > 5 else "")
            raise ForeignDatabaseError(
                f"PostgreSQL store {location} holds another program's tables in schema "
                f"{schema!r} ({names}) and no {SCHEMA_TABLE}; it was not modified. Give "
                f"Fieldradio a database (or schema) of its own and point `store` at it."
            )
        for statement in TABLES:
            conn.execute(statement)
        conn.execute(
            f"INSERT INTO {SCHEMA_TABLE} (singleton, version) VALUES (1, %s)", (LATEST_VERSION,)
        )
        version = LATEST_VERSION
        created = True
    else:
        got = conn.execute(f"SELECT version FROM {SCHEMA_TABLE}").fetchone()
        if got is None:
            raise StoreError(
                f"PostgreSQL store {location} has an empty {SCHEMA_TABLE} table: it was "
                f"damaged; restore a backup"
            )
        version = int(got[0])
        created = False
    if version > LATEST_VERSION:
        raise SchemaTooNewError(
            f"PostgreSQL store {location} has schema version {version}, this ptt-server "
            f"knows up to {LATEST_VERSION}: upgrade ptt-server on this node (every node of a "
            f"cluster runs the same version) or restore a backup"
        )
    while version < LATEST_VERSION:
        steps = UPGRADES.get(version + 1)
        if steps is None:
            raise StoreError(
                f"PostgreSQL store {location} has schema version {version} and this "
                f"ptt-server has no step to version {version + 1}: report this as a bug"
            )
        for statement in steps:
            conn.execute(statement)
        version += 1
        conn.execute(f"UPDATE {SCHEMA_TABLE} SET version = %s", (version,))
    return created
