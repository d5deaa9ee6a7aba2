"""One channel's live state on the server: members, listeners, and the I/O of its floor.

The floor and the burst bookkeeping are :class:`ptt_server.channel_core.ChannelCore`
(pure: time in, effects out); this module carries the effects out: it sends the control
messages to the right sessions, keeps one timer armed at the floor's next deadline (no
polling of all channels), counts metrics, and buffers the burst's sealed frames for
batched store writes. The members' SFrame sender indexes, which the relay checks every
voice frame's KID against, are a :class:`ptt_server.senders.SenderIndexes` (pure) with its
own expiry timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from crypto.roster import Roster
from ptt_protocol import control, floor
from ptt_server.channel_core import (
    TRAILING_STATEMENT_GRACE,
    Broadcast,
    BurstEnded,
    BurstStarted,
    ChannelCore,
    ChannelEffect,
    Counted,
    Granted,
    ToUser,
)
from ptt_server.cluster.floor_mirror import FloorMirror
from ptt_server.cluster.wire import FloorAction, FloorNews, Trailing
from ptt_server.link_feedback import ChannelFeedback
from ptt_server.metrics import ServerMetrics
from ptt_server.senders import SenderIndexes
from ptt_server.sessions import Session, SessionTable
from ptt_server.store import Store, StoreError

log = logging.getLogger(__name__)

RECORDING_FLUSH_INTERVAL = 0.5
"""Seconds of frames buffered before one batched write to the store."""


class FloorLink(Protocol):
    """How a channel reaches the other nodes of a cluster (:mod:`ptt_server.cluster.floors`).

    A channel on one node has none. On a cluster node the channel's floor is decided by
    the node that owns it: elsewhere, floor inputs are forwarded to the owner, and the
    owner's news (:meth:`Channel.apply_news`) drives what the relay forwards.
    """

    def forward(
        self,
        channel: Channel,
        action: FloorAction,
        session: Session,
        priority: floor.Priority = floor.Priority.OFFICER,
        broadcast: bool = False,
    ) -> None:
        """Send a floor input of a local radio to the owner of ``channel``'s floor."""

    def to_user(self, user: str, message: control.Message) -> None:
        """Deliver ``message`` to ``user`` on whichever node it is logged in."""

    def news(self, channel: Channel, broadcasts: list[Broadcast]) -> None:
        """The owner's floor changed: tell the other nodes (and send them ``broadcasts``)."""

    def listening(self, channel: Channel, listening: bool) -> None:
        """This node started (or stopped) having listeners of ``channel``."""


