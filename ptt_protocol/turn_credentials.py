"""TURN REST API credentials: the short-lived username and password a relay hands a radio.

draft-uberti-behave-turn-rest-00 section 2.2, as coturn implements it with
``--use-auth-secret --static-auth-secret SECRET``: the username is ``"<expiry>:<user>"``
(``<expiry>`` in Unix seconds) and the password is ``base64(HMAC-SHA1(SECRET, username))``.
The TURN server recomputes the password from the username alone, so the relay and the TURN
server share only the secret, and coturn refuses the username (401) once its expiry has
passed. Pure: the time is passed in.

Errors: :class:`ValueError` for arguments that cannot make a valid username.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math

__all__ = ["rest_credentials"]


def rest_credentials(secret: bytes, user_id: str, now: float, ttl: float) -> tuple[str, str]:
    """Return ``(username, password)`` valid from ``now`` for ``ttl`` seconds.

    ``secret`` is the TURN server's static auth secret as bytes (coturn uses the string
    given to ``--static-auth-secret``, so pass ``that_string.encode()``).
    """
    if not isinstance(secret, bytes) or not secret:
        raise ValueError("the TURN secret must be non-empty bytes (the --static-auth-secret)")
    if not user_id or ":" in user_id or any(ord(c) < 0x20 for c in user_id):
        raise ValueError(
            f"TURN user {user_id!r} must be non-empty, without ':' or control characters"
        )
    if not math.isfinite(now) or not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"now={now!r} and ttl={ttl!r} must be finite, and ttl positive")
    username = f"{int(now + ttl)}:{user_id}"
    mac = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(mac).decode("ascii")
