"""One channel's floor and talk-burst bookkeeping on the relay, without I/O.

:class:`ChannelCore` wraps :class:`ptt_protocol.floor.FloorControl` with what the relay
adds around it: who asked when (access time), which burst is being recorded and how it
ended (released, pre-empted, revoked, expired, disconnected), and the short grace in
which a burst that just ended is still forwarded. Inputs carry ``now`` (loop seconds)
and ``wall`` (unix seconds); outputs are :data:`ChannelEffect` values that the I/O shell
(:class:`ptt_server.channels.Channel`) carries out: messages to users and listeners,
recording starts and ends, metrics, the floor timer. It reads no clock and writes no
store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ptt_protocol import control, floor

__all__ = [
    "TRAILING_GRACE",
    "TRAILING_STATEMENT_GRACE",
    "Broadcast",
    "BurstEnded",
    "BurstStarted",
    "ChannelCore",
    "ChannelEffect",
    "Counted",
    "Granted",
    "ToUser",
]

TRAILING_GRACE = 0.3
"""Seconds the last talker's frames of its own burst are still forwarded after the floor is
released: its FloorRelease (TCP) can overtake its last datagrams (UDP) on a slow uplink."""
TRAILING_STATEMENT_GRACE = 1.0
"""Seconds the last talker's burst statements (signed, never played) are still forwarded
after its burst ended any way, pre-emption and revoke included: the radio signs its tail
when it hears the FloorRevoke, a round trip after the floor moved on, and without that
statement listeners cannot vouch for the burst's last second."""


