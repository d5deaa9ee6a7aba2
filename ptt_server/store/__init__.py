"""The server's store: SQLite in WAL mode, or PostgreSQL for a cluster, behind an async repository.

``Store`` is the one class callers use; its methods come by table family, each family's
methods, input checks and SQL in one module::

    connection.py   the one connection, its thread, the engine behind it, closing
    sqlite_file.py  the SQLite engine: opening a file (checks, migration)
    postgresql.py   the PostgreSQL engine: transactions, reconnection, retries
    users.py        users and the revocation list
    channels.py     channels, rosters and members, key envelopes, channel deletion
    patches.py      which channels a patch links
    calls.py        the private-call log
    messages.py     sealed messages and their deliveries, message pruning
    emergencies.py  emergency alerts
    presence.py     presence
    bursts.py       the talk-burst log, recordings, recording pruning
    records.py      the frozen records; errors.py the exceptions; checks.py input checks
    schema.py       the schema, as ordered (SQLite) migrations; pg_schema.py on PostgreSQL

The table families' SQL is one set for both engines (``connection.Connection``).

Everything that came from the network (credentials, signed rosters and
revocation lists, key envelopes, sealed messages and locations, voice frames)
is stored as opaque bytes; the store never parses it. Times are inputs
(Unix seconds, ``float``), never read from a clock here.

``Store.open(path)`` opens an SQLite file. Opening refuses, without changing a byte of
the files, a database that is not a healthy SQLite database, belongs to another program
or has a newer schema than this code (see ``sqlite_file``), and migrates an older one. A
server opens its store ``exclusive``, locking the directory against a second server.

``Store.open("postgresql://...")`` opens a PostgreSQL database that several servers (a
cluster's nodes) share: it creates the schema in an empty database, refuses another
program's database or a newer schema, and rides out a PostgreSQL restart (see
``postgresql``).

Every failure is a ``StoreError`` whose message says what to do next; the subclasses
are listed in ``ptt_server.store.errors``.
"""

from __future__ import annotations

from ptt_server.store.bursts import BurstTables
from ptt_server.store.calls import CallTables
from ptt_server.store.channels import ChannelTables
from ptt_server.store.emergencies import EmergencyTables
from ptt_server.store.errors import (
    ConflictError,
    CorruptDatabaseError,
    ForeignDatabaseError,
    InUseError,
    NotFoundError,
    SchemaTooNewError,
    StaleVersionError,
    StoreError,
)
from ptt_server.store.messages import DEFAULT_MESSAGE_RETENTION_S, MessageTables
from ptt_server.store.patches import PatchTables
from ptt_server.store.presence import PresenceTables
from ptt_server.store.records import (
    Burst,
    BurstFrame,
    Channel,
    Delivery,
    Emergency,
    EmergencyRaise,
    KeyEnvelope,
    PatchLinks,
    Presence,
    RevocationList,
    Roster,
    StoredMessage,
    User,
)
from ptt_server.store.users import UserTables

__all__ = [
    "DEFAULT_MESSAGE_RETENTION_S",
    "Burst",
    "BurstFrame",
    "Channel",
    "ConflictError",
    "CorruptDatabaseError",
    "Delivery",
    "Emergency",
    "EmergencyRaise",
    "ForeignDatabaseError",
    "InUseError",
    "KeyEnvelope",
    "NotFoundError",
    "PatchLinks",
    "Presence",
    "RevocationList",
    "Roster",
    "SchemaTooNewError",
    "StaleVersionError",
    "Store",
    "StoreError",
    "StoredMessage",
    "User",
]


class Store(
    UserTables,
    ChannelTables,
    PatchTables,
    CallTables,
    MessageTables,
    EmergencyTables,
    PresenceTables,
    BurstTables,
):
    """Async repository over one SQLite file or one PostgreSQL database; create with
    ``await Store.open(path)`` or ``await Store.open("postgresql://...")``.

    All methods are coroutines that run on the store's own thread. Call ``await close()``
    (or use ``async with``) when done; it waits for queued work, then closes the file.
    """
