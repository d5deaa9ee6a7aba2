"""Floor control for one channel: who may talk, in the words of 3GPP TS 24.380.

:class:`FloorControl` is the arbitration logic of a floor control server
(TS 24.380 clause 6.3.4, "general floor control operation") for one channel,
with no I/O: every input carries ``now`` (seconds, any monotonic clock), and
every input returns the floor control messages to send, as :class:`FloorEvent`
objects. The server's channel loop feeds Floor Requests, Floor Releases,
disconnects and media arrivals in, calls :meth:`FloorControl.tick` at
:meth:`FloorControl.next_deadline`, and delivers what comes out.

The states are the standard's:

- 'G: Floor Idle' (6.3.4.3): nobody holds the floor; the queue is empty.
- 'G: Floor Taken' (6.3.4.4): one holder; T1 (end of RTP media) and T2
  (stop talking) run.
- 'G: pending Floor Revoke' (6.3.4.5): the holder was sent Floor Revoke
  "Media burst too long" and has T3 (stop talking grace) to stop. The floor
  stays reserved for the holder: nobody else is granted until the holder
  releases, T3 expires, T1 expires, or a strictly higher priority pre-empts.

Messages are named as in TS 24.380 clause 8.2 (Floor Granted, Floor Deny,
Floor Taken, Floor Idle, Floor Revoke, Floor Queue Position Info), and deny
and revoke causes carry the standard's numbers and phrases (clauses 8.2.6.2
and 8.2.10.2), so a log line reads like the standard.

A broadcast group call (TS 22.179 6.2.3: a dispatcher talks one way to several
channels, overriding ordinary talk on them) is a request with ``broadcast=True``:
on each of its channels it ranks just above its priority (a dispatcher's
broadcast pre-empts a dispatcher's ordinary talk, never an imminent peril or an
emergency), is never queued, and while it holds the floor lower requests are
denied "Broadcast in progress" rather than queued: nobody answers into it.

Where this module departs from the standard on purpose, the comment at that
spot says so and why (pre-emption without a grace period; T2 counted from the
grant; a full queue that makes room for a higher priority).

Errors: a user id or priority that is not valid raises :class:`FloorInputError`
(a :class:`~ptt_protocol.errors.ProtocolError`: the caller drops the input); a
clock that runs backwards raises :class:`FloorClockError` (a caller bug). In
both cases the state is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ptt_protocol.floor_vocabulary import (
    DenyCause,
    FloorClockError,
    FloorConfig,
    FloorDeny,
    FloorEvent,
    FloorGranted,
    FloorIdle,
    FloorInputError,
    FloorQueuePositionInfo,
    FloorRevoke,
    FloorState,
    FloorTaken,
    Priority,
    RevokeCause,
    is_number,
)

__all__ = [
    "DenyCause",
    "FloorClockError",
    "FloorConfig",
    "FloorControl",
    "FloorDeny",
    "FloorEvent",
    "FloorGranted",
    "FloorIdle",
    "FloorInputError",
    "FloorQueuePositionInfo",
    "FloorRevoke",
    "FloorState",
    "FloorTaken",
    "Priority",
    "RevokeCause",
]


# --- The state machine --------------------------------------------------------


@dataclass
class _Queued:
    user: str
    priority: Priority
    arrival: int


class FloorControl:
    """The floor of one channel, as its floor control server sees it.

    Every input method takes ``now``, first fires the timers due by then
    (as :meth:`tick` would), then applies the input, and returns the floor
    control messages to send, in order.
    """

    def __init__(self, config: FloorConfig | None = None) -> None:
        self._config = config if config is not None else FloorConfig()
        self._now: float | None = None
        self._holder: str | None = None
        self._holder_priority: Priority | None = None
        self._holder_broadcast = False
        self._granted_at = 0.0
        self._last_media = 0.0
        self._revoked_at: float | None = None  # set while 'G: pending Floor Revoke'
        self._burst_id = 0
        self._queue: list[_Queued] = []
        self._arrivals = 0

    # -- read-only view ---------------------------------------------------

    @property
    def config(self) -> FloorConfig:
        """The channel's floor policy."""
        return self._config

    @property
    def state(self) -> FloorState:
        """'G: Floor Idle', 'G: Floor Taken' or 'G: pending Floor Revoke'."""
        if self._holder is None:
            return FloorState.IDLE
        if self._revoked_at is not None:
            return FloorState.PENDING_REVOKE
        return FloorState.TAKEN

    @property
    def holder(self) -> str | None:
        """The user who may send media now, or ``None`` when the floor is idle."""
        return self._holder

    @property
    def holder_priority(self) -> Priority | None:
        """The priority the holder was granted (or raised to), or ``None``."""
        return self._holder_priority

    @property
    def broadcast(self) -> bool:
        """Whether the holder holds the floor for a broadcast group call."""
        return self._holder is not None and self._holder_broadcast

    @property
    def queue(self) -> list[tuple[str, Priority]]:
        """Waiting requests in grant order: priority first, then arrival."""
        return [(q.user, q.priority) for q in self._queue]

    @property
    def burst_id(self) -> int:
        """Number of the current (or last) media burst; +1 on every new grant."""
        return self._burst_id

    def continue_numbering(self, last_burst_id: int) -> None:
        """Number the next burst after ``last_burst_id`` (a floor taken over from another
        server of a cluster: burst ids of a channel keep increasing across owners)."""
        if self._holder is not None or self._queue:
            raise ValueError("burst numbering can only move on an idle floor")
        if not 0 <= last_burst_id <= 0xFFFF_FFFF:
            raise ValueError(f"burst id {last_burst_id} is not a 32-bit number")
        self._burst_id = max(self._burst_id, last_burst_id)

    def may_send(self, user: str) -> bool:
        """Whether the relay should forward media from ``user`` now.

        Call :meth:`media_received` (or :meth:`tick`) with the packet's time
        first, so that timers due by then have fired.
        """
        return self._holder is not None and user == self._holder

    def next_deadline(self) -> float | None:
        """When the next timer (T1, T2 or T3) fires; ``None`` if none runs."""
        deadlines = [d for d in self._deadlines() if d is not None]
        return min(deadlines) if deadlines else None

    # -- inputs -------------------------------------------------------------

    def request(
        self, user: str, priority: Priority | int, now: float, *, broadcast: bool = False
    ) -> list[FloorEvent]:
        """Floor Request from ``user`` at ``priority``; ``broadcast``: for a broadcast group
        call (see the module docstring)."""
        _check_user(user)
        prio = _check_priority(priority)
        if not isinstance(broadcast, bool):
            raise FloorInputError(f"broadcast must be a bool, got {broadcast!r}")
        self._check_clock(now)
        events = self._expire(now)
        events += self._on_request(user, prio, now, broadcast)
        return events

    def release(self, user: str, now: float) -> list[FloorEvent]:
        """Floor Release from ``user`` (PTT up).

        From the holder it frees the floor: the head of the queue is granted,
        or Floor Idle goes out. From a queued user it withdraws the request,
        as :meth:`cancel`. From anyone else it is ignored (TS 24.380 6.3.4.1:
        a message with no procedure in the current state is discarded).
        """
        _check_user(user)
        self._check_clock(now)
        events = self._expire(now)
        events += self._withdraw(user, now)
        return events

    def cancel(self, user: str, now: float) -> list[FloorEvent]:
        """A queued ``user`` withdraws its request; the users behind it move up.

        If ``user`` holds the floor, this releases it: the cancel (PTT let go
        while queued) may have crossed our Floor Granted on the wire, and
        keeping the floor for someone whose PTT is up would block the channel
        until T1 runs out.
        """
        _check_user(user)
        self._check_clock(now)
        events = self._expire(now)
        events += self._withdraw(user, now)
        return events

    def disconnect(self, user: str, now: float) -> list[FloorEvent]:
        """``user`` left the channel or lost its connection.

        For the holder this is a release; a queued request is removed.
        """
        _check_user(user)
        self._check_clock(now)
        events = self._expire(now)
        events += self._withdraw(user, now)
        return events

    def media_received(self, user: str, now: float) -> list[FloorEvent]:
        """An RTP media packet from ``user`` reached the relay.

        The holder's media restarts T1 (TS 24.380 6.3.4.4, and in
        'G: pending Floor Revoke' 6.3.4.5). Media from anyone else changes
        nothing: check :meth:`may_send` and drop it. The events returned are
        those of timers that were due by ``now``.
        """
        _check_user(user)
        self._check_clock(now)
        events = self._expire(now)
        if user == self._holder:
            self._last_media = now
        return events

    def tick(self, now: float) -> list[FloorEvent]:
        """Fire the timers due by ``now``; call it at :meth:`next_deadline`."""
        self._check_clock(now)
        return self._expire(now)

    # -- request handling ---------------------------------------------------

    def _on_request(
        self, user: str, prio: Priority, now: float, broadcast: bool
    ) -> list[FloorEvent]:
        holder_prio = self._holder_priority
        if self._holder is None or holder_prio is None:
            # 'G: Floor Idle' (6.3.4.3): the queue is empty here, grant at once.
            return self._grant(user, prio, now, broadcast)
        if user == self._holder:
            return self._holder_requests_again(prio, now, broadcast)
        if (prio, broadcast) > (holder_prio, self._holder_broadcast):
            return self._pre_empt(user, prio, now, broadcast)
        if self._holder_broadcast:
            # TS 22.179 6.2.3: a broadcast is one way; nobody answers into it, so a
            # request below it is refused at once rather than queued behind it.
            return [FloorDeny(user, DenyCause.BROADCAST_IN_PROGRESS)]
        if broadcast:
            # Below an emergency or imminent peril: not queued either, or it would start
            # later on this channel alone, halfway through what the others heard.
            return [FloorDeny(user, DenyCause.ANOTHER_MCPTT_CLIENT_HAS_PERMISSION)]
        queued = self._find(user)
        if queued is not None:
            # A repeated request keeps its place; a higher priority moves it up
            # among the priorities but keeps its arrival order within them.
            before = self._positions()
            if prio > queued.priority:
                queued.priority = prio
                self._sort_queue()
            return [self._position_of(user), *self._position_updates(before, skip=user)]
        if self._config.queue_capacity == 0:
            return [FloorDeny(user, DenyCause.ANOTHER_MCPTT_CLIENT_HAS_PERMISSION)]
        events: list[FloorEvent] = []
        before = self._positions()
        if len(self._queue) >= self._config.queue_capacity:
            lowest = self._queue[-1]
            if prio <= lowest.priority:
                return [FloorDeny(user, DenyCause.QUEUE_FULL)]
            # Full, but the newcomer outranks the last in line: on a police
            # channel a dispatcher or an officer in peril must not be turned
            # away because routine requests filled the queue. The last in line
            # (lowest priority, latest arrival) is told its request is gone;
            # it can press again.
            self._queue.pop()
            events.append(FloorDeny(lowest.user, DenyCause.QUEUE_FULL))
        self._queue.append(_Queued(user, prio, self._arrivals))
        self._arrivals += 1
        self._sort_queue()
        events.append(self._position_of(user))
        events += self._position_updates(before, skip=user)
        return events

    def _holder_requests_again(
        self, prio: Priority, now: float, broadcast: bool
    ) -> list[FloorEvent]:
        holder, held = self._holder, self._holder_priority
        assert holder is not None and held is not None
        raised = (max(prio, held), broadcast or self._holder_broadcast)
        if raised > (held, self._holder_broadcast):
            # The talker pressed a higher priority (e.g. the emergency button), or
            # made its talk a broadcast, mid-burst: raise the burst's rank so nobody
            # below it can pre-empt, recompute T2 from the grant, and tell the channel.
            self._holder_priority, self._holder_broadcast = raised
            if self._revoked_at is not None:
                deadline = self._t2_deadline_ignoring_revoke()
                if deadline is None or deadline > now:
                    self._revoked_at = None  # back to 'G: Floor Taken'
            events: list[FloorEvent] = [self._granted_or_revoke_again(now)]
            events.append(FloorTaken(holder, raised[0], self._burst_id, raised[1]))
            if raised[1]:
                events += self._deny_queue()
            return events
        # A repeated Floor Request from the holder (its Floor Granted may have
        # been lost): answer again, without starting a new burst.
        return [self._granted_or_revoke_again(now)]

    def _granted_or_revoke_again(self, now: float) -> FloorEvent:
        holder, prio = self._holder, self._holder_priority
        assert holder is not None and prio is not None
        if self._revoked_at is not None:
            left = max(0.0, self._revoked_at + self._config.t3_grace - now)
            return FloorRevoke(holder, RevokeCause.MEDIA_BURST_TOO_LONG, grace=left)
        deadline = self._t2_deadline_ignoring_revoke()
        left_t2 = None if deadline is None else max(0.0, deadline - now)
        return FloorGranted(holder, self._burst_id, left_t2, prio, self._holder_broadcast)

    def _pre_empt(self, user: str, prio: Priority, now: float, broadcast: bool) -> list[FloorEvent]:
        old = self._holder
        assert old is not None
        # TS 24.380 6.3.4.4 sends Floor Revoke "Media Burst pre-empted" (#4),
        # enters 'G: pending Floor Revoke' with the pre-empting request at the
        # head of the queue, and grants only after the old holder releases or
        # T3 runs out. We grant at once: an emergency call must not wait up to
        # T3 (3 s) against a 300 ms access-time KPI, and the relay stops
        # forwarding the old holder the moment may_send() turns false, so the
        # grace period protects nobody here.
        #
        # The pre-empted talker is not queued again: in the standard the
        # revoked client goes to 'U: not permitted' and must send a new Floor
        # Request; a radio that re-queued it would later open a microphone the
        # officer had stopped pressing. Radios re-press.
        before = self._positions()
        self._remove(user)
        events: list[FloorEvent] = [FloorRevoke(old, RevokeCause.MEDIA_BURST_PRE_EMPTED, grace=0.0)]
        events += self._grant(user, prio, now, broadcast)
        events += self._position_updates(before)
        return events

    def _withdraw(self, user: str, now: float) -> list[FloorEvent]:
        if user == self._holder:
            return self._free(now)
        if self._find(user) is None:
            return []
        before = self._positions()
        self._remove(user)
        return self._position_updates(before)

    # -- grant / free ---------------------------------------------------------

    def _grant(
        self, user: str, prio: Priority, now: float, broadcast: bool = False
    ) -> list[FloorEvent]:
        # Entering 'G: Floor Taken' (6.3.4.4): Floor Granted to the new
        # holder, Floor Taken to everyone else, T1 started by the grant.
        #
        # T2 is counted from the grant, not from the first media packet, so
        # the Duration in Floor Granted is exact and a holder who never speaks
        # is bounded by T1 anyway.
        self._holder = user
        self._holder_priority = prio
        self._holder_broadcast = broadcast
        self._granted_at = now
        self._last_media = now
        self._revoked_at = None
        # Burst ids are 32-bit on the wire: after the last one numbering starts again at 1
        # (a channel numbered on from another server's last burst may get there).
        self._burst_id = self._burst_id % 0xFFFF_FFFF + 1
        t2 = self._config.t2_stop_talking(prio)
        events: list[FloorEvent] = [
            FloorGranted(user, self._burst_id, t2, prio, broadcast),
            FloorTaken(user, prio, self._burst_id, broadcast),
        ]
        return events + self._deny_queue() if broadcast else events

    def _deny_queue(self) -> list[FloorEvent]:
        """A broadcast took the floor: the requests waiting below it will not be answered
        into it (TS 22.179 6.2.3), so they are refused now, not left to start after it."""
        waiting, self._queue = self._queue, []
        return [FloorDeny(q.user, DenyCause.BROADCAST_IN_PROGRESS) for q in waiting]

    def _free(self, now: float) -> list[FloorEvent]:
        # Entering 'G: Floor Idle' (6.3.4.3.2): grant the head of the queue
        # if there is one, else tell everyone the floor is idle.
        if self._queue:
            before = self._positions()
            head = self._queue.pop(0)
            events = self._grant(head.user, head.priority, now)
            events += self._position_updates(before)
            return events
        self._holder = None
        self._holder_priority = None
        self._holder_broadcast = False
        self._revoked_at = None
        return [FloorIdle()]

    # -- timers ---------------------------------------------------------------

    def _t2_deadline_ignoring_revoke(self) -> float | None:
        if self._holder_priority is None:
            return None
        t2 = self._config.t2_stop_talking(self._holder_priority)
        return None if t2 is None else self._granted_at + t2

    def _deadlines(self) -> tuple[float | None, float | None, float | None]:
        """(T1, T2, T3) deadlines; ``None`` where the timer does not run."""
        if self._holder is None:
            return (None, None, None)
        t1 = self._last_media + self._config.t1_end_of_media
        if self._revoked_at is not None:
            return (t1, None, self._revoked_at + self._config.t3_grace)
        return (t1, self._t2_deadline_ignoring_revoke(), None)

    def _expire(self, now: float) -> list[FloorEvent]:
        events: list[FloorEvent] = []
        # Fire due timers earliest first (T1 wins a tie: a silent holder just
        # ends, no Revoke needed). Timers started here start at `now`, when
        # their message actually goes out, so the loop ends.
        while True:
            due = [(d, i) for i, d in enumerate(self._deadlines()) if d is not None and d <= now]
            if not due:
                return events
            _, timer = min(due)
            if timer == 0:
                # T1 (end of RTP media) expired, in 'G: Floor Taken' or pending revoke:
                # the talker went silent, the floor is free.
                events += self._free(now)
            elif timer == 1:
                # T2 (stop talking) expired in 'G: Floor Taken': Floor Revoke
                # "Media burst too long" (#2) and T3 starts; the floor stays
                # reserved for the holder meanwhile ('G: pending Floor Revoke',
                # 6.3.4.5.2).
                holder = self._holder
                assert holder is not None
                self._revoked_at = now
                events.append(
                    FloorRevoke(
                        holder, RevokeCause.MEDIA_BURST_TOO_LONG, grace=self._config.t3_grace
                    )
                )
            else:
                # T3 (stop talking grace) expired: the floor is taken away.
                events += self._free(now)

    # -- queue helpers ----------------------------------------------------------

    def _sort_queue(self) -> None:
        # Queued requests are granted by floor priority, then in the order
        # they arrived (TS 24.380 queueing of Floor Requests).
        self._queue.sort(key=lambda q: (-int(q.priority), q.arrival))

    def _find(self, user: str) -> _Queued | None:
        for q in self._queue:
            if q.user == user:
                return q
        return None

    def _remove(self, user: str) -> None:
        self._queue = [q for q in self._queue if q.user != user]

    def _positions(self) -> dict[str, int]:
        return {q.user: i for i, q in enumerate(self._queue, start=1)}

    def _position_of(self, user: str) -> FloorQueuePositionInfo:
        return FloorQueuePositionInfo(user, self._positions()[user])

    def _position_updates(
        self, before: dict[str, int], skip: str | None = None
    ) -> list[FloorEvent]:
        """Floor Queue Position Info for every queued user whose place changed."""
        return [
            FloorQueuePositionInfo(q.user, pos)
            for pos, q in enumerate(self._queue, start=1)
            if q.user != skip and before.get(q.user) != pos
        ]

    # -- validation -------------------------------------------------------------

    def _check_clock(self, now: float) -> None:
        if not is_number(now) or not math.isfinite(now):
            raise FloorClockError(f"now must be a finite number of seconds, got {now!r}")
        if self._now is not None and now < self._now:
            raise FloorClockError(
                f"time ran backwards: now={now!r} after {self._now!r}; "
                "pass one monotonic clock (time.monotonic())"
            )
        self._now = now


def _check_user(user: object) -> None:
    if not isinstance(user, str) or not user:
        raise FloorInputError(f"user id must be a non-empty string, got {user!r}")


def _check_priority(priority: object) -> Priority:
    if isinstance(priority, Priority):
        return priority
    if isinstance(priority, int) and not isinstance(priority, bool):
        try:
            return Priority(priority)
        except ValueError:
            pass
    valid = ", ".join(f"{p.name}={p.value}" for p in Priority)
    raise FloorInputError(f"unknown floor priority {priority!r}; expected one of {valid}")
