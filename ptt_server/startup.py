"""Why a relay cannot start, in one line that says what to change."""

from __future__ import annotations

import errno

__all__ = ["StartupError", "bind_refused"]


class StartupError(Exception):
    """The server cannot start; the message says what to do."""


def bind_refused(what: str, host: str, port: int, flag: str, exc: OSError) -> StartupError:
    """One line for a socket that cannot be bound: which one, why, and the flag to change."""
    code = exc.errno
    cause = exc.__cause__ or exc.__context__
    if code is None and isinstance(cause, OSError):
        code = cause.errno  # uvloop wraps the bind error of a datagram endpoint
    if code is None and "in use" in str(exc):
        code = errno.EADDRINUSE
    if code == errno.EADDRINUSE:
        why = "is already in use (another ptt-server, or another program)"
    elif code == errno.EACCES:
        why = "needs privileges this user does not have (a port below 1024?)"
    elif code == errno.EADDRNOTAVAIL:
        why = "is not an address of this machine"
    else:
        why = f"cannot be opened ({exc.strerror or exc})"
    return StartupError(f"{what} {host}:{port} {why}: free it or choose another with {flag}")
