"""Login, errors and liveness: the messages of the connection itself.

Part of the control protocol: see :mod:`ptt_protocol.control` for the framing and the rules
every message follows.
"""

from __future__ import annotations

from ptt_protocol.control_types import (
    U32,
    U63,
    Blob,
    Duration,
    HopKey,
    Host,
    Id,
    Interval,
    Label,
    Nonce,
    Port,
    Text,
    Time,
    TunnelDatagram,
    _Message,
)

# --- Login (server speaks first) -------------------------------------------------------------


class Hello(_Message, frozen=True, kw_only=True):
    """Server -> client, first frame: the login challenge."""

    server_nonce: Nonce
    """Fresh random challenge; the client signs it (``ptt_protocol.login``)."""
    server_time: Time
    """Server clock, so the client can spot a wrong clock before credential checks fail."""
    server_name: Label = ""
    """Display name of this server or district."""


class Login(_Message, frozen=True, kw_only=True):
    """Client -> server: proves possession of an enrolled credential."""

    credential: Blob
    """The device's credential, certified by the org root."""
    signature: Blob
    """Credential key's signature over the login statement (challenge, nonces, TLS binding)."""
    client_nonce: Nonce
    """Fresh random bytes from the client, part of the signed statement."""
    client_software: Label = ""
    """Client name and version, for the operator's logs."""


class LoginOk(_Message, frozen=True, kw_only=True):
    """Server -> client: login accepted; media parameters for the UDP hop layer."""

    user_id: Id
    """The authenticated user."""
    session_index: U32
    """Media session index to put in every datagram header."""
    hop_key: HopKey
    """Secret from which both directional hop-layer keys are derived."""
    media_port: Port
    """UDP port of the media relay."""
    media_host: Host = ""
    """Host of the media relay; empty means the control connection's host."""
    server_time: Time
    """Server clock at login."""
    heartbeat_interval: Interval
    """Seconds between keepalives (Ping and UDP KEEPALIVE) the client must send."""


class Error(_Message, frozen=True, kw_only=True):
    """Server -> client: a request was refused. ``code`` is one of ``ERROR_CODES``."""

    code: Id
    """Machine-readable reason (``ERROR_*``)."""
    text: Text = ""
    """What the person can do about it; never internal details."""


class Goodbye(_Message, frozen=True, kw_only=True):
    """Server -> client: the server is shutting down or dropping this session."""

    reason: Text
    """Why, for display."""
    retry_after: Duration = 0.0
    """Seconds to wait before reconnecting (spreads a fleet's reconnects)."""


# --- Liveness and media fallback -----------------------------------------------------------------


class Ping(_Message, frozen=True, kw_only=True):
    """Either direction: are you there? Answer with a Pong carrying the same nonce."""

    nonce: U63
    """Echoed in the Pong."""


class Pong(_Message, frozen=True, kw_only=True):
    """Answer to a Ping."""

    nonce: U63
    """The Ping's nonce."""


class MediaTunnel(_Message, frozen=True, kw_only=True):
    """Either direction: a media datagram carried over the WebSocket when UDP is blocked."""

    datagram: TunnelDatagram
    """A whole hop-layer datagram (``ptt_protocol.media``), unchanged."""