@dataclass
class Recording:
    """The burst being recorded: its store key (once known) and the frames not yet written."""

    channel_id: int
    talker: str
    priority: int
    burst_id: int
    key: asyncio.Task[int]
    broadcast: bool = False
    frames: list[tuple[int, int, bytes]] = field(default_factory=list)
    recorded: set[int] = field(default_factory=set)
    """Sequences buffered so far: a frame and its repeats are recorded once."""


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
        self.roster_signer: bytes | None = None
        """Fingerprint of the credential that signed the current roster (its epoch's maker)."""
        self.core = ChannelCore(channel_id, floor_config)
        self.floor = self.core.floor
        self.listeners: dict[int, Session] = {}
        """Affiliated sessions by media session index: the relay's fan-out list."""
        self._sessions = sessions
        self._store = store
        self._metrics = metrics
        self._spawn = spawn
        self._timer: asyncio.TimerHandle | None = None
        self.recording: Recording | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self._affiliated: tuple[int, bytes] | None = None
        """(roster version, encoded Affiliated): built once per roster, not per affiliation."""
        self.sender_indexes = SenderIndexes()
        """Each member's SFrame sender index per epoch bits (the relay's KID check)."""
        self._senders_timer: asyncio.TimerHandle | None = None
        self.feedback = ChannelFeedback()
        """The holder's uplink and the listeners' reports (loss feedback for the talker)."""
        self._feedback_timer: asyncio.TimerHandle | None = None
        self.link: FloorLink | None = None
        """The cluster (None on one node)."""
        self.mirror: FloorMirror | None = None
        """On a cluster node that does not own this floor: the owner's news (else None)."""

    @property
    def burst_id(self) -> int | None:
        """The burst the floor was granted for (the only one the relay forwards)."""
        if self.mirror is not None:
            return self.mirror.burst_id
        return self.core.burst_id

    @property
    def _decided_elsewhere(self) -> FloorLink | None:
        """The cluster's link when another node decides this floor (None: this node does)."""
        return self.link if self.mirror is not None else None

    def may_send(self, user: str) -> bool:
        """Whether the relay forwards ``user``'s media now (after :meth:`media_received`)."""
        if self.mirror is not None:
            return self.mirror.may_send(user)
        return self.floor.may_send(user)

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
        first = not self.listeners
        self.listeners[session.session_index] = session
        session.affiliated.add(self.channel_id)
        self.core.names[session.user_id] = session.credential.display_name
        if self.mirror is not None:
            if self.mirror.taken is not None and self.mirror.holder != session.user_id:
                session.send_encoded(self.mirror.taken, urgent=True)
        else:
            taken = self.core.taken_message()
            if taken is not None and taken.user_id != session.user_id:
                session.send(taken, urgent=True)
        if first and self.link is not None:
            self.link.listening(self, True)

    def remove_listener(self, session: Session, now: float) -> None:
        self.listeners.pop(session.session_index, None)
        self.feedback.forget(session.session_index)
        session.affiliated.discard(self.channel_id)
        if session.selected_channel == self.channel_id:
            session.selected_channel = None
        if (owner := self._decided_elsewhere) is not None:
            owner.forward(self, "disconnect", session)
        else:
            self._run(self.core.disconnect(session.user_id, now, time.time()))
        if not self.listeners and self.link is not None:
            self.link.listening(self, False)

    # --- floor -----------------------------------------------------------------------------

    def request_floor(
        self, session: Session, priority: floor.Priority, now: float, *, broadcast: bool = False
    ) -> None:
        """A Floor Request (``broadcast``: this channel's part of a broadcast group call)."""
        if (owner := self._decided_elsewhere) is not None:
            owner.forward(self, "request", session, priority, broadcast)
            return
        effects = self.core.request(
            session.user_id, priority, now, time.time(), broadcast=broadcast
        )
        self._run(effects)

    def release_floor(self, session: Session, now: float) -> None:
        if (owner := self._decided_elsewhere) is not None:
            owner.forward(self, "release", session)
            return
        self._run(self.core.release(session.user_id, now, time.time()))

    def floor_input(
        self,
        action: FloorAction,
        user: str,
        display_name: str,
        priority: floor.Priority,
        broadcast: bool,
        now: float,
    ) -> None:
        """A floor input of a radio on another node (this node owns the floor)."""
        wall = time.time()
        if action == "request":
            self.core.names[user] = display_name
            self._run(self.core.request(user, priority, now, wall, broadcast=broadcast))
        elif action == "release":
            self._run(self.core.release(user, now, wall))
        else:
            self._run(self.core.disconnect(user, now, wall))

    def media_received(self, user: str, now: float) -> None:
        """A datagram of ``user`` arrived (the relay's hot path): fire the timers due by its
        time, so a holder whose T1 or T3 ran out a moment ago is not forwarded."""
        if self.mirror is not None:
            return  # the owner's timers run on the owner, fed by the media on the bus
        effects = self.core.media(user, now, time.time)
        if effects:
            self._run(effects)

    def accepts_trailing(self, user: str, burst_id: int, statement: bool, now: float) -> bool:
        """Whether a late frame (``statement``: a burst statement) of the burst that just
        ended may still be forwarded."""
        if self.mirror is not None:
            return self.mirror.accepts_trailing(user, burst_id, statement, now)
        return self.core.accepts_trailing(user, burst_id, statement, now)

    # --- the floor across a cluster ---------------------------------------------------------

    def news(
        self, now: float, owner: str, sequence: int, broadcasts: list[Broadcast]
    ) -> FloorNews | None:
        """This owner's floor state and ``broadcasts`` for the other nodes, as news number
        ``sequence`` of node ``owner``; None if this node does not own the floor."""
        if self.mirror is not None:
            return None
        taken = self.core.taken_message()
        trailing = self.core.trailing(now)
        return FloorNews(
            channel_id=self.channel_id,
            owner=owner,
            sequence=sequence,
            broadcasts=tuple((control.encode(b.message), b.exclude) for b in broadcasts),
            holder=self.floor.holder,
            burst_id=self.core.burst_id,
            taken=None if taken is None else control.encode(taken),
            trailing=None if trailing is None else Trailing(*trailing),
        )

    def apply_news(self, news: FloorNews, now: float) -> None:
        """The owner's floor news (this node does not own the floor)."""
        mirror = self.mirror
        if mirror is None:
            return  # this node owns it now: the sender's news is stale
        before = mirror.holder, mirror.burst_id
        if not mirror.apply(news, now):
            return
        for data, exclude in news.broadcasts:
            self._to_listeners(data, exclude)
        taken = news.taken
        if (
            taken is not None
            and before != (mirror.holder, mirror.burst_id)
            and all(data != taken for data, _ in news.broadcasts)
        ):
            # A burst this node first hears of from a heartbeat (its listeners came after the
            # grant): they learn the talker now, as a late entrant does.
            self._to_listeners(taken, mirror.holder)
        if mirror.holder != before[0]:
            self._stop_feedback()
            if mirror.holder is not None:
                self._start_feedback(mirror.holder)

    def owner_gone(self, now: float) -> None:
        """The owner stopped sending news mid-burst (it died): end the burst here."""
        if self.mirror is None:
            return
        talker = self.mirror.end(now, TRAILING_STATEMENT_GRACE)
        if talker is None:
            return
        self._stop_feedback()
        session = self._sessions.by_user.get(talker)
        if session is not None and session.session_index in self.listeners:
            revoke = control.FloorRevoke(
                channel_id=self.channel_id, cause=floor.RevokeCause.OTHER_REASON.phrase
            )
            session.send(revoke, urgent=True)
        self._to_listeners(control.encode(control.FloorIdle(channel_id=self.channel_id)), talker)

    def own(self, last_burst_id: int) -> None:
        """This node took the floor's lease: it decides the floor from now on."""
        self.mirror = None
        self.floor.continue_numbering(last_burst_id)

    def disown(self, now: float) -> None:
        """This node no longer owns the floor (lease given up or lost): a burst in progress
        ends (its listeners here are told at once; the next owner starts idle)."""
        if self.mirror is not None:
            return
        last = self.floor.burst_id  # the last granted, the one being recorded included
        for effect in self.core.end(now):
            if isinstance(effect, BurstEnded):
                self._end_recording(effect)
        had_holder = self.floor.holder is not None
        self.core = ChannelCore(self.channel_id, self.floor.config)
        self.core.names = {s.user_id: s.credential.display_name for s in self.listeners.values()}
        self.floor = self.core.floor
        self.floor.continue_numbering(last)
        self.mirror = FloorMirror(self.channel_id)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stop_feedback()
        if had_holder:
            self._to_listeners(control.encode(control.FloorIdle(channel_id=self.channel_id)))

    def _to_listeners(self, data: bytes, exclude: str | None = None) -> None:
        """An encoded floor message for every listener here but ``exclude``, ahead of any
        backlog (listeners decide which burst a datagram belongs to from it)."""
        for session in self.listeners.values():
            if session.user_id != exclude:
                session.send_encoded(data, urgent=True)

    def _on_timer(self) -> None:
        self._timer = None
        self._run(self.core.tick(asyncio.get_running_loop().time(), time.time()))

    def _run(self, effects: list[ChannelEffect]) -> None:
        """Carry out the core's effects, then re-arm the floor timer."""
        broadcasts: list[Broadcast] = []
        for effect in effects:
            # Floor messages go ahead of any backlog (texts, credentials): listeners decide
            # which burst a datagram belongs to from them, and UDP does not wait.
            if isinstance(effect, ToUser):
                session = self._sessions.by_user.get(effect.user)
                if session is not None:
                    session.send(effect.message, urgent=True)
                elif self.link is not None:
                    self.link.to_user(effect.user, effect.message)
            elif isinstance(effect, Broadcast):
                broadcasts.append(effect)
                self._to_listeners(control.encode(effect.message), effect.exclude)
            elif isinstance(effect, BurstStarted):
                self._start_recording(effect)
                self._start_feedback(effect.talker)
            elif isinstance(effect, BurstEnded):
                self._end_recording(effect)
                self._stop_feedback()
            elif isinstance(effect, Granted):
                self._metrics.floor_grants.inc()
                self._metrics.access_time.observe(effect.access_time)
            elif isinstance(effect, Counted):
                self._count(effect)
        if effects and self.link is not None:
            self.link.news(self, broadcasts)
        self._arm_timer()

    def _count(self, effect: Counted) -> None:
        if effect.what == "denial":
            self._metrics.floor_denials.inc()
        elif effect.what == "revoke":
            self._metrics.floor_revokes.labels(effect.cause).inc()
        elif effect.what == "pre-emption":
            self._metrics.floor_preemptions.inc()

    def _arm_timer(self) -> None:
        deadline = self.floor.next_deadline()
        if self._timer is not None:
            if deadline is not None and self._timer.when() == deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    # --- loss feedback to the talker ------------------------------------------------------

    def _start_feedback(self, talker: str) -> None:
        self._stop_feedback()
        session = self._sessions.by_user.get(talker)
        if session is None:
            return
        loop = asyncio.get_running_loop()
        self.feedback.talk_started(session.session_index, session.hop, loop.time())
        self._arm_feedback(session)

    def _arm_feedback(self, session: Session) -> None:
        due = self.feedback.next_report
        if due is not None:
            self._feedback_timer = asyncio.get_running_loop().call_at(
                due, self._send_link_report, session
            )

    def report_link(self, session: Session) -> None:
        """Send the holder its LinkReport now (its uplink just lost a datagram)."""
        if self._feedback_timer is not None:
            self._feedback_timer.cancel()
        self._send_link_report(session)

    def _send_link_report(self, session: Session) -> None:
        self._feedback_timer = None
        if self._sessions.by_index.get(session.session_index) is not session:
            return  # logged out: its burst is ending
        report = self.feedback.report(
            self.channel_id, session.hop, asyncio.get_running_loop().time()
        )
        session.send(report)
        self._arm_feedback(session)

    def _stop_feedback(self) -> None:
        self.feedback.talk_ended()
        if self._feedback_timer is not None:
            self._feedback_timer.cancel()
            self._feedback_timer = None

    # --- recording (ciphertext only, for instant recall by key holders) ---------------------

    def _start_recording(self, started: BurstStarted) -> None:
        key = asyncio.ensure_future(
            self._store.start_burst(
                self.channel_id,
                started.burst_id,
                started.talker,
                started.priority,
                started.started_at,
                broadcast=started.broadcast,
            )
        )
        self.recording = Recording(
            self.channel_id,
            started.talker,
            started.priority,
            started.burst_id,
            key,
            broadcast=started.broadcast,
        )

    def record_frame(self, sequence: int, flags: int, frame: bytes) -> None:
        """Buffer one sealed frame of the burst in progress (called by the relay, no await)."""
        recording = self.recording
        if recording is None or sequence in recording.recorded:
            return
        recording.recorded.add(sequence)
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
        try:
            key = await recording.key
            await self._store.record_frames(key, frames)
        except StoreError as exc:
            log.warning(
                "burst recording lost",
                extra={"fields": {"channel": self.channel_id, "error": str(exc)}},
            )

    def _end_recording(self, ended: BurstEnded) -> None:
        recording, self.recording = self.recording, None
        if recording is None:
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        frames, recording.frames = recording.frames, []
        self._spawn(asyncio.ensure_future(self._finish(recording, frames, ended)))

    async def _finish(
        self, recording: Recording, frames: list[tuple[int, int, bytes]], ended: BurstEnded
    ) -> None:
        try:
            key = await recording.key
            if frames:
                await self._store.record_frames(key, frames)
            await self._store.end_burst(key, ended.duration, ended.outcome)
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
                    "broadcast": recording.broadcast,
                    "duration_s": round(ended.duration, 3),
                    "outcome": ended.outcome,
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
        self._stop_feedback()
        for effect in self.core.end(asyncio.get_running_loop().time()):
            if isinstance(effect, BurstEnded):
                self._end_recording(effect)
