"""Everything the console holds, and the look-ups that more than one concern reads.

:class:`StateModel` is the base of every part of :class:`tui.state.ConsoleState`
(channels, floor, presence, emergencies, messages, connection). The parts
cross: an alert marks its user's presence and sorts its channel first, the
presence list sorts users in an emergency first. So the rows live here in one
place, each part's handlers and views live in its own module, and a part reads
another's rows only through the look-ups below.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from ptt_protocol import control
from tui.state.log import LOG_LIMIT, LogState
from tui.state.rows import ChannelRow, ChatMessage, Conversation, Emergency, Notice, PresenceRow

RECENT_EMERGENCIES: Final = 100
"""Cancelled alerts remembered (so a late duplicate does not raise the banner again)."""


class StateModel(LogState):
    """The console's rows and the look-ups its parts share."""

    def __init__(self, me: str, my_name: str = "", *, log_limit: int = LOG_LIMIT) -> None:
        super().__init__(log_limit)
        self.me = me
        self.my_name = my_name
        self.channels: dict[int, ChannelRow] = {}
        self.presence: dict[str, PresenceRow] = {}
        self.emergencies: dict[bytes, Emergency] = {}
        self.conversations: dict[Conversation, deque[ChatMessage]] = {}
        self.unread: dict[Conversation, int] = {}
        self.names: dict[str, str] = {me: my_name} if my_name else {}
        self.connection = "connecting"
        self.media_path = ""
        self.last_error = ""
        """The last error, until the next successful action (see :meth:`status_notice`)."""
        self.notice: Notice | None = None
        """What the status line says about the console's last action (or failure)."""
        self.heard: dict[str, float] = {}
        """When each user was last heard talking (floor events, and the server's burst log)."""
        self.verified_names: set[str] = set()
        """Users whose name comes from their credential, checked against the org root: a
        name the server sends does not replace it."""
        self.transmit_channel: int | None = None
        """The channel the console last pressed the transmit key on (for the status line)."""
        self.broadcasting: tuple[int, ...] = ()
        """The channels of the console's broadcast group call while it is on."""
        self.recalls: dict[int, tuple[control.BurstInfo, ...]] = {}
        self.patches: dict[int, tuple[int, ...]] = {}
        """Active patches: the patch's channel -> the channels it links (from the server)."""
        self.selected_alert: bytes | None = None
        self._sent: dict[bytes, ChatMessage] = {}
        self._cancelled: deque[bytes] = deque(maxlen=RECENT_EMERGENCIES)

    # --- names -------------------------------------------------------------------------------

    def name_of(self, user_id: str) -> str:
        """The display name of ``user_id`` if known, else the user id."""
        return self.names.get(user_id) or user_id

    def _learn_name(self, user_id: str, name: str) -> None:
        if name and user_id not in self.verified_names:
            self.names[user_id] = name

    def on_air(self, user_id: str) -> bool:
        """``user_id`` holds the floor on a channel the console shows."""
        return any(row.talker == user_id for row in self.channels.values())

    # --- channels ----------------------------------------------------------------------------

    def channel_name(self, channel_id: int | None) -> str:
        if channel_id is None:
            return ""
        row = self.channels.get(channel_id)
        return row.name if row is not None else f"#{channel_id}"

    def _channel(self, channel_id: int, name: str | None = None) -> ChannelRow:
        """The row of ``channel_id``, made if the console has not heard of it yet."""
        row = self.channels.get(channel_id)
        if row is None:
            row = ChannelRow(channel_id, name or f"#{channel_id}")
            self.channels[channel_id] = row
        elif name:
            row.name = name
        return row

    # --- presence ----------------------------------------------------------------------------

    def _is_online(self, user_id: str) -> bool:
        if user_id == self.me:  # the server does not tell a subscriber about itself
            return self.connection == "connected"
        row = self.presence.get(user_id)
        return row is not None and row.online

    # --- emergencies -------------------------------------------------------------------------

    def channel_emergency(self, channel_id: int) -> Emergency | None:
        """The channel's active emergency: unacknowledged ones first, then the newest."""
        found = [e for e in self.emergencies.values() if e.active and e.channel_id == channel_id]
        if not found:
            return None
        return min(found, key=lambda e: (e.acked_by is not None, -e.raised_at))

    def user_emergency(self, user_id: str) -> Emergency | None:
        for alert in self.emergencies.values():
            if alert.active and alert.user_id == user_id:
                return alert
        return None
