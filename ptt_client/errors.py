"""The client library's exceptions (one tree; ``ptt_client.client`` re-exports them).

- :class:`ClientError`: the client cannot do what was asked; the message says why and what
  to do (affiliate first, wait for the connection).

  - :class:`PinnedCertificateError`: the server's TLS certificate is not the one pinned in
    the credential bundle; the client stops retrying.
  - :class:`BundleFileError`: a credential bundle file cannot be used by this program (not
    a bundle, unreadable, an officer's bundle for the console): one line saying which file
    to use (``ptt_client.bundle_file``).

Whatever the server sends never raises out of the read loop: a message that trips a rule
is dropped and logged (``ptt_client.session_core``).
"""

from __future__ import annotations

__all__ = ["BundleFileError", "ClientError", "PinnedCertificateError"]


class ClientError(Exception):
    """The client cannot do what was asked; the message says why."""


class PinnedCertificateError(ClientError):
    """The server's TLS certificate is not the one in the credential bundle."""


class BundleFileError(ClientError):
    """A credential bundle file this program cannot use; the message (one line) names the
    file and the one to use instead."""
