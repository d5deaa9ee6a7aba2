"""Checks for store calls: a clear ``StoreError`` before anything is written.

The input checks run on the caller's side, before anything is queued, except where a large
batch is checked on the store thread so it does not hold up the event loop
(``Store.record_frames``); the version rule runs on the store thread, inside the write.
"""

from __future__ import annotations

from collections.abc import Iterable

from ptt_server.store.errors import StaleVersionError, StoreError

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
U32_MAX = 2**32 - 1


def check_int(name: str, value: int, low: int = I64_MIN, high: int = I64_MAX) -> int:
    """``value`` if it is an integer (not a bool) in ``low..high`` (SQLite's i64 by default)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreError(f"{name} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise StoreError(f"{name} {value} is outside {low}..{high}")
    return value


def check_channel_id(channel_id: int) -> int:
    """``channel_id`` if it is a u32 other than 0."""
    return check_int("channel id", channel_id, 1, U32_MAX)


def check_text(name: str, value: str) -> str:
    """``value`` if it is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise StoreError(f"{name} must be a non-empty string")
    return value


def check_bytes(
    name: str, value: bytes, length: int | None = None, max_len: int | None = None
) -> bytes:
    """``value`` as ``bytes``, of exactly ``length`` or of 1..``max_len`` bytes if given."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise StoreError(f"{name} must be bytes, not {type(value).__name__}")
    data = bytes(value)
    if length is not None and len(data) != length:
        raise StoreError(f"{name} must be {length} bytes, got {len(data)}")
    if max_len is not None and not 0 < len(data) <= max_len:
        raise StoreError(f"{name} must be 1..{max_len} bytes, got {len(data)}")
    return data


def check_optional_bytes(name: str, value: bytes | None) -> bytes | None:
    """None, or ``value`` checked by :func:`check_bytes`."""
    return None if value is None else check_bytes(name, value)


def check_ids(name: str, values: Iterable[str]) -> tuple[str, ...]:
    """The distinct user ids in ``values``, sorted; a lone string is refused, not iterated."""
    if isinstance(values, str | bytes):
        raise StoreError(
            f"{name} must be a collection of user ids, not a single {type(values).__name__}"
        )
    return tuple(sorted({check_text(name, v) for v in values}))


def check_newer(version: int, stored: tuple[int] | None, described: str, remedy: str) -> None:
    """Refuse a signed roster or revocation list unless it is newer than the stored row's.

    ``stored`` is the stored ``(version,)`` row or None. Only a higher version replaces the
    stored document, so replaying an older signed one cannot bring back a removed member or
    a revoked user.
    """
    if stored is not None and version <= stored[0]:
        raise StaleVersionError(
            f"{described} is not newer than the stored version {stored[0]}: {remedy}"
        )
