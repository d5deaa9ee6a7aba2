"""Reaching a user wherever it is logged in: this node's session, or its node on the bus.

Handlers that address one user (a text, a receipt, a key envelope) call :func:`to_user`
instead of looking in ``server.sessions.by_user`` themselves: on one node it is that
look-up; in a cluster a user not logged in here is reached on its user subject, which
only the node holding its session reads (nobody reads it when the user is offline, and
the store keeps what must wait for its next login).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptt_protocol import control

if TYPE_CHECKING:
    from ptt_server.server import RelayServer


def to_user(
    server: RelayServer, user: str, message: control.Message | bytes, *, urgent: bool = False
) -> bool:
    """Send ``message`` (or its encoding) to ``user``; True if it was logged in on this node.

    False says only "not here": in a cluster the message went to the bus, to whichever
    node holds the user's session, if any.
    """
    data = message if isinstance(message, bytes) else control.encode(message)
    session = server.sessions.by_user.get(user)
    if session is not None:
        session.send_encoded(data, urgent=urgent)
        return True
    if server.cluster is not None:
        server.cluster.to_user_encoded(user, data, urgent=urgent)
    return False
