"""One channel's live state on the server: members, listeners, the floor, the burst recording.

The floor itself is :class:`ptt_protocol.floor.FloorControl` (pure); this
module turns its events into control messages for the right sessions, keeps
one timer armed at the floor's next deadline (no polling of all channels), and
buffers the burst's sealed frames for the store. The members' SFrame sender
indexes, which the relay checks every voice frame's KID against, are a
:class:`ptt_server.senders.SenderIndexes` (pure) with its own expiry timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from crypto.roster import Roster
from ptt_protocol import control, floor
from ptt_server.metrics import ServerMetrics
from ptt_server.senders import SenderIndexes
from ptt_server.sessions import Session, SessionTable
from ptt_server.store import Store, StoreError

log = logging.getLogger(__name__)

RECORDING_FLUSH_INTERVAL = 0.5
"""Seconds of frames buffered before one batched write to the store."""
TRAILING_GRACE = 0.3
"""Seconds the last talker's frames of its own burst are still forwarded after the floor is
released: its FloorRelease (TCP) can overtake its last datagrams (UDP) on a slow uplink."""
TRAILING_STATEMENT_GRACE = 1.0
"""Seconds the last talker's burst statements (signed, never played) are still forwarded
after its burst ended any way, pre-emption and revoke included: the radio signs its tail
when it hears the FloorRevoke, a round trip after the floor moved on, and without that
statement listeners cannot vouch for the burst's last second."""


@dataclass
class Recording:
    """The talk burst in progress: its log entry and the sealed frames not yet written."""

    talker: str
    priority: int
    burst_id: int
    started_wall: float
    started_mono: float
    key: asyncio.Task[int] | None = None
    frames: list[tuple[int, int, bytes]] = field(default_factory=list)
    outcome: str = "released"


