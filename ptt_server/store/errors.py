"""The store's exceptions; every message says what to do next.

::

    StoreError                  any store failure; the write was rolled back
    ├── CorruptDatabaseError    the files are not a healthy SQLite database (or its log)
    ├── InUseError              another ptt-server holds the directory (``exclusive``)
    ├── ForeignDatabaseError    the file (or PostgreSQL database) is another program's
    ├── SchemaTooNewError       written by a newer ptt-server
    ├── NotFoundError           a referenced channel, burst, alert ... does not exist
    ├── ConflictError           a unique name or fingerprint is already taken
    └── StaleVersionError       a roster or revocation list is not newer than the stored one
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "CorruptDatabaseError",
    "ForeignDatabaseError",
    "InUseError",
    "NotFoundError",
    "SchemaTooNewError",
    "StaleVersionError",
    "StoreError",
]


class StoreError(Exception):
    """A store operation failed; any write it started was rolled back (on PostgreSQL, unless
    the message says the connection was lost during COMMIT and the outcome is unknown)."""


class CorruptDatabaseError(StoreError):
    """The database file is not a healthy SQLite database; it was left untouched."""


class InUseError(StoreError):
    """Another process opened this directory's store ``exclusive`` (a second ptt-server)."""


class ForeignDatabaseError(StoreError):
    """The file (or PostgreSQL database) belongs to another program; it was left untouched."""


class SchemaTooNewError(StoreError):
    """The file (or PostgreSQL database) was written by a newer ptt-server; left untouched."""


class NotFoundError(StoreError):
    """A channel, burst, message or alert the call refers to does not exist."""


class ConflictError(StoreError):
    """A unique value (channel name, credential fingerprint) already belongs to another record."""


class StaleVersionError(StoreError):
    """A signed roster or revocation list is not newer than the one already stored."""
