"""What the dispatcher console shows: a plain model fed by client events.

:class:`ConsoleState` knows nothing about Textual or the network. The app's
client task hands it every event a :class:`ptt_client.client.RadioClient`
reports (control messages from ``ptt_protocol.control`` and client events from
``ptt_client.events``) plus a few of the console's own (:class:`FloorReleased`,
:class:`TextSent`, :class:`LocationText`, :class:`MembersKnown`, :class:`Note`),
each with the time it happened (``now``, unix seconds, passed in so tests
control it). :meth:`ConsoleState.apply` says which parts of the screen changed
(:class:`Changed`), and the widgets re-render those parts from the model.

Everything that arrives from the network is display data only: names and
texts are kept as given and the widgets render them as plain text, never as
markup. Every collection is bounded, so a flood of events cannot grow the
console without limit.
"""

from __future__ import annotations

import csv
import enum
import io
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ptt_client import events
from ptt_protocol import control

LOG_LIMIT: Final = 5000
"""Event log entries kept (the oldest are dropped first); export before a long shift ends."""
MESSAGES_PER_CONVERSATION: Final = 500
"""Texts kept per channel or direct conversation."""
RECENT_EMERGENCIES: Final = 100
"""Cancelled alerts remembered (so a late duplicate does not raise the banner again)."""
DISPATCHER_PRIORITY: Final = 2
"""TS 22.179 priority order: officer 1 < dispatcher 2 < imminent peril 3 < emergency 4."""


class Changed(enum.Flag):
    """Which parts of the console an event changed (the widgets to re-render)."""

    NONE = 0
    CHANNELS = enum.auto()
    PRESENCE = enum.auto()
    EMERGENCIES = enum.auto()
    MESSAGES = enum.auto()
    LOG = enum.auto()
    STATUS = enum.auto()
    ALARM = enum.auto()
    """A new, unacknowledged emergency: ring the bell."""


# --- the console's own events (what the client does not report) ----------------------------


@dataclass(frozen=True)
class FloorReleased:
    """The dispatcher let go of the transmit key on ``channel_id``."""

    channel_id: int


@dataclass(frozen=True)
class TextSent:
    """The dispatcher sent a text (to exactly one of ``to_user`` / ``to_channel``)."""

    message_id: bytes
    text: str
    sent_at: float
    to_user: str | None = None
    to_channel: int | None = None


@dataclass(frozen=True)
class LocationText:
    """A sealed location the console opened (or could not): shown next to the user or alert."""

    user_id: str
    text: str
    alert_id: bytes | None = None


@dataclass(frozen=True)
class MembersKnown:
    """A channel's members from the verified roster in the console's keyring."""

    channel_id: int
    members: tuple[str, ...]
    roster_version: int


@dataclass(frozen=True)
class Note:
    """Something the console itself did or failed to do; ``kind="error"`` also shows in the status line."""

    kind: str
    text: str


# --- rows ------------------------------------------------------------------------------------


@dataclass
class ChannelRow:
    """One channel as the console shows it."""

    channel_id: int
    name: str
    members: tuple[str, ...] = ()
    affiliated: bool = False
    talker: str | None = None
    talker_name: str = ""
    talker_priority: int = 0
    burst_id: int = 0
    verified: bool = False
    """The talker's burst signature checked (``events.TalkerVerified``)."""
    distrusted: bool = False
    """Audio of this burst was found forged or not covered by the talker's signature
    (``events.ForgedAudio``, ``events.TalkerUnverified``): no mark for the rest of it."""
    talk_started: float | None = None
    my_floor: str = "idle"
    """The console's own floor state here: idle, requested, granted, queued, denied, revoked."""
    floor_cause: str = ""
    queue_position: int = 0
    """The console's place in this channel's floor queue (the server tells each requester only its own)."""
    epoch: int = 0
    roster_version: int = 0
    last_activity: float | None = None


@dataclass
class PresenceRow:
    """One user's presence."""

    user_id: str
    display_name: str = ""
    online: bool = False
    status: str = control.STATUS_OFFLINE
    channel_id: int | None = None
    last_seen: float = 0.0
    location: str = ""


