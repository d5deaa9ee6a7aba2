"""The one way Fieldradio's signed objects are decoded: version byte, size cap, msgpack,
and exactly one encoding per object.

Credentials, revocation lists, rosters, envelopes and bundles all travel as
``version byte | msgpack array``. Every decoder checks, in this order: the size before
anything else, the version, the structure (msgspec with every field capped), and that the
bytes re-encode to themselves. The last check makes fingerprints stable: a second byte
form of one object (a wider integer, a bin16 where bin8 fits) would have another hash but
the same signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec

from crypto.errors import CryptoError

__all__ = ["decode_versioned"]

T = TypeVar("T")

_ENCODER = msgspec.msgpack.Encoder()


def decode_versioned(
    data: bytes,
    *,
    version: int,
    decoder: msgspec.msgpack.Decoder[T],
    max_size: int,
    what: str,
    error: type[CryptoError],
    fix: str,
    canonical: Callable[[T], bytes] | None = None,
) -> T:
    """Decode ``data`` as ``what`` or raise ``error`` with a message ending in ``fix``.

    ``fix`` says what the user can do ("re-enroll the device", "update the client").
    ``canonical`` is the one encoding of a decoded object (without the version byte) when
    it is not msgspec's: an object whose trailing optional fields are left out when empty.
    """
    if len(data) > max_size:
        raise error(f"{what} is {len(data)} bytes, more than the {max_size} allowed: refused")
    if not data or data[0] != version:
        got = data[0] if data else "none"
        raise error(
            f"{what} format version {got} is not supported (this program reads {version}): {fix}"
        )
    body = bytes(data[1:])
    try:
        decoded = decoder.decode(body)
    except (msgspec.DecodeError, ValueError) as exc:  # invalid UTF-8 is a ValueError
        raise error(f"{what} is malformed ({exc}): {fix}") from exc
    if (canonical or _ENCODER.encode)(decoded) != body:
        raise error(f"{what} is not canonically encoded: it was altered")
    return decoded