@dataclass(frozen=True, slots=True)
class ToUser:
    """Send ``message`` to ``user`` (if online)."""

    user: str
    message: control.Message


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``message`` to every listener of the channel but ``exclude``."""

    message: control.Message
    exclude: str | None = None


@dataclass(frozen=True, slots=True)
class BurstStarted:
    """A talk burst began: start its log entry and recording."""

    talker: str
    priority: int
    burst_id: int
    started_at: float
    """Unix time."""
    broadcast: bool = False
    """Part of a broadcast group call (logged as such)."""


@dataclass(frozen=True, slots=True)
class BurstEnded:
    """The burst being recorded ended: flush its frames and close its log entry."""

    burst_id: int
    outcome: str
    duration: float


@dataclass(frozen=True, slots=True)
class Granted:
    """A grant (for the access-time metric)."""

    access_time: float


@dataclass(frozen=True, slots=True)
class Counted:
    """Count one floor event: ``what`` is denial, revoke or pre-emption; ``cause`` its phrase."""

    what: str
    cause: str = ""


ChannelEffect = ToUser | Broadcast | BurstStarted | BurstEnded | Granted | Counted


@dataclass(slots=True)
class _Burst:
    talker: str
    priority: int
    burst_id: int
    started_wall: float
    started_mono: float
    outcome: str = "released"
    broadcast: bool = False


class ChannelCore:
    """The floor of one channel and the burst it is recording (pure)."""

    def __init__(self, channel_id: int, floor_config: floor.FloorConfig) -> None:
        self.channel_id = channel_id
        self.floor = floor.FloorControl(floor_config)
        self._requested_at: dict[str, float] = {}
        self._burst: _Burst | None = None
        self._trailing: tuple[str, int, float, float] | None = None
        """(talker, burst id, voice until, statements until) of the burst that just ended."""
        self.names: dict[str, str] = {}
        """Display names of the channel's listeners (FloorTaken carries the talker's)."""

    @property
    def burst_id(self) -> int | None:
        """The burst being recorded, if any."""
        return self._burst.burst_id if self._burst is not None else None

    # --- inputs ----------------------------------------------------------------------------

    def request(
        self,
        user: str,
        priority: floor.Priority,
        now: float,
        wall: float,
        *,
        broadcast: bool = False,
    ) -> list[ChannelEffect]:
        """A Floor Request (``broadcast``: this channel's part of a broadcast group call)."""
        self._requested_at.setdefault(user, now)
        events = self.floor.request(user, priority, now, broadcast=broadcast)
        return self._apply(events, now, wall, "released")

    def release(self, user: str, now: float, wall: float) -> list[ChannelEffect]:
        self._requested_at.pop(user, None)
        return self._apply(self.floor.release(user, now), now, wall, "released")

    def disconnect(self, user: str, now: float, wall: float) -> list[ChannelEffect]:
        """``user`` left the channel (de-affiliated, logged out, removed from the roster)."""
        self._requested_at.pop(user, None)
        self.names.pop(user, None)
        return self._apply(self.floor.disconnect(user, now), now, wall, "disconnected")

    def tick(self, now: float, wall: float) -> list[ChannelEffect]:
        """The floor's deadline came (T1 end of media, T2 stop talking, T3 grace)."""
        return self._apply(self.floor.tick(now), now, wall, "expired")

    def media(self, user: str, now: float, wall: Callable[[], float]) -> list[ChannelEffect]:
        """A datagram of ``user`` arrived: timers due by its time fire first (T1 restarts).

        The relay's hot path: ``wall`` (unix time) is asked for only when a timer fired,
        not once per packet.
        """
        events = self.floor.media_received(user, now)
        return self._apply(events, now, wall(), "expired") if events else []

    def end(self, now: float) -> list[ChannelEffect]:
        """The server stops: the burst being recorded ends."""
        if self._burst is None:
            return []
        self._burst.outcome = "server shutdown"
        return self._end_burst(now)

    # --- questions -------------------------------------------------------------------------

    def accepts_trailing(self, user: str, burst_id: int, statement: bool, now: float) -> bool:
        """Whether a late frame (``statement``: a burst statement) of the burst that just
        ended may still be forwarded."""
        trailing = self._trailing
        if trailing is None or trailing[0] != user or trailing[1] != burst_id:
            return False
        return now < (trailing[3] if statement else trailing[2])

    def trailing(self, now: float) -> tuple[str, int, float, float] | None:
        """(talker, burst id, seconds its voice, seconds its statements are still
        forwarded) of the burst that just ended, while either lasts; else None."""
        trailing = self._trailing
        if trailing is None or now >= trailing[3]:
            return None
        return trailing[0], trailing[1], max(0.0, trailing[2] - now), trailing[3] - now

    @property
    def idle(self) -> bool:
        """Nobody holds the floor, nobody waits, and no burst is recorded."""
        return self._burst is None and self.floor.holder is None and not self.floor.queue

    def taken_message(self) -> control.FloorTaken | None:
        """FloorTaken for the burst in progress (for a late entrant), or None."""
        burst = self._burst
        if burst is None or self.floor.holder != burst.talker:
            return None
        return control.FloorTaken(
            channel_id=self.channel_id,
            user_id=burst.talker,
            display_name=self.names.get(burst.talker, ""),
            priority=burst.priority,
            burst_id=burst.burst_id,
            since=burst.started_wall,
            broadcast=burst.broadcast,
        )

    # --- the floor's events ----------------------------------------------------------------

    def _apply(
        self, events: list[floor.FloorEvent], now: float, wall: float, outcome: str
    ) -> list[ChannelEffect]:
        effects: list[ChannelEffect] = []
        for event in events:
            effects.extend(self._on_event(event, now, wall, outcome))
        return effects

    def _on_event(
        self, event: floor.FloorEvent, now: float, wall: float, outcome: str
    ) -> list[ChannelEffect]:
        cid = self.channel_id
        if isinstance(event, floor.FloorGranted):
            limit = event.duration_limit if event.duration_limit is not None else 0.0
            granted = control.FloorGranted(
                channel_id=cid, burst_id=event.burst_id, duration_limit=limit
            )
            burst = self._burst
            if burst is not None and burst.burst_id == event.burst_id:
                # The holder asked again (its Floor Granted was lost, or it pressed a higher
                # priority): answer again within the same burst and the same recording.
                self._requested_at.pop(event.user, None)
                burst.priority = int(event.priority)
                burst.broadcast = event.broadcast
                return [ToUser(event.user, granted)]
            effects: list[ChannelEffect] = []
            if burst is not None and burst.outcome == "released":
                # The floor went straight to a queued user: the old burst ended the way the
                # input says (T1 expired, its talker disconnected), not "released".
                burst.outcome = outcome
            effects.extend(self._end_burst(now))
            requested = self._requested_at.pop(event.user, now)
            priority = int(event.priority)
            self._burst = _Burst(
                event.user, priority, event.burst_id, wall, now, broadcast=event.broadcast
            )
            effects += [
                Granted(max(0.0, now - requested)),
                ToUser(event.user, granted),
                BurstStarted(event.user, priority, event.burst_id, wall, event.broadcast),
            ]
            return effects
        if isinstance(event, floor.FloorTaken):
            taken = self.taken_message()
            return [] if taken is None else [Broadcast(taken, exclude=event.talker)]
        if isinstance(event, floor.FloorIdle):
            if self._burst is not None and self._burst.outcome == "released":
                self._burst.outcome = outcome
            return [*self._end_burst(now), Broadcast(control.FloorIdle(channel_id=cid))]
        if isinstance(event, floor.FloorDeny):
            self._requested_at.pop(event.user, None)
            return [
                Counted("denial", event.cause.phrase),
                ToUser(event.user, control.FloorDeny(channel_id=cid, cause=event.cause.phrase)),
            ]
        if isinstance(event, floor.FloorRevoke):
            effects = [Counted("revoke", event.cause.phrase)]
            pre_empted = event.cause is floor.RevokeCause.MEDIA_BURST_PRE_EMPTED
            if pre_empted:
                effects.append(Counted("pre-emption"))
            if self._burst is not None:
                self._burst.outcome = "pre-empted" if pre_empted else "revoked"
            effects.append(
                ToUser(event.user, control.FloorRevoke(channel_id=cid, cause=event.cause.phrase))
            )
            return effects
        if isinstance(event, floor.FloorQueuePositionInfo):
            position = control.FloorQueuePosition(channel_id=cid, position=event.position)
            return [ToUser(event.user, position)]
        return []

    def _end_burst(self, now: float) -> list[ChannelEffect]:
        burst, self._burst = self._burst, None
        if burst is None:
            return []
        # Voice only of a burst its talker released: a pre-empted, revoked, expired or
        # disconnected one stops at once. Its signed tail still goes through, so listeners
        # can vouch for what they heard.
        voice_until = now + TRAILING_GRACE if burst.outcome == "released" else now
        self._trailing = (burst.talker, burst.burst_id, voice_until, now + TRAILING_STATEMENT_GRACE)
        return [BurstEnded(burst.burst_id, burst.outcome, now - burst.started_mono)]
