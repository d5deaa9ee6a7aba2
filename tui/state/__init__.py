"""What the dispatcher console shows: a plain model fed by client events.

:class:`ConsoleState` knows nothing about Textual or the network. The app's
client task hands it every event a :class:`ptt_client.client.RadioClient`
reports (control messages from ``ptt_protocol.control`` and client events from
``ptt_client.events``) plus a few of the console's own (:class:`FloorReleased`,
:class:`Broadcasting`,
:class:`TextSent`, :class:`LocationText`, :class:`MembersKnown`, :class:`Note`),
each with the time it happened (``now``, unix seconds, passed in so tests
control it). :meth:`ConsoleState.apply` says which parts of the screen changed
(:class:`Changed`), and the widgets re-render those parts from the model.

Everything that arrives from the network is display data only: names and
texts are kept as given and the widgets render them as plain text, never as
markup. Every collection is bounded, so a flood of events cannot grow the
console without limit.

The model is split by concern, one module each:

- ``rows``: the row dataclasses and :class:`Changed`;
- ``console_events``: the console's own events;
- ``log``: the event log and its CSV export;
- ``model``: the rows the parts share and the look-ups between them;
- ``connection``, ``channels``, ``floor``, ``presence``, ``emergencies``,
  ``messages``, ``calls``: each part's views and event handlers;
- ``console``: :class:`ConsoleState`, the parts put together, and the event table.
"""

from tui.state.calls import CallRow, call_duration
from tui.state.connection import NOTICE_SECONDS
from tui.state.console import ConsoleState
from tui.state.console_events import (
    Broadcasting,
    CallPlaced,
    FloorReleased,
    LocationText,
    MembersKnown,
    NamesVerified,
    Note,
    TextSent,
)
from tui.state.floor import DISPATCHER_PRIORITY
from tui.state.log import LOG_LIMIT
from tui.state.messages import MESSAGES_PER_CONVERSATION
from tui.state.model import RECENT_EMERGENCIES
from tui.state.presence import format_location
from tui.state.rows import (
    Changed,
    ChannelRow,
    ChatMessage,
    Conversation,
    Emergency,
    LogEntry,
    Notice,
    PresenceRow,
)

__all__ = [
    "DISPATCHER_PRIORITY",
    "LOG_LIMIT",
    "MESSAGES_PER_CONVERSATION",
    "NOTICE_SECONDS",
    "RECENT_EMERGENCIES",
    "Broadcasting",
    "CallPlaced",
    "CallRow",
    "Changed",
    "ChannelRow",
    "ChatMessage",
    "ConsoleState",
    "Conversation",
    "Emergency",
    "FloorReleased",
    "LocationText",
    "LogEntry",
    "MembersKnown",
    "NamesVerified",
    "Note",
    "Notice",
    "PresenceRow",
    "TextSent",
    "call_duration",
    "format_location",
]
