"""Logged-in sessions and their O(1) look-ups by media session index and by user.

A session is one authenticated control connection. Control messages to it go
through a bounded outbound queue drained by the connection's writer task, so
code that broadcasts (floor events, presence) never awaits a slow client; a
client that cannot keep up is disconnected rather than slowing everyone down.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from crypto.identity import Credential
from ptt_protocol import control
from ptt_protocol.media import HopSession
from ptt_server.session_core import ServerSessionCore

OUTBOUND_QUEUE_LIMIT = 2048
"""Control messages waiting for one client; past this the client is too slow and is dropped."""
OUTBOUND_BYTES_LIMIT = 4 * 1024 * 1024
"""Bytes waiting for one client (bounds a slow client's memory, whatever the message sizes)."""
TOO_SLOW = "client too slow to receive control messages"
"""The close reason of a client that does not read what it is sent."""
TOLD_ALERTS_KEPT = 64
"""Emergency alerts a session remembers having been sent (far more than are ever active at
once in a channel; see :meth:`Session.told_alert`)."""


class OutboundQueue:
    """A client's waiting control messages: floor, emergency and media-tunnel messages first.

    A backlog of big texts or credentials must not hold back a FloorTaken, FloorIdle or
    FloorRevoke: listeners decide which burst a datagram belongs to from them, and UDP
    does not wait (issue 9: 2.5 s of forged speech played behind a text backlog). Bounded
    in messages; :meth:`close` lets the writer send what is queued and then stop.
    """

    __slots__ = ("_closed", "_normal", "_ready", "_room", "_urgent", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._urgent: collections.deque[bytes] = collections.deque()
        self._normal: collections.deque[bytes] = collections.deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._urgent) + len(self._normal)

    def full(self) -> bool:
        return len(self) >= self.limit

    def put(self, data: bytes, *, urgent: bool = False) -> bool:
        """Queue ``data``; False if the queue is full (the caller drops the client)."""
        if self.full() or self._closed:
            return False
        (self._urgent if urgent else self._normal).append(data)
        self._ready.set()
        return True

    def close(self) -> None:
        """No more messages: :meth:`get` returns None once the queue is empty."""
        self._closed = True
        self._ready.set()
        self._room.set()

    async def wait_below(self, count: int) -> None:
        """Wait until at most ``count`` messages wait (or the queue closed): a sender of a
        long series (a presence snapshot of thousands of users) paces itself to the client,
        leaving room for the floor and emergency messages sent meanwhile."""
        while len(self) > count and not self._closed:
            self._room.clear()
            await self._room.wait()

    async def get(self) -> bytes | None:
        """The next message (urgent ones first), or None when closed and drained."""
        while True:
            if self._urgent or self._normal:
                self._room.set()
                return (self._urgent or self._normal).popleft()
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()


@dataclass(eq=False)
class Session:
    """One logged-in device."""

    credential: Credential
    hop: HopSession
    outbound: OutboundQueue
    core: ServerSessionCore
    """The connection's protocol state: phase, authorisation and rate budgets (pure)."""
    close: Callable[[str], None]
    """Ask the connection to close with a reason (used for revocation and slow consumers)."""
    affiliated: set[int] = field(default_factory=set)
    selected_channel: int | None = None
    status: str = control.STATUS_AVAILABLE
    emergency_alert: bytes | None = None
    alert_kind: str = control.ALERT_EMERGENCY
    """The kind of :attr:`emergency_alert` (an imminent peril gives priority 3, not 4)."""
    """The alert id of this user's active emergency, if any."""
    presence_subscriber: bool = False
    closing_reason: str = ""
    queued_bytes: int = 0
    """Bytes in :attr:`outbound` not yet handed to the connection."""
    sealed_location: bytes | None = None
    """The newest sealed location (kept here: a location report reads no store)."""
    presence_loaded: bool = False
    """The stored presence was read once for this session."""
    presence_written_at: float = -1e9
    """Loop time of the last presence write (location reports are written behind)."""
    location_stored: bool = False
    """A location of this session has reached the store (the first one is written at once)."""
    presence_flush: asyncio.TimerHandle | None = None
    """The pending write of a location report made within the write interval."""
    told_alerts: dict[bytes, None] = field(default_factory=dict)
    """The last :data:`TOLD_ALERTS_KEPT` emergency alerts this session was sent, oldest first
    (late entry at affiliation sends the others); add with :meth:`told_alert`."""
    logged_in_at: float = field(default_factory=time.time)
    """Unix time of the login (a cluster's login news ends only older sessions)."""

    @property
    def user_id(self) -> str:
        return self.credential.user_id

    def told_alert(self, alert_id: bytes) -> None:
        """This session was sent ``alert_id``. Bounded: an officer raising and cancelling as
        fast as a radio sends makes a new alert per cycle (issue 9's red team); an alert
        forgotten here is at worst sent again at late entry, and radios show it once."""
        self.told_alerts.pop(alert_id, None)
        self.told_alerts[alert_id] = None
        if len(self.told_alerts) > TOLD_ALERTS_KEPT:
            del self.told_alerts[next(iter(self.told_alerts))]

    @property
    def session_index(self) -> int:
        return self.hop.session_index

    def send(self, message: control.Message, *, urgent: bool = False) -> None:
        """Queue a control message; never blocks. A full queue disconnects the slow client.

        ``urgent`` (floor, emergency, tunnelled media) goes ahead of everything else.
        """
        self.send_encoded(control.encode(message), urgent=urgent)

    def send_encoded(self, data: bytes, *, urgent: bool = False) -> None:
        if self.queued_bytes + len(data) > OUTBOUND_BYTES_LIMIT:
            self.close(TOO_SLOW)
            return
        if not self.outbound.put(data, urgent=urgent):
            self.close(TOO_SLOW)
            return
        self.queued_bytes += len(data)


class SessionTable:
    """Sessions by media index (the relay's look-up) and by user id."""

    def __init__(self) -> None:
        self.by_index: dict[int, Session] = {}
        self.by_user: dict[str, Session] = {}

    def new_index(self) -> int:
        """A random unused u32: unpredictable, so a spoofed datagram cannot guess a live session."""
        while True:
            index = secrets.randbits(32)
            if index and index not in self.by_index:
                return index

    def add(self, session: Session) -> Session | None:
        """Register ``session``; returns the user's previous session, which the caller must close."""
        previous = self.by_user.get(session.user_id)
        if previous is not None:
            self.by_index.pop(previous.session_index, None)
        self.by_index[session.session_index] = session
        self.by_user[session.user_id] = session
        return previous

    def remove(self, session: Session) -> bool:
        """Forget ``session``; False if it was already replaced or removed."""
        if self.by_index.get(session.session_index) is session:
            del self.by_index[session.session_index]
        if self.by_user.get(session.user_id) is session:
            del self.by_user[session.user_id]
            return True
        return False

    def __len__(self) -> int:
        return len(self.by_index)
