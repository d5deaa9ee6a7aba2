"""The store's SQLite schema as an ordered list of migrations.

The schema version lives in ``PRAGMA user_version``: a file at version N has
had migrations 1..N applied. Each migration runs in its own transaction
(SQLite DDL is transactional), so a failed migration leaves the file at the
previous version. ``ptt_server.store`` decides whether a file may be opened
at all (corrupt, newer, foreign); this module only knows how to move a
healthy file forward.

Append new migrations to ``MIGRATIONS``; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

APPLICATION_ID = 0x46524144
"""``PRAGMA application_id`` of a Fieldradio store ("FRAD"): tells our file from another
program's SQLite database, which we must not add tables to (sqlite.org/fileformat2.html#appid)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: the statements that take a file from ``version - 1`` to ``version``."""

    version: int
    summary: str
    statements: tuple[str, ...]


_V1 = Migration(
    version=1,
    summary="initial schema",
    statements=(
        f"PRAGMA application_id = {APPLICATION_ID}",
        # User ids are not foreign keys anywhere: identity is decided by the root-signed
        # credential and roster, and a signed roster may name a user enrolled later.
        """CREATE TABLE users (
            user_id TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            role TEXT NOT NULL,
            device_id TEXT NOT NULL,
            credential BLOB NOT NULL,
            fingerprint BLOB NOT NULL UNIQUE,
            serial INTEGER NOT NULL,
            enrolled_at REAL NOT NULL
        )""",
        # A single row: only the newest signed list is kept.
        """CREATE TABLE revocation_list (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            version INTEGER NOT NULL,
            signed BLOB NOT NULL
        )""",
        "CREATE TABLE revoked_users (user_id TEXT PRIMARY KEY) WITHOUT ROWID",
        "CREATE TABLE revoked_serials (serial INTEGER PRIMARY KEY)",
        # AUTOINCREMENT: a channel id is bound into E2E AAD and key envelopes, so an id is
        # never handed out twice, even after the highest channel is deleted.
        """CREATE TABLE channels (
            channel_id INTEGER PRIMARY KEY AUTOINCREMENT
                CHECK (channel_id BETWEEN 1 AND 4294967295),
            name TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE rosters (
            channel_id INTEGER PRIMARY KEY REFERENCES channels ON DELETE CASCADE,
            version INTEGER NOT NULL,
            signed BLOB NOT NULL
        )""",
        # Keyed user-first so "which channels is alice on" is one index range.
        """CREATE TABLE channel_members (
            user_id TEXT NOT NULL,
            channel_id INTEGER NOT NULL REFERENCES channels ON DELETE CASCADE,
            PRIMARY KEY (user_id, channel_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX channel_members_by_channel ON channel_members (channel_id)",
        """CREATE TABLE key_envelopes (
            channel_id INTEGER NOT NULL REFERENCES channels ON DELETE CASCADE,
            recipient TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            envelope BLOB NOT NULL,
            stored_at REAL NOT NULL,
            PRIMARY KEY (channel_id, recipient)
        ) WITHOUT ROWID""",
        "CREATE INDEX key_envelopes_by_recipient ON key_envelopes (recipient)",
        """CREATE TABLE messages (
            message_id BLOB PRIMARY KEY CHECK (length(message_id) = 16),
            from_user TEXT NOT NULL,
            to_user TEXT,
            to_channel INTEGER,
            sealed BLOB NOT NULL,
            sent_at REAL NOT NULL,
            CHECK ((to_user IS NULL) <> (to_channel IS NULL))
        )""",
        "CREATE INDEX messages_by_time ON messages (sent_at)",
        """CREATE TABLE deliveries (
            message_id BLOB NOT NULL REFERENCES messages ON DELETE CASCADE,
            recipient TEXT NOT NULL,
            delivered_at REAL,
            read_at REAL,
            PRIMARY KEY (message_id, recipient)
        ) WITHOUT ROWID""",
        # Partial index: only the undelivered rows, which is what a reconnecting user asks for.
        """CREATE INDEX deliveries_pending ON deliveries (recipient)
            WHERE delivered_at IS NULL""",
        """CREATE TABLE emergencies (
            alert_id BLOB PRIMARY KEY,
            user_id TEXT NOT NULL,
            channel_id INTEGER REFERENCES channels ON DELETE SET NULL,
            sealed_location BLOB,
            raised_at REAL NOT NULL,
            acked_by TEXT,
            acked_at REAL,
            cancelled_by TEXT,
            cancelled_at REAL
        )""",
        "CREATE INDEX emergencies_active ON emergencies (raised_at) WHERE cancelled_at IS NULL",
        """CREATE TABLE presence (
            user_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            online INTEGER NOT NULL CHECK (online IN (0, 1)),
            last_seen REAL NOT NULL,
            sealed_location BLOB
        ) WITHOUT ROWID""",
        """CREATE TABLE bursts (
            burst_key INTEGER PRIMARY KEY AUTOINCREMENT,
            channel_id INTEGER NOT NULL REFERENCES channels ON DELETE CASCADE,
            burst_id INTEGER NOT NULL,
            talker TEXT NOT NULL,
            priority INTEGER NOT NULL,
            started_at REAL NOT NULL,
            duration REAL,
            outcome TEXT,
            recorded INTEGER NOT NULL DEFAULT 0 CHECK (recorded IN (0, 1))
        )""",
        "CREATE INDEX bursts_by_channel_time ON bursts (channel_id, started_at)",
        # Only bursts that still have frames: pruning never rescans the whole burst log.
        "CREATE INDEX bursts_recorded ON bursts (started_at) WHERE recorded = 1",
        # WITHOUT ROWID clusters a burst's frames together on disk, in sequence order.
        """CREATE TABLE burst_frames (
            burst_key INTEGER NOT NULL REFERENCES bursts ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            flags INTEGER NOT NULL,
            frame BLOB NOT NULL,
            PRIMARY KEY (burst_key, seq)
        ) WITHOUT ROWID""",
    ),
)

_V2 = Migration(
    version=2,
    summary="one active emergency per user",
    statements=(
        # A new press of the emergency button updates the user's active alert (issue 9: 300
        # alerts with fresh ids made 300 emergencies); these record the last press and how many.
        "ALTER TABLE emergencies ADD COLUMN updated_at REAL",
        "ALTER TABLE emergencies ADD COLUMN presses INTEGER NOT NULL DEFAULT 1",
        "UPDATE emergencies SET updated_at = raised_at",
        # Alerts raised before this rule: each user's oldest active one stays, the later ones
        # are closed as merged into it (cancelled_at set, cancelled_by NULL: nobody cancelled).
        """UPDATE emergencies SET cancelled_at = raised_at
            WHERE cancelled_at IS NULL AND EXISTS (
                SELECT 1 FROM emergencies AS older
                WHERE older.user_id = emergencies.user_id AND older.cancelled_at IS NULL
                    AND (older.raised_at, older.rowid) < (emergencies.raised_at, emergencies.rowid)
            )""",
        """CREATE UNIQUE INDEX emergencies_one_active ON emergencies (user_id)
            WHERE cancelled_at IS NULL""",
    ),
)

_V3 = Migration(
    version=3,
    summary="channel deletion, patches, bursts by talker",
    statements=(
        # A deleted channel keeps its row (its id is bound into old recordings' AAD and the
        # recordings stay until their retention ends) under a name that frees the old one.
        "ALTER TABLE channels ADD COLUMN deleted_at REAL",
        # A patch and its latest signed order (opaque: radios verify it), and one row per
        # linked channel, so a channel is in at most one patch (issue 11).
        """CREATE TABLE patches (
            patch_id INTEGER PRIMARY KEY REFERENCES channels ON DELETE CASCADE,
            signed_order BLOB NOT NULL,
            created_by TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE patch_links (
            channel_id INTEGER PRIMARY KEY REFERENCES channels ON DELETE CASCADE,
            patch_id INTEGER NOT NULL REFERENCES patches ON DELETE CASCADE
        )""",
        "CREATE INDEX patch_links_by_patch ON patch_links (patch_id)",
        # A dispatcher's presence snapshot says when each user was last heard: one index
        # seek per user instead of a scan of the whole burst log.
        "CREATE INDEX bursts_by_talker_time ON bursts (talker, started_at)",
    ),
)

_V4 = Migration(
    version=4,
    summary="imminent-peril alerts",
    statements=(
        # TS 22.179: an alert is an emergency or an imminent peril (issue 13); the ones
        # stored before were all emergencies.
        "ALTER TABLE emergencies ADD COLUMN kind TEXT NOT NULL DEFAULT 'emergency'"
        " CHECK (kind IN ('emergency', 'imminent_peril'))",
    ),
)

_V5 = Migration(
    version=5,
    summary="the private-call log",
    statements=(
        # TS 23.379 private calls (issue 13): who called whom, when, how long, how it ended.
        # The media never passes the relay; this is all it knows of a call.
        """CREATE TABLE calls (
            call_id BLOB PRIMARY KEY CHECK (length(call_id) = 16),
            caller TEXT NOT NULL,
            callee TEXT NOT NULL,
            mode TEXT NOT NULL CHECK (mode IN ('full_duplex', 'half_duplex')),
            emergency INTEGER NOT NULL CHECK (emergency IN (0, 1)),
            offered_at REAL NOT NULL,
            answered_at REAL,
            ended_at REAL,
            outcome TEXT NOT NULL DEFAULT '',
            ended_by TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX calls_by_time ON calls (offered_at)",
        "CREATE INDEX calls_by_caller ON calls (caller, offered_at)",
        "CREATE INDEX calls_by_callee ON calls (callee, offered_at)",
    ),
)

_V6 = Migration(
    version=6,
    summary="broadcast bursts",
    statements=(
        # TS 22.179 6.2.3: a dispatcher's broadcast group call is logged as such on each of
        # its channels (issue 13); the bursts logged before were all ordinary talk.
        "ALTER TABLE bursts ADD COLUMN broadcast INTEGER NOT NULL DEFAULT 0"
        " CHECK (broadcast IN (0, 1))",
    ),
)

_V7 = Migration(
    version=7,
    summary="the node a user is online on",
    statements=(
        # In a cluster (issue 12): the node holding the user's session, so the users of a
        # node that died are marked offline (NULL: one node, or stored before this column).
        "ALTER TABLE presence ADD COLUMN node TEXT",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
LATEST_VERSION: int = MIGRATIONS[-1].version


class NewerSchemaError(Exception):
    """The file's schema version is newer than the migrations this code knows."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(f"schema version {found} is newer than {known}")
        self.found = found
        self.known = known


def apply_migrations(
    conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS
) -> list[int]:
    """Bring the database on ``conn`` up to the last of ``migrations``; return the versions applied.

    ``conn`` must be in autocommit mode (``isolation_level=None``) so this function owns the
    transactions. Each migration runs in one ``BEGIN IMMEDIATE`` transaction, and the version is
    re-read inside it, so two processes opening the same old file cannot both migrate it.
    On any error the current migration is rolled back and the exception propagates
    (``sqlite3.Error``, or ``NewerSchemaError`` if the file is ahead of ``migrations``).
    """
    for index, migration in enumerate(migrations):
        if migration.version != index + 1:
            raise ValueError(
                f"migration #{index} has version {migration.version}, expected {index + 1}"
            )
    applied: list[int] = []
    latest = len(migrations)
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if current > latest:
                raise NewerSchemaError(current, latest)
            if current == latest:
                conn.execute("COMMIT")
                return applied
            migration = migrations[current]
            for statement in migration.statements:
                conn.execute(statement)
            # PRAGMA takes no bound parameters; the value is our own int.
            conn.execute(f"PRAGMA user_version = {migration.version:d}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        applied.append(migration.version)
