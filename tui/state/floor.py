"""The floor part of the console: who talks on each channel, and the console's own floor.

TS 24.380 floor control as the server reports it (taken, idle, granted, denied,
revoked, queued), the talker's burst signature (verified, forged, not vouched
for) and the console's own transmit key.
"""

from __future__ import annotations

from typing import Final

from ptt_client import events
from ptt_protocol import control
from tui.state.console_events import Broadcasting, FloorReleased
from tui.state.model import StateModel
from tui.state.rows import Changed, ChannelRow

DISPATCHER_PRIORITY: Final = 2
"""TS 22.179 priority order: officer 1 < dispatcher 2 < imminent peril 3 < emergency 4."""


class FloorMixin(StateModel):
    """Talkers and the console's floor state; handlers for floor and burst events."""

    def talk_seconds(self, row: ChannelRow, now: float) -> int:
        """Whole seconds the current talker has held the floor."""
        if row.talker is None or row.talk_started is None:
            return 0
        return max(0, int(now - row.talk_started))

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

    def _on_floor_taken(self, event: control.FloorTaken, now: float) -> Changed:
        row = self._channel(event.channel_id)
        new_burst = row.talker != event.user_id or row.burst_id != event.burst_id
        self._learn_name(event.user_id, event.display_name)
        row.talker = event.user_id
        row.talker_name = event.display_name or self.name_of(event.user_id)
        row.talker_priority = event.priority
        row.broadcast = event.broadcast
        row.burst_id = event.burst_id
        if new_burst:
            row.verified = row.distrusted = False
            # The server's grant time, unless the clocks disagree (then: when we heard of it).
            row.talk_started = event.since if 0 < event.since <= now else now
        row.last_activity = now
        self.heard[event.user_id] = now
        if row.my_floor == "granted":
            row.my_floor = "idle"  # pre-empted: the revoke says why
        changed = Changed.CHANNELS | Changed.PRESENCE
        if new_burst:
            priority = " EMERGENCY" if event.priority >= control.PRIORITY_MAX else ""
            what = "BROADCAST by" if event.broadcast else ""
            changed |= self.note(
                "talk",
                f"{what} {row.talker_name} ({event.user_id}) on {row.name}{priority}".lstrip(),
                now,
            )
        return changed

    def _on_floor_idle(self, event: control.FloorIdle, now: float) -> Changed:
        row = self.channels.get(event.channel_id)
        if row is None:
            return Changed.NONE
        changed = Changed.CHANNELS
        if row.talker is not None:
            self.heard[row.talker] = now  # the end of the burst: when they were last heard
            changed |= Changed.PRESENCE
            held = self.talk_seconds(row, now)
            if row.talker != self.me:
                changed |= self.note(
                    "talk", f"{row.name} idle ({self.name_of(row.talker)} talked {held}s)", now
                )
        row.talker, row.verified, row.talk_started, row.burst_id = None, False, None, 0
        row.distrusted = row.broadcast = False
        row.last_activity = now
        if row.my_floor == "granted":
            row.my_floor = "idle"
        return changed

    def _on_floor_granted(self, event: control.FloorGranted, now: float) -> Changed:
        row = self._channel(event.channel_id)
        row.my_floor, row.floor_cause, row.queue_position = "granted", "", 0
        row.talker, row.talker_name = self.me, self.name_of(self.me)
        row.talker_priority = DISPATCHER_PRIORITY
        row.broadcast = event.channel_id in self.broadcasting
        row.burst_id = event.burst_id
        row.verified, row.distrusted = True, False  # our own voice
        row.talk_started = now
        row.last_activity = now
        what = "BROADCAST (one way) on" if row.broadcast else "talking on"
        return self._my_floor_changed(row, f"{what} {row.name}", now)

    def _on_floor_deny(self, event: control.FloorDeny, now: float) -> Changed:
        row = self._channel(event.channel_id)
        row.my_floor, row.floor_cause, row.queue_position = "denied", event.cause, 0
        return self._my_floor_changed(row, f"floor denied on {row.name}: {event.cause}", now)

    def _on_floor_revoke(self, event: control.FloorRevoke, now: float) -> Changed:
        row = self._channel(event.channel_id)
        row.my_floor, row.floor_cause = "revoked", event.cause
        if row.talker == self.me:
            row.talker, row.talk_started, row.broadcast = None, None, False
        return self._my_floor_changed(row, f"floor revoked on {row.name}: {event.cause}", now)

    def _on_queue_position(self, event: control.FloorQueuePosition, now: float) -> Changed:
        row = self._channel(event.channel_id)
        row.my_floor, row.queue_position = "queued", event.position
        return self._my_floor_changed(row, f"queued #{event.position} on {row.name}", now)

    def _my_floor_changed(self, row: ChannelRow, text: str, now: float) -> Changed:
        """The console's own floor on ``row`` changed: the status line follows it, the log says so."""
        self.transmit_channel = row.channel_id
        return Changed.CHANNELS | Changed.STATUS | self.note("floor", text, now)

    def _on_floor_released(self, event: FloorReleased, now: float) -> Changed:
        row = self.channels.get(event.channel_id)
        if row is None:
            return Changed.NONE
        if row.talker == self.me:
            row.talker, row.talk_started, row.verified = None, None, False
            row.distrusted = row.broadcast = False
        row.my_floor, row.queue_position = "idle", 0
        row.last_activity = now
        self.transmit_channel = event.channel_id
        return Changed.CHANNELS | Changed.STATUS

    def _on_broadcasting(self, event: Broadcasting, now: float) -> Changed:
        """The console's broadcast started (its channels) or ended (none)."""
        started = bool(event.channel_ids)
        channels = event.channel_ids or self.broadcasting
        self.broadcasting = event.channel_ids
        names = ", ".join(self.channel_name(c) for c in channels)
        text = f"BROADCAST to {names}" if started else f"broadcast to {names} ended"
        return Changed.CHANNELS | Changed.STATUS | self.note("floor", text, now)

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
        self.heard[event.talker] = now
        # 50 frames a second: the once-a-second refresh shows this, no re-render per frame.
        return Changed.NONE

    def _on_forged_audio(self, event: events.ForgedAudio, now: float) -> Changed:
        what = f"audio claimed as {event.talker} did not verify ({event.reason})"
        return self._distrust(event, "forged", what, now)

    def _on_talker_unverified(self, event: events.TalkerUnverified, now: float) -> Changed:
        what = f"audio played as {event.talker} is not vouched for ({event.reason})"
        return self._distrust(event, "unverified", what, now)

    def _distrust(
        self, event: events.ForgedAudio | events.TalkerUnverified, kind: str, what: str, now: float
    ) -> Changed:
        """Withdraw the verified mark for the rest of the burst, and log why."""
        row = self.channels.get(event.channel_id)
        if row is not None and row.talker == event.talker and row.burst_id == event.burst_id:
            row.verified, row.distrusted = False, True
        return Changed.CHANNELS | self.note(
            kind, f"{self.channel_name(event.channel_id)}: {what}", now
        )

    def _on_voice_rejected(self, event: events.VoiceRejected, now: float) -> Changed:
        where = self.channel_name(event.channel_id) if event.channel_id else "?"
        return self.note("rejected", f"{where}: {event.reason}", now)
