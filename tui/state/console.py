""":class:`ConsoleState`: the console's parts put together, and the table of which event goes where.

Each part (connection, channels, floor, presence, emergencies, messages, calls) is a
mixin in its own module with its views and its ``_on_*`` handlers; they share
the rows and look-ups of :class:`tui.state.model.StateModel`. This module adds
:meth:`ConsoleState.apply`, which hands an event to its handler by the
event's exact type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from ptt_client import events
from ptt_protocol import control
from tui.state.calls import CallsMixin
from tui.state.channels import ChannelsMixin
from tui.state.connection import ConnectionMixin
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
from tui.state.emergencies import EmergenciesMixin
from tui.state.floor import FloorMixin
from tui.state.messages import MessagesMixin
from tui.state.presence import PresenceMixin
from tui.state.rows import Changed


class ConsoleState(
    ConnectionMixin,
    ChannelsMixin,
    FloorMixin,
    PresenceMixin,
    EmergenciesMixin,
    MessagesMixin,
    CallsMixin,
):
    """Everything the console shows; update it with :meth:`apply`, read it to render."""

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
    control.Patch: ConsoleState._on_patch,
    control.Unpatch: ConsoleState._on_unpatch,
    control.ChannelDeleted: ConsoleState._on_channel_deleted,
    control.RecallList: ConsoleState._on_recall_list,
    control.FloorTaken: ConsoleState._on_floor_taken,
    control.FloorIdle: ConsoleState._on_floor_idle,
    control.FloorGranted: ConsoleState._on_floor_granted,
    control.FloorDeny: ConsoleState._on_floor_deny,
    control.FloorRevoke: ConsoleState._on_floor_revoke,
    control.FloorQueuePosition: ConsoleState._on_queue_position,
    control.PresenceUpdate: ConsoleState._on_presence,
    control.EnrolledUsers: ConsoleState._on_enrolled,
    control.EmergencyAlert: ConsoleState._on_alert,
    control.EmergencyAck: ConsoleState._on_ack,
    control.EmergencyCancel: ConsoleState._on_cancel,
    control.TextReceipt: ConsoleState._on_receipt,
    FloorReleased: ConsoleState._on_floor_released,
    Broadcasting: ConsoleState._on_broadcasting,
    TextSent: ConsoleState._on_text_sent,
    LocationText: ConsoleState._on_location,
    MembersKnown: ConsoleState._on_members_known,
    NamesVerified: ConsoleState._on_names_verified,
    CallPlaced: ConsoleState._on_call_placed,
    events.CallAlerting: ConsoleState._on_call_alerting,
    events.CallConnected: ConsoleState._on_call_connected,
    events.CallEnded: ConsoleState._on_call_ended,
    control.CallTalker: ConsoleState._on_call_talker,
    control.CallLog: ConsoleState._on_call_log,
    Note: ConsoleState._on_note,
}
"""Event type -> handler. Exact types: events are final dataclasses and msgspec structs."""
