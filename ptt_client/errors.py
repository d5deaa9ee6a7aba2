"""The client library's exceptions (one tree; ``ptt_client.client`` re-exports them).

- :class:`ClientError`: the client cannot do what was asked; the message says why and what
  to do (affiliate first, wait for the connection).

  - :class:`PinnedCertificateError`: the server's TLS certificate is not the one pinned in
    the credential bundle; the client stops retrying.

Whatever the server sends never raises out of the read loop: a message that trips a rule
is dropped and logged (``ptt_client.session_core``).
"""

from __future__ import annotations

__all__ = ["ClientError", "PinnedCertificateError"]


class ClientError(Exception):
    """The client cannot do what was asked; the message says why."""


class PinnedCertificateError(ClientError):
    """The server's TLS certificate is not the one in the credential bundle."""
