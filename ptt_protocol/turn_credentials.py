"""TURN REST credentials (draft-uberti-behave-turn-rest, as coturn's ``use-auth-secret``).

The relay and the TURN server share a secret; the relay hands each radio a user name
``"<expiry unix time>:<user id>"`` and the password ``base64(HMAC-SHA1(secret, user name))``.
The TURN server recomputes the password and refuses an expired user name, so a leaked
credential stops working by itself and the TURN server needs no user database.

Pure: time is an input.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["rest_credentials"]


def rest_credentials(secret: bytes, user_id: str, now: float, ttl: float) -> tuple[str, str]:
    """``(username, password)`` for ``user_id``, valid until ``now + ttl``."""
    if not secret:
        raise ValueError("a TURN REST secret is needed")
    if not ttl > 0:
        raise ValueError(f"ttl {ttl} must be greater than 0")
    username = f"{int(now + ttl)}:{user_id}"
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")