@dataclass
class Emergency:
    """One emergency alert; active until cancelled."""

    alert_id: bytes
    user_id: str
    channel_id: int
    raised_at: float
    location: str = ""
    acked_by: str | None = None
    cancelled_by: str | None = None

    @property
    def active(self) -> bool:
        return self.cancelled_by is None


@dataclass(frozen=True)
class Conversation:
    """A channel conversation or a direct one with a user."""

    channel_id: int | None = None
    user_id: str | None = None

    def __post_init__(self) -> None:
        if (self.channel_id is None) == (self.user_id is None):
            raise ValueError("a conversation is with exactly one channel or one user")

    @classmethod
    def channel(cls, channel_id: int) -> Conversation:
        return cls(channel_id=channel_id)

    @classmethod
    def user(cls, user_id: str) -> Conversation:
        return cls(user_id=user_id)


@dataclass
class ChatMessage:
    """One text in a conversation."""

    message_id: bytes
    from_user: str
    text: str
    sent_at: float
    outgoing: bool
    stored: bool = False
    delivered_to: set[str] = field(default_factory=set)
    read_by: set[str] = field(default_factory=set)


@dataclass
class LogEntry:
    """One line of the event log; repeats of the same line are counted, not added."""

    at: float
    kind: str
    text: str
    count: int = 1
    seq: int = 0
    """Position in the whole session's log (keeps counting after old entries are dropped)."""


_CSV_FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: str) -> str:
    # OWASP "CSV injection": a spreadsheet runs a cell that starts with a formula
    # character; names and texts come from the network, so defuse them.
    return "'" + value if value.startswith(_CSV_FORMULA_PREFIXES) else value


def format_location(lat: float, lon: float) -> str:
    """``52.37022, 4.89517`` (5 decimals: about a metre)."""
    return f"{lat:.5f}, {lon:.5f}"


