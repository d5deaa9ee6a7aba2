"""How a node proves itself to the cluster's NATS bus: credentials and TLS (file reads only).

Anything that can publish on the bus can steer every node's floors and events (see
docs/security.md, section 2b), so a production bus admits only the nodes: nats-server
with an ``authorization`` block (``deploy/nats/nats-server.conf``) and each node given
``cluster_credentials_file``. The file holds one line, either ``USER:PASSWORD`` (split at
the first colon: a password may hold colons, a NATS user name does not) or a bare token.
It must be readable by its owner only (mode 0600 or stricter), as the TLS key is, and its
contents are never logged: errors name the file, not what is in it.

``cluster_ca_file`` makes the node check the bus's certificate against that CA (for
``tls://`` URLs); without it a ``tls://`` URL is checked against the system's CAs.
"""

from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from ptt_server.startup import StartupError

MAX_CREDENTIALS_SIZE = 4096


@dataclass(frozen=True, slots=True)
class BusCredentials:
    """What ``nats.connect`` is given to log in (a user and password, or a token)."""

    user: str | None = None
    password: str | None = None
    token: str | None = None

    def connect_options(self) -> dict[str, str]:
        options = {"user": self.user, "password": self.password, "token": self.token}
        return {key: value for key, value in options.items() if value is not None}

    def __repr__(self) -> str:  # never show a secret, even in a traceback's locals
        kind = "token" if self.token is not None else f"user {self.user!r}"
        return f"BusCredentials({kind})"


def read_credentials(path: Path) -> BusCredentials:
    """The credentials in ``path``; raises :class:`StartupError` saying what to fix."""
    key = "cluster_credentials_file"
    try:
        # O_NOFOLLOW: the mode checked is the file's own, not a symlink's target's.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise StartupError(f"{key}: cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise StartupError(f"{key}: {path} is not a regular file")
        if mode & 0o077:
            raise StartupError(
                f"{key}: {path} can be read by other users (mode {stat.S_IMODE(mode):04o}):"
                f" run `chmod 600 {path}` (it holds the bus password)"
            )
        raw = file.read(MAX_CREDENTIALS_SIZE + 1)
    if len(raw) > MAX_CREDENTIALS_SIZE:
        raise StartupError(f"{key}: {path} is over {MAX_CREDENTIALS_SIZE} bytes: one line only")
    try:
        text = raw.decode().strip()
    except UnicodeDecodeError:
        raise StartupError(f"{key}: {path} is not UTF-8 text") from None
    if not text or "\n" in text:
        raise StartupError(
            f"{key}: {path} must hold one line, USER:PASSWORD or a token (see docs/operations.md)"
        )
    user, colon, password = text.partition(":")
    if not colon:
        return BusCredentials(token=text)
    if not user or not password:
        raise StartupError(f"{key}: {path} holds USER:PASSWORD with an empty user or password")
    return BusCredentials(user=user, password=password)


def tls_context(ca_file: Path) -> ssl.SSLContext:
    """A client context that trusts only ``ca_file`` for the bus (TLS 1.2 at least)."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cluster_ca_file: cannot load {ca_file}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
