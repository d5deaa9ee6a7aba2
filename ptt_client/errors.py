"""The client library's exceptions (one tree; ``ptt_client.client`` re-exports them).

- :class:`ClientError`: the client cannot do what was asked; the message says why and what
  to do (affiliate first, wait for the connection).

  - :class:`PinnedCertificateError`: the server's TLS certificate is not the one pinned in
    the credential bundle; the client stops retrying.
  - :class:`BundleFileError`: a credential bundle file cannot be used by this program (not
    a bundle, unreadable, an officer's bundle for the console): one line saying which file
    to use (``ptt_client.bundle_file``).
  - :class:`BroadcastRefused`: the server refused a broadcast group call (an officer's, one
    naming a channel the dispatcher is not on); its ``code`` is the server's ``ERROR_*``.

Whatever the server sends never raises out of the read loop: a message that trips a rule
is dropped and logged (``ptt_client.session_core``).
"""

from __future__ import annotations

import os

__all__ = [
    "BroadcastRefused",
    "BundleFileError",
    "ClientError",
    "PinnedCertificateError",
    "connection_failure",
]


class ClientError(Exception):
    """The client cannot do what was asked; the message says why."""


class PinnedCertificateError(ClientError):
    """The server's TLS certificate is not the one in the credential bundle."""


class BundleFileError(ClientError):
    """A credential bundle file this program cannot use; the message (one line) names the
    file and the one to use instead."""


class BroadcastRefused(ClientError):
    """The server refused a broadcast (``code``: its ``ERROR_*``); nothing changed."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code


def connection_failure(exc: Exception) -> str:
    """Why a connection failed, in words: "Connection refused", not "[Errno 111] Connect
    call failed ('127.0.0.1', 7300)" (the address is the server's, which the radio names)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__