class ConsoleState:
    """Everything the console shows; update it with :meth:`apply`, read it to render."""

    def __init__(self, me: str, my_name: str = "", *, log_limit: int = LOG_LIMIT) -> None:
        self.me = me
        self.my_name = my_name
        self.channels: dict[int, ChannelRow] = {}
        self.presence: dict[str, PresenceRow] = {}
        self.emergencies: dict[bytes, Emergency] = {}
        self.conversations: dict[Conversation, deque[ChatMessage]] = {}
        self.unread: dict[Conversation, int] = {}
        self.log: deque[LogEntry] = deque(maxlen=log_limit)
        self.names: dict[str, str] = {me: my_name} if my_name else {}
        self.connection = "connecting"
        self.media_path = ""
        self.last_error = ""
        self.transmit_channel: int | None = None
        """The channel the console last pressed the transmit key on (for the status line)."""
        self.recalls: dict[int, tuple[control.BurstInfo, ...]] = {}
        self.selected_alert: bytes | None = None
        self._sent: dict[bytes, ChatMessage] = {}
        self._log_seq = 0
        self._cancelled: deque[bytes] = deque(maxlen=RECENT_EMERGENCIES)

    # --- reading -----------------------------------------------------------------------------

    def name_of(self, user_id: str) -> str:
        """The display name of ``user_id`` if known, else the user id."""
        return self.names.get(user_id) or user_id

    def channel_name(self, channel_id: int | None) -> str:
        if channel_id is None:
            return ""
        row = self.channels.get(channel_id)
        return row.name if row is not None else f"#{channel_id}"

    def channel_list(self) -> list[ChannelRow]:
        """Channels in display order: emergencies first, then by name."""
        return sorted(
            self.channels.values(),
            key=lambda row: (self.channel_emergency(row.channel_id) is None, row.name.lower()),
        )

    def members_online(self, channel_id: int) -> tuple[int, int]:
        """(members online, members) of a channel."""
        row = self.channels.get(channel_id)
        if row is None:
            return (0, 0)
        online = sum(1 for user in row.members if self._is_online(user))
        return (online, len(row.members))

    def _is_online(self, user_id: str) -> bool:
        if user_id == self.me:  # the server does not tell a subscriber about itself
            return self.connection == "connected"
        row = self.presence.get(user_id)
        return row is not None and row.online

    def channel_emergency(self, channel_id: int) -> Emergency | None:
        """The channel's active emergency, unacknowledged ones first."""
        found = [e for e in self.emergencies.values() if e.active and e.channel_id == channel_id]
        if not found:
            return None
        return min(found, key=lambda e: (e.acked_by is not None, e.raised_at))

    def talk_seconds(self, row: ChannelRow, now: float) -> int:
        """Whole seconds the current talker has held the floor."""
        if row.talker is None or row.talk_started is None:
            return 0
        return max(0, int(now - row.talk_started))

    def user_emergency(self, user_id: str) -> Emergency | None:
        for alert in self.emergencies.values():
            if alert.active and alert.user_id == user_id:
                return alert
        return None

    def presence_rows(self, search: str = "") -> list[PresenceRow]:
        """Presence in display order: emergencies first, then online users, then by name.

        ``search`` keeps rows whose user id, name, status or channel contains it
        (case-insensitive).
        """
        needle = search.strip().lower()
        rows = [
            row
            for row in self.presence.values()
            if not needle
            or needle in row.user_id.lower()
            or needle in row.display_name.lower()
            or needle in row.status
            or needle in row.status.replace("_", " ")
            or needle in self.channel_name(row.channel_id).lower()
        ]
        return sorted(
            rows,
            key=lambda row: (
                not (
                    row.status == control.STATUS_EMERGENCY
                    or self.user_emergency(row.user_id) is not None
                ),
                not row.online,
                (row.display_name or row.user_id).lower(),
            ),
        )

    def active_emergencies(self) -> list[Emergency]:
        """Active alerts: unacknowledged first, oldest first."""
        return sorted(
            (e for e in self.emergencies.values() if e.active),
            key=lambda e: (e.acked_by is not None, e.raised_at),
        )

    def unacknowledged(self) -> list[Emergency]:
        return [e for e in self.active_emergencies() if e.acked_by is None]

    def selected_emergency(self) -> Emergency | None:
        """The alert the acknowledge/cancel keys act on."""
        active = self.active_emergencies()
        if not active:
            return None
        for alert in active:
            if alert.alert_id == self.selected_alert:
                return alert
        return active[0]

    def select_next_alert(self) -> Emergency | None:
        """Move the alert selection to the next active alert (wrapping)."""
        active = self.active_emergencies()
        if not active:
            self.selected_alert = None
            return None
        current = self.selected_emergency()
        index = active.index(current) if current in active else -1
        chosen = active[(index + 1) % len(active)]
        self.selected_alert = chosen.alert_id
        return chosen

    def messages(self, conversation: Conversation) -> list[ChatMessage]:
        return list(self.conversations.get(conversation, ()))

    def mark_read(self, conversation: Conversation) -> bool:
        """The dispatcher saw ``conversation``; True if it had unread texts."""
        return self.unread.pop(conversation, 0) > 0

    def unread_total(self) -> int:
        return sum(self.unread.values())

    def conversation_title(self, conversation: Conversation) -> str:
        if conversation.channel_id is not None:
            return "#" + self.channel_name(conversation.channel_id)
        assert conversation.user_id is not None
        return "@" + self.name_of(conversation.user_id)

    def my_floor(self) -> tuple[str, str]:
        """(channel name, floor state text) of the channel the console last transmitted on."""
        if self.transmit_channel is None:
            return ("", "idle")
        row = self.channels.get(self.transmit_channel)
        if row is None:
            return (self.channel_name(self.transmit_channel), "idle")
        state = row.my_floor
        if state == "queued" and row.queue_position:
            state = f"queued #{row.queue_position}"
        elif state in ("denied", "revoked") and row.floor_cause:
            state = f"{state} ({row.floor_cause})"
        return (row.name, state)

    def to_csv(self) -> str:
        """The event log as CSV: ``time_utc, unix_time, kind, text, count`` (RFC 4180)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["time_utc", "unix_time", "kind", "text", "count"])
        for entry in self.log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.at))
            writer.writerow(
                [stamp, f"{entry.at:.3f}", entry.kind, _csv_cell(entry.text), entry.count]
            )
        return out.getvalue()

    # --- updating ----------------------------------------------------------------------------

    def note(self, kind: str, text: str, now: float) -> Changed:
        """Add an event log line (an identical repeat of the last line bumps its count)."""
        last = self.log[-1] if self.log else None
        if last is not None and last.kind == kind and last.text == text:
            last.count += 1
            last.at = now
        else:
            self._log_seq += 1
            self.log.append(LogEntry(now, kind, text, seq=self._log_seq))
        return Changed.LOG

    def _channel(self, channel_id: int, name: str | None = None) -> ChannelRow:
        row = self.channels.get(channel_id)
        if row is None:
            row = ChannelRow(channel_id, name or f"#{channel_id}")
            self.channels[channel_id] = row
        elif name:
            row.name = name
        return row

    def _learn_name(self, user_id: str, name: str) -> None:
        if name:
            self.names[user_id] = name

    def apply(self, event: object, now: float) -> Changed:
        """Update the model from one event; returns what changed. Unknown events change nothing."""
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return Changed.NONE
        return handler(self, event, now)

    def apply_all(self, items: Iterable[tuple[object, float]]) -> Changed:
        changed = Changed.NONE
        for event, now in items:
            changed |= self.apply(event, now)
        return changed

    # connection

    def _on_connected(self, event: events.Connected, now: float) -> Changed:
        self.connection = "connected"
        self.last_error = ""
        text = "reconnected" if event.reconnect else "connected"
        return Changed.STATUS | self.note("connection", f"{text} as {event.user_id}", now)

    def _on_disconnected(self, event: events.Disconnected, now: float) -> Changed:
        self.connection = "disconnected"
        for row in self.channels.values():
            # The server re-announces talkers when the console re-affiliates.
            row.talker, row.verified, row.talk_started = None, False, None
            if row.my_floor in ("requested", "granted", "queued"):
                row.my_floor = "idle"
        return (
            Changed.STATUS
            | Changed.CHANNELS
            | self.note("connection", f"disconnected: {event.reason}", now)
        )

    def _on_refused(self, event: events.LoginRefused, now: float) -> Changed:
        self.connection = "refused"
        self.last_error = f"login refused ({event.code}): {event.text}"
        return Changed.STATUS | self.note("error", self.last_error, now)

    def _on_media_path(self, event: events.MediaPath, now: float) -> Changed:
        self.media_path = event.path
        return Changed.STATUS | self.note("connection", f"media over {event.path}", now)

    def _on_goodbye(self, event: control.Goodbye, now: float) -> Changed:
        return self.note("connection", f"server said goodbye: {event.reason}", now)

    def _on_error(self, event: control.Error, now: float) -> Changed:
        self.last_error = f"{event.code}: {event.text}" if event.text else event.code
        return Changed.STATUS | self.note("error", self.last_error, now)

    def _on_note(self, event: Note, now: float) -> Changed:
        changed = self.note(event.kind, event.text, now)
        if event.kind == "error":
            self.last_error = event.text
            changed |= Changed.STATUS
        return changed

    # channels

    def _on_channel_list(self, event: control.ChannelList, now: float) -> Changed:
        listed = {info.channel_id for info in event.channels}
        for info in event.channels:
            self._channel(info.channel_id, info.name)
        gone = [cid for cid in self.channels if cid not in listed]
        for cid in gone:
            del self.channels[cid]
        changed = Changed.CHANNELS
        if gone:
            changed |= self.note("channel", f"no longer a member of {len(gone)} channel(s)", now)
        return changed

    def _on_affiliated(self, event: control.Affiliated, now: float) -> Changed:
        row = self._channel(event.channel_id, event.name)
        row.affiliated = True
        if event.members:
            row.members = tuple(m.user_id for m in event.members)
            for member in event.members:
                self._learn_name(member.user_id, member.display_name)
        if event.epoch:
            row.epoch = event.epoch
        return Changed.CHANNELS | self.note("channel", f"monitoring {row.name}", now)

    def _on_deaffiliated(self, event: control.Deaffiliated, now: float) -> Changed:
        row = self.channels.get(event.channel_id)
        if row is None:
            return Changed.NONE
        row.affiliated = False
        row.talker, row.verified, row.talk_started = None, False, None
        reason = f": {event.reason}" if event.reason else ""
        return Changed.CHANNELS | self.note("channel", f"left {row.name}{reason}", now)

    def _on_channel_created(self, event: control.ChannelCreated, now: float) -> Changed:
        row = self._channel(event.channel_id, event.name)
        return Changed.CHANNELS | self.note("channel", f"created {row.name}", now)

    def _on_members_known(self, event: MembersKnown, now: float) -> Changed:
        row = self._channel(event.channel_id)
        if event.roster_version < row.roster_version:
            return Changed.NONE
        row.members = event.members
        row.roster_version = event.roster_version
        return Changed.CHANNELS

    def _on_keys_updated(self, event: events.KeysUpdated, now: float) -> Changed:
        row = self._channel(event.channel_id)
        before = (row.epoch, row.roster_version)
        row.epoch = max(row.epoch, event.epoch)
        row.roster_version = max(row.roster_version, event.roster_version)
        if (row.epoch, row.roster_version) == before:
            return Changed.NONE
        return Changed.CHANNELS | self.note(
            "keys", f"{row.name}: roster v{row.roster_version}, key epoch {row.epoch}", now
        )

    def _on_epoch_installed(self, event: events.EpochInstalled, now: float) -> Changed:
        # Whoever made the epoch can read the channel (docs/security.md): say who, verified.
        return self.note(
            "keys",
            f"{self.channel_name(event.channel_id)}: key epoch {event.epoch} made by"
            f" {event.creator_name or event.creator} ({event.creator_role})",
            now,
        )

    def _on_epoch_refused(self, event: events.EpochRefused, now: float) -> Changed:
        return self.note(
            "refused",
            f"{self.channel_name(event.channel_id)}: key epoch {event.epoch} from"
            f" {event.creator or '?'} refused ({event.reason})",
            now,
        )

    def _on_regroup(self, event: control.Regroup, now: float) -> Changed:
        return self.note("channel", f"regrouped into {self.channel_name(event.channel_id)}", now)

    def _on_ungroup(self, event: control.Ungroup, now: float) -> Changed:
        return self.note("channel", f"regroup {self.channel_name(event.channel_id)} ended", now)

    def _on_recall_list(self, event: control.RecallList, now: float) -> Changed:
        self.recalls[event.channel_id] = event.bursts
        return Changed.NONE

    # floor

    def _on_floor_taken(self, event: control.FloorTaken, now: float) -> Changed:
        row = self._channel(event.channel_id)
        new_burst = row.talker != event.user_id or row.burst_id != event.burst_id
        self._learn_name(event.user_id, event.display_name)
        row.talker = event.user_id
        row.talker_name = event.display_name or self.name_of(event.user_id)
        row.talker_priority = event.priority
        row.burst_id = event.burst_id
        if new_burst:
            row.verified = row.distrusted = False
            # The server's grant time, unless the clocks disagree (then: when we heard of it).
            row.talk_started = event.since if 0 < event.since <= now else now
        row.last_activity = now
        if row.my_floor == "granted":
            row.my_floor = "idle"  # pre-empted: the revoke says why
        changed = Changed.CHANNELS
        if new_burst:
            priority = " EMERGENCY" if event.priority >= control.PRIORITY_MAX else ""
            changed |= self.note(
                "talk", f"{row.talker_name} ({event.user_id}) on {row.name}{priority}", now
            )
        return changed

    def _on_floor_idle(self, event: control.FloorIdle, now: float) -> Changed:
        row = self.channels.get(event.channel_id)
        if row is None:
            return Changed.NONE
        changed = Changed.CHANNELS
        if row.talker is not None:
            held = self.talk_seconds(row, now)
            if row.talker != self.me:
                changed |= self.note(
                    "talk", f"{row.name} idle ({self.name_of(row.talker)} talked {held}s)", now
                )
        row.talker, row.verified, row.talk_started, row.burst_id = None, False, None, 0
        row.distrusted = False
        row.last_activity = now
        if row.my_floor == "granted":
            row.my_floor = "idle"
        return changed

    def _on_floor_granted(self, event: control.FloorGranted, now: float) -> Changed:
        row = self._channel(event.channel_id)
        row.my_floor, row.floor_cause, row.queue_position = "granted", "", 0
        row.talker, row.talker_name = self.me, self.name_of(self.me)
        row.talker_priority = DISPATCHER_PRIORITY
        row.burst_id = event.burst_id
        row.verified, row.distrusted = True, False  # our own voice
        row.talk_started = now
        row.last_activity = now
        self.transmit_channel = event.channel_id
        return Changed.CHANNELS | Changed.STATUS | self.note("floor", f"talking on {row.name}", now)

    def _on_floor_deny(self, event: control.FloorDeny, now: float) -> Changed:
        row = self._channel(event.channel_id)
        row.my_floor, row.floor_cause, row.queue_position = "denied", event.cause, 0
        self.transmit_channel = event.channel_id
        return (
            Changed.CHANNELS
            | Changed.STATUS
            | self.note("floor", f"floor denied on {row.name}: {event.cause}", now)
        )

    def _on_floor_revoke(self, event: control.FloorRevoke, now: float) -> Changed:
        row = self._channel(event.channel_id)
        row.my_floor, row.floor_cause = "revoked", event.cause
        if row.talker == self.me:
            row.talker, row.talk_started = None, None
        self.transmit_channel = event.channel_id
        return (
            Changed.CHANNELS
            | Changed.STATUS
            | self.note("floor", f"floor revoked on {row.name}: {event.cause}", now)
        )

    def _on_queue_position(self, event: control.FloorQueuePosition, now: float) -> Changed:
        row = self._channel(event.channel_id)
        row.my_floor, row.queue_position = "queued", event.position
        self.transmit_channel = event.channel_id
        return (
            Changed.CHANNELS
            | Changed.STATUS
            | self.note("floor", f"queued #{event.position} on {row.name}", now)
        )

    def _on_floor_released(self, event: FloorReleased, now: float) -> Changed:
        row = self.channels.get(event.channel_id)
        if row is None:
            return Changed.NONE
        if row.talker == self.me:
            row.talker, row.talk_started, row.verified = None, None, False
            row.distrusted = False
        row.my_floor, row.queue_position = "idle", 0
        row.last_activity = now
        self.transmit_channel = event.channel_id
        return Changed.CHANNELS | Changed.STATUS

    def _on_talker_verified(self, event: events.TalkerVerified, now: float) -> Changed:
        row = self.channels.get(event.channel_id)
        self._learn_name(event.talker, event.display_name)
        if row is None or row.talker != event.talker or row.burst_id != event.burst_id:
            return Changed.NONE
        if row.verified or row.distrusted:
            # A later statement vouches for later frames, not for what went unverified.
            return Changed.NONE
        row.verified = True
        if event.display_name:
            row.talker_name = event.display_name
        return Changed.CHANNELS

    def _on_voice_frame(self, event: events.VoiceFrame, now: float) -> Changed:
        row = self.channels.get(event.channel_id)
        if row is not None:
            row.last_activity = now
        # 50 frames a second: the once-a-second refresh shows this, no re-render per frame.
        return Changed.NONE

    def _on_forged_audio(self, event: events.ForgedAudio, now: float) -> Changed:
        self._distrust(event.channel_id, event.talker, event.burst_id)
        where = self.channel_name(event.channel_id)
        return Changed.CHANNELS | self.note(
            "forged",
            f"{where}: audio claimed as {event.talker} did not verify ({event.reason})",
            now,
        )

    def _on_talker_unverified(self, event: events.TalkerUnverified, now: float) -> Changed:
        self._distrust(event.channel_id, event.talker, event.burst_id)
        where = self.channel_name(event.channel_id)
        return Changed.CHANNELS | self.note(
            "unverified",
            f"{where}: audio played as {event.talker} is not vouched for ({event.reason})",
            now,
        )

    def _distrust(self, channel_id: int, talker: str, burst_id: int) -> None:
        row = self.channels.get(channel_id)
        if row is not None and row.talker == talker and row.burst_id == burst_id:
            row.verified, row.distrusted = False, True

    def _on_voice_rejected(self, event: events.VoiceRejected, now: float) -> Changed:
        where = self.channel_name(event.channel_id) if event.channel_id else "?"
        return self.note("rejected", f"{where}: {event.reason}", now)

    # presence

    def _on_presence(self, event: control.PresenceUpdate, now: float) -> Changed:
        row = self.presence.get(event.user_id)
        self._learn_name(event.user_id, event.display_name)
        if row is None:
            row = self.presence[event.user_id] = PresenceRow(event.user_id)
            before: tuple[bool, str] | None = None
        else:
            before = (row.online, row.status)
        row.display_name = event.display_name or row.display_name
        row.online = event.online
        row.status = event.status
        row.channel_id = event.channel_id
        row.last_seen = event.last_seen
        # The location stays: the app replaces it when it opens a newer sealed one.
        changed = Changed.PRESENCE | Changed.CHANNELS  # online counts
        if before is not None and before != (row.online, row.status):
            state = row.status if row.online else "offline"
            changed |= self.note("presence", f"{self.name_of(row.user_id)}: {state}", now)
        return changed

    def _on_location(self, event: LocationText, now: float) -> Changed:
        changed = Changed.NONE
        row = self.presence.get(event.user_id)
        if row is not None:
            row.location = event.text
            changed |= Changed.PRESENCE
        if event.alert_id is not None:
            alert = self.emergencies.get(event.alert_id)
            if alert is not None:
                alert.location = event.text
                changed |= Changed.EMERGENCIES
        return changed

    # emergencies

    def _on_alert(self, event: control.EmergencyAlert, now: float) -> Changed:
        if event.alert_id in self._cancelled:
            return Changed.NONE
        known = self.emergencies.get(event.alert_id)
        if known is not None:
            return Changed.NONE  # re-sent after a reconnect
        alert = Emergency(event.alert_id, event.user_id, event.channel_id, event.raised_at or now)
        self.emergencies[event.alert_id] = alert
        if self.selected_alert is None or self.selected_alert not in self.emergencies:
            self.selected_alert = event.alert_id
        row = self.presence.get(event.user_id)
        if row is None:
            row = self.presence[event.user_id] = PresenceRow(event.user_id, online=True)
        row.status = control.STATUS_EMERGENCY
        channel = self.channels.get(event.channel_id)
        if channel is not None:
            channel.last_activity = now
        where = f" on {self.channel_name(event.channel_id)}" if event.channel_id else ""
        return (
            Changed.EMERGENCIES
            | Changed.CHANNELS
            | Changed.PRESENCE
            | Changed.ALARM
            | self.note(
                "emergency",
                f"EMERGENCY {self.name_of(event.user_id)} ({event.user_id}){where}",
                now,
            )
        )

    def _on_ack(self, event: control.EmergencyAck, now: float) -> Changed:
        alert = self.emergencies.get(event.alert_id)
        if alert is None or alert.acked_by is not None:
            return Changed.NONE
        alert.acked_by = event.by_user
        return (
            Changed.EMERGENCIES
            | Changed.CHANNELS
            | self.note(
                "emergency",
                f"{self.name_of(alert.user_id)}'s emergency acknowledged by"
                f" {self.name_of(event.by_user)}",
                now,
            )
        )

    def _on_cancel(self, event: control.EmergencyCancel, now: float) -> Changed:
        alert = self.emergencies.pop(event.alert_id, None)
        self._cancelled.append(event.alert_id)
        if alert is None:
            return Changed.NONE
        alert.cancelled_by = event.by_user
        if self.selected_alert == event.alert_id:
            remaining = self.active_emergencies()
            self.selected_alert = remaining[0].alert_id if remaining else None
        row = self.presence.get(alert.user_id)
        if (
            row is not None
            and row.status == control.STATUS_EMERGENCY
            and self.user_emergency(alert.user_id) is None
        ):
            row.status = control.STATUS_AVAILABLE if row.online else control.STATUS_OFFLINE
        return (
            Changed.EMERGENCIES
            | Changed.CHANNELS
            | Changed.PRESENCE
            | self.note(
                "emergency",
                f"{self.name_of(alert.user_id)}'s emergency cancelled by"
                f" {self.name_of(event.by_user)}",
                now,
            )
        )

    # texts

    def _append(self, conversation: Conversation, message: ChatMessage) -> None:
        thread = self.conversations.get(conversation)
        if thread is None:
            thread = self.conversations[conversation] = deque(maxlen=MESSAGES_PER_CONVERSATION)
        if len(thread) == thread.maxlen and thread[0].outgoing:
            self._sent.pop(thread[0].message_id, None)
        thread.append(message)

    def _on_text(self, event: events.TextReceived, now: float) -> Changed:
        conversation = (
            Conversation.channel(event.to_channel)
            if event.to_channel is not None
            else Conversation.user(event.from_user)
        )
        outgoing = event.from_user == self.me
        self._append(
            conversation,
            ChatMessage(event.message_id, event.from_user, event.text, event.sent_at, outgoing),
        )
        if not outgoing:
            self.unread[conversation] = self.unread.get(conversation, 0) + 1
        preview = event.text if len(event.text) <= 60 else event.text[:57] + "..."
        to = "you" if conversation.user_id is not None else self.conversation_title(conversation)
        return Changed.MESSAGES | self.note(
            "text", f"{self.name_of(event.from_user)} -> {to}: {preview}", now
        )

    def _on_text_sent(self, event: TextSent, now: float) -> Changed:
        conversation = (
            Conversation.channel(event.to_channel)
            if event.to_channel is not None
            else Conversation.user(event.to_user or "")
        )
        message = ChatMessage(event.message_id, self.me, event.text, event.sent_at, True)
        self._append(conversation, message)
        self._sent[event.message_id] = message
        return Changed.MESSAGES | self.note(
            "text", f"you -> {self.conversation_title(conversation)}: {event.text[:60]}", now
        )

    def _on_receipt(self, event: control.TextReceipt, now: float) -> Changed:
        message = self._sent.get(event.message_id)
        if message is None:
            return Changed.NONE
        if event.kind == control.RECEIPT_STORED:
            message.stored = True
        elif event.kind == control.RECEIPT_DELIVERED:
            message.delivered_to.add(event.by_user)
        else:
            message.read_by.add(event.by_user)
        return Changed.MESSAGES


_Handler = Callable[[ConsoleState, Any, float], Changed]
_HANDLERS: Final[dict[type, _Handler]] = {
    events.Connected: ConsoleState._on_connected,
    events.Disconnected: ConsoleState._on_disconnected,
    events.LoginRefused: ConsoleState._on_refused,
    events.MediaPath: ConsoleState._on_media_path,
    events.KeysUpdated: ConsoleState._on_keys_updated,
    events.EpochInstalled: ConsoleState._on_epoch_installed,
    events.EpochRefused: ConsoleState._on_epoch_refused,
    events.TalkerVerified: ConsoleState._on_talker_verified,
    events.VoiceFrame: ConsoleState._on_voice_frame,
    events.VoiceRejected: ConsoleState._on_voice_rejected,
    events.ForgedAudio: ConsoleState._on_forged_audio,
    events.TalkerUnverified: ConsoleState._on_talker_unverified,
    events.TextReceived: ConsoleState._on_text,
    control.Goodbye: ConsoleState._on_goodbye,
    control.Error: ConsoleState._on_error,
    control.ChannelList: ConsoleState._on_channel_list,
    control.Affiliated: ConsoleState._on_affiliated,
    control.Deaffiliated: ConsoleState._on_deaffiliated,
    control.ChannelCreated: ConsoleState._on_channel_created,
    control.Regroup: ConsoleState._on_regroup,
    control.Ungroup: ConsoleState._on_ungroup,
    control.RecallList: ConsoleState._on_recall_list,
    control.FloorTaken: ConsoleState._on_floor_taken,
    control.FloorIdle: ConsoleState._on_floor_idle,
    control.FloorGranted: ConsoleState._on_floor_granted,
    control.FloorDeny: ConsoleState._on_floor_deny,
    control.FloorRevoke: ConsoleState._on_floor_revoke,
    control.FloorQueuePosition: ConsoleState._on_queue_position,
    control.PresenceUpdate: ConsoleState._on_presence,
    control.EmergencyAlert: ConsoleState._on_alert,
    control.EmergencyAck: ConsoleState._on_ack,
    control.EmergencyCancel: ConsoleState._on_cancel,
    control.TextReceipt: ConsoleState._on_receipt,
    FloorReleased: ConsoleState._on_floor_released,
    TextSent: ConsoleState._on_text_sent,
    LocationText: ConsoleState._on_location,
    MembersKnown: ConsoleState._on_members_known,
    Note: ConsoleState._on_note,
}
"""Event type -> handler. Exact types: events are final dataclasses and msgspec structs."""
