"""What a :class:`ptt_client.client.RadioClient` reports, besides the server's control messages.

The event stream carries control messages from ``ptt_protocol.control`` as they
arrive (floor, presence, texts, alerts) and these client-side events.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Connected:
    """Logged in (again): channels are re-affiliated and queued messages re-sent."""

    user_id: str
    session_index: int
    reconnect: bool
    server_url: str = ""
    """The server logged in to: after a failover, another node of the bundle's cluster."""


@dataclass(frozen=True)
class Disconnected:
    """The control connection to ``server_url`` is gone, or could not be made; unless stopped
    or refused, the client tries the bundle's next server (``ptt_client.server_list``)."""

    reason: str
    server_url: str = ""
    retry_in: float = 0.0
    """Seconds before that next try: 0.0 at once (another server), more after a whole round
    of the bundle's servers failed (backoff with jitter)."""


@dataclass(frozen=True)
class LoginRefused:
    """The server refused the credential; retrying will not help. ``code`` from control.ERROR_*."""

    code: str
    text: str


@dataclass(frozen=True)
class MediaPath:
    """Which way media flows: ``"udp"`` or ``"tunnel"`` (over the WebSocket)."""

    path: str


@dataclass(frozen=True)
class VoiceFrame:
    """An authenticated, decrypted Opus frame of a talk burst."""

    channel_id: int
    talker: str
    burst_id: int
    sequence: int
    opus: bytes
    end_of_burst: bool
    priority: int
    received_at: float
    repeat: bool = False
    """Taken from a repeat in a later datagram (its own was lost or late)."""
    reach: int = 0
    """How far back the talker repeats frames in this burst (frames; 0: no repeats)."""


@dataclass(frozen=True)
class VoiceRejected:
    """A media frame or text that failed end-to-end checks: not played, not shown."""

    channel_id: int
    reason: str


@dataclass(frozen=True)
class ForgedAudio:
    """A burst statement showed that frames already played as ``talker`` were not theirs
    (or did not verify): the burst is not verified any more; warn the listener."""

    channel_id: int
    talker: str
    burst_id: int
    reason: str


@dataclass(frozen=True)
class TalkerUnverified:
    """Audio played as ``talker`` in ``burst_id`` was not covered by a burst statement the
    talker signed within the bound (``ptt_client.bursts.UNVERIFIED_AFTER``), or could not be
    checked: the burst is not verified, whatever statements verify later; do not show the
    mark. One per burst."""

    channel_id: int
    talker: str
    burst_id: int
    reason: str


@dataclass(frozen=True)
class TalkerVerified:
    """A burst signature from ``talker`` verified: show "verified: <name>"."""

    channel_id: int
    talker: str
    display_name: str
    burst_id: int


@dataclass(frozen=True)
class TextReceived:
    """A decrypted text (shown once per message id)."""

    message_id: bytes
    from_user: str
    to_channel: int | None
    text: str
    sent_at: float


@dataclass(frozen=True)
class KeysUpdated:
    """A channel's roster or epoch key changed."""

    channel_id: int
    epoch: int
    roster_version: int


@dataclass(frozen=True)
class EpochInstalled:
    """A new channel epoch key is held; its creator's certificate and signature verified.

    Whoever created the epoch knows its key (docs/security.md): the radio shows who.
    """

    channel_id: int
    epoch: int
    creator: str
    creator_name: str
    creator_role: str


@dataclass(frozen=True)
class EpochRefused:
    """A key envelope was refused: the channel keeps its current key."""

    channel_id: int
    epoch: int
    creator: str
    reason: str


@dataclass(frozen=True)
class PatchRefused:
    """A patch this radio did not follow (not a dispatcher's order on its channels, expired,
    tampered): it keeps talking on its own channel."""

    channel_id: int
    reason: str


@dataclass(frozen=True)
class ProtectionChanged:
    """The relay's loss report changed how this radio protects its voice on a channel."""

    channel_id: int
    distances: tuple[int, ...]
    """Frames back that each datagram repeats (empty: no repeats, a clean path)."""
    loss_pct: float
    """The end-to-end loss the choice was made for."""


@dataclass(frozen=True)
class RosterChanged:
    """A newer roster replaced the one this radio held: who joined the channel, who left.

    Not reported for a channel's first roster, nor for the held roster sent again (the
    server re-sends every roster at login)."""

    channel_id: int
    version: int
    added: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class RosterRefused:
    """A roster was refused; the channel keeps the one it holds. Not reported for the held
    roster sent again, nor twice for the same refused roster."""

    channel_id: int
    version: int
    """0 if it could not even be read."""
    reason: str
    older: bool
    """Refused only for not being newer than the roster held (a rollback or a late copy)."""
    changes_me: bool
    """Had it been taken, this radio's own user would have joined or left the channel."""


@dataclass(frozen=True)
class CredentialRefused:
    """A credential the server sent (a channel member's, to check their voice and texts)
    did not verify: revoked, expired, forged. ``reason`` is the
    :class:`~crypto.errors.CredentialError` word."""

    user_id: str
    """"" if it could not even be read."""
    reason: str
    text: str


@dataclass(frozen=True)
class CredentialRevoked:
    """The org's revocation list names this device's own credential: the server cuts the
    radio off, and logging in again will be refused."""

    user_id: str
    serial: int
    device_id: str


@dataclass(frozen=True)
class CallAlerting:
    """A private call rings: at this radio (``outgoing`` False: accept or refuse it) or at the
    callee's (``outgoing`` True, manual commencement)."""

    call_id: bytes
    peer: str
    display_name: str
    outgoing: bool
    emergency: bool


@dataclass(frozen=True)
class CallConnected:
    """A private call's media is up, end to end (DTLS-SRTP with the fingerprint the peer
    signed); ``relayed`` when it goes through the TURN server."""

    call_id: bytes
    peer: str
    outgoing: bool
    mode: str
    emergency: bool
    relayed: bool


@dataclass(frozen=True)
class CallEnded:
    """A private call is over (or never began): ``reason`` is a ``control.END_*`` code,
    ``text`` says what happened; ``duration_s`` counts from when it connected (0 if never)."""

    call_id: bytes
    peer: str
    outgoing: bool
    reason: str
    text: str
    duration_s: float
