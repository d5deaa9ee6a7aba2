"""Users (enrolled device credentials) and the root-signed revocation list (opaque here)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ptt_server.store.checks import check_bytes, check_ids, check_int, check_newer, check_text
from ptt_server.store.connection import Connection, StoreConnection, write_transaction
from ptt_server.store.errors import ConflictError
from ptt_server.store.records import RevocationList, User


class UserTables(StoreConnection):
    """``Store`` methods over ``users``, ``revocation_list`` and ``revoked_users``/``_serials``."""

    # --- users -----------------------------------------------------------------------------

    async def put_user(self, user: User) -> None:
        """Store or replace (re-enrollment) a user's credential.

        Raises ``ConflictError`` if the fingerprint belongs to another user.
        """
        check_text("user id", user.user_id)
        check_bytes("credential", user.credential)
        check_bytes("fingerprint", user.fingerprint)
        check_int("serial", user.serial)
        await self._call("store user", _put_user, user)

    async def get_user(self, user_id: str) -> User | None:
        """The user with this id, or None."""
        return await self._call("read user", _get_user, "user_id", user_id)

    async def get_user_by_fingerprint(self, fingerprint: bytes) -> User | None:
        """The user whose credential has this fingerprint, or None."""
        return await self._call("read user", _get_user, "fingerprint", bytes(fingerprint))

    async def list_users(self) -> list[User]:
        """All users, by user id."""
        return await self._call("list users", _list_users)

    async def get_users(self, user_ids: Iterable[str]) -> list[User]:
        """The enrolled users among ``user_ids`` (each once), in one store call."""
        wanted = check_ids("user id", dict.fromkeys(user_ids))
        return await self._call("read users", _get_users, wanted)

    # --- revocations -----------------------------------------------------------------------

    async def put_revocations(
        self,
        version: int,
        signed: bytes,
        revoked_user_ids: Iterable[str],
        revoked_serials: Iterable[int],
    ) -> None:
        """Replace the revocation list with a newer one and the ids it revokes.

        Raises ``StaleVersionError`` unless ``version`` is higher than the stored list's.
        """
        check_int("revocation list version", version)
        signed = check_bytes("revocation list", signed)
        users = check_ids("revoked user id", revoked_user_ids)
        serials = tuple(sorted({check_int("revoked serial", s) for s in revoked_serials}))
        await self._call("store revocation list", _put_revocations, version, signed, users, serials)

    async def get_revocations(self) -> RevocationList | None:
        """The stored revocation list, or None if none was ever stored."""
        return await self._call("read revocation list", _get_revocations)

    async def is_revoked(self, user_id: str, serial: int) -> bool:
        """True if the user, or the credential with this serial, is revoked."""
        check_int("serial", serial)
        return await self._call("check revocation", _is_revoked, user_id, serial)


# --- SQL (store thread; each takes the connection first) ------------------------------------


def _user(row: Any) -> User:
    return User(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])


_USER_COLUMNS = (
    "user_id, display_name, role, device_id, credential, fingerprint, serial, enrolled_at"
)


def _put_user(conn: Connection, u: User) -> None:
    with write_transaction(conn):
        owner = conn.execute(
            "SELECT user_id FROM users WHERE fingerprint = ? AND user_id <> ?",
            (bytes(u.fingerprint), u.user_id),
        ).fetchone()
        if owner is not None:
            raise ConflictError(
                f"credential fingerprint of {u.user_id!r} already belongs to user {owner[0]!r}: "
                f"enroll a new key for one of them"
            )
        conn.execute(
            f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name, "
            "role = excluded.role, device_id = excluded.device_id, "
            "credential = excluded.credential, fingerprint = excluded.fingerprint, "
            "serial = excluded.serial, enrolled_at = excluded.enrolled_at",
            (
                u.user_id,
                u.display_name,
                u.role,
                u.device_id,
                bytes(u.credential),
                bytes(u.fingerprint),
                u.serial,
                u.enrolled_at,
            ),
        )


def _get_user(conn: Connection, column: str, value: object) -> User | None:
    # column is one of our own literals, never caller data
    row = conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE {column} = ?", (value,)).fetchone()
    return None if row is None else _user(row)


def _get_users(conn: Connection, user_ids: tuple[str, ...]) -> list[User]:
    found: list[User] = []
    for start in range(0, len(user_ids), 500):  # SQLite's bound-parameter limit is 999+
        chunk = user_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE user_id IN ({marks}) ORDER BY user_id",
            chunk,
        ).fetchall()
        found.extend(_user(r) for r in rows)
    return found


def sample_credentials(conn: Connection, limit: int) -> list[bytes]:
    """Up to ``limit`` stored credentials (by user id): what the org root must have signed."""
    rows = conn.execute("SELECT credential FROM users ORDER BY user_id LIMIT ?", (limit,))
    return [bytes(row[0]) for row in rows.fetchall()]


def _list_users(conn: Connection) -> list[User]:
    rows = conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY user_id").fetchall()
    return [_user(r) for r in rows]


def _put_revocations(
    conn: Connection,
    version: int,
    signed: bytes,
    users: tuple[str, ...],
    serials: tuple[int, ...],
) -> None:
    with write_transaction(conn):
        row = conn.execute("SELECT version FROM revocation_list").fetchone()
        check_newer(
            version,
            row,
            f"revocation list version {version}",
            "sign a new list with a higher version",
        )
        conn.execute(
            "INSERT INTO revocation_list (singleton, version, signed) VALUES (1, ?, ?) "
            "ON CONFLICT (singleton) DO UPDATE SET version = excluded.version, "
            "signed = excluded.signed",
            (version, signed),
        )
        conn.execute("DELETE FROM revoked_users")
        conn.execute("DELETE FROM revoked_serials")
        conn.executemany("INSERT INTO revoked_users (user_id) VALUES (?)", [(u,) for u in users])
        conn.executemany("INSERT INTO revoked_serials (serial) VALUES (?)", [(s,) for s in serials])


def _get_revocations(conn: Connection) -> RevocationList | None:
    row = conn.execute("SELECT version, signed FROM revocation_list").fetchone()
    if row is None:
        return None
    users = frozenset(r[0] for r in conn.execute("SELECT user_id FROM revoked_users"))
    serials = frozenset(r[0] for r in conn.execute("SELECT serial FROM revoked_serials"))
    return RevocationList(row[0], row[1], users, serials)


def _is_revoked(conn: Connection, user_id: str, serial: int) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM revoked_users WHERE user_id = ?) "
        "OR EXISTS (SELECT 1 FROM revoked_serials WHERE serial = ?)",
        (user_id, serial),
    ).fetchone()
    return bool(row[0])