class Channel:
    """A channel the server routes: who may join, who listens, who talks."""

    def __init__(
        self,
        channel_id: int,
        name: str,
        floor_config: floor.FloorConfig,
        sessions: SessionTable,
        store: Store,
        metrics: ServerMetrics,
        spawn: Callable[[asyncio.Future[object] | asyncio.Task[object]], None],
    ) -> None:
        self.channel_id = channel_id
        self.name = name
        self.members: frozenset[str] = frozenset()
        self.roster_version = 0
        self.signed_roster: bytes | None = None
        self.floor = floor.FloorControl(floor_config)
        self.listeners: dict[int, Session] = {}
        """Affiliated sessions by media session index: the relay's fan-out list."""
        self._sessions = sessions
        self._store = store
        self._metrics = metrics
        self._spawn = spawn
        self._timer: asyncio.TimerHandle | None = None
        self._requested_at: dict[str, float] = {}
        self.recording: Recording | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self._affiliated: tuple[int, bytes] | None = None
        """(roster version, encoded Affiliated): built once per roster, not per affiliation."""
        self._trailing: tuple[str, int, float, float] | None = None
        """(talker, burst id, voice until, statements until): the burst that just ended,
        still forwarded briefly."""
        self.sender_indexes = SenderIndexes()
        """Each member's SFrame sender index per epoch bits (the relay's KID check)."""
        self._senders_timer: asyncio.TimerHandle | None = None

    # --- listeners -------------------------------------------------------------------------

    def affiliated_message(self) -> bytes:
        """The encoded Affiliated answer (with the member list) for the current roster."""
        if self._affiliated is None or self._affiliated[0] != self.roster_version:
            message = control.Affiliated(
                channel_id=self.channel_id,
                name=self.name,
                members=tuple(control.Member(user_id=u) for u in sorted(self.members)),
            )
            self._affiliated = (self.roster_version, control.encode(message))
        return self._affiliated[1]

    def add_listener(self, session: Session) -> None:
        """Affiliate ``session``; a late entrant learns the current talker at once."""
        self.listeners[session.session_index] = session
        session.affiliated.add(self.channel_id)
        holder = self.floor.holder
        if holder is not None and holder != session.user_id and self.recording is not None:
            session.send(self._taken_message(holder, self.recording))

    def remove_listener(self, session: Session, now: float) -> None:
        self.listeners.pop(session.session_index, None)
        session.affiliated.discard(self.channel_id)
        if session.selected_channel == self.channel_id:
            session.selected_channel = None
        self._requested_at.pop(session.user_id, None)
        self.apply(self.floor.disconnect(session.user_id, now), now, outcome="disconnected")

    # --- floor -----------------------------------------------------------------------------

    def request_floor(self, session: Session, priority: floor.Priority, now: float) -> None:
        self._requested_at.setdefault(session.user_id, now)
        self.apply(self.floor.request(session.user_id, priority, now), now)

    def release_floor(self, session: Session, now: float) -> None:
        self._requested_at.pop(session.user_id, None)
        self.apply(self.floor.release(session.user_id, now), now, outcome="released")

    def on_timer(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        self.apply(self.floor.tick(now), now, outcome="expired")

    def apply(self, events: list[floor.FloorEvent], now: float, outcome: str = "released") -> None:
        """Send the floor's events to the right sessions and re-arm the timer."""
        for event in events:
            self._dispatch(event, now, outcome)
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.floor.next_deadline()
        if self._timer is not None:
            if deadline is not None and self._timer.when() == deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self.on_timer)

    def _dispatch(self, event: floor.FloorEvent, now: float, outcome: str) -> None:
        cid = self.channel_id
        if isinstance(event, floor.FloorGranted):
            limit = event.duration_limit if event.duration_limit is not None else 0.0
            granted = control.FloorGranted(
                channel_id=cid, burst_id=event.burst_id, duration_limit=limit
            )
            recording = self.recording
            if recording is not None and recording.burst_id == event.burst_id:
                # The holder asked again (its Floor Granted was lost, or it pressed a higher
                # priority): answer again within the same burst and the same recording.
                self._requested_at.pop(event.user, None)
                recording.priority = int(event.priority)
                self._to_user(event.user, granted)
                return
            self._end_recording()
            requested = self._requested_at.pop(event.user, now)
            self._metrics.floor_grants.inc()
            self._metrics.access_time.observe(max(0.0, now - requested))
            self._to_user(event.user, granted)
            self._start_recording(event.user, int(event.priority), event.burst_id, now)
        elif isinstance(event, floor.FloorTaken):
            assert self.recording is not None
            self._broadcast(self._taken_message(event.talker, self.recording), exclude=event.talker)
        elif isinstance(event, floor.FloorIdle):
            if self.recording is not None:
                self.recording.outcome = outcome
            self._end_recording()
            self._broadcast(control.FloorIdle(channel_id=cid))
        elif isinstance(event, floor.FloorDeny):
            self._requested_at.pop(event.user, None)
            self._metrics.floor_denials.inc()
            self._to_user(event.user, control.FloorDeny(channel_id=cid, cause=event.cause.phrase))
        elif isinstance(event, floor.FloorRevoke):
            self._metrics.floor_revokes.labels(event.cause.phrase).inc()
            if event.cause is floor.RevokeCause.MEDIA_BURST_PRE_EMPTED:
                self._metrics.floor_preemptions.inc()
                if self.recording is not None:
                    self.recording.outcome = "pre-empted"
            elif self.recording is not None:
                self.recording.outcome = "revoked"
            self._to_user(event.user, control.FloorRevoke(channel_id=cid, cause=event.cause.phrase))
        elif isinstance(event, floor.FloorQueuePositionInfo):
            self._to_user(
                event.user, control.FloorQueuePosition(channel_id=cid, position=event.position)
            )

    def _taken_message(self, talker: str, recording: Recording) -> control.FloorTaken:
        session = self._sessions.by_user.get(talker)
        name = session.credential.display_name if session is not None else ""
        return control.FloorTaken(
            channel_id=self.channel_id,
            user_id=talker,
            display_name=name,
            priority=recording.priority,
            burst_id=recording.burst_id,
            since=recording.started_wall,
        )

    def _to_user(self, user: str, message: control.Message) -> None:
        session = self._sessions.by_user.get(user)
        if session is not None:
            session.send(message)

    def _broadcast(self, message: control.Message, exclude: str | None = None) -> None:
        data = control.encode(message)
        for session in self.listeners.values():
            if session.user_id != exclude:
                session.send_encoded(data)

    # --- recording (ciphertext only, for instant recall by key holders) ---------------------

    def _start_recording(self, talker: str, priority: int, burst_id: int, now: float) -> None:
        recording = Recording(talker, priority, burst_id, time.time(), now)
        recording.key = asyncio.ensure_future(
            self._store.start_burst(
                self.channel_id, burst_id, talker, priority, recording.started_wall
            )
        )
        self.recording = recording

    def record_frame(self, sequence: int, flags: int, frame: bytes) -> None:
        """Buffer one sealed frame of the burst in progress (called by the relay, no await)."""
        recording = self.recording
        if recording is None:
            return
        recording.frames.append((sequence, flags, frame))
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(
                RECORDING_FLUSH_INTERVAL, self._flush
            )

    def _flush(self) -> None:
        self._flush_handle = None
        recording = self.recording
        if recording is not None and recording.frames:
            frames, recording.frames = recording.frames, []
            self._spawn(asyncio.ensure_future(self._write_frames(recording, frames)))

    async def _write_frames(
        self, recording: Recording, frames: list[tuple[int, int, bytes]]
    ) -> None:
        assert recording.key is not None
        try:
            key = await recording.key
            await self._store.record_frames(key, frames)
        except StoreError as exc:
            log.warning(
                "burst recording lost",
                extra={"fields": {"channel": self.channel_id, "error": str(exc)}},
            )

    def accepts_trailing(self, user: str, burst_id: int, statement: bool, now: float) -> bool:
        """Whether a late frame (``statement``: a burst statement) of the burst that just
        ended may still be forwarded."""
        trailing = self._trailing
        if trailing is None or trailing[0] != user or trailing[1] != burst_id:
            return False
        return now < (trailing[3] if statement else trailing[2])

    def _end_recording(self) -> None:
        recording, self.recording = self.recording, None
        if recording is None:
            return
        now = asyncio.get_running_loop().time()
        # Voice only of a burst its talker released: a pre-empted or revoked one stops at
        # once. Its signed tail still goes through, so listeners can vouch for what they heard.
        voice_until = now + TRAILING_GRACE if recording.outcome == "released" else now
        self._trailing = (
            recording.talker,
            recording.burst_id,
            voice_until,
            now + TRAILING_STATEMENT_GRACE,
        )
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        duration = now - recording.started_mono
        frames, recording.frames = recording.frames, []
        self._spawn(asyncio.ensure_future(self._finish(recording, frames, duration)))

    async def _finish(
        self, recording: Recording, frames: list[tuple[int, int, bytes]], duration: float
    ) -> None:
        assert recording.key is not None
        try:
            key = await recording.key
            if frames:
                await self._store.record_frames(key, frames)
            await self._store.end_burst(key, duration, recording.outcome)
        except StoreError as exc:
            log.warning(
                "burst log entry lost",
                extra={"fields": {"channel": self.channel_id, "error": str(exc)}},
            )
        log.info(
            "talk burst",
            extra={
                "fields": {
                    "channel": self.channel_id,
                    "talker": recording.talker,
                    "burst": recording.burst_id,
                    "priority": recording.priority,
                    "duration_s": round(duration, 3),
                    "outcome": recording.outcome,
                }
            },
        )

    # --- sender indexes (the relay's KID check) ----------------------------------------------

    def install_senders(self, roster: Roster) -> None:
        """The channel's verified roster changed: accept its members' KIDs."""
        self.sender_indexes.install(roster)

    def key_delivered(self, epoch: int, now: float) -> None:
        """A key envelope of ``epoch`` went out: older epochs' KIDs get their grace."""
        self.sender_indexes.key_delivered(epoch, now)
        self._arm_senders_timer()

    def _arm_senders_timer(self) -> None:
        deadline = self.sender_indexes.next_expiry()
        if self._senders_timer is not None:
            if deadline is not None and self._senders_timer.when() == deadline:
                return
            self._senders_timer.cancel()
            self._senders_timer = None
        if deadline is not None:
            self._senders_timer = asyncio.get_running_loop().call_at(
                deadline, self._expire_senders, deadline
            )

    def _expire_senders(self, deadline: float) -> None:
        self._senders_timer = None
        # call_at may fire up to the clock's resolution early: the deadline itself is due.
        self.sender_indexes.expire(max(asyncio.get_running_loop().time(), deadline))
        self._arm_senders_timer()

    def close(self) -> None:
        """Stop timers and flush the recording (server shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._senders_timer is not None:
            self._senders_timer.cancel()
            self._senders_timer = None
        if self.recording is not None:
            self.recording.outcome = "server shutdown"
        self._end_recording()
